// Seeded shuffling, the validation split and training batch order. The same seed gives the same
// order in Node and in the browser, since seedrandom's ARC4 generator is pure JavaScript.

import seedrandom from 'seedrandom';
import { UserError } from '../model/errors.ts';

export type Seed = number | string;

export interface SplitOptions {
  /** Validation batches wanted; fewer are used for small datasets. Default 8. */
  validationBatches?: number;
  /** Examples per batch. Default 8. */
  batchSize?: number;
  seed: Seed;
}

export interface DatasetSplit {
  /** Example indices for training, in shuffled order. */
  train: number[];
  /** Example indices for validation, in shuffled order; batch them with toBatches. */
  validation: number[];
  /** Set when the validation split is smaller than requested, to be shown to the user. */
  message?: string;
}

/** Returns a copy of `items` in an order fixed by `seed` (Fisher-Yates). */
export function shuffle<T>(items: readonly T[], seed: Seed): T[] {
  const random = seedrandom(String(seed));
  const result = [...items];
  for (let i = result.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [result[i], result[j]] = [result[j], result[i]];
  }
  return result;
}

/** Returns 0..n-1 in an order fixed by `seed`. */
export function shuffledIndices(n: number, seed: Seed): number[] {
  return shuffle(
    Array.from({ length: n }, (_, i) => i),
    seed,
  );
}

/**
 * Shuffles the n examples with `seed` and takes the validation split from the front:
 * validationBatches * batchSize examples (64 by default).
 *
 * A small dataset keeps at least three quarters of its examples for training, so its validation
 * split shrinks to a quarter of the dataset, rounded down to whole batches when that leaves at
 * least one batch. Below 4 examples there is no validation split. Both cases set `message`.
 */
export function splitDataset(n: number, options: SplitOptions): DatasetSplit {
  const batchSize = options.batchSize ?? 8;
  const validationBatches = options.validationBatches ?? 8;
  requirePositiveInteger(batchSize, 'batch size');
  requirePositiveInteger(validationBatches, 'number of validation batches');
  if (!Number.isInteger(n) || n < 1) throw new UserError(`The dataset has no examples to split (${n}).`);

  const requested = validationBatches * batchSize;
  let size = Math.min(requested, Math.floor(n / 4));
  if (size >= batchSize) size -= size % batchSize;

  const order = shuffledIndices(n, options.seed);
  const split: DatasetSplit = { train: order.slice(size), validation: order.slice(0, size) };

  if (size === 0) {
    split.message = `The dataset has ${n} example${n === 1 ? '' : 's'}, too few for a validation split: validation is skipped.`;
  } else if (size < requested) {
    const batches = Math.ceil(size / batchSize);
    split.message =
      `The dataset has ${n} examples, so validation uses ${size} of them (${batches} batch${batches === 1 ? '' : 'es'}) ` +
      `instead of ${requested}, and training keeps ${n - size}.`;
  }
  return split;
}

/** Splits `items` into consecutive batches of `batchSize`; the last one may be shorter. */
export function toBatches<T>(items: readonly T[], batchSize: number): T[][] {
  requirePositiveInteger(batchSize, 'batch size');
  const batches: T[][] = [];
  for (let start = 0; start < items.length; start += batchSize) batches.push(items.slice(start, start + batchSize));
  return batches;
}

/**
 * Draws training batches of a fixed size from `indices`, reshuffling at every epoch with a seed
 * derived from the base seed and the epoch, so a run is repeatable. A batch never spans two epochs,
 * so the examples left over at the end of an epoch are skipped that epoch.
 */
export class BatchSampler {
  private order: number[] = [];
  private position = 0;
  /** Epochs started so far; the first batch starts epoch 1. */
  epoch = 0;

  constructor(
    private readonly indices: readonly number[],
    private readonly batchSize: number,
    private readonly seed: Seed,
  ) {
    requirePositiveInteger(batchSize, 'batch size');
    if (indices.length < batchSize) {
      throw new UserError(
        `The training split has ${indices.length} examples, fewer than the batch size ${batchSize}. Use a smaller batch size or more data.`,
      );
    }
  }

  next(): number[] {
    if (this.epoch === 0 || this.position + this.batchSize > this.order.length) {
      this.epoch++;
      this.order = shuffle(this.indices, `${this.seed}:${this.epoch}`);
      this.position = 0;
    }
    const batch = this.order.slice(this.position, this.position + this.batchSize);
    this.position += this.batchSize;
    return batch;
  }
}

function requirePositiveInteger(value: number, name: string): void {
  if (!Number.isInteger(value) || value < 1) throw new UserError(`The ${name} must be a positive integer, got ${value}.`);
}

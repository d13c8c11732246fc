// The data of a repair run: examples tokenized once, the validation split, and batches that
// all have the run's batch size B and sequence length T, so the engine allocates its
// activations once. Short batches are filled with rows that carry no loss.

import { makeBatch, makeTextBatch, type TokenBatch } from '../data/batch.ts';
import type { Dataset } from '../data/dataset.ts';
import { sequencesFor, tokenizeExamples, type ContinuationKind, type TokenizedExample } from '../data/examples.ts';
import { shuffle, splitDataset } from '../data/split.ts';
import { UserError } from '../model/errors.ts';
import type { Tokenizer } from '../model/tokenizer.ts';

export interface RepairExamples {
  fileName: string;
  /** Every example, with its prompt, bad (D^E) and good (D^R) continuation tokens. */
  examples: TokenizedExample[];
  /** Example indices for training and for validation. */
  train: number[];
  validation: number[];
  /** Maximum tokens of prompt plus continuation over all examples. */
  longest: number;
  /** Examples cut to fit the maximum sequence length. */
  truncated: number;
  /** Notes for the user (a reduced validation split, truncation). */
  messages: string[];
}

/**
 * Tokenizes a pairwise or preference dataset, cutting sequences to `maxLength` tokens, and
 * splits it into training and validation examples with `seed`.
 */
export function prepareExamples(
  dataset: Dataset,
  tokenizer: Pick<Tokenizer, 'encode' | 'eosTokenId'>,
  maxLength: number,
  split: { validationBatches: number; validationBatchSize: number; seed: number },
): RepairExamples {
  if (dataset.format === 'prompts') {
    throw new UserError(
      `${dataset.fileName} contains prompts only; a repair needs a bad and a good continuation per prompt ` +
        '(fields prompt_text, pert_gen_text, unpert_gen_text or prompt, rejected, chosen).',
    );
  }
  const tokenized = tokenizeExamples(dataset.rows, tokenizer, maxLength, dataset.fileName);
  const examples = tokenized.examples;
  const messages: string[] = [];
  if (tokenized.truncated > 0) {
    messages.push(`${tokenized.truncated} of ${examples.length} examples were cut to ${maxLength} tokens.`);
  }

  let train: number[];
  let validation: number[];
  if (split.validationBatches === 0) {
    train = shuffle(examples.map((_, i) => i), split.seed);
    validation = [];
  } else {
    const result = splitDataset(examples.length, {
      validationBatches: split.validationBatches,
      batchSize: split.validationBatchSize,
      seed: split.seed,
    });
    train = result.train;
    validation = result.validation;
    if (result.message) messages.push(result.message);
  }

  const longest = Math.max(...examples.map((e) => e.prompt.length + Math.max(e.bad!.length, e.good!.length)));
  return { fileName: dataset.fileName, examples, train, validation, longest, truncated: tokenized.truncated, messages };
}

/** Builds every batch of a run with B rows of T positions. */
export class BatchBuilder {
  readonly rows: number;
  readonly seqLen: number;
  private readonly examples: TokenizedExample[];
  private readonly padId: number;

  constructor(examples: TokenizedExample[], rows: number, seqLen: number, padId: number) {
    this.examples = examples;
    this.rows = rows;
    this.seqLen = seqLen;
    this.padId = padId;
  }

  /**
   * Builds the batch of the bad (D^E) or good (D^R) continuations of up to B examples. Its loss is
   * the batch NLL: per sequence the mean over its continuation tokens, then the mean over the examples.
   */
  continuations(indices: readonly number[], kind: ContinuationKind): TokenBatch {
    const sequences = sequencesFor(indices.map((i) => this.examples[i]), kind);
    return fillRows(makeBatch(sequences, this.padId, this.seqLen), this.rows, this.padId);
  }

  /**
   * Good continuations in rows 0..B-1 and the bad ones of the same examples in rows B..2B-1,
   * with weight 1 on every continuation token, so each row's summed loss is -log p(continuation).
   * Rows past the examples are empty. The batch has 2B rows.
   */
  preferencePairs(indices: readonly number[]): TokenBatch {
    const chosen = this.continuations(indices, 'good');
    const rejected = this.continuations(indices, 'bad');
    const pairs = concatenateRows(chosen, rejected);
    pairs.weights = Float32Array.from(pairs.targets, (target) => (target >= 0 ? 1 : 0));
    return pairs;
  }

  /** Normal data D^N: every next token counts, and the loss is the mean over predicted tokens. */
  text(sequences: number[][]): TokenBatch {
    return fillRows(makeTextBatch(sequences, this.padId, this.seqLen), this.rows, this.padId);
  }
}

/** Adds rows without tokens or loss until the batch has `rows` rows. */
export function fillRows(batch: TokenBatch, rows: number, padId: number): TokenBatch {
  if (batch.batchSize > rows) throw new Error(`fillRows: batch of ${batch.batchSize} rows exceeds ${rows}`);
  if (batch.batchSize === rows) return batch;
  const T = batch.seqLen;
  const tokens = new Int32Array(rows * T).fill(padId);
  tokens.set(batch.tokens);
  const targets = new Int32Array(rows * T).fill(-1);
  targets.set(batch.targets);
  const weights = new Float32Array(rows * T);
  weights.set(batch.weights);
  const lengths = new Int32Array(rows);
  lengths.set(batch.lengths);
  return { batchSize: rows, seqLen: T, tokens, targets, weights, lengths, lossTokens: batch.lossTokens };
}

function concatenateRows(a: TokenBatch, b: TokenBatch): TokenBatch {
  const join = <A extends Int32Array | Float32Array>(x: A, y: A, make: (n: number) => A): A => {
    const out = make(x.length + y.length);
    out.set(x);
    out.set(y, x.length);
    return out;
  };
  return {
    batchSize: a.batchSize + b.batchSize,
    seqLen: a.seqLen,
    tokens: join(a.tokens, b.tokens, (n) => new Int32Array(n)),
    targets: join(a.targets, b.targets, (n) => new Int32Array(n)),
    weights: join(a.weights, b.weights, (n) => new Float32Array(n)),
    lengths: join(a.lengths, b.lengths, (n) => new Int32Array(n)),
    lossTokens: a.lossTokens + b.lossTokens,
  };
}

/** Real (unpadded) tokens of a batch, for throughput. */
export function batchTokens(batch: TokenBatch): number {
  return batch.lengths.reduce((sum, length) => sum + length, 0);
}

/** Splits `items` into consecutive groups of at most `size`. */
export function groups<T>(items: readonly T[], size: number): T[][] {
  const result: T[][] = [];
  for (let start = 0; start < items.length; start += size) result.push(items.slice(start, start + size));
  return result;
}

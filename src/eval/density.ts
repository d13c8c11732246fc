// Error density across transformer blocks, as in Figure 2 of the IRepair paper: the mean block
// sensitivity (Algorithm 1: the L2 norm of the gradient of the batch NLL with respect to each
// block's parameters) over a random sample of bad demonstrations D^E, each block's share of the
// total, and how much denser the errors are in the most sensitive blocks than in the others.
//
// The density of a set of blocks is their total sensitivity divided by their number. The IRepair
// paper (Imtiaz et al., FSE 2025) compares the top 20% of blocks with the remaining 80%.

import { makeBatch } from '../data/batch.ts';
import type { Sequence } from '../data/examples.ts';
import { shuffle, type Seed } from '../data/split.ts';
import type { GptEngine } from '../engine/gpt.ts';
import { UserError } from '../model/errors.ts';

export interface DensityOptions {
  /** Examples drawn from D^E; all of them when there are fewer. Default 2000. */
  sampleSize?: number;
  /** Examples per sensitivity batch. Default 4, the repair batch size of the paper. */
  batchSize?: number;
  seed?: Seed;
  /** Fraction of blocks counted as the top. Default 0.2. */
  topFraction?: number;
  /** Token id that pads the batches. */
  padId: number;
  onProgress?: (batchesDone: number, batchesTotal: number) => void;
  /** Stops between batches; the promise then rejects with the signal's reason. */
  signal?: AbortSignal;
}

export interface DensitySummary {
  /** Each block's share of the total sensitivity; the shares sum to 1. */
  relative: number[];
  /** The top blocks, most sensitive first. */
  topBlocks: number[];
  /** Density of the top blocks divided by the density of the rest. */
  ratio: number;
  topFraction: number;
}

export interface ErrorDensity extends DensitySummary {
  /** Mean sensitivity of each block over the sample. */
  sensitivity: number[];
  examples: number;
  batches: number;
}

/**
 * Shares, top blocks and density ratio of a per-block sensitivity vector. The top holds
 * round(topFraction * L) blocks, at least 1 and at most L - 1, so that both sides are non-empty.
 */
export function densitySummary(sensitivity: number[], topFraction = 0.2): DensitySummary {
  const L = sensitivity.length;
  if (L < 2) throw new UserError(`Error density compares blocks with each other, so it needs a model of at least 2 blocks (this one has ${L}).`);
  if (!(topFraction > 0 && topFraction < 1)) throw new UserError(`The top fraction must be between 0 and 1, got ${topFraction}.`);
  if (sensitivity.some((value) => !(Number.isFinite(value) && value >= 0))) {
    throw new Error(`densitySummary: sensitivities must be finite and non-negative, got ${sensitivity.join(', ')}`);
  }

  const total = sensitivity.reduce((sum, value) => sum + value, 0);
  const relative = sensitivity.map((value) => (total > 0 ? value / total : 1 / L));

  const topCount = Math.min(L - 1, Math.max(1, Math.round(topFraction * L)));
  const order = sensitivity.map((_, block) => block).sort((a, b) => sensitivity[b] - sensitivity[a] || a - b);
  const topBlocks = order.slice(0, topCount);
  const topSum = topBlocks.reduce((sum, block) => sum + sensitivity[block], 0);
  const restDensity = (total - topSum) / (L - topCount);
  return { relative, topBlocks, ratio: topSum / topCount / restDensity, topFraction };
}

/**
 * Draws `sampleSize` sequences of D^E (prompt + bad continuation) with the seed, measures the
 * block sensitivities of each batch on the GPU and averages them, each batch weighted by its
 * number of examples.
 */
export async function errorDensity(engine: GptEngine, sequences: Sequence[], options: DensityOptions): Promise<ErrorDensity> {
  const sampleSize = options.sampleSize ?? 2000;
  const batchSize = options.batchSize ?? 4;
  const topFraction = options.topFraction ?? 0.2;
  if (!(Number.isInteger(sampleSize) && sampleSize >= 1)) throw new UserError(`The sample size must be a positive integer, got ${sampleSize}.`);
  if (!(Number.isInteger(batchSize) && batchSize >= 1)) throw new UserError(`The batch size must be a positive integer, got ${batchSize}.`);
  if (sequences.length === 0) throw new UserError('Error density needs at least one example of D^E.');

  const sample = shuffle(sequences, options.seed ?? 0).slice(0, sampleSize);
  const L = engine.config.numLayers;
  const sums = new Float64Array(L);
  const batches = Math.ceil(sample.length / batchSize);
  for (let i = 0; i < batches; i++) {
    if (options.signal?.aborted) throw options.signal.reason ?? new Error('error density aborted');
    const group = sample.slice(i * batchSize, (i + 1) * batchSize);
    const { blocks } = await engine.sensitivity(makeBatch(group, options.padId));
    blocks.forEach((value, block) => (sums[block] += value * group.length));
    options.onProgress?.(i + 1, batches);
  }

  const sensitivity = Array.from(sums, (sum) => sum / sample.length);
  return { sensitivity, ...densitySummary(sensitivity, topFraction), examples: sample.length, batches };
}

/** Draws a horizontal bar per block, scaled to the largest share, for a terminal. */
export function densityChart(density: DensitySummary, width = 40): string {
  const largest = Math.max(...density.relative);
  const top = new Set(density.topBlocks);
  const label = String(density.relative.length - 1).length;
  return density.relative.map((share, block) => {
    const bar = '#'.repeat(Math.round((share / largest) * width));
    const mark = top.has(block) ? ' *' : '';
    return `block ${String(block).padStart(label)} ${(share * 100).toFixed(1).padStart(5)}% ${bar}${mark}`;
  }).join('\n');
}

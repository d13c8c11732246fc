// Perplexity by the protocol of the IRepair paper (Imtiaz et al., FSE 2025, section 4.1.4), which
// follows prior work on GPT models. The text is tokenized whole and cut into non-overlapping
// windows of the model's context length (1024 tokens for GPT-2). Within a window of n tokens,
// positions 0..n-2 predict tokens 1..n-1, so the first token of each window serves only as
// context and a last window of a single token predicts nothing.
//
//   perplexity = exp(sum of NLL over every predicted token / number of predicted tokens)

import { chunkTokens, makeTextBatch } from '../data/batch.ts';
import type { GptEngine } from '../engine/gpt.ts';
import { UserError } from '../model/errors.ts';
import type { Tokenizer } from '../model/tokenizer.ts';

export interface PerplexityOptions {
  /** Tokens per window; the model's context length by default. */
  window?: number;
  /** Windows per forward pass; by default as many as keep the logits within 256 MiB and one storage binding, at most 8. */
  batchSize?: number;
  onProgress?: (windowsDone: number, windowsTotal: number) => void;
  /** Stops between forward passes; the promise then rejects with the signal's reason. */
  signal?: AbortSignal;
}

export interface PerplexityResult {
  perplexity: number;
  /** Number of predicted tokens: each window of n tokens predicts n - 1. */
  tokens: number;
  /** Mean NLL per predicted token, in nats. */
  nll: number;
  windows: number;
  window: number;
}

const MAX_DEFAULT_BATCH = 8;
// Batching windows adds little parallelism when a window already has up to 1024 rows, so the
// default keeps the logits buffer moderate rather than filling the device.
const DEFAULT_LOGITS_BYTES = 256 * 1024 * 1024;

/**
 * Measures the perplexity of the model on a token stream. Each position's NLL comes from the GPU in f32;
 * the sum over positions and windows is taken on the CPU in f64, so long texts lose no precision.
 */
export async function perplexity(engine: GptEngine, ids: ArrayLike<number>, options: PerplexityOptions = {}): Promise<PerplexityResult> {
  const { config, gpu } = engine;
  const window = options.window ?? config.contextLength;
  if (!Number.isInteger(window) || window < 2 || window > config.contextLength) {
    throw new UserError(`The perplexity window must be an integer between 2 and the model's context length ${config.contextLength}, got ${window}.`);
  }
  const windows = chunkTokens(Array.from(ids), window);
  if (windows.length === 0) throw new UserError(`The text has ${ids.length} token(s); perplexity needs at least 2.`);

  const V = config.vocabSize;
  for (const windowIds of windows) {
    for (const id of windowIds) {
      if (!Number.isInteger(id) || id < 0 || id >= V) throw new UserError(`Token id ${id} is outside the model's vocabulary of ${V}; the tokenizer does not match the model.`);
    }
  }

  const logitsBytesPerWindow = window * V * 4;
  const logitsBudget = Math.min(DEFAULT_LOGITS_BYTES, gpu.maxBindingBytes);
  const batchSize = options.batchSize ?? Math.max(1, Math.min(MAX_DEFAULT_BATCH, Math.floor(logitsBudget / logitsBytesPerWindow)));
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new UserError(`The perplexity batch size must be a positive integer, got ${batchSize}.`);

  let nllSum = 0;
  let predicted = 0;
  for (let start = 0; start < windows.length; start += batchSize) {
    if (options.signal?.aborted) throw options.signal.reason ?? new Error('perplexity aborted');
    const group = windows.slice(start, start + batchSize);
    // Every group is padded to the full window, so the engine keeps one set of activations.
    const batch = makeTextBatch(group, 0, window);
    // Unit weights make each position's loss its NLL (makeTextBatch's weights average instead).
    const weights = Float32Array.from(batch.targets, (target) => (target >= 0 ? 1 : 0));
    const acts = engine.lossForward({ ...batch, weights }, false);
    const losses = await gpu.readFloat32(acts.losses, 0, batch.batchSize * window);
    for (let i = 0; i < losses.length; i++) if (weights[i] !== 0) nllSum += losses[i];
    predicted += batch.lossTokens;
    options.onProgress?.(Math.min(start + batchSize, windows.length), windows.length);
  }

  const nll = nllSum / predicted;
  return { perplexity: Math.exp(nll), tokens: predicted, nll, windows: windows.length, window };
}

/** Tokenizes a whole text and measures the model's perplexity on it (see perplexity). */
export async function textPerplexity(
  engine: GptEngine,
  tokenizer: Pick<Tokenizer, 'encode'>,
  text: string,
  options: PerplexityOptions = {},
): Promise<PerplexityResult> {
  return perplexity(engine, tokenizer.encode(text), options);
}

// Batches of token sequences laid out for the engine: B sequences of T positions, row-major,
// each placed from position 0 and right-padded. Position t predicts the token at t + 1, so the
// loss of a token at position p sits at position p - 1.
//
// The weights fold the loss normalization into the batch, so that the engine's loss is always
// sum over positions of weights[i] * -log p(targets[i]), whatever normalization the data needs.

import type { Sequence } from './examples.ts';

export interface TokenBatch {
  /** B, the number of sequences. */
  batchSize: number;
  /** T, the number of positions of every sequence after padding. */
  seqLen: number;
  /** (B, T) input token ids; positions past a sequence's end hold the pad id. */
  tokens: Int32Array;
  /** (B, T) the token each position is trained to predict, or -1 where there is no loss. */
  targets: Int32Array;
  /** (B, T) loss weight of each position, 0 where the target is -1. */
  weights: Float32Array;
  /** (B) tokens of each sequence before padding. */
  lengths: Int32Array;
  /** Number of positions with a loss, i.e. of tokens predicted. */
  lossTokens: number;
}

/**
 * Lays out prompt + continuation sequences with the loss on continuation tokens only.
 *
 * The weights make sum(weights * NLL) the batch NLL of the repair algorithm: per sequence the mean
 * over its continuation tokens, then the mean over sequences. With an empty prompt, the first
 * continuation token sits at position 0, where no earlier position predicts it, so it is left out
 * of its sequence's mean. (tokenizeExamples gives empty prompts the end-of-text token, so this case
 * does not arise from its output.) Sequences left with no predicted token are left out of the
 * mean over sequences.
 *
 * `seqLen` defaults to the longest sequence; a larger value pads every row further.
 */
export function makeBatch(sequences: Sequence[], padId: number, seqLen?: number): TokenBatch {
  const B = sequences.length;
  const T = resolveSeqLen(sequences.map((s) => s.prompt.length + s.continuation.length), seqLen);
  const batch = allocateBatch(B, T, padId);

  // Sequences that have at least one predicted continuation token share the batch mean.
  const predictedCounts = sequences.map((s) => s.continuation.length - (s.prompt.length === 0 ? 1 : 0));
  const contributing = predictedCounts.filter((count) => count > 0).length;
  if (contributing === 0) throw new Error('makeBatch: no sequence has a continuation token to predict');

  sequences.forEach(({ prompt, continuation }, b) => {
    const row = b * T;
    batch.tokens.set(prompt, row);
    batch.tokens.set(continuation, row + prompt.length);
    batch.lengths[b] = prompt.length + continuation.length;
    if (predictedCounts[b] <= 0) return;

    const weight = 1 / (predictedCounts[b] * contributing);
    for (let j = 0; j < continuation.length; j++) {
      const position = prompt.length + j - 1;
      if (position < 0) continue;
      batch.targets[row + position] = continuation[j];
      batch.weights[row + position] = weight;
      batch.lossTokens++;
    }
  });
  return batch;
}

/**
 * Lays out plain token sequences (perplexity, normal data D^N) where every next token counts.
 * The weights make sum(weights * NLL) the mean NLL over all predicted tokens of the batch, so that
 * exp of it is the batch perplexity.
 */
export function makeTextBatch(sequences: number[][], padId: number, seqLen?: number): TokenBatch {
  const B = sequences.length;
  const T = resolveSeqLen(sequences.map((s) => s.length), seqLen);
  const batch = allocateBatch(B, T, padId);

  const predicted = sequences.reduce((sum, s) => sum + Math.max(0, s.length - 1), 0);
  if (predicted === 0) throw new Error('makeTextBatch: every sequence is shorter than 2 tokens');
  const weight = 1 / predicted;

  sequences.forEach((sequence, b) => {
    const row = b * T;
    batch.tokens.set(sequence, row);
    batch.lengths[b] = sequence.length;
    for (let t = 0; t + 1 < sequence.length; t++) {
      batch.targets[row + t] = sequence[t + 1];
      batch.weights[row + t] = weight;
    }
  });
  batch.lossTokens = predicted;
  return batch;
}

/**
 * Cuts a token stream into consecutive sequences of `length` tokens for makeTextBatch. The last,
 * shorter piece is kept when it has at least 2 tokens, the fewest that give one prediction.
 */
export function chunkTokens(ids: number[], length: number): number[][] {
  if (!Number.isInteger(length) || length < 2) throw new Error(`chunkTokens: length must be an integer >= 2, got ${length}`);
  const chunks: number[][] = [];
  for (let start = 0; start < ids.length; start += length) {
    const chunk = ids.slice(start, start + length);
    if (chunk.length >= 2) chunks.push(chunk);
  }
  return chunks;
}

function resolveSeqLen(lengths: number[], seqLen: number | undefined): number {
  if (lengths.length === 0) throw new Error('batch: no sequences');
  const longest = Math.max(...lengths);
  if (seqLen === undefined) return longest;
  if (seqLen < longest) throw new Error(`batch: a sequence of ${longest} tokens does not fit seqLen ${seqLen}`);
  return seqLen;
}

function allocateBatch(B: number, T: number, padId: number): TokenBatch {
  return {
    batchSize: B,
    seqLen: T,
    tokens: new Int32Array(B * T).fill(padId),
    targets: new Int32Array(B * T).fill(-1),
    weights: new Float32Array(B * T),
    lengths: new Int32Array(B),
    lossTokens: 0,
  };
}

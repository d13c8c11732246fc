// The losses a repair step trains on and the recording of their gradients:
//   repair loss  alpha * NLL(D^R), the NLL of the good continuations (DAPT: alpha = 1)
//   KL term      KL(π_θ(·|X^N) ‖ π_ref(·|X^N)) on normal data, the mean over predicted positions
//   DPO          -log σ(β ((log π(y_w|x) - log π_ref(y_w|x)) - (log π(y_l|x) - log π_ref(y_l|x))))
// Each function records GPU work and writes its loss into a scalar slot of the engine, so one
// read-back per step returns every loss and the gradient norm.

import type { TokenBatch } from '../data/batch.ts';
import type { ForwardOptions, GptEngine } from '../engine/gpt.ts';
import type { GpuBuffer } from '../gpu/device.ts';
import type { ReferenceModel } from './reference.ts';

/** Scalar slots of the engine that a step's losses and gradient norm are reduced into. */
export const SLOT = { repair: 0, kl: 1, gradientSquaredNorm: 2 } as const;

type Dropout = ForwardOptions['dropout'];

/** Records the gradient of scale * NLL(batch) for the trainable parameters; the unscaled NLL goes to SLOT.repair. */
export function recordNllGradients(engine: GptEngine, batch: TokenBatch, scale: number, accumulate: boolean, dropout: Dropout): void {
  const acts = engine.lossForward(batch, true, SLOT.repair, { dropout });
  const weights = scale === 1 ? undefined : batch.weights.map((weight) => weight * scale);
  engine.lossBackward(acts, batch, { weights, accumulate });
}

/**
 * Records the gradient of KL(π_θ ‖ π_ref) on a normal batch; the KL goes to SLOT.kl. The
 * reference logits come from a forward pass of the engine with the reference's original
 * parameters, without dropout, written into `referenceLogits` [B*T, V].
 */
export function recordKlGradients(
  engine: GptEngine, reference: ReferenceModel, batch: TokenBatch, referenceLogits: GpuBuffer, accumulate: boolean, dropout: Dropout,
): void {
  engine.logitsInto(batch.tokens, batch.batchSize, batch.seqLen, referenceLogits, reference.parameters);
  const acts = engine.klForward(batch, referenceLogits, SLOT.kl, { dropout });
  engine.klBackward(acts, batch, referenceLogits, { accumulate });
}

/** log π(continuation | prompt) of each row, from per-position losses -log p(token) [rows*T]. */
export function rowLogProbabilities(losses: Float32Array, rows: number, T: number): Float64Array {
  const result = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let t = 0; t < T; t++) sum += losses[r * T + t];
    result[r] = -sum;
  }
  return result;
}

/** -log σ(x), computed without overflow. */
export function negativeLogSigmoid(x: number): number {
  return x >= 0 ? Math.log1p(Math.exp(-x)) : -x + Math.log1p(Math.exp(x));
}

export function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

/** Reference log-probabilities of an example's good (chosen) and bad (rejected) continuation. */
export interface PairLogProbabilities {
  chosen: number;
  rejected: number;
}

/**
 * Computes the DPO loss of `count` pairs, the mean over pairs, from the policy's and the reference's
 * log-probabilities, and the derivative of the loss with respect to each pair's chosen
 * log-probability (the rejected one's is its negative).
 */
export function dpoLoss(
  policy: PairLogProbabilities[], reference: PairLogProbabilities[], beta: number,
): { loss: number; chosenGradients: number[] } {
  const count = policy.length;
  let loss = 0;
  const chosenGradients: number[] = [];
  for (let i = 0; i < count; i++) {
    const margin = policy[i].chosen - reference[i].chosen - (policy[i].rejected - reference[i].rejected);
    loss += negativeLogSigmoid(beta * margin) / count;
    chosenGradients.push((-beta * sigmoid(-beta * margin)) / count);
  }
  return { loss, chosenGradients };
}

/**
 * Records the forward pass of preference pairs (see BatchBuilder.preferencePairs: good
 * continuations in rows 0..B-1, bad ones in B..2B-1), reads the policy's log-probabilities,
 * and records the backward pass of the DPO loss over the first `count` pairs. Returns the loss.
 */
export async function dpoGradients(
  engine: GptEngine, pairs: TokenBatch, count: number, reference: PairLogProbabilities[], beta: number, dropout: Dropout,
): Promise<number> {
  const B = pairs.batchSize / 2;
  const T = pairs.seqLen;
  const acts = engine.lossForward(pairs, true, SLOT.repair, { dropout });
  const logProbabilities = rowLogProbabilities(await engine.readPositionLosses(acts), pairs.batchSize, T);
  const policy = Array.from({ length: count }, (_, i) => ({ chosen: logProbabilities[i], rejected: logProbabilities[B + i] }));
  const { loss, chosenGradients } = dpoLoss(policy, reference, beta);

  // The cross-entropy backward pass computes weight * d(-log p)/d logits, and log π of a row is
  // the sum of its tokens' log p, so a row's weight is minus the loss's derivative by its log π.
  const weights = new Float32Array(pairs.weights.length);
  for (let i = 0; i < count; i++) {
    for (let t = 0; t < T; t++) {
      weights[i * T + t] = -chosenGradients[i] * pairs.weights[i * T + t];
      weights[(B + i) * T + t] = chosenGradients[i] * pairs.weights[(B + i) * T + t];
    }
  }
  engine.lossBackward(acts, pairs, { weights, accumulate: false });
  return loss;
}

/** Log-probabilities of the first `count` pairs of a preference batch under the current weights, without dropout. */
export async function pairLogProbabilities(engine: GptEngine, pairs: TokenBatch, count: number): Promise<PairLogProbabilities[]> {
  const B = pairs.batchSize / 2;
  const acts = engine.lossForward(pairs, false, SLOT.repair);
  const logProbabilities = rowLogProbabilities(await engine.readPositionLosses(acts), pairs.batchSize, pairs.seqLen);
  return Array.from({ length: count }, (_, i) => ({ chosen: logProbabilities[i], rejected: logProbabilities[B + i] }));
}

// The GPU memory a repair run plans to use, checked against the device before the run starts.

import { formatBytes, type Gpu } from '../gpu/device.ts';
import { planMemory, type MemoryPlan } from '../engine/memory.ts';
import { UserError } from '../model/errors.ts';
import type { ModelConfig } from '../model/types.ts';
import { isSliceMethod, usesKl, type RepairMethod } from './options.ts';

const FLOAT = 4;

export interface RepairMemoryPlan extends MemoryPlan {
  /** Rows of the training batches: B, or 2B for DPO's concatenated pairs. */
  rows: number;
  seqLen: number;
}

/**
 * Returns the planned bytes of one step of `method` on B examples of T tokens. The irepair methods
 * hold one block's gradients. The KL methods add the reference logits and, in the first step, the
 * original copies of the updated parameters.
 */
// NOTE: a long irepair run keeps optimizer state (and, with KL, an original copy) for every
// block it has selected, so its use grows towards that of a run that updates every block.
export function planRepairMemory(config: ModelConfig, method: RepairMethod, B: number, T: number): RepairMemoryPlan {
  const rows = method === 'dpo' ? 2 * B : B;
  const base = planMemory(config, rows, T, isSliceMethod(method) ? 'irepair' : 'full');
  const plan: RepairMemoryPlan = { ...base, rows, seqLen: T };
  if (usesKl(method)) {
    plan.activations += B * T * config.vocabSize * FLOAT;
    plan.weights += isSliceMethod(method) ? base.gradients : base.weights;
  }
  plan.total = plan.weights + plan.activations + plan.gradients + plan.optimizer + plan.scratch;
  return plan;
}

/**
 * Rejects a run whose largest buffer exceeds what the device can bind, or whose planned total
 * exceeds `limitBytes`, with a message that names what to reduce.
 */
export function checkRepairMemory(gpu: Gpu, config: ModelConfig, plan: RepairMemoryPlan, batchSize: number, limitBytes: number | null): void {
  const reduce = `Reduce the batch size (now ${batchSize}) or the maximum sequence length (now ${plan.seqLen} tokens).`;
  const logits = plan.rows * plan.seqLen * config.vocabSize * FLOAT;
  const attention = plan.rows * config.numHeads * plan.seqLen * plan.seqLen * FLOAT;
  const limit = gpu.maxBindingBytes;
  if (logits > limit) {
    throw new UserError(
      `The logits of ${plan.rows} sequences of ${plan.seqLen} tokens over ${config.vocabSize} tokens need a ${formatBytes(logits)} buffer, ` +
        `more than this device can bind (${formatBytes(limit)}). ${reduce}`,
    );
  }
  if (attention > limit) {
    throw new UserError(
      `The attention probabilities of ${plan.rows} sequences of ${plan.seqLen} tokens need a ${formatBytes(attention)} buffer, ` +
        `more than this device can bind (${formatBytes(limit)}). ${reduce}`,
    );
  }
  if (limitBytes !== null && plan.total > limitBytes) {
    const parts = `weights ${formatBytes(plan.weights)}, activations ${formatBytes(plan.activations)}, gradients ${formatBytes(plan.gradients)}, ` +
      `optimizer state ${formatBytes(plan.optimizer)}, scratch ${formatBytes(plan.scratch)}`;
    throw new UserError(
      `The run plans ${formatBytes(plan.total)} of GPU memory (${parts}), more than the limit of ${formatBytes(limitBytes)}. ` +
        `${reduce} The irepair methods need the least memory.`,
    );
  }
}

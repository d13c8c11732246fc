// Planned GPU memory of the engine, by category, computed from the configuration alone so a
// user learns before loading whether a model fits.

import type { MemoryAccount } from '../gpu/device.ts';
import type { ModelConfig } from '../model/types.ts';
import { activationBytes, scratchBytes } from './activations.ts';
import { blockParameterNames, parameterShapes } from './parameters.ts';

export type PlanMode = 'forward' | 'sensitivity' | 'irepair' | 'full';

export interface MemoryPlan extends MemoryAccount {
  total: number;
  /** Largest single buffer, to compare with maxStorageBufferBindingSize. */
  largestBuffer: number;
}

const FLOAT = 4;

function count(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function parameterCount(config: ModelConfig): number {
  return parameterShapes(config).reduce((sum, p) => sum + count(p.shape), 0);
}

export function blockParameterCount(config: ModelConfig): number {
  const shapes = new Map(parameterShapes(config).map((p) => [p.name, p.shape]));
  return blockParameterNames(config, 0).reduce((sum, name) => sum + count(shapes.get(name)!), 0);
}

/**
 * GPU bytes for a batch of B sequences of T tokens.
 * - forward: weights and one layer's activations (evaluation, generation).
 * - sensitivity: activations of every layer and one block's gradients.
 * - irepair: sensitivity plus RMSProp state for one block. NOTE: a long run that selects many
 *   blocks keeps state for each selected block, up to the size of `full`'s optimizer state.
 * - full: gradients and RMSProp state for every parameter (DAPT).
 */
export function planMemory(config: ModelConfig, B: number, T: number, mode: PlanMode): MemoryPlan {
  const weights = parameterCount(config) * FLOAT;
  const block = blockParameterCount(config) * FLOAT;
  const forBackward = mode !== 'forward';
  const gradientBytes: Record<PlanMode, number> = { forward: 0, sensitivity: block, irepair: block, full: weights };
  const optimizerBytes: Record<PlanMode, number> = { forward: 0, sensitivity: 0, irepair: block, full: weights };
  const plan: MemoryPlan = {
    weights,
    activations: activationBytes(config, B, T, forBackward),
    gradients: gradientBytes[mode],
    optimizer: optimizerBytes[mode],
    scratch: forBackward ? scratchBytes(config, B, T) : 0,
    total: 0,
    largestBuffer: Math.max(config.vocabSize * config.hiddenSize, B * T * config.vocabSize, B * config.numHeads * T * T) * FLOAT,
  };
  plan.total = plan.weights + plan.activations + plan.gradients + plan.optimizer + plan.scratch;
  return plan;
}

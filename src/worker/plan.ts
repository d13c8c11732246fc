// The memory plan the model panel shows before the weights upload: parameter count, planned GPU
// bytes, and the adapter limits that a model or batch shape would exceed.

import { planMemory, type PlanMode } from '../engine/memory.ts';
import type { Checkpoint } from '../model/checkpoint.ts';
import type { ModelConfig } from '../model/types.ts';
import type { AdapterLimits, ModelPlan } from './protocol.ts';

/** Batch shape of a plan: B sequences of T tokens. */
export interface BatchShape {
  batchSize: number;
  seqLen: number;
}

/**
 * Shape the plan assumes before a dataset is known: the run form's default batch size and a
 * sequence length that covers a prompt and a continuation of typical toxicity data.
 */
export const DEFAULT_PLAN_SHAPE: BatchShape = { batchSize: 4, seqLen: 128 };

const FLOAT_BYTES = 4;

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Returns the smaller of the two limits that cap one storage binding, and its name for messages. */
function bindingLimit(limits: AdapterLimits): { bytes: number; name: string } {
  if (limits.maxBufferSize < limits.maxStorageBufferBindingSize) return { bytes: limits.maxBufferSize, name: 'maxBufferSize' };
  return { bytes: limits.maxStorageBufferBindingSize, name: 'maxStorageBufferBindingSize' };
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/**
 * Lists the parameters that do not fit one binding. A tensor larger than a binding is split into
 * row chunks, so only a row larger than one binding is a problem.
 */
export function weightProblems(tensors: readonly { name: string; shape: readonly number[] }[], limits: AdapterLimits): string[] {
  const limit = bindingLimit(limits);
  const problems: string[] = [];
  for (const tensor of tensors) {
    const bytes = product(tensor.shape) * FLOAT_BYTES;
    if (bytes <= limit.bytes) continue;
    const rowBytes = tensor.shape.length === 2 ? tensor.shape[1] * FLOAT_BYTES : bytes;
    if (rowBytes <= limit.bytes) continue;
    problems.push(
      `Parameter ${tensor.name} needs ${mib(rowBytes)} in one binding, more than this adapter's ${limit.name} of ${mib(limit.bytes)}. ` +
        'Choose a smaller model, or a GPU whose adapter offers larger buffers.',
    );
  }
  return problems;
}

/**
 * Lists the activations of a batch that do not fit one binding: the logits [B*T, V], the
 * attention probabilities [B, NH, T, T] and the MLP activations [B*T, I] are never split.
 */
export function batchProblems(config: ModelConfig, limits: AdapterLimits, shape: BatchShape): string[] {
  const limit = bindingLimit(limits);
  const { batchSize: B, seqLen: T } = shape;
  const perSequence = [
    { what: 'logits', floats: T * config.vocabSize },
    { what: 'attention probabilities', floats: config.numHeads * T * T },
    { what: 'MLP activations', floats: T * config.innerSize },
  ];
  const largest = perSequence.reduce((a, b) => (b.floats > a.floats ? b : a));
  const bytes = B * largest.floats * FLOAT_BYTES;
  if (bytes <= limit.bytes) return [];

  const maxBatch = Math.floor(limit.bytes / (largest.floats * FLOAT_BYTES));
  const fix =
    maxBatch >= 1
      ? `Use a batch size of at most ${maxBatch}.`
      : `Even one sequence does not fit: use sequences shorter than ${T} tokens or a smaller model.`;
  return [
    `The ${largest.what} of a batch of ${B} × ${T} tokens need ${mib(bytes)} in one buffer, more than this adapter's ` +
      `${limit.name} of ${mib(limit.bytes)}. ${fix}`,
  ];
}

/** Plans GPU memory for a checkpoint whose config and weight headers have been read. */
export function planModel(
  checkpoint: Pick<Checkpoint, 'config' | 'tensors' | 'parameterCount'>,
  limits: AdapterLimits,
  shape: BatchShape = DEFAULT_PLAN_SHAPE,
  mode: PlanMode = 'irepair',
): ModelPlan {
  const config = checkpoint.config;
  const seqLen = Math.min(shape.seqLen, config.contextLength);
  const fitted = { batchSize: shape.batchSize, seqLen };
  const memory = planMemory(config, fitted.batchSize, fitted.seqLen, mode);
  const largestTensorBytes = Math.max(...checkpoint.tensors.map((tensor) => product(tensor.shape) * FLOAT_BYTES));
  return {
    architecture: config.family,
    numLayers: config.numLayers,
    hiddenSize: config.hiddenSize,
    numHeads: config.numHeads,
    vocabSize: config.vocabSize,
    contextLength: config.contextLength,
    parameterCount: checkpoint.parameterCount,
    plannedBytes: memory.total,
    plannedShape: fitted,
    largestTensorBytes,
    adapterLimits: limits,
    problems: [...weightProblems(checkpoint.tensors, limits), ...batchProblems(config, limits, fitted)],
  };
}

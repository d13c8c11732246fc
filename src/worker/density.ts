// Error density across transformer blocks in the worker, as in Figure 2 of the IRepair paper:
// the mean block sensitivity over a sample of the repair data's bad continuations (D^E), with
// progress events and a stop between batches. The computation is src/eval/density.ts.

import { sequencesFor, type Sequence } from '../data/examples.ts';
import { errorDensity } from '../eval/density.ts';
import { readLimits } from './adapter.ts';
import type { LoadedDataset } from './datasets.ts';
import { WorkerCommandError } from './errors.ts';
import type { LoadedModel } from './model.ts';
import { batchProblems } from './plan.ts';
import type { ModelVersion, WorkerEvent } from './protocol.ts';

/** Examples per sensitivity batch, the repair batch size of the IRepair paper. */
export const DENSITY_BATCH_SIZE = 4;

/** Seed of the sample, fixed so that the original and the repaired model see the same examples. */
const DENSITY_SEED = 0;

/**
 * Returns the bad continuations of the loaded repair data, after checking that the model has
 * blocks to compare and that a batch of them fits the device's buffer limits.
 */
export function densitySequences(model: LoadedModel, repair: LoadedDataset | undefined): { sequences: Sequence[]; fileName: string } {
  if (!repair || repair.kind !== 'examples' || repair.role !== 'repair' || !repair.tokenized) {
    throw new WorkerCommandError('Load repair data (prompts with a bad and a good continuation) before measuring error density.');
  }
  const config = model.engine.config;
  if (config.numLayers < 2) {
    throw new WorkerCommandError(`Error density compares blocks with each other, but this model has ${config.numLayers} block.`);
  }
  const sequences = sequencesFor(repair.tokenized.examples, 'bad');
  const longest = Math.max(...sequences.map((sequence) => sequence.prompt.length + sequence.continuation.length));
  const limits = readLimits(model.engine.gpu.device.limits);
  const problems = batchProblems(config, limits, { batchSize: DENSITY_BATCH_SIZE, seqLen: longest });
  if (problems.length > 0) throw new WorkerCommandError(problems.join(' '));
  return { sequences, fileName: repair.dataset.fileName };
}

export interface DensityRequest {
  sequences: Sequence[];
  fileName: string;
  sampleSize: number;
  model: ModelVersion;
  signal: AbortSignal;
  post: (event: WorkerEvent) => void;
}

/**
 * Measures the error density of the weights on the GPU and posts a `density` event with the
 * result, or with null when the signal stopped the measurement.
 */
export async function measureDensity(loaded: LoadedModel, request: DensityRequest): Promise<void> {
  const { post, signal } = request;
  const started = performance.now();
  try {
    const result = await errorDensity(loaded.engine, request.sequences, {
      sampleSize: request.sampleSize,
      batchSize: DENSITY_BATCH_SIZE,
      seed: DENSITY_SEED,
      padId: loaded.tokenizer.eosTokenId,
      signal,
      onProgress: (batchesDone, batchesTotal) => {
        const seconds = (performance.now() - started) / 1000;
        const etaSeconds = (seconds / batchesDone) * (batchesTotal - batchesDone);
        post({ kind: 'densityProgress', model: request.model, batchesDone, batchesTotal, etaSeconds });
      },
    });
    post({ kind: 'density', model: request.model, fileName: request.fileName, result });
  } catch (error) {
    if (!signal.aborted) throw error;
    post({ kind: 'density', model: request.model, fileName: request.fileName, result: null });
  }
}

// Throughput and memory of our WebGPU engine on a random model: forward (loss only),
// forward+backward with every parameter trainable, and the per-block sensitivity pass.
//
// B is the batch size and T the sequence length. Tokens per second is B*T*iterations over the
// seconds the timed iterations took, after one untimed warm-up iteration that builds the
// pipelines and allocates the buffers.

import seedrandom from 'seedrandom';
import { GptEngine, type LossBatch } from '../src/engine/gpt.ts';
import type { Gpu, MemoryAccount } from '../src/gpu/device.ts';
import { parameterShapes } from '../src/engine/parameters.ts';
import type { ModelConfig, ParameterName } from '../src/model/types.ts';

export type PassName = 'forward' | 'forwardBackward' | 'sensitivity';

export const PASS_NAMES: PassName[] = ['forward', 'forwardBackward', 'sensitivity'];

/** One pass measured over the timed iterations. */
export interface PassResult {
  iterations: number;
  seconds: number;
  tokensPerSecond: number;
  /** Highest GPU bytes the implementation held during the pass, weights included. */
  peakBytes: number;
}

/** Pass selection, timed iterations per pass, and a callback for each pass once measured. */
export interface BenchOptions {
  iterations: number;
  passes: PassName[];
  onPass?: (name: PassName, result: PassResult) => void;
}

export interface EngineResult {
  adapter: string;
  /** The measured passes only. */
  passes: Partial<Record<PassName, PassResult & { memory: MemoryAccount }>>;
  /** Loss of the batch, from the first measured pass. */
  loss: number;
  /** Gradient L2 norm of each block, from the sensitivity pass (empty without it). */
  blockNorms: number[];
}

/**
 * Random weights for a GPT-2 configuration, the same for a given seed: matrices and biases
 * uniform with standard deviation 0.02 (GPT-2's initialisation scale), LayerNorm gains 1 plus the
 * same noise, so that every parameter influences the loss.
 */
export function randomWeights(config: ModelConfig, seed = 'bench'): Map<ParameterName, Float32Array> {
  const random = seedrandom.alea(seed);
  const halfWidth = 0.02 * Math.sqrt(3);
  const weights = new Map<ParameterName, Float32Array>();
  for (const { name, shape } of parameterShapes(config)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    const offset = /\.ln_\d\.weight$|^ln_f\.weight$/.test(name) ? 1 : 0;
    for (let i = 0; i < data.length; i++) data[i] = offset + (2 * random() - 1) * halfWidth;
    weights.set(name, data);
  }
  return weights;
}

/** Makes a batch of random tokens whose targets are the next tokens, each position weighted 1/(B*T). */
export function randomBatch(config: ModelConfig, B: number, T: number, seed = 'bench-batch'): LossBatch {
  const random = seedrandom.alea(seed);
  const stream = new Int32Array(B * (T + 1));
  for (let i = 0; i < stream.length; i++) stream[i] = Math.floor(random() * config.vocabSize);
  const tokens = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    tokens.set(stream.subarray(b * (T + 1), b * (T + 1) + T), b * T);
    targets.set(stream.subarray(b * (T + 1) + 1, (b + 1) * (T + 1)), b * T);
  }
  return { batchSize: B, seqLen: T, tokens, targets, weights: new Float32Array(B * T).fill(1 / (B * T)) };
}

/** Runs `step` once untimed, then `iterations` times, and returns the seconds of the timed runs. */
export async function timeIterations(iterations: number, step: () => Promise<unknown>, sync: () => Promise<void>): Promise<number> {
  await step();
  await sync();
  const start = performance.now();
  for (let i = 0; i < iterations; i++) await step();
  await sync();
  return (performance.now() - start) / 1000;
}

/** Measures the selected passes of our engine on one batch. The engine is destroyed afterwards. */
export async function benchmarkEngine(
  gpu: Gpu, config: ModelConfig, weights: Map<ParameterName, Float32Array>, batch: LossBatch, options: BenchOptions,
): Promise<EngineResult> {
  const { iterations } = options;
  const engine = await GptEngine.fromWeights(gpu, config, weights);
  const tokens = batch.batchSize * batch.seqLen;
  const sync = () => gpu.sync();
  const passes: EngineResult['passes'] = {};
  let loss: number | null = null;
  let lastLoss = Number.NaN;
  let blockNorms: number[] = [];

  const steps: Record<PassName, () => Promise<void>> = {
    forward: async () => {
      lastLoss = await engine.loss(batch);
    },
    forwardBackward: async () => {
      lastLoss = await engine.lossAndGradients(batch);
    },
    sensitivity: async () => {
      const result = await engine.sensitivity(batch);
      lastLoss = result.nll;
      blockNorms = result.blocks;
    },
  };

  try {
    // In PASS_NAMES order, forward comes first: its activations are one layer deep, and it would
    // reuse the every-layer activations of a pass before it.
    for (const name of PASS_NAMES.filter((pass) => options.passes.includes(pass))) {
      // forward+backward computes every parameter's gradient. The sensitivity pass allocates one
      // block's gradients itself, and a repair run holds no others.
      engine.setTrainable(name === 'forwardBackward' ? engine.params.keys() : []);
      await gpu.sync();
      gpu.resetPeak();
      const seconds = await timeIterations(iterations, steps[name], sync);
      loss ??= lastLoss;
      const result = { iterations, seconds, tokensPerSecond: (tokens * iterations) / seconds, peakBytes: gpu.peakBytes, memory: gpu.memory() };
      passes[name] = result;
      options.onPass?.(name, result);
    }
  } finally {
    engine.destroy();
    await gpu.sync();
  }
  return { adapter: gpu.adapterDescription, passes, loss: loss ?? Number.NaN, blockNorms };
}

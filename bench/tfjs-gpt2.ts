// The baseline of the engine benchmark: the same GPT-2 forward pass and loss written with
// TensorFlow.js ops (@tensorflow/tfjs-core 4.22.0) on its WebGPU backend
// (@tensorflow/tfjs-backend-webgpu 4.22.0), run on Dawn under Node. Gradients come from tfjs's
// autograd (tf.variableGrads), where our engine has hand-written backward kernels.
//
// B is the batch size, T the sequence length, C the width, NH the number of heads, hd = C / NH,
// V the vocabulary; activations are [B*T, ...] as in the engine.

import { register } from 'node:module';
import type * as TfModule from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import type { LossBatch } from '../src/engine/gpt.ts';
import { parameterShapes } from '../src/engine/parameters.ts';
import { blockOf, type ModelConfig, type ParameterName } from '../src/model/types.ts';
import { PASS_NAMES, timeIterations, type BenchOptions, type PassName, type PassResult } from './engine.ts';

type Tf = typeof TfModule;
type Tensor = TfModule.Tensor;

/** As EngineResult: the measured passes, the loss from the first, the norms from sensitivity. */
export interface TfjsResult {
  adapter: string;
  passes: Partial<Record<PassName, PassResult>>;
  loss: number;
  blockNorms: number[];
}

// Dawn's instance must outlive every device made from it (see src/gpu/node.ts).
const instances: GPU[] = [];
let loaded: Promise<{ tf: Tf; adapter: string }> | null = null;

/**
 * Loads tfjs with its WebGPU backend on a new Dawn instance exposed as navigator.gpu, which Node
 * 20 does not define. Call it after createNodeGpu(), which picks the Vulkan driver through
 * VK_ICD_FILENAMES, so that tfjs gets the same adapter as the engine. Returns tfjs and the
 * description of the adapter its backend requests (high-performance, as tfjs 4.22.0 does).
 */
export function loadTfjsWebgpu(): Promise<{ tf: Tf; adapter: string }> {
  loaded ??= (async () => {
    const { create } = await import('webgpu');
    const gpu = create([]);
    instances.push(gpu);
    const navigator = ((globalThis as { navigator?: object }).navigator ??= {});
    Object.defineProperty(navigator, 'gpu', { value: gpu, configurable: true });

    // The backend registers itself on import only where navigator.gpu exists, so it comes after.
    const tf = await import('@tensorflow/tfjs-core');
    await import('@tensorflow/tfjs-backend-webgpu');
    // The CommonJS bundle of tfjs-core registers neither gradients nor the chained tensor
    // methods that gradients call (x.split), so they come from two modules of its ES module build.
    register('./tfjs-resolve.js', import.meta.url);
    await import('@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops.js');
    await import('@tensorflow/tfjs-core/dist/register_all_gradients.js');
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    return { tf, adapter: describeAdapter(adapter?.info) };
  })();
  return loaded;
}

/** GPT-2 with every parameter a tf.Variable holding the given weights (Conv1D layout [in, out]). */
export class TfjsGpt2 {
  readonly variables = new Map<ParameterName, TfModule.Variable>();
  private readonly tf: Tf;
  private readonly config: ModelConfig;

  constructor(tf: Tf, config: ModelConfig, weights: Map<ParameterName, Float32Array>) {
    if (config.family !== 'gpt2') throw new Error(`the tfjs baseline implements GPT-2 only, not ${config.family}`);
    this.tf = tf;
    this.config = config;
    for (const { name, shape } of parameterShapes(config)) {
      const data = weights.get(name);
      if (!data) throw new Error(`missing weight ${name}`);
      this.variables.set(name, tf.variable(tf.tensor(data, shape), true));
    }
  }

  private p(name: ParameterName): Tensor {
    const variable = this.variables.get(name);
    if (!variable) throw new Error(`unknown parameter ${name}`);
    return variable;
  }

  /** Records the weighted NLL sum(weight * -log p(target)), as the engine's lossForward computes it. */
  lossTensor(batch: LossBatch): TfModule.Scalar {
    const { tf, config } = this;
    const B = batch.batchSize;
    const T = batch.seqLen;
    const BT = B * T;
    const C = config.hiddenSize;

    return tf.tidy(() => {
      const tokens = tf.tensor1d(batch.tokens, 'int32');
      const tokenEmbeddings = tf.reshape(tf.gather(this.p('wte.weight'), tokens), [B, T, C]);
      const positionEmbeddings = tf.slice(this.p('wpe.weight'), [0, 0], [T, C]);
      let x = tf.reshape(tf.add(tokenEmbeddings, positionEmbeddings), [BT, C]);

      const mask = causalMask(tf, T);
      for (let l = 0; l < config.numLayers; l++) x = this.block(l, x, B, T, mask);

      const lnf = this.layernorm(x, 'ln_f');
      // The output head is tied to the token embedding.
      const logits = tf.matMul(lnf, this.p('wte.weight'), false, true);
      const logProbabilities = tf.logSoftmax(logits);
      // Positions without a target (-1) have weight 0, so any valid index can replace theirs.
      const targets = tf.tensor2d(batch.targets.map((t) => Math.max(t, 0)), [BT, 1], 'int32');
      const picked = tf.reshape(tf.gather(logProbabilities, targets, 1, 1), [BT]);
      return tf.neg(tf.sum(tf.mul(picked, tf.tensor1d(batch.weights)))) as TfModule.Scalar;
    });
  }

  private layernorm(x: Tensor, prefix: string): Tensor {
    const { tf } = this;
    const { mean, variance } = tf.moments(x, -1, true);
    const normalised = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, this.config.layerNormEpsilon)));
    return tf.add(tf.mul(normalised, this.p(`${prefix}.weight`)), this.p(`${prefix}.bias`));
  }

  private linear(x: Tensor, prefix: string): Tensor {
    return this.tf.add(this.tf.matMul(x, this.p(`${prefix}.weight`)), this.p(`${prefix}.bias`));
  }

  private block(l: number, x: Tensor, B: number, T: number, mask: Tensor): Tensor {
    const { tf, config } = this;
    const C = config.hiddenSize;
    const NH = config.numHeads;
    const hd = C / NH;
    const h = `h.${l}`;

    // Attention: q, k, v as [B*NH, T, hd], scores [B*NH, T, T].
    const qkv = this.linear(this.layernorm(x, `${h}.ln_1`), `${h}.attn.c_attn`);
    const heads = tf.transpose(tf.reshape(qkv, [B, T, 3, NH, hd]), [2, 0, 3, 1, 4]);
    const [q, k, v] = tf.split(heads, 3, 0).map((part) => tf.reshape(part, [B * NH, T, hd]));
    const scores = tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(hd)), mask);
    const y = tf.matMul(tf.softmax(scores), v);
    const merged = tf.reshape(tf.transpose(tf.reshape(y, [B, NH, T, hd]), [0, 2, 1, 3]), [B * T, C]);
    const afterAttention = tf.add(x, this.linear(merged, `${h}.attn.c_proj`));

    // MLP with GELU in its tanh form (gelu_new).
    const fc = this.linear(this.layernorm(afterAttention, `${h}.ln_2`), `${h}.mlp.c_fc`);
    const inner = tf.mul(tf.add(fc, tf.mul(tf.pow(fc, 3), 0.044715)), Math.sqrt(2 / Math.PI));
    const gelu = tf.mul(tf.mul(fc, 0.5), tf.add(tf.tanh(inner), 1));
    return tf.add(afterAttention, this.linear(gelu, `${h}.mlp.c_proj`));
  }

  async loss(batch: LossBatch): Promise<number> {
    const loss = this.lossTensor(batch);
    const value = (await loss.data())[0];
    loss.dispose();
    return value;
  }

  /** Loss and gradients of every parameter (disposed once computed). */
  async lossAndGradients(batch: LossBatch): Promise<number> {
    const { value, grads } = this.tf.variableGrads(() => this.lossTensor(batch));
    const loss = (await value.data())[0];
    this.tf.dispose([value, ...Object.values(grads)]);
    return loss;
  }

  /** Computes what the engine's sensitivity pass returns: the loss and each block's gradient L2 norm. */
  async sensitivity(batch: LossBatch): Promise<{ nll: number; blocks: number[] }> {
    const { tf } = this;
    const L = this.config.numLayers;
    const byBlock: TfModule.Variable[][] = Array.from({ length: L }, () => []);
    for (const [name, variable] of this.variables) {
      const block = blockOf(name);
      if (block >= 0) byBlock[block].push(variable);
    }
    const { value, grads } = tf.variableGrads(() => this.lossTensor(batch), byBlock.flat());
    // Pairwise adds: tf.addN of a block's 12 tensors would bind more storage buffers than the
    // 8 per shader stage that tfjs's device allows by default.
    const norms = tf.tidy(() => tf.stack(byBlock.map((variables) =>
      tf.sqrt(variables.map((variable) => tf.sum(tf.square(grads[variable.name]))).reduce((sum, term) => tf.add(sum, term))))));
    const blocks = Array.from(await norms.data());
    const nll = (await value.data())[0];
    tf.dispose([value, norms, ...Object.values(grads)]);
    return { nll, blocks };
  }

  dispose(): void {
    for (const variable of this.variables.values()) variable.dispose();
    this.variables.clear();
  }
}

/** Additive causal mask [T, T]: 0 on and below the diagonal, -1e9 above it. */
function causalMask(tf: Tf, T: number): Tensor {
  const values = new Float32Array(T * T);
  for (let i = 0; i < T; i++) values.fill(-1e9, i * T + i + 1, (i + 1) * T);
  return tf.tensor2d(values, [T, T]);
}

/** Describes an adapter as src/gpu/device.ts does, so the two descriptions can be compared. */
function describeAdapter(info: GPUAdapterInfo | undefined): string {
  if (!info) return 'unknown adapter';
  return [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ') || 'unknown adapter';
}

/**
 * Measures the selected passes through tfjs on one batch. Each pass gets a fresh WebGPU backend
 * (new device and buffer pool), so its peak bytes are the pool that pass alone built: tfjs keeps
 * released buffers for reuse, and its allocated bytes only grow until the backend is disposed.
 */
export async function benchmarkTfjs(
  config: ModelConfig, weights: Map<ParameterName, Float32Array>, batch: LossBatch, options: BenchOptions,
): Promise<TfjsResult> {
  const { iterations } = options;
  const { tf, adapter } = await loadTfjsWebgpu();
  const factory = tf.findBackendFactory('webgpu');
  if (!factory) throw new Error('the tfjs WebGPU backend did not register: navigator.gpu was not found');
  const tokens = batch.batchSize * batch.seqLen;
  const passes: TfjsResult['passes'] = {};
  let loss: number | null = null;
  let lastLoss = Number.NaN;
  let blockNorms: number[] = [];

  for (const name of PASS_NAMES.filter((pass) => options.passes.includes(pass))) {
    // The import registered the backend for the first pass; removeBackend unregisters it.
    if (!tf.findBackendFactory('webgpu')) tf.registerBackend('webgpu', factory);
    if (!(await tf.setBackend('webgpu'))) throw new Error('the tfjs WebGPU backend failed to start');
    const backend = tf.backend() as WebGPUBackend;
    const model = new TfjsGpt2(tf, config, weights);
    const sync = async () => {
      // submitQueue fails when nothing is recorded (tfjs 4.22.0 dereferences a null encoder).
      if ((backend as unknown as { commandEncoder: GPUCommandEncoder | null }).commandEncoder) backend.submitQueue();
      await backend.device.queue.onSubmittedWorkDone();
    };
    const steps: Record<PassName, () => Promise<void>> = {
      forward: async () => {
        lastLoss = await model.loss(batch);
      },
      forwardBackward: async () => {
        lastLoss = await model.lossAndGradients(batch);
      },
      sensitivity: async () => {
        const result = await model.sensitivity(batch);
        lastLoss = result.nll;
        blockNorms = result.blocks;
      },
    };

    try {
      const seconds = await timeIterations(iterations, steps[name], sync);
      loss ??= lastLoss;
      const { numBytesAllocatedInGPU } = backend.memory() as unknown as { numBytesAllocatedInGPU: number };
      const result = { iterations, seconds, tokensPerSecond: (tokens * iterations) / seconds, peakBytes: numBytesAllocatedInGPU };
      passes[name] = result;
      options.onPass?.(name, result);
    } finally {
      model.dispose();
      const device = backend.device;
      tf.removeBackend('webgpu');
      device.destroy();
    }
  }
  return { adapter, passes, loss: loss ?? Number.NaN, blockNorms };
}

// The GPT-2 / GPT-Neo graph on the GPU: forward to logits and loss, backward with a trainable
// set, and the per-block sensitivity pass of IRepair (Algorithm 1).
//
// Notation: B batch size, T sequence length, C width, NH heads, I MLP width, V vocabulary,
// L layers. Activations are row-major [B*T, ...].

import type { Gpu, GpuBuffer } from '../gpu/device.ts';
import * as k from '../gpu/kernels.ts';
import { UserError } from '../model/errors.ts';
import type { Checkpoint } from '../model/checkpoint.ts';
import { blockOf, type ModelConfig, type ParameterName } from '../model/types.ts';
import {
  allocateActivations, allocateScratch, freeActivations, type Activations, type BackwardScratch,
} from './activations.ts';
import {
  allocateTensor, blockParameterNames, destroyTensor, downloadTensor, parameterShapes, single, uploadTensor, type Tensor,
} from './parameters.ts';
import {
  attentionProbabilitySite, attentionResidualSite, dropoutSiteKey, DROPOUT_SITE_EMBEDDING, mlpResidualSite,
} from './dropout.ts';

/**
 * Options of a forward pass.
 * - parameters: tensors used in place of the engine's parameters of the same names. The KL
 *   reference model is the engine with the original copies of the blocks a repair has changed.
 * - dropout: training-mode dropout with the probabilities of the model's config and masks drawn
 *   from `seed`; the backward pass redraws the same masks. Absent or null in evaluation.
 */
export interface ForwardOptions {
  parameters?: ReadonlyMap<ParameterName, Tensor>;
  dropout?: { seed: number } | null;
}

/** Token ids with next-token targets and per-position loss weights (see src/data). */
export interface LossBatch {
  batchSize: number;
  seqLen: number;
  tokens: Int32Array;
  /** Next-token target per position, -1 where the position carries no loss. */
  targets: Int32Array;
  /** Per-position loss weights; the loss is sum(weight * -log p(target)). */
  weights: Float32Array;
}

export class GptEngine {
  readonly gpu: Gpu;
  readonly config: ModelConfig;
  readonly params = new Map<ParameterName, Tensor>();
  /** Gradient tensors of the parameters that have them, by parameter name. */
  readonly grads = new Map<ParameterName, Tensor>();

  private activations: Activations | null = null;
  private scratch: BackwardScratch | null = null;
  private partials: GpuBuffer;
  private scalars: GpuBuffer;
  private tokenGroups: { groups: GpuBuffer; positions: GpuBuffer; count: number } | null = null;
  /** Dropout seed of the last forward pass, which its backward pass must reuse; null without dropout. */
  private dropoutSeed: number | null = null;

  constructor(gpu: Gpu, config: ModelConfig) {
    this.gpu = gpu;
    this.config = config;
    if (config.hiddenSize % config.numHeads !== 0) {
      throw new UserError(`hidden size ${config.hiddenSize} is not divisible by the number of heads ${config.numHeads}`);
    }
    for (const { name, shape } of parameterShapes(config)) this.params.set(name, allocateTensor(gpu, name, shape, 'weights'));
    this.partials = gpu.createBuffer('reduce.partials', 65536 * 4, 'scratch');
    this.scalars = gpu.createBuffer('reduce.scalars', 1024 * 4, 'scratch');
  }

  /** Creates an engine and uploads weights given as canonical name → f32 data. */
  static async fromWeights(gpu: Gpu, config: ModelConfig, weights: Map<ParameterName, Float32Array>): Promise<GptEngine> {
    await gpu.compile(k.ENTRY_POINTS);
    const engine = new GptEngine(gpu, config);
    for (const [name, tensor] of engine.params) {
      const data = weights.get(name);
      if (!data) throw new Error(`missing weight ${name}`);
      uploadTensor(gpu, tensor, data);
    }
    return engine;
  }

  param(name: ParameterName): Tensor {
    const tensor = this.params.get(name);
    if (!tensor) throw new Error(`unknown parameter ${name}`);
    return tensor;
  }

  async readParameter(name: ParameterName): Promise<Float32Array> {
    return downloadTensor(this.gpu, this.param(name));
  }

  async readGradient(name: ParameterName): Promise<Float32Array> {
    const grad = this.grads.get(name);
    if (!grad) throw new Error(`no gradient for ${name}`);
    return downloadTensor(this.gpu, grad);
  }

  writeParameter(name: ParameterName, data: Float32Array): void {
    uploadTensor(this.gpu, this.param(name), data);
  }

  /** Allocates gradient buffers for `names` and frees those of every other parameter. */
  setTrainable(names: Iterable<ParameterName>): void {
    const wanted = new Set(names);
    for (const [name, grad] of this.grads) {
      if (!wanted.has(name)) {
        destroyTensor(this.gpu, grad);
        this.grads.delete(name);
      }
    }
    for (const name of wanted) {
      if (!this.grads.has(name)) {
        const p = this.param(name);
        this.grads.set(name, allocateTensor(this.gpu, `grad.${name}`, p.shape, 'gradients'));
      }
    }
  }

  /** Ensures activation buffers for B x T, kept per layer when a backward pass follows. */
  private prepare(B: number, T: number, forBackward: boolean): Activations {
    if (T > this.config.contextLength) {
      throw new UserError(`sequence length ${T} exceeds the model's context length ${this.config.contextLength}`);
    }
    const current = this.activations;
    if (current && current.B === B && current.T === T && (current.forBackward || !forBackward)) return current;
    if (current) freeActivations(this.gpu, current);
    if (this.scratch) {
      for (const buffer of this.scratch.all) this.gpu.destroyBuffer(buffer);
      this.scratch = null;
    }
    this.activations = allocateActivations(this.gpu, this.config, B, T, forBackward);
    return this.activations;
  }

  private backwardScratch(): BackwardScratch {
    const acts = this.activations!;
    if (!this.scratch) this.scratch = allocateScratch(this.gpu, this.config, acts.B, acts.T);
    return this.scratch;
  }

  /** Frees activations and scratch (weights and gradients stay). */
  releaseActivations(): void {
    if (this.activations) freeActivations(this.gpu, this.activations);
    this.activations = null;
    if (this.scratch) for (const buffer of this.scratch.all) this.gpu.destroyBuffer(buffer);
    this.scratch = null;
  }

  destroy(): void {
    this.releaseActivations();
    for (const tensor of this.params.values()) destroyTensor(this.gpu, tensor);
    for (const tensor of this.grads.values()) destroyTensor(this.gpu, tensor);
    this.params.clear();
    this.grads.clear();
    this.gpu.destroyBuffer(this.partials);
    this.gpu.destroyBuffer(this.scalars);
  }

  // ---------------------------------------------------------------------------------------------
  // Forward

  /**
   * Records the forward pass of tokens [B, T] to logits, stored in the activations.
   * See ForwardOptions for parameter substitution and dropout.
   */
  forward(tokens: Int32Array, B: number, T: number, forBackward = true, options: ForwardOptions = {}): Activations {
    const acts = this.prepare(B, T, forBackward);
    const { gpu, config } = this;
    const C = config.hiddenSize;
    const BT = B * T;
    const weight = (name: ParameterName) => options.parameters?.get(name) ?? this.param(name);
    this.dropoutSeed = options.dropout ? options.dropout.seed >>> 0 : null;
    gpu.write(acts.tokens, tokens);

    const embedShape = { BT, T, C };
    k.positionForward(gpu, embedShape, single(weight('wpe.weight')), acts.layers[0].residual);
    for (const chunk of weight('wte.weight').chunks) {
      k.tokenForward(gpu, embedShape, acts.tokens, chunk.buffer, chunk.rowStart, chunk.rows, acts.layers[0].residual);
    }
    this.dropout('forward', DROPOUT_SITE_EMBEDDING, config.dropout.embedding, BT * C, acts.layers[0].residual);

    for (let l = 0; l < config.numLayers; l++) {
      const out = l + 1 < config.numLayers ? acts.layers[l + 1].residual : acts.residualOut;
      this.blockForward(l, acts, out, weight);
    }

    k.layernormForward(gpu, BT, C, config.layerNormEpsilon, acts.residualOut,
      single(weight('ln_f.weight')), single(weight('ln_f.bias')), acts.lnf, acts.lnfMean, acts.lnfRstd);
    // The output head is tied to the token embedding: logits = lnf · wte^T, one vocabulary chunk at a time.
    const V = config.vocabSize;
    for (const chunk of weight('wte.weight').chunks) {
      k.matmul(gpu, { M: BT, N: chunk.rows, K: C },
        { buffer: acts.lnf, rowStride: C, colStride: 1 },
        { buffer: chunk.buffer, rowStride: 1, colStride: C },
        { buffer: acts.logits, offset: chunk.rowStart, rowStride: V });
    }
    return acts;
  }

  private blockForward(l: number, acts: Activations, out: GpuBuffer, weight: (name: ParameterName) => Tensor): void {
    const { gpu, config } = this;
    const { B, T } = acts;
    const BT = B * T;
    const C = config.hiddenSize;
    const I = config.innerSize;
    const h = `h.${l}`;
    const a = acts.layers[l];
    const p = (name: string) => single(weight(`${h}.${name}`));

    k.layernormForward(gpu, BT, C, config.layerNormEpsilon, a.residual, p('ln_1.weight'), p('ln_1.bias'), a.ln1, a.ln1Mean, a.ln1Rstd);
    const x = { buffer: a.ln1, rowStride: C, colStride: 1 };
    if (config.family === 'gpt2') {
      k.matmul(gpu, { M: BT, N: 3 * C, K: C }, x, conv1dWeight(p('attn.c_attn.weight'), 3 * C),
        { buffer: a.qkv, rowStride: 3 * C }, { bias: p('attn.c_attn.bias') });
    } else {
      ['q_proj', 'k_proj', 'v_proj'].forEach((proj, part) => {
        k.matmul(gpu, { M: BT, N: C, K: C }, x, linearWeight(p(`attn.attention.${proj}.weight`), C),
          { buffer: a.qkv, offset: part * C, rowStride: 3 * C });
      });
    }
    k.attentionForward(gpu, this.attentionShape(l, B, T), a.qkv, a.att, a.attOut);

    const attOut = { buffer: a.attOut, rowStride: C, colStride: 1 };
    if (config.family === 'gpt2') {
      k.matmul(gpu, { M: BT, N: C, K: C }, attOut, conv1dWeight(p('attn.c_proj.weight'), C),
        { buffer: acts.projection, rowStride: C }, { bias: p('attn.c_proj.bias') });
    } else {
      k.matmul(gpu, { M: BT, N: C, K: C }, attOut, linearWeight(p('attn.attention.out_proj.weight'), C),
        { buffer: acts.projection, rowStride: C }, { bias: p('attn.attention.out_proj.bias') });
    }
    this.dropout('forward', attentionResidualSite(l), config.dropout.residual, BT * C, acts.projection);
    k.residualForward(gpu, BT * C, a.residual, acts.projection, a.residualAfterAttention);

    k.layernormForward(gpu, BT, C, config.layerNormEpsilon, a.residualAfterAttention, p('ln_2.weight'), p('ln_2.bias'), a.ln2, a.ln2Mean, a.ln2Rstd);
    const fcWeight = config.family === 'gpt2' ? conv1dWeight(p('mlp.c_fc.weight'), I) : linearWeight(p('mlp.c_fc.weight'), C);
    k.matmul(gpu, { M: BT, N: I, K: C }, { buffer: a.ln2, rowStride: C, colStride: 1 }, fcWeight,
      { buffer: a.fc, rowStride: I }, { bias: p('mlp.c_fc.bias') });
    k.geluForward(gpu, BT * I, a.fc, a.fcGelu);
    const projWeight = config.family === 'gpt2' ? conv1dWeight(p('mlp.c_proj.weight'), C) : linearWeight(p('mlp.c_proj.weight'), I);
    k.matmul(gpu, { M: BT, N: C, K: I }, { buffer: a.fcGelu, rowStride: I, colStride: 1 }, projWeight,
      { buffer: acts.projection, rowStride: C }, { bias: p('mlp.c_proj.bias') });
    this.dropout('forward', mlpResidualSite(l), config.dropout.residual, BT * C, acts.projection);
    k.residualForward(gpu, BT * C, a.residualAfterAttention, acts.projection, out);
  }

  private attentionShape(l: number, B: number, T: number): k.AttentionShape {
    const { config } = this;
    const local = config.attentionLayers[l] === 'local';
    return {
      B, T, C: config.hiddenSize, NH: config.numHeads,
      window: local ? config.windowSize : 0,
      scale: config.scaleAttention ? 1 / Math.sqrt(config.hiddenSize / config.numHeads) : 1,
      dropout: this.dropoutMaskFor(attentionProbabilitySite(l), config.dropout.attention) ?? undefined,
    };
  }

  /** Returns the mask of one dropout site in the current forward pass, or null when dropout is off there. */
  private dropoutMaskFor(site: number, probability: number): k.DropoutMask | null {
    if (this.dropoutSeed === null || probability <= 0) return null;
    return k.dropoutMask(probability, dropoutSiteKey(this.dropoutSeed, site));
  }

  /** Applies one site's dropout mask in place, in the forward direction or to a gradient. */
  private dropout(direction: 'forward' | 'backward', site: number, probability: number, n: number, x: GpuBuffer): void {
    const mask = this.dropoutMaskFor(site, probability);
    if (mask) k.dropout(this.gpu, direction, n, mask, x);
  }

  /** Records forward and cross-entropy; the loss is summed into scalar slot `slot`. */
  lossForward(batch: LossBatch, forBackward: boolean, slot = 0, options: ForwardOptions = {}): Activations {
    const { gpu } = this;
    const B = batch.batchSize;
    const T = batch.seqLen;
    const acts = this.forward(batch.tokens, B, T, forBackward, options);
    gpu.write(acts.targets, batch.targets);
    gpu.write(acts.lossWeights, batch.weights);
    k.crossentropyForward(gpu, B * T, this.config.vocabSize, acts.logits, acts.targets, acts.lossWeights, acts.losses, acts.lse);
    k.reduce(gpu, 'sum', B * T, acts.losses, this.partials, this.scalars, slot, false);
    return acts;
  }

  /** Reads scalar slots written by reductions. */
  async readScalars(count: number): Promise<Float32Array> {
    return this.gpu.readFloat32(this.scalars, 0, count);
  }

  /** Reads the per-position losses [B*T] of the last lossForward or klForward. */
  async readPositionLosses(acts: Activations): Promise<Float32Array> {
    return this.gpu.readFloat32(acts.losses, 0, acts.B * acts.T);
  }

  /**
   * Records forward and the KL divergence of this model's next-token distributions from
   * `referenceLogits` [B*T, V] (logits of the same tokens), weighted per position by
   * batch.weights and summed into scalar slot `slot`.
   */
  klForward(batch: LossBatch, referenceLogits: GpuBuffer, slot: number, options: ForwardOptions = {}): Activations {
    const { gpu, config } = this;
    const BT = batch.batchSize * batch.seqLen;
    const acts = this.forward(batch.tokens, batch.batchSize, batch.seqLen, true, options);
    gpu.write(acts.lossWeights, batch.weights);
    k.klForward(gpu, BT, config.vocabSize, acts.logits, referenceLogits, acts.lossWeights, acts.losses, acts.lse);
    k.reduce(gpu, 'sum', BT, acts.losses, this.partials, this.scalars, slot, false);
    return acts;
  }

  /** Records the backward pass of the KL divergence whose forward klForward recorded. */
  klBackward(acts: Activations, batch: LossBatch, referenceLogits: GpuBuffer, options: { accumulate?: boolean } = {}): void {
    k.klBackward(this.gpu, acts.B * acts.T, this.config.vocabSize, acts.logits, referenceLogits, acts.lossWeights, acts.lse);
    this.backwardFromLogits(acts, batch.tokens, { accumulate: options.accumulate });
  }

  /**
   * Records a forward pass without dropout and copies its logits [B*T, V] into `out`. With
   * `parameters`, it is the forward pass of the KL reference model.
   */
  logitsInto(tokens: Int32Array, B: number, T: number, out: GpuBuffer, parameters?: ReadonlyMap<ParameterName, Tensor>): void {
    const acts = this.forward(tokens, B, T, false, { parameters });
    this.gpu.copy(acts.logits, 0, out, 0, B * T * this.config.vocabSize * 4);
  }

  /**
   * Records the backward pass of the weighted NLL whose forward lossForward recorded. `weights`
   * replace the batch's per-position weights for the gradient (a scaled loss, or DPO's weights).
   */
  lossBackward(acts: Activations, batch: LossBatch, options: { weights?: Float32Array; accumulate?: boolean } = {}): void {
    if (options.weights) this.gpu.write(acts.lossWeights, options.weights);
    k.crossentropyBackward(this.gpu, acts.B * acts.T, this.config.vocabSize, acts.logits, acts.targets, acts.lossWeights, acts.lse);
    this.backwardFromLogits(acts, batch.tokens, { accumulate: options.accumulate });
  }

  /** Records the sum of squares of every gradient tensor into scalar slot `slot`. */
  gradientSquaredNormInto(slot: number): void {
    let first = true;
    for (const tensor of this.grads.values()) {
      const rowSize = tensor.size / tensor.shape[0];
      for (const chunk of tensor.chunks) {
        k.reduce(this.gpu, 'squares', chunk.rows * rowSize, chunk.buffer, this.partials, this.scalars, slot, !first);
        first = false;
      }
    }
    if (first) this.gpu.clear(this.scalars, slot * 4, 4);
  }

  /** The weighted NLL of a batch (no gradients). */
  async loss(batch: LossBatch): Promise<number> {
    this.lossForward(batch, false);
    return (await this.readScalars(1))[0];
  }

  /** Logits [B*T, V] of a forward pass, read back (for tests and generation). */
  async logits(tokens: Int32Array, B: number, T: number): Promise<Float32Array> {
    const acts = this.forward(tokens, B, T, false);
    return this.gpu.readFloat32(acts.logits, 0, B * T * this.config.vocabSize);
  }

  // ---------------------------------------------------------------------------------------------
  // Backward

  /**
   * Records the backward pass from the logits gradient already in `acts.logits` down to the
   * lowest block with a trainable parameter, writing gradients of every parameter that has a
   * gradient buffer (see setTrainable). With `accumulate`, gradients add to those already there.
   */
  backwardFromLogits(acts: Activations, tokens: Int32Array, options: { accumulate?: boolean; onBlockDone?: (layer: number) => void } = {}): void {
    const { gpu, config } = this;
    const accumulate = options.accumulate ?? false;
    const { B, T } = acts;
    const BT = B * T;
    const C = config.hiddenSize;
    const V = config.vocabSize;
    const s = this.backwardScratch();
    const grad = (name: string) => this.grads.get(name);
    const lowest = this.lowestTrainableLayer();
    const embeddingsTrainable = this.grads.has('wte.weight') || this.grads.has('wpe.weight');

    // Output head: logits = lnf · wte^T.
    const wte = this.param('wte.weight');
    const dWte = grad('wte.weight');
    wte.chunks.forEach((chunk, i) => {
      k.matmul(gpu, { M: BT, N: C, K: chunk.rows },
        { buffer: acts.logits, offset: chunk.rowStart, rowStride: V, colStride: 1 },
        { buffer: chunk.buffer, rowStride: C, colStride: 1 },
        { buffer: s.dLn, rowStride: C }, { accumulate: i > 0 });
      if (dWte) {
        k.matmul(gpu, { M: chunk.rows, N: C, K: BT },
          { buffer: acts.logits, offset: chunk.rowStart, rowStride: 1, colStride: V },
          { buffer: acts.lnf, rowStride: C, colStride: 1 },
          { buffer: dWte.chunks[i].buffer, rowStride: C }, { accumulate });
      }
    });

    // Final LayerNorm.
    k.layernormBackward(gpu, BT, C, acts.residualOut, single(this.param('ln_f.weight')), acts.lnfMean, acts.lnfRstd, s.dLn, s.dResidual, false);
    this.layernormParamsBackward('ln_f', BT, acts.residualOut, acts.lnfMean, acts.lnfRstd, s.dLn, accumulate);

    const stop = embeddingsTrainable ? 0 : lowest;
    for (let l = config.numLayers - 1; l >= stop && l >= 0; l--) {
      this.blockBackward(l, acts, s, accumulate);
      options.onBlockDone?.(l);
    }

    if (embeddingsTrainable) {
      this.dropout('backward', DROPOUT_SITE_EMBEDDING, config.dropout.embedding, BT * C, s.dResidual);
      this.embeddingBackward(acts, tokens, s.dResidual, accumulate);
    }
  }

  /**
   * Returns the gradient of a residual branch's output before its dropout: s.dResidual itself
   * without dropout, else a masked copy in s.dLn. s.dLn is free until the gradient of the
   * branch's input LayerNorm overwrites it.
   */
  private branchGradient(site: number, s: BackwardScratch, n: number): GpuBuffer {
    const mask = this.dropoutMaskFor(site, this.config.dropout.residual);
    if (!mask) return s.dResidual;
    this.gpu.copy(s.dResidual, 0, s.dLn, 0, n * 4);
    k.dropout(this.gpu, 'backward', n, mask, s.dLn);
    return s.dLn;
  }

  /** Lowest block index with a gradient buffer, or L when no block is trainable. */
  lowestTrainableLayer(): number {
    let lowest = this.config.numLayers;
    for (const name of this.grads.keys()) {
      const block = blockOf(name);
      if (block >= 0) lowest = Math.min(lowest, block);
    }
    return lowest;
  }

  private layernormParamsBackward(prefix: string, R: number, x: GpuBuffer, mean: GpuBuffer, rstd: GpuBuffer, dout: GpuBuffer, accumulate: boolean): void {
    const dWeight = this.grads.get(`${prefix}.weight`);
    const dBias = this.grads.get(`${prefix}.bias`);
    if (!dWeight && !dBias) return;
    if (!dWeight || !dBias) throw new Error(`${prefix}: weight and bias must be trainable together`);
    k.layernormBackwardParams(this.gpu, R, this.config.hiddenSize, x, mean, rstd, dout, single(dWeight), single(dBias), accumulate);
  }

  /**
   * Backward through block l: on entry s.dResidual holds the gradient of the block's output;
   * on return it holds the gradient of the block's input.
   */
  private blockBackward(l: number, acts: Activations, s: BackwardScratch, accumulate: boolean): void {
    const { gpu, config } = this;
    const { B, T } = acts;
    const BT = B * T;
    const C = config.hiddenSize;
    const I = config.innerSize;
    const h = `h.${l}`;
    const a = acts.layers[l];
    const p = (name: string) => single(this.param(`${h}.${name}`));
    const g = (name: string) => {
      const tensor = this.grads.get(`${h}.${name}`);
      return tensor ? single(tensor) : undefined;
    };
    const gpt2 = config.family === 'gpt2';

    // MLP: out = residualAfterAttention + dropout(gelu(ln2 · Wfc + bfc) · Wproj + bproj).
    const dMlpOut = this.branchGradient(mlpResidualSite(l), s, BT * C);
    this.linearBackward({ M: BT, N: C, K: I }, gpt2, { buffer: a.fcGelu, rowStride: I }, p('mlp.c_proj.weight'),
      { buffer: dMlpOut, rowStride: C }, { buffer: s.dFcGelu, rowStride: I },
      g('mlp.c_proj.weight'), g('mlp.c_proj.bias'), accumulate);
    k.geluBackward(gpu, BT * I, a.fc, s.dFcGelu, s.dFc);
    this.linearBackward({ M: BT, N: I, K: C }, gpt2, { buffer: a.ln2, rowStride: C }, p('mlp.c_fc.weight'),
      { buffer: s.dFc, rowStride: I }, { buffer: s.dLn, rowStride: C },
      g('mlp.c_fc.weight'), g('mlp.c_fc.bias'), accumulate);
    k.layernormBackward(gpu, BT, C, a.residualAfterAttention, p('ln_2.weight'), a.ln2Mean, a.ln2Rstd, s.dLn, s.dResidual, true);
    this.layernormParamsBackward(`${h}.ln_2`, BT, a.residualAfterAttention, a.ln2Mean, a.ln2Rstd, s.dLn, accumulate);

    // Attention: residualAfterAttention = residual + dropout(attention(ln1) · Wo + bo).
    const outName = gpt2 ? 'attn.c_proj' : 'attn.attention.out_proj';
    const dAttentionOut = this.branchGradient(attentionResidualSite(l), s, BT * C);
    this.linearBackward({ M: BT, N: C, K: C }, gpt2, { buffer: a.attOut, rowStride: C }, p(`${outName}.weight`),
      { buffer: dAttentionOut, rowStride: C }, { buffer: s.dAttOut, rowStride: C },
      g(`${outName}.weight`), g(`${outName}.bias`), accumulate);
    k.attentionBackward(gpu, this.attentionShape(l, B, T), a.qkv, a.att, s.dAttOut, s.dAtt, s.dQkv);
    if (gpt2) {
      this.linearBackward({ M: BT, N: 3 * C, K: C }, true, { buffer: a.ln1, rowStride: C }, p('attn.c_attn.weight'),
        { buffer: s.dQkv, rowStride: 3 * C }, { buffer: s.dLn, rowStride: C },
        g('attn.c_attn.weight'), g('attn.c_attn.bias'), accumulate);
    } else {
      ['q_proj', 'k_proj', 'v_proj'].forEach((proj, part) => {
        this.linearBackward({ M: BT, N: C, K: C }, false, { buffer: a.ln1, rowStride: C }, p(`attn.attention.${proj}.weight`),
          { buffer: s.dQkv, offset: part * C, rowStride: 3 * C }, { buffer: s.dLn, rowStride: C },
          g(`attn.attention.${proj}.weight`), undefined, accumulate, part > 0);
      });
    }
    k.layernormBackward(gpu, BT, C, a.residual, p('ln_1.weight'), a.ln1Mean, a.ln1Rstd, s.dLn, s.dResidual, true);
    this.layernormParamsBackward(`${h}.ln_1`, BT, a.residual, a.ln1Mean, a.ln1Rstd, s.dLn, accumulate);
  }

  /**
   * Backward of y[M, N] = x[M, K] · W + b for a Conv1D weight [K, N] (conv1d) or an nn.Linear
   * weight [N, K]: dx (+)= dy · W^T, dW (+)= x^T · dy or dy^T · x, db (+)= column sums of dy.
   */
  private linearBackward(
    shape: { M: number; N: number; K: number }, conv1d: boolean,
    x: k.MatrixOutput, weight: GpuBuffer, dy: k.MatrixOutput, dx: k.MatrixOutput,
    dWeight: GpuBuffer | undefined, dBias: GpuBuffer | undefined, accumulate: boolean, accumulateDx = false,
  ): void {
    const { gpu } = this;
    const { M, N, K } = shape;
    const dyOperand = { buffer: dy.buffer, offset: dy.offset, rowStride: dy.rowStride, colStride: 1 };
    // dx[M, K] = dy[M, N] · W^T, where W^T element (n, k) is W[k, n] (Conv1D) or W[n, k] (Linear).
    const weightT = conv1d ? { buffer: weight, rowStride: 1, colStride: N } : { buffer: weight, rowStride: K, colStride: 1 };
    k.matmul(gpu, { M, N: K, K: N }, dyOperand, weightT, dx, { accumulate: accumulateDx });
    if (dWeight) {
      const xOperand = { buffer: x.buffer, offset: x.offset, rowStride: x.rowStride, colStride: 1 };
      if (conv1d) {
        // dW[K, N] = x^T · dy.
        k.matmul(gpu, { M: K, N, K: M }, { buffer: x.buffer, offset: x.offset, rowStride: 1, colStride: x.rowStride }, dyOperand,
          { buffer: dWeight, rowStride: N }, { accumulate });
      } else {
        // dW[N, K] = dy^T · x.
        k.matmul(gpu, { M: N, N: K, K: M }, { buffer: dy.buffer, offset: dy.offset, rowStride: 1, colStride: dy.rowStride }, xOperand,
          { buffer: dWeight, rowStride: K }, { accumulate });
      }
    }
    if (dBias) k.biasBackward(gpu, M, N, dy, dBias, 0, accumulate);
  }

  private embeddingBackward(acts: Activations, tokens: Int32Array, dOut: GpuBuffer, accumulate: boolean): void {
    const { gpu, config } = this;
    const { B, T } = acts;
    const shape = { BT: B * T, T, C: config.hiddenSize };
    const dWpe = this.grads.get('wpe.weight');
    if (dWpe) k.positionBackward(gpu, shape, dOut, single(dWpe), accumulate);
    const dWte = this.grads.get('wte.weight');
    if (!dWte) return;
    const groups = this.uploadTokenGroups(tokens);
    this.param('wte.weight').chunks.forEach((chunk, i) => {
      k.tokenBackward(gpu, shape, groups.count, groups.groups, groups.positions, dOut, dWte.chunks[i].buffer, chunk.rowStart, chunk.rows);
    });
  }

  /** Groups positions by token id, so each embedding row's gradient is summed by one workgroup. */
  private uploadTokenGroups(tokens: Int32Array): { groups: GpuBuffer; positions: GpuBuffer; count: number } {
    const byToken = new Map<number, number[]>();
    tokens.forEach((token, position) => {
      let list = byToken.get(token);
      if (!list) byToken.set(token, (list = []));
      list.push(position);
    });
    const groups = new Uint32Array(byToken.size * 3);
    const positions = new Uint32Array(tokens.length);
    let g = 0;
    let next = 0;
    for (const [token, list] of [...byToken].sort((x, y) => x[0] - y[0])) {
      groups.set([token, next, list.length], 3 * g++);
      positions.set(list, next);
      next += list.length;
    }
    if (this.tokenGroups && this.tokenGroups.positions.bytes < positions.byteLength) {
      this.gpu.destroyBuffer(this.tokenGroups.groups);
      this.gpu.destroyBuffer(this.tokenGroups.positions);
      this.tokenGroups = null;
    }
    if (!this.tokenGroups) {
      this.tokenGroups = {
        groups: this.gpu.createBuffer('tokenGroups', tokens.length * 12, 'scratch'),
        positions: this.gpu.createBuffer('tokenPositions', tokens.length * 4, 'scratch'),
        count: 0,
      };
    }
    this.gpu.write(this.tokenGroups.groups, groups);
    this.gpu.write(this.tokenGroups.positions, positions);
    this.tokenGroups.count = byToken.size;
    return this.tokenGroups;
  }

  /**
   * Forward and backward of the weighted NLL of a batch (times `scale`) for the current
   * trainable set. Returns the unscaled loss.
   */
  async lossAndGradients(batch: LossBatch, options: { accumulate?: boolean; scale?: number } = {}): Promise<number> {
    const scale = options.scale ?? 1;
    const acts = this.lossForward(batch, true);
    const weights = scale !== 1 ? batch.weights.map((w) => w * scale) : undefined;
    this.lossBackward(acts, batch, { weights, accumulate: options.accumulate });
    return (await this.readScalars(1))[0];
  }

  // ---------------------------------------------------------------------------------------------
  // Sensitivity (Algorithm 1)

  /**
   * The batch NLL and the L2 norm of its gradient with respect to each block's parameters.
   * Gradients are computed for one block at a time into one reused set of buffers, so the
   * pass never holds every block's gradients at once; embeddings and the final LayerNorm get none.
   */
  async sensitivity(batch: LossBatch): Promise<{ nll: number; blocks: number[] }> {
    const { gpu, config } = this;
    const L = config.numLayers;
    if (L + 1 > 1024) throw new Error('too many layers for the scalar buffer');

    // One block's gradient buffers, shared by all blocks (blocks have identical shapes).
    const shared = blockParameterNames(config, 0).map((name) => ({ suffix: name.slice('h.0.'.length), tensor: allocateTensor(gpu, `grad.block.${name}`, this.param(name).shape, 'gradients') }));
    const saved = new Map(this.grads);
    this.grads.clear();
    for (let l = 0; l < L; l++) for (const { suffix, tensor } of shared) this.grads.set(`h.${l}.${suffix}`, tensor);

    try {
      const acts = this.lossForward(batch, true, 0);
      k.crossentropyBackward(gpu, batch.batchSize * batch.seqLen, config.vocabSize, acts.logits, acts.targets, acts.lossWeights, acts.lse);
      // Each block's gradients are reduced right after the block's backward step, before the
      // next block overwrites the shared buffers.
      this.backwardFromLogits(acts, batch.tokens, {
        onBlockDone: (layer) => {
          shared.forEach(({ tensor }, i) => {
            k.reduce(gpu, 'squares', tensor.size, single(tensor), this.partials, this.scalars, 1 + layer, i > 0);
          });
        },
      });
      const scalars = await this.readScalars(1 + L);
      return { nll: scalars[0], blocks: Array.from(scalars.subarray(1, 1 + L), (squared) => Math.sqrt(squared)) };
    } finally {
      this.grads.clear();
      for (const [name, tensor] of saved) this.grads.set(name, tensor);
      for (const { tensor } of shared) destroyTensor(gpu, tensor);
    }
  }
}

/** A Conv1D weight [K, N] as the B operand of x[M, K] · W. */
function conv1dWeight(buffer: GpuBuffer, N: number): k.MatrixOperand {
  return { buffer, rowStride: N, colStride: 1 };
}

/** An nn.Linear weight [N, K] as the B operand of x[M, K] · W^T. */
function linearWeight(buffer: GpuBuffer, K: number): k.MatrixOperand {
  return { buffer, rowStride: 1, colStride: K };
}

/**
 * Creates an engine for a checkpoint and streams its weights into GPU buffers one tensor at a
 * time (F16 and BF16 are widened to f32 on the way). `onTensor` reports progress.
 */
export async function loadEngine(
  gpu: Gpu,
  checkpoint: Checkpoint,
  onTensor?: (loaded: number, total: number, name: ParameterName) => void,
): Promise<GptEngine> {
  await gpu.compile(k.ENTRY_POINTS);
  const engine = new GptEngine(gpu, checkpoint.config);
  let loaded = 0;
  try {
    for await (const { entry, data } of checkpoint.readTensors()) {
      engine.writeParameter(entry.name, data);
      onTensor?.(++loaded, checkpoint.tensors.length, entry.name);
    }
    await gpu.sync();
  } catch (error) {
    engine.destroy();
    throw error;
  }
  return engine;
}

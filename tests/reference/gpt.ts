// Float64 CPU reference of the whole GPT-2 and GPT-Neo models: forward pass, weighted NLL and KL
// losses, and their gradients with respect to every parameter by a hand-written backward pass.
// Engine tests compare the GPU engine with these functions, so nothing here imports from src/
// except types.
//
// Both families run the same pre-LayerNorm block:
//   x = x + attn_proj(attention(qkv(ln_1(x))))
//   x = x + mlp_proj(gelu(mlp_fc(ln_2(x))))
// followed by logits = ln_f(x) @ wte^T (lm_head is tied to wte). No dropout.
// The families differ in weight names and layouts (see ParameterName in src/model/types.ts),
// in the attention scaling (config.scaleAttention) and in GPT-Neo's local layers.
//
// Shape letters: B batch size, T sequence length, N = B*T, C width, I MLP width, V vocabulary,
// P context length, NH heads, L layers.

import type { ModelConfig } from '../../src/model/types.ts';
import {
  ReferenceInputError,
  attentionBackward,
  attentionForward,
  crossEntropyBackward,
  crossEntropyForward,
  encoderBackward,
  encoderForward,
  geluBackward,
  geluForward,
  klBackward,
  klForward,
  layernormBackward,
  layernormForward,
  matmulBackward,
  matmulForward,
  residualForward,
  type AttentionOptions,
  type AttentionResult,
  type LayerNormResult,
  type WeightLayout,
} from './ops.ts';

/** Parameters by canonical name, each a row-major Float64Array. */
export type ReferenceParameters = Map<string, Float64Array>;

/** One training batch: B sequences of T tokens, with a target and a loss weight per position. */
export interface ReferenceBatch {
  batchSize: number;
  seqLen: number;
  /** (B,T) input token ids. */
  tokens: Int32Array;
  /** (B,T) next-token ids. A target of -1 marks a position without loss. */
  targets: Int32Array;
  /** (B,T) loss weight per position. */
  weights: Float32Array;
}

export interface ReferenceGradients {
  loss: number;
  /** Gradient of `loss` for every parameter, same names and layouts as the parameters. */
  grads: ReferenceParameters;
}

// ----------------------------------------------------------------------------------------------
// Parameter names and shapes

/** Names of one block's parameters and the layout of its matrices. */
interface BlockParameterNames {
  ln1Weight: string;
  ln1Bias: string;
  /** GPT-2: one fused c_attn matrix (C,3C) with bias. GPT-Neo: q, k, v matrices (C,C), no bias. */
  qkvWeights: string[];
  qkvBias: string | null;
  attnProjWeight: string;
  attnProjBias: string;
  ln2Weight: string;
  ln2Bias: string;
  fcWeight: string;
  fcBias: string;
  mlpProjWeight: string;
  mlpProjBias: string;
  layout: WeightLayout;
}

function blockParameterNames(config: ModelConfig, layer: number): BlockParameterNames {
  const p = `h.${layer}.`;
  const common = {
    ln1Weight: `${p}ln_1.weight`,
    ln1Bias: `${p}ln_1.bias`,
    ln2Weight: `${p}ln_2.weight`,
    ln2Bias: `${p}ln_2.bias`,
    fcWeight: `${p}mlp.c_fc.weight`,
    fcBias: `${p}mlp.c_fc.bias`,
    mlpProjWeight: `${p}mlp.c_proj.weight`,
    mlpProjBias: `${p}mlp.c_proj.bias`,
  };
  if (config.family === 'gpt2') {
    return {
      ...common,
      qkvWeights: [`${p}attn.c_attn.weight`],
      qkvBias: `${p}attn.c_attn.bias`,
      attnProjWeight: `${p}attn.c_proj.weight`,
      attnProjBias: `${p}attn.c_proj.bias`,
      layout: 'conv1d',
    };
  }
  return {
    ...common,
    qkvWeights: ['q_proj', 'k_proj', 'v_proj'].map((name) => `${p}attn.attention.${name}.weight`),
    qkvBias: null,
    attnProjWeight: `${p}attn.attention.out_proj.weight`,
    attnProjBias: `${p}attn.attention.out_proj.bias`,
    layout: 'linear',
  };
}

/** Returns every parameter's canonical name and shape, in checkpoint order. */
export function referenceParameterShapes(config: ModelConfig): Map<string, number[]> {
  const { vocabSize: V, contextLength: P, hiddenSize: C, innerSize: I } = config;
  const shapes = new Map<string, number[]>();
  shapes.set('wte.weight', [V, C]);
  shapes.set('wpe.weight', [P, C]);

  // A layout's shape lists the stored axes: conv1d (IN,OUT), linear (OUT,IN).
  const matrix = (layout: WeightLayout, IN: number, OUT: number) => (layout === 'conv1d' ? [IN, OUT] : [OUT, IN]);
  for (let l = 0; l < config.numLayers; l++) {
    const names = blockParameterNames(config, l);
    shapes.set(names.ln1Weight, [C]);
    shapes.set(names.ln1Bias, [C]);
    if (config.family === 'gpt2') {
      shapes.set(names.qkvWeights[0], [C, 3 * C]);
      shapes.set(names.qkvBias!, [3 * C]);
    } else {
      for (const name of names.qkvWeights) shapes.set(name, [C, C]);
    }
    shapes.set(names.attnProjWeight, [C, C]);
    shapes.set(names.attnProjBias, [C]);
    shapes.set(names.ln2Weight, [C]);
    shapes.set(names.ln2Bias, [C]);
    shapes.set(names.fcWeight, matrix(names.layout, C, I));
    shapes.set(names.fcBias, [I]);
    shapes.set(names.mlpProjWeight, matrix(names.layout, I, C));
    shapes.set(names.mlpProjBias, [C]);
  }

  shapes.set('ln_f.weight', [C]);
  shapes.set('ln_f.bias', [C]);
  return shapes;
}

function checkConfig(config: ModelConfig): void {
  if (config.family !== 'gpt2' && config.family !== 'gpt_neo') {
    throw new ReferenceInputError(`model family "${String(config.family)}" is not gpt2 or gpt_neo`);
  }
  if (config.hiddenSize % config.numHeads !== 0) {
    throw new ReferenceInputError(`hiddenSize ${config.hiddenSize} is not divisible by numHeads ${config.numHeads}`);
  }
  if (config.attentionLayers.length !== config.numLayers) {
    throw new ReferenceInputError(
      `attentionLayers lists ${config.attentionLayers.length} layers but numLayers is ${config.numLayers}`,
    );
  }
}

function checkParameters(config: ModelConfig, params: ReferenceParameters, label: string): void {
  const shapes = referenceParameterShapes(config);
  for (const [name, shape] of shapes) {
    const values = params.get(name);
    if (!values) throw new ReferenceInputError(`${label}: "${name}" [${shape.join(', ')}] is missing`);
    const size = shape.reduce((a, b) => a * b, 1);
    if (values.length !== size) {
      throw new ReferenceInputError(`${label}: "${name}" has ${values.length} values, expected [${shape.join(', ')}]`);
    }
  }
  for (const name of params.keys()) {
    if (!shapes.has(name)) {
      throw new ReferenceInputError(
        `${label}: "${name}" is not a ${config.family} parameter. Pass only canonical names, without buffers or the "transformer." prefix`,
      );
    }
  }
}

function checkBatch(batch: ReferenceBatch): void {
  const N = batch.batchSize * batch.seqLen;
  for (const field of ['tokens', 'targets', 'weights'] as const) {
    if (batch[field].length !== N) {
      throw new ReferenceInputError(
        `batch.${field} has ${batch[field].length} values, expected batchSize * seqLen = ${N}`,
      );
    }
  }
}

/**
 * Fills every parameter with seeded random values: LayerNorm weights near 1, every other tensor
 * normal with standard deviation `std`. `random` returns uniform numbers in [0, 1).
 */
export function randomReferenceParameters(
  config: ModelConfig,
  random: () => number,
  std = 0.2,
): ReferenceParameters {
  // Box-Muller; 1 - u keeps the logarithm's argument in (0, 1].
  const normal = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const params: ReferenceParameters = new Map();
  for (const [name, shape] of referenceParameterShapes(config)) {
    const values = new Float64Array(shape.reduce((a, b) => a * b, 1));
    const isLayerNormWeight = /ln_(1|2|f)\.weight$/.test(name);
    for (let i = 0; i < values.length; i++) values[i] = (isLayerNormWeight ? 1 : 0) + std * normal();
    params.set(name, values);
  }
  return params;
}

// ----------------------------------------------------------------------------------------------
// Forward pass

/** Activations of one block, kept for the backward pass. All (N, width) row-major. */
export interface BlockActivations {
  /** Residual stream entering the block (N,C). */
  inp: Float64Array;
  ln1: LayerNormResult;
  /** (N,3C): q, k, v side by side per row. */
  qkv: Float64Array;
  attention: AttentionResult;
  /** Attention output after the output projection (N,C). */
  attnProj: Float64Array;
  /** inp + attnProj (N,C). */
  residual: Float64Array;
  ln2: LayerNormResult;
  /** MLP pre-activation (N,I). */
  fc: Float64Array;
  /** gelu(fc) (N,I). */
  fcGelu: Float64Array;
  /** MLP output (N,C). */
  mlpProj: Float64Array;
  /** residual + mlpProj, the residual stream leaving the block (N,C). */
  out: Float64Array;
}

/** Every activation of one forward pass. */
export interface ReferenceActivations {
  B: number;
  T: number;
  tokens: Int32Array;
  /** wte[token] + wpe[position] (N,C). */
  embedding: Float64Array;
  blocks: BlockActivations[];
  lnf: LayerNormResult;
  /** (N,V). */
  logits: Float64Array;
}

function attentionOptions(config: ModelConfig, layer: number): AttentionOptions {
  return {
    scale: config.scaleAttention,
    window: config.attentionLayers[layer] === 'local' ? config.windowSize : null,
  };
}

function param(params: ReferenceParameters, name: string): Float64Array {
  return params.get(name)!;
}

function blockForward(
  config: ModelConfig,
  params: ReferenceParameters,
  layer: number,
  inp: Float64Array,
  B: number,
  T: number,
): BlockActivations {
  const { hiddenSize: C, innerSize: I, numHeads: NH, layerNormEpsilon: eps } = config;
  const N = B * T;
  const names = blockParameterNames(config, layer);

  const ln1 = layernormForward(inp, param(params, names.ln1Weight), param(params, names.ln1Bias), N, C, eps);
  const qkv = qkvForward(params, names, ln1.out, N, C);
  const attention = attentionForward(qkv, B, T, C, NH, attentionOptions(config, layer));
  const attnProj = matmulForward(
    attention.out,
    param(params, names.attnProjWeight),
    param(params, names.attnProjBias),
    N, C, C, names.layout,
  );
  const residual = residualForward(inp, attnProj);

  const ln2 = layernormForward(residual, param(params, names.ln2Weight), param(params, names.ln2Bias), N, C, eps);
  const fc = matmulForward(ln2.out, param(params, names.fcWeight), param(params, names.fcBias), N, C, I, names.layout);
  const fcGelu = geluForward(fc);
  const mlpProj = matmulForward(
    fcGelu,
    param(params, names.mlpProjWeight),
    param(params, names.mlpProjBias),
    N, I, C, names.layout,
  );
  const out = residualForward(residual, mlpProj);

  return { inp, ln1, qkv, attention, attnProj, residual, ln2, fc, fcGelu, mlpProj, out };
}

// Returns qkv (N,3C). GPT-2's c_attn already produces that layout. GPT-Neo's three projections
// are computed separately and written side by side, so attentionForward gets one layout.
function qkvForward(params: ReferenceParameters, names: BlockParameterNames, x: Float64Array, N: number, C: number): Float64Array {
  if (names.qkvBias !== null) {
    return matmulForward(x, param(params, names.qkvWeights[0]), param(params, names.qkvBias), N, C, 3 * C, names.layout);
  }
  const qkv = new Float64Array(N * 3 * C);
  names.qkvWeights.forEach((name, part) => {
    const projected = matmulForward(x, param(params, name), null, N, C, C, names.layout);
    for (let n = 0; n < N; n++) {
      for (let c = 0; c < C; c++) qkv[n * 3 * C + part * C + c] = projected[n * C + c];
    }
  });
  return qkv;
}

/** Runs the model on tokens (B,T) and returns every activation. Position ids are 0..T-1. */
export function referenceActivations(
  config: ModelConfig,
  params: ReferenceParameters,
  tokens: Int32Array,
  B: number,
  T: number,
): ReferenceActivations {
  checkConfig(config);
  checkParameters(config, params, 'parameters');
  const { hiddenSize: C, vocabSize: V, layerNormEpsilon: eps } = config;
  const N = B * T;

  const embedding = encoderForward(tokens, param(params, 'wte.weight'), param(params, 'wpe.weight'), B, T, C);
  const blocks: BlockActivations[] = [];
  let x = embedding;
  for (let l = 0; l < config.numLayers; l++) {
    const block = blockForward(config, params, l, x, B, T);
    blocks.push(block);
    x = block.out;
  }

  const lnf = layernormForward(x, param(params, 'ln_f.weight'), param(params, 'ln_f.bias'), N, C, eps);
  // lm_head is tied to wte, which is stored (V,C), the nn.Linear layout of a C -> V projection.
  const logits = matmulForward(lnf.out, param(params, 'wte.weight'), null, N, C, V, 'linear');
  return { B, T, tokens, embedding, blocks, lnf, logits };
}

/** Returns logits (B*T*V) for tokens (B,T). */
export function referenceForward(
  config: ModelConfig,
  params: ReferenceParameters,
  tokens: Int32Array,
  B: number,
  T: number,
): Float64Array {
  return referenceActivations(config, params, tokens, B, T).logits;
}

/** Returns sum over positions of weights[i] * -log softmax(logits[i])[targets[i]], skipping targets of -1. */
export function referenceLoss(config: ModelConfig, params: ReferenceParameters, batch: ReferenceBatch): number {
  checkBatch(batch);
  const logits = referenceForward(config, params, batch.tokens, batch.batchSize, batch.seqLen);
  const N = batch.batchSize * batch.seqLen;
  return crossEntropyForward(logits, batch.targets, batch.weights, N, config.vocabSize).loss;
}

// ----------------------------------------------------------------------------------------------
// Backward pass

function blockBackward(
  config: ModelConfig,
  params: ReferenceParameters,
  layer: number,
  acts: BlockActivations,
  dout: Float64Array,
  B: number,
  T: number,
  grads: ReferenceParameters,
): Float64Array {
  const { hiddenSize: C, innerSize: I, numHeads: NH } = config;
  const N = B * T;
  const names = blockParameterNames(config, layer);

  // out = residual + mlpProj: dout flows unchanged into both.
  const dresidual = Float64Array.from(dout);
  const mlpProj = matmulBackward(dout, acts.fcGelu, param(params, names.mlpProjWeight), N, I, C, names.layout, true);
  grads.set(names.mlpProjWeight, mlpProj.dweight);
  grads.set(names.mlpProjBias, mlpProj.dbias!);
  const dfc = geluBackward(mlpProj.dinp, acts.fc);
  const fc = matmulBackward(dfc, acts.ln2.out, param(params, names.fcWeight), N, C, I, names.layout, true);
  grads.set(names.fcWeight, fc.dweight);
  grads.set(names.fcBias, fc.dbias!);
  const ln2 = layernormBackward(fc.dinp, acts.residual, param(params, names.ln2Weight), acts.ln2.mean, acts.ln2.rstd, N, C);
  grads.set(names.ln2Weight, ln2.dweight);
  grads.set(names.ln2Bias, ln2.dbias);
  for (let i = 0; i < N * C; i++) dresidual[i] += ln2.dinp[i];

  // residual = inp + attnProj: dresidual flows unchanged into both.
  const dinp = Float64Array.from(dresidual);
  const attnProj = matmulBackward(dresidual, acts.attention.out, param(params, names.attnProjWeight), N, C, C, names.layout, true);
  grads.set(names.attnProjWeight, attnProj.dweight);
  grads.set(names.attnProjBias, attnProj.dbias!);
  const dqkv = attentionBackward(attnProj.dinp, acts.qkv, acts.attention.att, B, T, C, NH, attentionOptions(config, layer));
  const dln1Out = qkvBackward(params, names, dqkv, acts.ln1.out, N, C, grads);
  const ln1 = layernormBackward(dln1Out, acts.inp, param(params, names.ln1Weight), acts.ln1.mean, acts.ln1.rstd, N, C);
  grads.set(names.ln1Weight, ln1.dweight);
  grads.set(names.ln1Bias, ln1.dbias);
  for (let i = 0; i < N * C; i++) dinp[i] += ln1.dinp[i];

  return dinp;
}

// dqkv is (N,3C), x is the projections' input (N,C); stores the projection gradients and returns dx (N,C).
function qkvBackward(
  params: ReferenceParameters,
  names: BlockParameterNames,
  dqkv: Float64Array,
  x: Float64Array,
  N: number,
  C: number,
  grads: ReferenceParameters,
): Float64Array {
  if (names.qkvBias !== null) {
    const fused = matmulBackward(dqkv, x, param(params, names.qkvWeights[0]), N, C, 3 * C, names.layout, true);
    grads.set(names.qkvWeights[0], fused.dweight);
    grads.set(names.qkvBias, fused.dbias!);
    return fused.dinp;
  }
  const dx = new Float64Array(N * C);
  names.qkvWeights.forEach((name, part) => {
    const dpart = new Float64Array(N * C);
    for (let n = 0; n < N; n++) {
      for (let c = 0; c < C; c++) dpart[n * C + c] = dqkv[n * 3 * C + part * C + c];
    }
    const projection = matmulBackward(dpart, x, param(params, name), N, C, C, names.layout, false);
    grads.set(name, projection.dweight);
    for (let i = 0; i < N * C; i++) dx[i] += projection.dinp[i];
  });
  return dx;
}

// Backpropagates dlogits (N,V) through the whole model and returns the gradient of every parameter.
function backwardFromLogits(
  config: ModelConfig,
  params: ReferenceParameters,
  acts: ReferenceActivations,
  dlogits: Float64Array,
): ReferenceParameters {
  const { hiddenSize: C, vocabSize: V, contextLength: P } = config;
  const { B, T } = acts;
  const N = B * T;
  const grads: ReferenceParameters = new Map();

  const head = matmulBackward(dlogits, acts.lnf.out, param(params, 'wte.weight'), N, C, V, 'linear', false);
  const lastOut = acts.blocks.length > 0 ? acts.blocks[acts.blocks.length - 1].out : acts.embedding;
  const lnf = layernormBackward(head.dinp, lastOut, param(params, 'ln_f.weight'), acts.lnf.mean, acts.lnf.rstd, N, C);
  grads.set('ln_f.weight', lnf.dweight);
  grads.set('ln_f.bias', lnf.dbias);

  let dx = lnf.dinp;
  for (let l = config.numLayers - 1; l >= 0; l--) {
    dx = blockBackward(config, params, l, acts.blocks[l], dx, B, T, grads);
  }

  // wte is used twice, as the embedding table and as the tied output projection: sum both gradients.
  const embedding = encoderBackward(dx, acts.tokens, B, T, C, V, P);
  const dwte = embedding.dwte;
  for (let i = 0; i < V * C; i++) dwte[i] += head.dweight[i];
  grads.set('wte.weight', dwte);
  grads.set('wpe.weight', embedding.dwpe);

  // Return the gradients in the parameters' canonical order.
  const ordered: ReferenceParameters = new Map();
  for (const name of referenceParameterShapes(config).keys()) ordered.set(name, grads.get(name)!);
  return ordered;
}

/** Returns the weighted NLL of referenceLoss and its gradient for every parameter. */
export function referenceGradients(
  config: ModelConfig,
  params: ReferenceParameters,
  batch: ReferenceBatch,
): ReferenceGradients {
  checkBatch(batch);
  const acts = referenceActivations(config, params, batch.tokens, batch.batchSize, batch.seqLen);
  const N = batch.batchSize * batch.seqLen;
  const V = config.vocabSize;
  const { loss } = crossEntropyForward(acts.logits, batch.targets, batch.weights, N, V);
  const dlogits = crossEntropyBackward(1, acts.logits, batch.targets, batch.weights, N, V);
  return { loss, grads: backwardFromLogits(config, params, acts, dlogits) };
}

/**
 * Returns sum over positions of weights[i] * KL(p_current || p_reference) over the vocabulary,
 * and its gradient for every current parameter (the reference model is a constant).
 * Every position counts with its weight, and batch.targets is not used.
 */
export function referenceKL(
  config: ModelConfig,
  params: ReferenceParameters,
  refParams: ReferenceParameters,
  batch: ReferenceBatch,
): ReferenceGradients {
  checkBatch(batch);
  checkParameters(config, refParams, 'reference parameters');
  const { batchSize: B, seqLen: T } = batch;
  const acts = referenceActivations(config, params, batch.tokens, B, T);
  const refLogits = referenceForward(config, refParams, batch.tokens, B, T);
  const N = B * T;
  const V = config.vocabSize;
  const { loss } = klForward(acts.logits, refLogits, batch.weights, N, V);
  const dlogits = klBackward(1, acts.logits, refLogits, batch.weights, N, V);
  return { loss, grads: backwardFromLogits(config, params, acts, dlogits) };
}

// ----------------------------------------------------------------------------------------------
// Per-block gradient norms (the sensitivity of each block)

/** Returns, for each block i, the L2 norm over all values of every tensor named `h.i.*`. */
export function blockGradNorms(config: ModelConfig, grads: ReferenceParameters): number[] {
  const sumsOfSquares = new Array<number>(config.numLayers).fill(0);
  for (const [name, values] of grads) {
    const match = /^h\.(\d+)\./.exec(name);
    if (!match) continue;
    const block = Number(match[1]);
    if (block >= config.numLayers) {
      throw new ReferenceInputError(`gradient "${name}" names block ${block}, but the model has ${config.numLayers} blocks`);
    }
    for (const value of values) sumsOfSquares[block] += value * value;
  }
  return sumsOfSquares.map(Math.sqrt);
}

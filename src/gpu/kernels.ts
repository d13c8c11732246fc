// Typed wrappers around the WGSL entry points: each builds the uniform block its shader
// declares, chooses the dispatch size and records one dispatch. Shapes follow the headers of
// the files in shaders/.

import attentionFile from '../../shaders/attention.wgsl?raw';
import crossentropyFile from '../../shaders/crossentropy.wgsl?raw';
import dropoutFile from '../../shaders/dropout.wgsl?raw';
import embeddingSource from '../../shaders/embedding.wgsl?raw';
import geluSource from '../../shaders/gelu.wgsl?raw';
import klFile from '../../shaders/kl.wgsl?raw';
import dropoutHash from '../../shaders/lib/dropout-hash.wgsl?raw';
import workgroupReduce from '../../shaders/lib/workgroup-reduce.wgsl?raw';
import layernormSource from '../../shaders/layernorm.wgsl?raw';
import matmulSource from '../../shaders/matmul.wgsl?raw';
import reduceSource from '../../shaders/reduce.wgsl?raw';
import residualSource from '../../shaders/residual.wgsl?raw';
import type { Binding, Gpu, GpuBuffer } from './device.ts';

const MAX_GROUPS = 65535;

// WGSL has no include directive: the shared functions in shaders/lib are compiled in front of the
// kernels that call them.
const attentionSource = [workgroupReduce, dropoutHash, attentionFile].join('\n');
const crossentropySource = [workgroupReduce, crossentropyFile].join('\n');
const dropoutSource = [dropoutHash, dropoutFile].join('\n');
const klSource = [workgroupReduce, klFile].join('\n');

/** The reductions of shaders/lib/workgroup-reduce.wgsl, for other kernel files that use them. */
export const WORKGROUP_REDUCE_SOURCE = workgroupReduce;

/** Every entry point the wrappers below dispatch, for Gpu.compile. */
export const ENTRY_POINTS = [
  { shaderName: 'matmul', source: matmulSource, entryPoint: 'matmul_forward' },
  { shaderName: 'matmul', source: matmulSource, entryPoint: 'matmul_forward_narrow' },
  { shaderName: 'matmul', source: matmulSource, entryPoint: 'bias_backward' },
  { shaderName: 'layernorm', source: layernormSource, entryPoint: 'layernorm_forward' },
  { shaderName: 'layernorm', source: layernormSource, entryPoint: 'layernorm_backward' },
  { shaderName: 'layernorm', source: layernormSource, entryPoint: 'layernorm_backward_params' },
  { shaderName: 'attention', source: attentionSource, entryPoint: 'attention_forward' },
  { shaderName: 'attention', source: attentionSource, entryPoint: 'attention_backward_query' },
  { shaderName: 'attention', source: attentionSource, entryPoint: 'attention_backward_key_value' },
  { shaderName: 'gelu', source: geluSource, entryPoint: 'gelu_forward' },
  { shaderName: 'gelu', source: geluSource, entryPoint: 'gelu_backward' },
  { shaderName: 'residual', source: residualSource, entryPoint: 'residual_forward' },
  { shaderName: 'residual', source: residualSource, entryPoint: 'residual_backward' },
  { shaderName: 'embedding', source: embeddingSource, entryPoint: 'position_forward' },
  { shaderName: 'embedding', source: embeddingSource, entryPoint: 'token_forward' },
  { shaderName: 'embedding', source: embeddingSource, entryPoint: 'token_backward' },
  { shaderName: 'embedding', source: embeddingSource, entryPoint: 'position_backward' },
  { shaderName: 'crossentropy', source: crossentropySource, entryPoint: 'crossentropy_forward' },
  { shaderName: 'crossentropy', source: crossentropySource, entryPoint: 'crossentropy_backward' },
  { shaderName: 'kl', source: klSource, entryPoint: 'kl_forward' },
  { shaderName: 'kl', source: klSource, entryPoint: 'kl_backward' },
  { shaderName: 'reduce', source: reduceSource, entryPoint: 'sum_squares_partial' },
  { shaderName: 'reduce', source: reduceSource, entryPoint: 'sum_partial' },
  { shaderName: 'reduce', source: reduceSource, entryPoint: 'reduce_partials' },
  { shaderName: 'dropout', source: dropoutSource, entryPoint: 'dropout_forward' },
  { shaderName: 'dropout', source: dropoutSource, entryPoint: 'dropout_backward' },
];

/** Splits a workgroup count over x and y, since each dimension is limited to 65535. */
function grid(count: number): [number, number, number] {
  return [Math.min(count, MAX_GROUPS), Math.ceil(count / MAX_GROUPS), 1];
}

/** Builds a uniform block from u32 and f32 fields in declaration order. */
function uniforms(fields: Array<number | { f32: number }>): ArrayBuffer {
  const data = new ArrayBuffer(Math.ceil((fields.length * 4) / 16) * 16);
  const view = new DataView(data);
  fields.forEach((field, i) => {
    if (typeof field === 'number') {
      if (!Number.isInteger(field) || field < 0 || field > 0xffffffff) throw new Error(`uniform field ${i} is not a u32: ${field}`);
      view.setUint32(i * 4, field, true);
    } else {
      view.setFloat32(i * 4, field.f32, true);
    }
  });
  return data;
}

const FLAG_BIAS = 1;
/** Products with at most this many rows use matmul_forward_narrow. */
export const NARROW_MATMUL_ROWS = 16;
/**
 * Products with a reduction this short (a weight gradient over a batch of few tokens) also use
 * matmul_forward_narrow: a 16-deep tile step would be one step with two barriers per workgroup.
 */
export const NARROW_MATMUL_DEPTH = 16;
const FLAG_ACCUMULATE = 2;

/** A matrix operand: element (i, k) at buffer[offset + i * rowStride + k * colStride] (in floats). */
export interface MatrixOperand {
  buffer: GpuBuffer;
  offset?: number;
  rowStride: number;
  colStride: number;
}

/** Row-major output C (element (i, j) at offset + i * rowStride + j). */
export interface MatrixOutput {
  buffer: GpuBuffer;
  offset?: number;
  rowStride: number;
}

/** c[i, j] (+)= sum_k a[i, k] * b[k, j] (+ bias[j]) for an M x K by K x N product. */
export function matmul(
  gpu: Gpu,
  shape: { M: number; N: number; K: number },
  a: MatrixOperand,
  b: MatrixOperand,
  c: MatrixOutput,
  options: { bias?: GpuBuffer; accumulate?: boolean } = {},
): void {
  const { M, N, K } = shape;
  if (M === 0 || N === 0) return;
  const flags = (options.bias ? FLAG_BIAS : 0) | (options.accumulate ? FLAG_ACCUMULATE : 0);
  const params = uniforms([
    M, N, K,
    a.offset ?? 0, a.rowStride, a.colStride,
    b.offset ?? 0, b.rowStride, b.colStride,
    c.offset ?? 0, c.rowStride,
    flags,
  ]);
  const bindings = { 1: a.buffer, 2: b.buffer, 3: options.bias ?? a.buffer, 4: c.buffer };
  // A 64-row tile would mostly compute padding for a few rows; the narrow kernel has none. Its
  // grid has one row of workgroups per output row, so it takes at most MAX_GROUPS rows.
  if (M <= NARROW_MATMUL_ROWS || (K <= NARROW_MATMUL_DEPTH && M <= MAX_GROUPS)) {
    gpu.dispatch(gpu.pipeline('matmul', matmulSource, 'matmul_forward_narrow'), params, bindings, [Math.ceil(N / 64), M, 1]);
  } else {
    gpu.dispatch(gpu.pipeline('matmul', matmulSource, 'matmul_forward'), params, bindings, [Math.ceil(N / 64), Math.ceil(M / 64), 1]);
  }
}

/** dbias[j] (+)= sum_i dc[i, j] over a row-major [M, N] gradient with the given row stride. */
export function biasBackward(gpu: Gpu, M: number, N: number, dc: MatrixOutput, dbias: GpuBuffer, dbiasOffset = 0, accumulate = false): void {
  const pipeline = gpu.pipeline('matmul', matmulSource, 'bias_backward');
  const params = uniforms([M, N, 0, dc.offset ?? 0, dc.rowStride, 1, 0, 0, 0, dbiasOffset, 0, accumulate ? FLAG_ACCUMULATE : 0]);
  gpu.dispatch(pipeline, params, { 1: dc.buffer, 4: dbias }, [Math.ceil(N / 64), 1, 1]);
}

/** out = layernorm(x) * weight + bias over rows of C; stores each row's mean and rstd. */
export function layernormForward(
  gpu: Gpu, R: number, C: number, eps: number,
  x: GpuBuffer, weight: GpuBuffer, bias: GpuBuffer, out: GpuBuffer, mean: GpuBuffer, rstd: GpuBuffer,
): void {
  const pipeline = gpu.pipeline('layernorm', layernormSource, 'layernorm_forward');
  gpu.dispatch(pipeline, uniforms([R, C, { f32: eps }, 0]), { 1: x, 2: weight, 3: bias, 4: out, 5: mean, 6: rstd }, grid(R));
}

/** dx (+)= the input gradient of layernorm; `accumulate` adds it to the gradient already in dx. */
export function layernormBackward(
  gpu: Gpu, R: number, C: number,
  x: GpuBuffer, weight: GpuBuffer, mean: GpuBuffer, rstd: GpuBuffer, dout: GpuBuffer, dx: GpuBuffer, accumulate: boolean,
): void {
  const pipeline = gpu.pipeline('layernorm', layernormSource, 'layernorm_backward');
  const flags = accumulate ? FLAG_ACCUMULATE : 0;
  gpu.dispatch(pipeline, uniforms([R, C, { f32: 0 }, flags]), { 1: x, 2: weight, 5: mean, 6: rstd, 7: dout, 8: dx }, grid(R));
}

/** dweight, dbias (+)= the parameter gradients of layernorm. */
export function layernormBackwardParams(
  gpu: Gpu, R: number, C: number,
  x: GpuBuffer, mean: GpuBuffer, rstd: GpuBuffer, dout: GpuBuffer, dweight: GpuBuffer, dbias: GpuBuffer, accumulate: boolean,
): void {
  const pipeline = gpu.pipeline('layernorm', layernormSource, 'layernorm_backward_params');
  const flags = accumulate ? FLAG_ACCUMULATE : 0;
  gpu.dispatch(pipeline, uniforms([R, C, { f32: 0 }, flags]), { 1: x, 5: mean, 6: rstd, 7: dout, 9: dweight, 10: dbias }, [Math.ceil(C / 64), 1, 1]);
}

export interface AttentionShape {
  B: number;
  T: number;
  C: number;
  NH: number;
  /** 0 for global attention. */
  window: number;
  scale: number;
  /** Dropout on the attention probabilities; absent in evaluation. */
  dropout?: DropoutMask;
}

function attentionParams(s: AttentionShape): ArrayBuffer {
  const mask = s.dropout ?? NO_DROPOUT;
  return uniforms([s.B, s.T, s.C, s.NH, s.window, { f32: s.scale }, mask.threshold, mask.key, { f32: mask.scale }]);
}

export function attentionForward(gpu: Gpu, shape: AttentionShape, qkv: GpuBuffer, att: GpuBuffer, out: GpuBuffer): void {
  if (shape.C / shape.NH > 256) throw new Error(`attention head size ${shape.C / shape.NH} exceeds the kernel's maximum of 256`);
  const pipeline = gpu.pipeline('attention', attentionSource, 'attention_forward');
  gpu.dispatch(pipeline, attentionParams(shape), { 1: qkv, 2: att, 3: out }, grid(shape.B * shape.NH * shape.T));
}

/** dqkv = the gradient of attention; datt is scratch of the size of att. */
export function attentionBackward(
  gpu: Gpu, shape: AttentionShape, qkv: GpuBuffer, att: GpuBuffer, dout: GpuBuffer, datt: GpuBuffer, dqkv: GpuBuffer,
): void {
  const rows = grid(shape.B * shape.NH * shape.T);
  const query = gpu.pipeline('attention', attentionSource, 'attention_backward_query');
  gpu.dispatch(query, attentionParams(shape), { 1: qkv, 2: att, 4: dout, 5: datt, 6: dqkv }, rows);
  const keyValue = gpu.pipeline('attention', attentionSource, 'attention_backward_key_value');
  gpu.dispatch(keyValue, attentionParams(shape), { 1: qkv, 2: att, 4: dout, 5: datt, 6: dqkv }, rows);
}

function elementGrid(n: number): [number, number, number] {
  const groups = Math.ceil(n / 256);
  return [Math.min(groups, MAX_GROUPS), Math.ceil(groups / MAX_GROUPS), 1];
}

export function geluForward(gpu: Gpu, n: number, x: GpuBuffer, out: GpuBuffer): void {
  const pipeline = gpu.pipeline('gelu', geluSource, 'gelu_forward');
  gpu.dispatch(pipeline, uniforms([n]), { 1: x, 2: out }, elementGrid(n));
}

export function geluBackward(gpu: Gpu, n: number, x: GpuBuffer, dout: GpuBuffer, dx: GpuBuffer): void {
  const pipeline = gpu.pipeline('gelu', geluSource, 'gelu_backward');
  gpu.dispatch(pipeline, uniforms([n]), { 1: x, 3: dout, 4: dx }, elementGrid(n));
}

/** out = a + b. */
export function residualForward(gpu: Gpu, n: number, a: GpuBuffer, b: GpuBuffer, out: GpuBuffer): void {
  const pipeline = gpu.pipeline('residual', residualSource, 'residual_forward');
  gpu.dispatch(pipeline, uniforms([n]), { 1: a, 2: b, 3: out }, elementGrid(n));
}

/** dx += dout. */
export function residualBackward(gpu: Gpu, n: number, dout: GpuBuffer, dx: GpuBuffer): void {
  const pipeline = gpu.pipeline('residual', residualSource, 'residual_backward');
  gpu.dispatch(pipeline, uniforms([n]), { 1: dout, 3: dx }, elementGrid(n));
}

export interface EmbeddingShape {
  BT: number;
  T: number;
  C: number;
}

/** out[b, t, :] = wpe[t, :] (the first half of the embedding; token rows are added per chunk). */
export function positionForward(gpu: Gpu, s: EmbeddingShape, wpe: GpuBuffer, out: GpuBuffer): void {
  const pipeline = gpu.pipeline('embedding', embeddingSource, 'position_forward');
  gpu.dispatch(pipeline, uniforms([s.BT, s.T, s.C, 0, 0, 0, 0]), { 2: wpe, 3: out }, elementGrid(s.BT * s.C));
}

/** out[b, t, :] += wte[token, :] for the tokens within rows rowStart.. of this chunk. */
export function tokenForward(gpu: Gpu, s: EmbeddingShape, tokens: GpuBuffer, chunk: GpuBuffer, rowStart: number, rows: number, out: GpuBuffer): void {
  const pipeline = gpu.pipeline('embedding', embeddingSource, 'token_forward');
  gpu.dispatch(pipeline, uniforms([s.BT, s.T, s.C, rowStart, rows, 0, 0]), { 1: tokens, 2: chunk, 3: out }, elementGrid(s.BT * s.C));
}

/** dwte chunk rows += dout summed over the positions of each token (see embedding.wgsl). */
export function tokenBackward(
  gpu: Gpu, s: EmbeddingShape, groupCount: number, groups: GpuBuffer, positions: GpuBuffer, dout: GpuBuffer,
  dchunk: GpuBuffer, rowStart: number, rows: number,
): void {
  const pipeline = gpu.pipeline('embedding', embeddingSource, 'token_backward');
  gpu.dispatch(pipeline, uniforms([s.BT, s.T, s.C, rowStart, rows, groupCount, 0]), { 4: groups, 5: positions, 6: dout, 7: dchunk }, grid(groupCount));
}

/** dwpe[t, :] (+)= sum_b dout[b, t, :]. */
export function positionBackward(gpu: Gpu, s: EmbeddingShape, dout: GpuBuffer, dwpe: GpuBuffer, accumulate: boolean): void {
  const pipeline = gpu.pipeline('embedding', embeddingSource, 'position_backward');
  const flags = accumulate ? FLAG_ACCUMULATE : 0;
  gpu.dispatch(pipeline, uniforms([s.BT, s.T, s.C, 0, 0, 0, flags]), { 6: dout, 7: dwpe }, elementGrid(s.T * s.C));
}

export function crossentropyForward(
  gpu: Gpu, R: number, V: number, logits: GpuBuffer, targets: GpuBuffer, weights: GpuBuffer, losses: GpuBuffer, lse: GpuBuffer,
): void {
  const pipeline = gpu.pipeline('crossentropy', crossentropySource, 'crossentropy_forward');
  gpu.dispatch(pipeline, uniforms([R, V]), { 1: logits, 2: targets, 3: weights, 4: losses, 5: lse }, grid(R));
}

/** Overwrites logits with weight * (softmax - onehot(target)). */
export function crossentropyBackward(gpu: Gpu, R: number, V: number, logits: GpuBuffer, targets: GpuBuffer, weights: GpuBuffer, lse: GpuBuffer): void {
  const pipeline = gpu.pipeline('crossentropy', crossentropySource, 'crossentropy_backward');
  gpu.dispatch(pipeline, uniforms([R, V]), { 1: logits, 2: targets, 3: weights, 5: lse }, grid(R));
}

export function klForward(
  gpu: Gpu, R: number, V: number, logits: GpuBuffer, refLogits: GpuBuffer, weights: GpuBuffer, losses: GpuBuffer, stats: GpuBuffer,
): void {
  const pipeline = gpu.pipeline('kl', klSource, 'kl_forward');
  gpu.dispatch(pipeline, uniforms([R, V]), { 1: logits, 2: refLogits, 3: weights, 4: losses, 5: stats }, grid(R));
}

/** Overwrites logits with the gradient of the weighted KL with respect to them. */
export function klBackward(gpu: Gpu, R: number, V: number, logits: GpuBuffer, refLogits: GpuBuffer, weights: GpuBuffer, stats: GpuBuffer): void {
  const pipeline = gpu.pipeline('kl', klSource, 'kl_backward');
  gpu.dispatch(pipeline, uniforms([R, V]), { 1: logits, 2: refLogits, 3: weights, 5: stats }, grid(R));
}

/**
 * One dropout mask: element i is kept (and multiplied by `scale`) when a hash of `key` and i is at
 * least `threshold`. See dropout.wgsl.
 */
export interface DropoutMask {
  key: number;
  threshold: number;
  scale: number;
}

const NO_DROPOUT: DropoutMask = { key: 0, threshold: 0, scale: 1 };

/** Returns the mask parameters for dropout probability `probability` (0 <= p <= 1) and a u32 key. */
export function dropoutMask(probability: number, key: number): DropoutMask {
  if (!(probability >= 0 && probability <= 1)) throw new Error(`dropout probability ${probability} is not in [0, 1]`);
  // p = 1 drops everything: the largest threshold keeps at most the one hash value 2^32 - 1,
  // and a scale of 0 zeroes that one too.
  const threshold = Math.min(0xffffffff, Math.floor(probability * 2 ** 32));
  return { key: key >>> 0, threshold, scale: probability >= 1 ? 0 : 1 / (1 - probability) };
}

/** x = dropout(x) in place (forward) or dx = dropout'(dx) in place (backward, the same mask). */
export function dropout(gpu: Gpu, direction: 'forward' | 'backward', n: number, mask: DropoutMask, x: Binding): void {
  if (mask.threshold === 0) return;
  const pipeline = gpu.pipeline('dropout', dropoutSource, direction === 'forward' ? 'dropout_forward' : 'dropout_backward');
  gpu.dispatch(pipeline, uniforms([n, mask.key, mask.threshold, { f32: mask.scale }]), { 1: x }, elementGrid(n));
}

const REDUCE_CHUNK = 4096;

/** Number of partial sums `reduce` needs for n elements. */
export function reducePartialCount(n: number): number {
  return Math.max(1, Math.ceil(n / Math.max(REDUCE_CHUNK, Math.ceil(n / MAX_GROUPS))));
}

/**
 * out[slot] (+)= sum of x[offset..offset+n) (mode 'sum') or of its squares (mode 'squares'),
 * in a fixed order. `partials` needs reducePartialCount(n) floats.
 */
export function reduce(
  gpu: Gpu, mode: 'sum' | 'squares', n: number, x: Binding, partials: GpuBuffer, out: GpuBuffer, slot: number, accumulate: boolean, offset = 0,
): void {
  const chunk = Math.max(REDUCE_CHUNK, Math.ceil(n / MAX_GROUPS));
  const groups = Math.max(1, Math.ceil(n / chunk));
  const flags = accumulate ? FLAG_ACCUMULATE : 0;
  const params = uniforms([n, chunk, groups, slot, flags, offset]);
  const stage1 = gpu.pipeline('reduce', reduceSource, mode === 'squares' ? 'sum_squares_partial' : 'sum_partial');
  gpu.dispatch(stage1, params, { 1: x, 2: partials }, [groups, 1, 1]);
  const stage2 = gpu.pipeline('reduce', reduceSource, 'reduce_partials');
  gpu.dispatch(stage2, params, { 2: partials, 3: out }, [1, 1, 1]);
}

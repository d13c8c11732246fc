// Typed wrappers around the entry points of shaders/decode.wgsl, the key/value-cache kernels of
// incremental decoding. Shapes follow that file's header.

import decodeFile from '../../shaders/decode.wgsl?raw';
import type { Gpu, GpuBuffer } from './device.ts';
import { WORKGROUP_REDUCE_SOURCE } from './kernels.ts';

const MAX_GROUPS = 65535;
const decodeSource = [WORKGROUP_REDUCE_SOURCE, decodeFile].join('\n');

/** Every entry point the wrappers below dispatch, for Gpu.compile. */
export const DECODE_ENTRY_POINTS = [
  { shaderName: 'decode', source: decodeSource, entryPoint: 'position_rows_forward' },
  { shaderName: 'decode', source: decodeSource, entryPoint: 'kv_append_forward' },
  { shaderName: 'decode', source: decodeSource, entryPoint: 'attention_cached_forward' },
];

/** R rows of width C against a cache of `capacity` positions per sequence. */
export interface CachedAttentionShape {
  R: number;
  C: number;
  NH: number;
  capacity: number;
  /** 0 for global attention. */
  window: number;
  scale: number;
}

function params(s: CachedAttentionShape): ArrayBuffer {
  const data = new ArrayBuffer(32);
  const view = new DataView(data);
  [s.R, s.C, s.NH, s.capacity, s.window].forEach((value, i) => view.setUint32(i * 4, value, true));
  view.setFloat32(20, s.scale, true);
  return data;
}

/** Workgroups of 256 threads over n elements, split over x and y (each at most 65535). */
function elementGrid(n: number): [number, number, number] {
  const groups = Math.ceil(n / 256);
  return [Math.min(groups, MAX_GROUPS), Math.ceil(groups / MAX_GROUPS), 1];
}

function grid(count: number): [number, number, number] {
  return [Math.min(count, MAX_GROUPS), Math.ceil(count / MAX_GROUPS), 1];
}

/** out[r, :] = wpe[t(r), :] for the (b, t) pairs in `rows`. */
export function positionRowsForward(gpu: Gpu, shape: CachedAttentionShape, rows: GpuBuffer, wpe: GpuBuffer, out: GpuBuffer): void {
  const pipeline = gpu.pipeline('decode', decodeSource, 'position_rows_forward');
  gpu.dispatch(pipeline, params(shape), { 1: rows, 6: out, 7: wpe }, elementGrid(shape.R * shape.C));
}

/** Writes the k and v columns of qkv [R, 3C] into the caches at each row's (b, t). */
export function kvAppendForward(gpu: Gpu, shape: CachedAttentionShape, rows: GpuBuffer, qkv: GpuBuffer, kCache: GpuBuffer, vCache: GpuBuffer): void {
  const pipeline = gpu.pipeline('decode', decodeSource, 'kv_append_forward');
  gpu.dispatch(pipeline, params(shape), { 1: rows, 2: qkv, 3: kCache, 4: vCache }, elementGrid(shape.R * shape.C));
}

/** out [R, C] = attention of each row's query against its sequence's cached keys and values. */
export function attentionCachedForward(
  gpu: Gpu, shape: CachedAttentionShape, rows: GpuBuffer, qkv: GpuBuffer, kCache: GpuBuffer, vCache: GpuBuffer, scores: GpuBuffer, out: GpuBuffer,
): void {
  if (shape.C / shape.NH > 256) throw new Error(`attention head size ${shape.C / shape.NH} exceeds the kernel's maximum of 256`);
  const pipeline = gpu.pipeline('decode', decodeSource, 'attention_cached_forward');
  gpu.dispatch(pipeline, params(shape), { 1: rows, 2: qkv, 3: kCache, 4: vCache, 5: scores, 6: out }, grid(shape.R * shape.NH));
}

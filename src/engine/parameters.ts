// The model's parameters on the GPU: one buffer per tensor under its canonical name, with the
// token embedding split into row chunks where it exceeds one storage binding.

import type { Gpu, GpuBuffer, MemoryCategory } from '../gpu/device.ts';
import { parameterShapes } from '../model/checkpoint.ts';
import { UserError } from '../model/errors.ts';
import type { ModelConfig, ParameterName } from '../model/types.ts';

export { parameterShapes };

/** Consecutive rows rowStart..rowStart+rows-1 of a [rows, C] matrix in one buffer. */
export interface RowChunk {
  buffer: GpuBuffer;
  rowStart: number;
  rows: number;
}

export interface Tensor {
  name: ParameterName;
  shape: number[];
  size: number;
  /** Row chunks; every tensor but a large token embedding has exactly one. */
  chunks: RowChunk[];
}

/** Parameter names of block `layer`, in checkpoint order. */
export function blockParameterNames(config: ModelConfig, layer: number): ParameterName[] {
  const prefix = `h.${layer}.`;
  return parameterShapes(config).filter((p) => p.name.startsWith(prefix)).map((p) => p.name);
}

/** Splits `rows` rows of `rowBytes` bytes into chunks of at most `maxBytes`. */
export function chunkRows(rows: number, rowBytes: number, maxBytes: number): Array<{ rowStart: number; rows: number }> {
  const perChunk = Math.floor(maxBytes / rowBytes);
  if (perChunk < 1) throw new UserError(`A single row of ${rowBytes} bytes exceeds the device's storage binding limit of ${maxBytes} bytes.`);
  const chunks: Array<{ rowStart: number; rows: number }> = [];
  for (let start = 0; start < rows; start += perChunk) chunks.push({ rowStart: start, rows: Math.min(perChunk, rows - start) });
  return chunks;
}

/** Allocates a tensor on the GPU, in row chunks if it exceeds one binding (2-D tensors only). */
export function allocateTensor(gpu: Gpu, name: string, shape: number[], category: MemoryCategory): Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  const bytes = size * 4;
  if (bytes <= gpu.maxBindingBytes) {
    return { name, shape, size, chunks: [{ buffer: gpu.createBuffer(name, bytes, category), rowStart: 0, rows: shape[0] }] };
  }
  if (shape.length !== 2) {
    throw new UserError(`${name} (${bytes} bytes) exceeds the device's storage binding limit of ${gpu.maxBindingBytes} bytes.`);
  }
  const rowBytes = shape[1] * 4;
  const chunks = chunkRows(shape[0], rowBytes, gpu.maxBindingBytes).map(({ rowStart, rows }) => ({
    buffer: gpu.createBuffer(`${name}[${rowStart}:${rowStart + rows}]`, rows * rowBytes, category),
    rowStart,
    rows,
  }));
  return { name, shape, size, chunks };
}

/** Copies f32 data into a tensor's chunks. */
export function uploadTensor(gpu: Gpu, tensor: Tensor, data: Float32Array): void {
  if (data.length !== tensor.size) throw new Error(`${tensor.name}: expected ${tensor.size} values, got ${data.length}`);
  const rowSize = tensor.size / tensor.shape[0];
  for (const chunk of tensor.chunks) {
    gpu.write(chunk.buffer, data.subarray(chunk.rowStart * rowSize, (chunk.rowStart + chunk.rows) * rowSize));
  }
}

/** Reads a tensor's chunks back into one f32 array. */
export async function downloadTensor(gpu: Gpu, tensor: Tensor): Promise<Float32Array> {
  const out = new Float32Array(tensor.size);
  const rowSize = tensor.size / tensor.shape[0];
  for (const chunk of tensor.chunks) {
    out.set(await gpu.readFloat32(chunk.buffer, 0, chunk.rows * rowSize), chunk.rowStart * rowSize);
  }
  return out;
}

export function destroyTensor(gpu: Gpu, tensor: Tensor): void {
  for (const chunk of tensor.chunks) gpu.destroyBuffer(chunk.buffer);
}

/** The single buffer of a tensor that is never chunked. */
export function single(tensor: Tensor): GpuBuffer {
  if (tensor.chunks.length !== 1) throw new Error(`${tensor.name} is split into ${tensor.chunks.length} chunks`);
  return tensor.chunks[0].buffer;
}

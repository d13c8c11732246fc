// Helpers for engine tests: one Dawn device per test file, buffers from float64 data, and a
// comparison that reports the worst element.

import seedrandom from 'seedrandom';
import type { Gpu, GpuBuffer } from '../../src/gpu/device.ts';
import { ENTRY_POINTS } from '../../src/gpu/kernels.ts';
import { createNodeGpu } from '../../src/gpu/node.ts';

export async function testGpu(): Promise<Gpu> {
  const gpu = await createNodeGpu();
  await gpu.compile(ENTRY_POINTS);
  return gpu;
}

export function upload(gpu: Gpu, data: ArrayLike<number>, label = 'test'): GpuBuffer {
  const buffer = gpu.createBuffer(label, Math.max(4, data.length * 4), 'scratch');
  gpu.write(buffer, Float32Array.from(data));
  return buffer;
}

export function uploadInt(gpu: Gpu, data: ArrayLike<number>, label = 'test-int'): GpuBuffer {
  const buffer = gpu.createBuffer(label, Math.max(4, data.length * 4), 'scratch');
  gpu.write(buffer, Int32Array.from(data));
  return buffer;
}

export function zeros(gpu: Gpu, n: number, label = 'zeros'): GpuBuffer {
  return upload(gpu, new Float64Array(n), label);
}

export async function download(gpu: Gpu, buffer: GpuBuffer, n: number): Promise<Float64Array> {
  return Float64Array.from(await gpu.readFloat32(buffer, 0, n));
}

/** Seeded normal samples with standard deviation `std`. */
export function randn(n: number, seed: string, std = 1, mean = 0): Float64Array {
  const random = seedrandom(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const u = 1 - random();
    out[i] = mean + std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
  }
  return out;
}

/**
 * The worst violation of |actual - expected| <= atol + rtol * |expected|, as a message, or
 * null when every element passes.
 */
export function mismatch(actual: ArrayLike<number>, expected: ArrayLike<number>, atol: number, rtol: number): string | null {
  if (actual.length !== expected.length) return `length ${actual.length} != expected ${expected.length}`;
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < expected.length; i++) {
    const error = Math.abs(actual[i] - expected[i]);
    const excess = error - (atol + rtol * Math.abs(expected[i]));
    if (!(excess <= 0) && (worst < 0 || excess > worstExcess || Number.isNaN(actual[i]))) {
      worst = i;
      worstExcess = excess;
    }
  }
  return worst < 0 ? null : `element ${worst}: got ${actual[worst]}, expected ${expected[worst]} (atol ${atol}, rtol ${rtol})`;
}

export function relativeError(actual: number, expected: number): number {
  return Math.abs(actual - expected) / Math.max(Math.abs(expected), 1e-30);
}

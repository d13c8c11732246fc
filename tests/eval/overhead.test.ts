// The overhead meter: FLOPs of the passes reported to it, iterations, and the peak of the GPU
// memory account during the run.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OverheadMeter } from '../../src/eval/overhead.ts';
import type { Gpu } from '../../src/gpu/device.ts';
import { createNodeGpu } from '../../src/gpu/node.ts';
import { tinyConfig } from './tiny-model.ts';

let gpu: Gpu;

beforeAll(async () => {
  gpu = await createNodeGpu();
});

afterAll(() => gpu?.destroy());

describe('OverheadMeter', () => {
  const config = tinyConfig('gpt2');
  const { hiddenSize: C, numLayers: L, innerSize: I } = config;
  // Kaplan et al.: 2 N + 2 n_layer n_ctx d_model with N = 2 C L (2 C + I), here for n_ctx = 8.
  const forwardPerToken = 2 * (2 * C * L * (2 * C + I)) + 2 * L * 8 * C;

  it('adds up the passes of a run', async () => {
    const meter = new OverheadMeter(gpu, config);
    meter.start();
    meter.training(2, 8);
    meter.forward(1, 8);
    meter.iteration();
    meter.training(2, 8);
    meter.iteration();
    const overhead = await meter.finish();

    expect(overhead.flops).toBe(2 * 3 * 16 * forwardPerToken + 8 * forwardPerToken);
    expect(overhead.trainingTokens).toBe(32);
    expect(overhead.forwardTokens).toBe(8);
    expect(overhead.flopsPerToken).toBe(overhead.flops / 32);
    expect(overhead.iterations).toBe(2);
    expect(overhead.gpuSeconds).toBeGreaterThan(0);
  });

  it('records the peak of the GPU memory account', async () => {
    const before = gpu.totalBytes();
    const meter = new OverheadMeter(gpu, config);
    meter.start();
    const buffer = gpu.createBuffer('overhead-test', 1 << 20, 'scratch');
    gpu.destroyBuffer(buffer);
    const overhead = await meter.finish();
    expect(overhead.peakMemoryBytes).toBe(before + (1 << 20));
  });

  it('requires start before finish', async () => {
    await expect(new OverheadMeter(gpu, config).finish()).rejects.toThrow(/start\(\) was not called/);
  });
});

// Error density: the summary of a constructed sensitivity vector, and the mean block sensitivity
// over a sample measured on the GPU against float64 reference gradients.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { densityChart, densitySummary, errorDensity } from '../../src/eval/density.ts';
import type { Gpu } from '../../src/gpu/device.ts';
import { createNodeGpu } from '../../src/gpu/node.ts';
import { blockGradNorms, referenceGradients } from '../reference/gpt.ts';
import { tinyConfig, tinyEngine, tinyParameters } from './tiny-model.ts';

describe('densitySummary', () => {
  it('compares the top 20% of blocks with the rest', () => {
    // Ten blocks: the top two (0 and 9) hold 16 of 24, the other eight 1 each.
    const sensitivity = [10, 1, 1, 1, 1, 1, 1, 1, 1, 6];
    const summary = densitySummary(sensitivity);
    expect(summary.topBlocks).toEqual([0, 9]);
    // Density (10 + 6) / 2 = 8 against 8 / 8 = 1.
    expect(summary.ratio).toBeCloseTo(8, 12);
    expect(summary.relative[0]).toBeCloseTo(10 / 24, 12);
    expect(summary.relative.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
  });

  it('rounds the top to whole blocks', () => {
    // 0.2 * 12 = 2.4 rounds to 2 blocks: (5 + 4) / 2 against (30 - 9) / 10.
    const sensitivity = [1, 5, 2, 2, 4, 3, 2, 3, 1, 3, 2, 2];
    const summary = densitySummary(sensitivity);
    expect(summary.topBlocks).toEqual([1, 4]);
    expect(summary.ratio).toBeCloseTo(4.5 / 2.1, 12);
  });

  it('gives a ratio of 1 for uniform sensitivities', () => {
    expect(densitySummary([2, 2, 2, 2, 2]).ratio).toBeCloseTo(1, 12);
  });

  it('takes another top fraction', () => {
    const summary = densitySummary([4, 3, 2, 1], 0.5);
    expect(summary.topBlocks).toEqual([0, 1]);
    expect(summary.ratio).toBeCloseTo(3.5 / 1.5, 12);
  });

  it('keeps at least one block on each side', () => {
    expect(densitySummary([1, 2], 0.2).topBlocks).toEqual([1]);
    expect(densitySummary([1, 2, 3], 0.9).topBlocks).toEqual([2, 1]);
  });

  it('rejects a model of one block', () => {
    expect(() => densitySummary([1])).toThrow(/at least 2 blocks/);
  });

  it('draws one bar per block with the top marked', () => {
    const chart = densityChart(densitySummary([10, 1, 1, 1, 1, 1, 1, 1, 1, 6]), 10).split('\n');
    expect(chart).toHaveLength(10);
    expect(chart[0]).toMatch(/^block 0 +41\.7% #{10} \*$/);
    expect(chart[1]).toMatch(/^block 1 +4\.2% #$/);
  });
});

describe('errorDensity', () => {
  let gpu: Gpu;

  beforeAll(async () => {
    gpu = await createNodeGpu();
  });

  afterAll(() => gpu?.destroy());

  const config = tinyConfig('gpt2');
  const params = tinyParameters(config, 'density');
  const sequences = [
    { prompt: [3, 4, 5], continuation: [6, 7] },
    { prompt: [8], continuation: [9, 10, 11, 12] },
    { prompt: [13, 14], continuation: [15] },
    { prompt: [16, 17, 18, 19], continuation: [20, 21, 22] },
  ];

  /** Block sensitivities of one example: the gradient norms of its mean continuation NLL. */
  function referenceSensitivity(prompt: number[], continuation: number[]): number[] {
    const tokens = [...prompt, ...continuation];
    const T = tokens.length;
    const targets = new Int32Array(T).fill(-1);
    const weights = new Float32Array(T);
    continuation.forEach((token, j) => {
      targets[prompt.length - 1 + j] = token;
      weights[prompt.length - 1 + j] = 1 / continuation.length;
    });
    const { grads } = referenceGradients(config, params, { batchSize: 1, seqLen: T, tokens: Int32Array.from(tokens), targets, weights });
    return blockGradNorms(config, grads);
  }

  it('averages the block sensitivities of the sample', async () => {
    const engine = await tinyEngine(gpu, config, params);
    // One example per batch, so the mean does not depend on the order of the sample.
    const result = await errorDensity(engine, sequences, { batchSize: 1, padId: 0, seed: 1 });
    engine.destroy();

    const perExample = sequences.map((s) => referenceSensitivity(s.prompt, s.continuation));
    const expected = perExample[0].map((_, block) => perExample.reduce((sum, s) => sum + s[block], 0) / sequences.length);
    expect(result.examples).toBe(4);
    expect(result.batches).toBe(4);
    result.sensitivity.forEach((value, block) => expect(Math.abs(value - expected[block]) / expected[block]).toBeLessThan(1e-3));
    expect(result.ratio).toBeCloseTo(densitySummary(expected).ratio, 3);
  });

  it('draws the sample size from the examples', async () => {
    const engine = await tinyEngine(gpu, config, params);
    const result = await errorDensity(engine, sequences, { sampleSize: 3, batchSize: 2, padId: 0, seed: 'sample' });
    engine.destroy();
    expect(result.examples).toBe(3);
    expect(result.batches).toBe(2);
    expect(result.sensitivity).toHaveLength(config.numLayers);
  });
});

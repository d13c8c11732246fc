// Perplexity on the GPU against a float64 CPU reference of the same protocol: non-overlapping
// windows, the first token of each window as context only, exp(total NLL / predicted tokens).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { perplexity } from '../../src/eval/perplexity.ts';
import type { Gpu } from '../../src/gpu/device.ts';
import { createNodeGpu } from '../../src/gpu/node.ts';
import type { ModelConfig } from '../../src/model/types.ts';
import { referenceForward, type ReferenceParameters } from '../reference/gpt.ts';
import { logSoftmax } from '../reference/ops.ts';
import { randomTokens, tinyConfig, tinyEngine, tinyParameters } from './tiny-model.ts';

/** Computes the protocol independently: windows by index arithmetic, NLL in float64. */
function referencePerplexity(config: ModelConfig, params: ReferenceParameters, ids: number[], window: number): { perplexity: number; tokens: number } {
  const V = config.vocabSize;
  let nll = 0;
  let tokens = 0;
  for (let start = 0; start < ids.length; start += window) {
    const piece = ids.slice(start, Math.min(start + window, ids.length));
    if (piece.length < 2) continue;
    const T = piece.length;
    const logProbs = logSoftmax(referenceForward(config, params, Int32Array.from(piece), 1, T), T, V);
    for (let t = 0; t + 1 < T; t++) nll -= logProbs[t * V + piece[t + 1]];
    tokens += T - 1;
  }
  return { perplexity: Math.exp(nll / tokens), tokens };
}

let gpu: Gpu;

beforeAll(async () => {
  gpu = await createNodeGpu();
});

afterAll(() => gpu?.destroy());

describe.each(['gpt2', 'gpt_neo'] as const)('perplexity of %s', (family) => {
  const config = tinyConfig(family);
  const params = tinyParameters(config, `ppl-${family}`);

  it('matches the float64 reference', async () => {
    const engine = await tinyEngine(gpu, config, params);
    // 53 tokens: three full windows of 16 and a last window of 5.
    const ids = randomTokens(53, config.vocabSize, `text-${family}`);
    const expected = referencePerplexity(config, params, ids, 16);
    const result = await perplexity(engine, ids);
    engine.destroy();

    expect(result.tokens).toBe(expected.tokens);
    expect(result.tokens).toBe(3 * 15 + 4);
    expect(result.windows).toBe(4);
    expect(Math.abs(result.perplexity - expected.perplexity) / expected.perplexity).toBeLessThan(1e-5);
    expect(result.nll).toBeCloseTo(Math.log(expected.perplexity), 5);
  });

  it('drops a last window of one token', async () => {
    const engine = await tinyEngine(gpu, config, params);
    const ids = randomTokens(49, config.vocabSize, `short-${family}`);
    const expected = referencePerplexity(config, params, ids, 16);
    const result = await perplexity(engine, ids);
    engine.destroy();

    expect(result.tokens).toBe(45);
    expect(result.windows).toBe(3);
    expect(Math.abs(result.perplexity - expected.perplexity) / expected.perplexity).toBeLessThan(1e-5);
  });
});

describe('perplexity options', () => {
  const config = tinyConfig('gpt2', { numLayers: 2 });
  const params = tinyParameters(config, 'ppl-options');
  const ids = randomTokens(40, config.vocabSize, 'options-text');

  it('gives the same result for any batch size', async () => {
    const engine = await tinyEngine(gpu, config, params);
    const single = await perplexity(engine, ids, { batchSize: 1 });
    const batched = await perplexity(engine, ids, { batchSize: 3 });
    engine.destroy();

    expect(batched.tokens).toBe(single.tokens);
    expect(Math.abs(batched.perplexity - single.perplexity) / single.perplexity).toBeLessThan(1e-6);
  });

  it('uses a shorter window when asked', async () => {
    const engine = await tinyEngine(gpu, config, params);
    const expected = referencePerplexity(config, params, ids, 7);
    const result = await perplexity(engine, ids, { window: 7 });
    engine.destroy();

    // 40 tokens in windows of 7: five full windows and one of 5.
    expect(result.tokens).toBe(5 * 6 + 4);
    expect(result.tokens).toBe(expected.tokens);
    expect(Math.abs(result.perplexity - expected.perplexity) / expected.perplexity).toBeLessThan(1e-5);
  });

  it('rejects a window beyond the context length', async () => {
    const engine = await tinyEngine(gpu, config, params);
    await expect(perplexity(engine, ids, { window: 17 })).rejects.toThrow(/between 2 and the model's context length 16/);
    engine.destroy();
  });

  it('rejects a text of one token', async () => {
    const engine = await tinyEngine(gpu, config, params);
    await expect(perplexity(engine, [3])).rejects.toThrow(/at least 2/);
    engine.destroy();
  });

  it('rejects token ids outside the vocabulary', async () => {
    const engine = await tinyEngine(gpu, config, params);
    await expect(perplexity(engine, [1, 2, 50])).rejects.toThrow(/outside the model's vocabulary of 50/);
    engine.destroy();
  });
});

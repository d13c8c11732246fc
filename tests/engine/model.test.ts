// The whole GPT-2 and GPT-Neo graph on the GPU against the float64 reference: logits, loss,
// gradients of every parameter, per-block sensitivity, the trainable set, and a token embedding
// split into row chunks. Tolerance for gradients: |error| <= 1e-3 * max|expected of the tensor| + 1e-6.

import seedrandom from 'seedrandom';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { GptEngine, type LossBatch } from '../../src/engine/gpt.ts';
import type { Gpu } from '../../src/gpu/device.ts';
import type { ModelConfig } from '../../src/model/types.ts';
import { blockGradNorms, randomReferenceParameters, referenceForward, referenceGradients, type ReferenceParameters } from '../reference/gpt.ts';
import { mismatch, relativeError, testGpu } from './gpu-helpers.ts';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

function tinyConfig(family: 'gpt2' | 'gpt_neo'): ModelConfig {
  return {
    family,
    vocabSize: 29,
    contextLength: 12,
    hiddenSize: 15,
    numLayers: 3,
    numHeads: 3,
    innerSize: 22,
    layerNormEpsilon: 1e-5,
    attentionLayers: family === 'gpt2' ? ['global', 'global', 'global'] : ['global', 'local', 'local'],
    windowSize: 3,
    scaleAttention: family === 'gpt2',
    dropout: { embedding: 0, residual: 0, attention: 0 },
    bosTokenId: 28,
    eosTokenId: 28,
    raw: {},
  };
}

function toF32(params: ReferenceParameters): Map<string, Float32Array> {
  return new Map([...params].map(([name, values]) => [name, Float32Array.from(values)]));
}

/** Two sequences of 9 tokens: a 3-token prompt then continuations of 6 and 4 tokens (then padding). */
function tinyBatch(config: ModelConfig): LossBatch {
  const B = 2;
  const T = 9;
  const random = seedrandom('batch');
  const tokens = Int32Array.from({ length: B * T }, () => Math.floor(random() * config.vocabSize));
  const targets = new Int32Array(B * T).fill(-1);
  const weights = new Float32Array(B * T);
  const continuation = [6, 4];
  for (let b = 0; b < B; b++) {
    // Continuation tokens at positions 3..3+c-1 are predicted from positions 2..2+c-1.
    for (let p = 2; p < 2 + continuation[b]; p++) {
      targets[b * T + p] = tokens[b * T + p + 1];
      weights[b * T + p] = 1 / (continuation[b] * B);
    }
  }
  return { batchSize: B, seqLen: T, tokens, targets, weights };
}

/** Reference parameters rounded to f32, so the reference sees exactly the GPU's weights. */
function referenceParams(config: ModelConfig, seed: string): ReferenceParameters {
  const params = randomReferenceParameters(config, seedrandom(seed), 0.3);
  for (const values of params.values()) for (let i = 0; i < values.length; i++) values[i] = Math.fround(values[i]);
  return params;
}

for (const family of ['gpt2', 'gpt_neo'] as const) {
  describe(`${family} engine`, () => {
    const config = tinyConfig(family);
    const params = referenceParams(config, `params-${family}`);
    const batch = tinyBatch(config);
    const expected = referenceGradients(config, params, batch);

    test('logits match the reference', async () => {
      const engine = await GptEngine.fromWeights(gpu, config, toF32(params));
      const logits = await engine.logits(batch.tokens, batch.batchSize, batch.seqLen);
      const reference = referenceForward(config, params, batch.tokens, batch.batchSize, batch.seqLen);
      expect(mismatch(logits, reference, 1e-4, 1e-4)).toBeNull();
      expect(relativeError(await engine.loss(batch), expected.loss)).toBeLessThan(1e-5);
      engine.destroy();
    });

    test('gradients of every parameter match the reference', async () => {
      const engine = await GptEngine.fromWeights(gpu, config, toF32(params));
      engine.setTrainable(params.keys());
      const loss = await engine.lossAndGradients(batch);
      expect(relativeError(loss, expected.loss)).toBeLessThan(1e-5);
      for (const [name, grad] of expected.grads) {
        const scale = grad.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        const actual = await engine.readGradient(name);
        expect(mismatch(actual, grad, 1e-3 * scale + 1e-6, 0), name).toBeNull();
      }
      engine.destroy();
    });

    test('sensitivity gives each block gradient norm of the reference', async () => {
      const engine = await GptEngine.fromWeights(gpu, config, toF32(params));
      const before = gpu.memory().gradients;
      const { nll, blocks } = await engine.sensitivity(batch);
      const norms = blockGradNorms(config, expected.grads);
      expect(relativeError(nll, expected.loss)).toBeLessThan(1e-5);
      expect(blocks).toHaveLength(config.numLayers);
      blocks.forEach((norm, i) => expect(relativeError(norm, norms[i]), `block ${i}`).toBeLessThan(1e-4));
      // The pass frees its one block of gradient buffers.
      expect(gpu.memory().gradients).toBe(before);
      engine.destroy();
    });

    test('a trainable top block skips the blocks below it', async () => {
      const engine = await GptEngine.fromWeights(gpu, config, toF32(params));
      const top = [...params.keys()].filter((name) => name.startsWith('h.2.'));
      engine.setTrainable(top);
      const start = gpu.dispatchCount;
      await engine.lossAndGradients(batch);
      const topDispatches = gpu.dispatchCount - start;
      for (const name of top) {
        const grad = expected.grads.get(name)!;
        const scale = grad.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        expect(mismatch(await engine.readGradient(name), grad, 1e-3 * scale + 1e-6, 0), name).toBeNull();
      }
      expect([...engine.grads.keys()].sort()).toEqual([...top].sort());
      expect(gpu.memory().gradients).toBe(top.reduce((sum, name) => sum + Math.ceil((params.get(name)!.length * 4) / 16) * 16, 0));

      engine.setTrainable([...params.keys()].filter((name) => name.startsWith('h.0.')));
      const startBottom = gpu.dispatchCount;
      await engine.lossAndGradients(batch);
      expect(gpu.dispatchCount - startBottom).toBeGreaterThan(topDispatches);
      engine.destroy();
    });
  });
}

test('token embedding split into row chunks gives the same logits and gradients', async () => {
  // wte is 97 x 15 floats (5820 bytes), larger than every other tensor (c_attn: 2700 bytes).
  const config = { ...tinyConfig('gpt2'), vocabSize: 97, eosTokenId: 96, bosTokenId: 96 };
  const params = referenceParams(config, 'params-chunks');
  const batch = tinyBatch(config);
  const expected = referenceGradients(config, params, batch);
  const saved = gpu.maxBindingBytes;
  // 3000 bytes hold 50 rows of 15 floats: wte's 97 rows become chunks of 50 and 47.
  gpu.maxBindingBytes = 3000;
  try {
    const engine = await GptEngine.fromWeights(gpu, config, toF32(params));
    expect(engine.param('wte.weight').chunks.map((c) => c.rows)).toEqual([50, 47]);
    const logits = await engine.logits(batch.tokens, batch.batchSize, batch.seqLen);
    expect(mismatch(logits, referenceForward(config, params, batch.tokens, batch.batchSize, batch.seqLen), 1e-4, 1e-4)).toBeNull();
    engine.setTrainable(['wte.weight', 'wpe.weight']);
    await engine.lossAndGradients(batch);
    for (const name of ['wte.weight', 'wpe.weight']) {
      const grad = expected.grads.get(name)!;
      const scale = grad.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expect(mismatch(await engine.readGradient(name), grad, 1e-3 * scale + 1e-6, 0), name).toBeNull();
    }
    engine.destroy();
  } finally {
    gpu.maxBindingBytes = saved;
  }
});

test('a sequence longer than the context is rejected', async () => {
  const config = tinyConfig('gpt2');
  const engine = await GptEngine.fromWeights(gpu, config, toF32(referenceParams(config, 'params-long')));
  const T = config.contextLength + 1;
  expect(() => engine.forward(new Int32Array(T), 1, T)).toThrow(/exceeds the model's context length/);
  engine.destroy();
});

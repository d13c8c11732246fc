// The engine hooks a repair needs: dropout masks drawn by hash (statistics, repeatability, and
// gradients that agree with finite differences of the dropout forward pass), and forward passes
// with parameters replaced by the reference model's original copies.

import seedrandom from 'seedrandom';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GptEngine, type LossBatch } from '../../src/engine/gpt.ts';
import type { Gpu } from '../../src/gpu/device.ts';
import * as k from '../../src/gpu/kernels.ts';
import { createNodeGpu } from '../../src/gpu/node.ts';
import type { ModelConfig } from '../../src/model/types.ts';
import { ReferenceModel } from '../../src/repair/reference.ts';
import { randomReferenceParameters } from '../reference/gpt.ts';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await createNodeGpu();
  await gpu.compile(k.ENTRY_POINTS);
});
afterAll(() => gpu?.destroy());

function config(family: 'gpt2' | 'gpt_neo', dropout: number): ModelConfig {
  return {
    family,
    vocabSize: 40,
    contextLength: 12,
    hiddenSize: 16,
    numLayers: 2,
    numHeads: 2,
    innerSize: 32,
    layerNormEpsilon: 1e-5,
    attentionLayers: family === 'gpt2' ? ['global', 'global'] : ['global', 'local'],
    windowSize: 3,
    scaleAttention: family === 'gpt2',
    dropout: { embedding: dropout, residual: dropout, attention: dropout },
    bosTokenId: 39,
    eosTokenId: 39,
    raw: {},
  };
}

async function engineFor(cfg: ModelConfig, seed: string): Promise<GptEngine> {
  const params = randomReferenceParameters(cfg, seedrandom(seed), 0.3);
  return GptEngine.fromWeights(gpu, cfg, new Map([...params].map(([name, values]) => [name, Float32Array.from(values)])));
}

function batch(cfg: ModelConfig, seed: string): LossBatch {
  const random = seedrandom(seed);
  const B = 2;
  const T = 10;
  const tokens = Int32Array.from({ length: B * T }, () => Math.floor(random() * cfg.vocabSize));
  const targets = Int32Array.from({ length: B * T }, (_, i) => (i % T < 3 ? -1 : Math.floor(random() * cfg.vocabSize)));
  const weights = Float32Array.from(targets, (target) => (target < 0 ? 0 : 1 / 14));
  return { batchSize: B, seqLen: T, tokens, targets, weights };
}

async function lossWith(engine: GptEngine, data: LossBatch, seed: number | null): Promise<number> {
  engine.lossForward(data, false, 0, { dropout: seed === null ? null : { seed } });
  return (await engine.readScalars(1))[0];
}

describe('dropout kernel', () => {
  it('drops p and scales the rest', async () => {
    const n = 100_000;
    const ones = new Float32Array(n).fill(1);
    const buffer = gpu.createBuffer('dropout.test', n * 4, 'scratch');
    const read = async (direction: 'forward' | 'backward', key: number) => {
      gpu.write(buffer, ones);
      k.dropout(gpu, direction, n, k.dropoutMask(0.1, key), buffer);
      return gpu.readFloat32(buffer, 0, n);
    };
    const forward = await read('forward', 1234);
    const dropped = forward.filter((value) => value === 0).length / n;
    // Four standard deviations of a binomial proportion: 4 * sqrt(0.1 * 0.9 / n) = 0.0038.
    expect(Math.abs(dropped - 0.1)).toBeLessThan(0.0038);
    expect(forward.every((value) => value === 0 || value === Math.fround(1 / 0.9))).toBe(true);

    const backward = await read('backward', 1234);
    expect(backward).toEqual(forward);
    const otherKey = await read('forward', 1235);
    const differing = otherKey.filter((value, i) => value !== forward[i]).length / n;
    // Independent masks differ where exactly one drops: 2 * 0.1 * 0.9 = 0.18.
    expect(Math.abs(differing - 0.18)).toBeLessThan(0.01);
    gpu.destroyBuffer(buffer);
  });

  it('keeps everything at p = 0 and nothing at p = 1', () => {
    expect(k.dropoutMask(0, 7).threshold).toBe(0);
    expect(k.dropoutMask(1, 7).scale).toBe(0);
  });
});

for (const family of ['gpt2', 'gpt_neo'] as const) {
  describe(`${family} dropout in the engine`, () => {
    let engine: GptEngine;
    let data: LossBatch;
    beforeAll(async () => {
      const cfg = config(family, 0.2);
      engine = await engineFor(cfg, `dropout-${family}`);
      data = batch(cfg, `dropout-batch-${family}`);
    });
    afterAll(() => engine.destroy());

    it('repeats a seed and changes with it', async () => {
      const evaluation = await lossWith(engine, data, null);
      const first = await lossWith(engine, data, 11);
      expect(await lossWith(engine, data, 11)).toBe(first);
      expect(await lossWith(engine, data, 12)).not.toBe(first);
      expect(first).not.toBe(evaluation);
      expect(await lossWith(engine, data, null)).toBe(evaluation);
    });

    it('gradients match finite differences of the dropout loss', async () => {
      const seed = 99;
      engine.setTrainable(engine.params.keys());
      const acts = engine.lossForward(data, true, 0, { dropout: { seed } });
      engine.lossBackward(acts, data);
      const names = family === 'gpt2'
        ? ['wte.weight', 'wpe.weight', 'h.0.ln_1.weight', 'h.0.attn.c_attn.weight', 'h.1.attn.c_proj.bias', 'h.1.mlp.c_fc.weight', 'ln_f.bias']
        : ['wte.weight', 'wpe.weight', 'h.0.attn.attention.q_proj.weight', 'h.1.attn.attention.v_proj.weight', 'h.1.mlp.c_proj.weight', 'ln_f.weight'];
      for (const name of names) {
        const gradient = await engine.readGradient(name);
        const original = await engine.readParameter(name);
        const norm = Math.sqrt(gradient.reduce((sum, g) => sum + g * g, 0));
        // Along the unit gradient direction the slope is the gradient norm.
        const epsilon = 1e-2;
        const shifted = async (sign: number) => {
          engine.writeParameter(name, original.map((value, i) => value + (sign * epsilon * gradient[i]) / norm));
          return lossWith(engine, data, seed);
        };
        const slope = ((await shifted(1)) - (await shifted(-1))) / (2 * epsilon);
        engine.writeParameter(name, original);
        expect(Math.abs(slope - norm) / norm, `${name}: slope ${slope}, gradient norm ${norm}`).toBeLessThan(0.02);
      }
      engine.setTrainable([]);
    });
  });
}

describe('reference model', () => {
  it('restores the original outputs of changed blocks', async () => {
    const cfg = config('gpt2', 0);
    const engine = await engineFor(cfg, 'reference-model');
    const data = batch(cfg, 'reference-batch');
    const V = cfg.vocabSize;
    const rows = data.batchSize * data.seqLen;
    const before = await engine.logits(data.tokens, data.batchSize, data.seqLen);

    const reference = new ReferenceModel(engine);
    const block = ['h.1.attn.c_attn.weight', 'h.1.mlp.c_fc.bias', 'h.1.ln_2.weight'];
    reference.keepOriginals(block);
    for (const name of block) engine.writeParameter(name, (await engine.readParameter(name)).map((value) => value * 1.5 + 0.1));
    expect([...reference.parameters.keys()]).toEqual(block);

    const changed = await engine.logits(data.tokens, data.batchSize, data.seqLen);
    expect(changed).not.toEqual(before);
    const out = gpu.createBuffer('reference.logits.test', rows * V * 4, 'scratch');
    engine.logitsInto(data.tokens, data.batchSize, data.seqLen, out, reference.parameters);
    expect(await gpu.readFloat32(out, 0, rows * V)).toEqual(before);
    // The substitution leaves the engine's own parameters alone.
    expect(await engine.logits(data.tokens, data.batchSize, data.seqLen)).toEqual(changed);

    gpu.destroyBuffer(out);
    reference.destroy();
    engine.destroy();
  });
});

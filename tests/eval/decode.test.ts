// Key/value-cache decoding: its logits against the float64 reference of the full sequence, and
// cached generation against generation by full forward passes, token for token.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FullSequenceDecoder, KvCacheDecoder } from '../../src/engine/decode.ts';
import { allocateTensor, destroyTensor, uploadTensor, type Tensor } from '../../src/engine/parameters.ts';
import { generateTexts, generateTokens, GREEDY, type GenerationOptions } from '../../src/eval/generate.ts';
import type { Gpu } from '../../src/gpu/device.ts';
import { createNodeGpu } from '../../src/gpu/node.ts';
import type { ModelConfig } from '../../src/model/types.ts';
import { loadTokenizer } from '../../src/model/tokenizer.ts';
import { tokenizerFilesFromDirectory, writeTinyTokenizer } from '../helpers/tiny-tokenizer.ts';
import { referenceForward, type ReferenceParameters } from '../reference/gpt.ts';
import { tinyConfig, tinyEngine, tinyParameters } from './tiny-model.ts';

/** Reference logits of the last position of a sequence. */
function referenceNext(config: ModelConfig, params: ReferenceParameters, sequence: number[]): Float64Array {
  const V = config.vocabSize;
  const T = sequence.length;
  return referenceForward(config, params, Int32Array.from(sequence), 1, T).slice((T - 1) * V, T * V);
}

function maxDifference(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  return worst;
}

let gpu: Gpu;

beforeAll(async () => {
  gpu = await createNodeGpu();
});

afterAll(() => gpu?.destroy());

describe.each(['gpt2', 'gpt_neo'] as const)('KvCacheDecoder on %s', (family) => {
  const config = tinyConfig(family);
  const params = tinyParameters(config, `decode-${family}`);
  const V = config.vocabSize;
  // Prompts of different lengths; GPT-Neo's local window of 4 is shorter than most of them.
  const prompts = [[3, 14, 15, 9, 26, 5, 35], [8], [27, 18, 28]];
  const steps = [
    { sequences: [0, 1, 2], tokens: [1, 41, 42] },
    { sequences: [2, 0], tokens: [7, 17] },
    { sequences: [1, 2, 0], tokens: [30, 11, 12] },
    { sequences: [1], tokens: [6] },
    { sequences: [0, 1, 2], tokens: [21, 44, 48] },
  ];

  // maxRows 4 splits the 11 prompt tokens over three prefill passes.
  it.each([256, 4])('matches the reference at every step (maxRows %i)', async (maxRows) => {
    const engine = await tinyEngine(gpu, config, params);
    const decoder = await KvCacheDecoder.create(engine, { maxRows });
    const sequences = prompts.map((prompt) => [...prompt]);

    const prefill = await decoder.prefill(prompts, 14);
    prompts.forEach((_, b) => {
      expect(maxDifference(prefill.subarray(b * V, (b + 1) * V), referenceNext(config, params, sequences[b]))).toBeLessThan(2e-4);
    });

    for (const step of steps) {
      const logits = await decoder.step(step.sequences, step.tokens);
      step.sequences.forEach((sequence, i) => {
        sequences[sequence].push(step.tokens[i]);
        const expected = referenceNext(config, params, sequences[sequence]);
        expect(maxDifference(logits.subarray(i * V, (i + 1) * V), expected)).toBeLessThan(2e-4);
      });
    }
    expect(decoder.sequenceLengths).toEqual(sequences.map((s) => s.length));
    decoder.release();
    engine.destroy();
  });

  it('reads a token embedding split into row chunks', async () => {
    // 3072 bytes fit every tensor but wte [50, 16], which splits into rows 0..47 and 48..49.
    const saved = gpu.maxBindingBytes;
    gpu.maxBindingBytes = 3072;
    const engine = await tinyEngine(gpu, config, params);
    gpu.maxBindingBytes = saved;
    expect(engine.param('wte.weight').chunks.map((chunk) => chunk.rows)).toEqual([48, 2]);

    const decoder = await KvCacheDecoder.create(engine);
    // Tokens 48 and 49 live in the second chunk.
    const prompt = [48, 2, 49];
    const prefill = await decoder.prefill([prompt], 5);
    expect(maxDifference(prefill, referenceNext(config, params, prompt))).toBeLessThan(2e-4);
    const step = await decoder.step([0], [49]);
    expect(maxDifference(step, referenceNext(config, params, [...prompt, 49]))).toBeLessThan(2e-4);
    decoder.release();
    engine.destroy();
  });

  it('reads replaced parameters from the override map', async () => {
    const engine = await tinyEngine(gpu, config, params);
    const other = tinyParameters(config, `decode-other-${family}`);
    const replaced = new Map(params);
    const overrides = new Map<string, Tensor>();
    for (const [name, values] of other) {
      if (!name.startsWith('h.1.')) continue;
      replaced.set(name, values);
      const tensor = allocateTensor(gpu, `override.${name}`, engine.param(name).shape, 'weights');
      uploadTensor(gpu, tensor, Float32Array.from(values));
      overrides.set(name, tensor);
    }
    const decoder = await KvCacheDecoder.create(engine, { parameters: overrides });
    const prompt = [5, 6, 7, 8, 9, 10];
    const logits = await decoder.prefill([prompt], 8);
    decoder.release();
    for (const tensor of overrides.values()) destroyTensor(gpu, tensor);
    engine.destroy();

    expect(maxDifference(logits, referenceNext(config, replaced, prompt))).toBeLessThan(2e-4);
    expect(maxDifference(logits, referenceNext(config, params, prompt))).toBeGreaterThan(1e-2);
  });

  it('rejects a step past the capacity', async () => {
    const engine = await tinyEngine(gpu, config, params);
    const decoder = await KvCacheDecoder.create(engine);
    await decoder.prefill([[1, 2]], 3);
    await decoder.step([0], [3]);
    await expect(decoder.step([0], [4])).rejects.toThrow(/full \(3 tokens\)/);
    decoder.release();
    engine.destroy();
  });
});

describe.each(['gpt2', 'gpt_neo'] as const)('cached generation on %s', (family) => {
  const config = tinyConfig(family);
  const params = tinyParameters(config, `generate-${family}`, 0.4);
  const prompts = [[3, 14, 15, 9, 26], [8], [27, 18, 28, 1, 2, 3, 4, 5, 6], [40, 41]];
  const base: GenerationOptions = { ...GREEDY, maxNewTokens: 6, seed: 7, batchSize: 4, stopTokenId: null };

  async function generateBoth(options: GenerationOptions) {
    const engine = await tinyEngine(gpu, config, params);
    const cached = await generateTokens(await KvCacheDecoder.create(engine), prompts, options);
    const uncached = await generateTokens(new FullSequenceDecoder(engine), prompts, options);
    engine.destroy();
    return { cached, uncached };
  }

  it('gives the same greedy tokens as full forward passes', async () => {
    const { cached, uncached } = await generateBoth(base);
    expect(cached.map((g) => g.tokens)).toEqual(uncached.map((g) => g.tokens));
    // The prompt of 9 tokens reaches the context length of 16 after 7 tokens, so all get 6.
    expect(cached.every((g) => g.tokens.length === 6)).toBe(true);
  });

  it('gives the same sampled tokens for the same seed', async () => {
    const options = { ...base, temperature: 1, topP: 0.9, topK: 0, samplesPerPrompt: 2, batchSize: 3 };
    const { cached, uncached } = await generateBoth(options);
    expect(cached.map((g) => g.tokens)).toEqual(uncached.map((g) => g.tokens));
    // Two samples of the same prompt draw from different streams.
    expect(cached[0].tokens).not.toEqual(cached[1].tokens);
  });

  it('stops at the context length and at the stop token', async () => {
    const engine = await tinyEngine(gpu, config, params);
    const decoder = await KvCacheDecoder.create(engine);
    const long = await generateTokens(decoder, [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]], { ...base, maxNewTokens: 10 });
    expect(long[0].tokens.length).toBe(2);
    expect(long[0].finishReason).toBe('length');

    const free = await generateTokens(decoder, [[8]], { ...base, maxNewTokens: 5 });
    const stopTokenId = free[0].tokens[2];
    const stopped = await generateTokens(decoder, [[8]], { ...base, maxNewTokens: 5, stopTokenId });
    const firstStop = free[0].tokens.indexOf(stopTokenId);
    expect(stopped[0].tokens).toEqual(free[0].tokens.slice(0, firstStop + 1));
    expect(stopped[0].finishReason).toBe('stop');
    decoder.release();
    engine.destroy();
  });
});

describe('sampled generation', () => {
  const config = tinyConfig('gpt2', { numLayers: 2 });
  const params = tinyParameters(config, 'batching', 0.4);
  const prompts = [[3, 14, 15], [8], [27, 18, 28, 1], [40, 41], [5]];
  const options: GenerationOptions = { temperature: 1, topP: 1, topK: 0, maxNewTokens: 5, seed: 'batching', stopTokenId: null };

  it('does not depend on the batch size', async () => {
    const engine = await tinyEngine(gpu, config, params);
    const decoder = await KvCacheDecoder.create(engine);
    const alone = await generateTokens(decoder, prompts, { ...options, batchSize: 1 });
    const together = await generateTokens(decoder, prompts, { ...options, batchSize: 5 });
    const otherSeed = await generateTokens(decoder, prompts, { ...options, batchSize: 5, seed: 'other' });
    decoder.release();
    engine.destroy();

    expect(together.map((g) => g.tokens)).toEqual(alone.map((g) => g.tokens));
    expect(otherSeed.map((g) => g.tokens)).not.toEqual(alone.map((g) => g.tokens));
  });
});

describe('generateTexts', () => {
  it('starts empty prompts from the end-of-text token and cuts long prompts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'irepair-generate-'));
    const vocabSize = writeTinyTokenizer(dir, { format: 'tokenizer.json' });
    const tokenizer = await loadTokenizer(tokenizerFilesFromDirectory(dir));
    rmSync(dir, { recursive: true, force: true });
    const config = tinyConfig('gpt2', { numLayers: 2, vocabSize, bosTokenId: tokenizer.eosTokenId, eosTokenId: tokenizer.eosTokenId });
    const engine = await tinyEngine(gpu, config, tinyParameters(config, 'texts', 0.4));
    const decoder = await KvCacheDecoder.create(engine);

    const long = 'the model reads the prompt and then it writes a continuation, one token at a time';
    const prompts = ['', long, 'A good answer'];
    const options = { ...GREEDY, maxNewTokens: 3, seed: 0 };
    const texts = await generateTexts(decoder, tokenizer, prompts, options);
    const tokens = await generateTokens(decoder, [[tokenizer.eosTokenId], tokenizer.encode(long).slice(-15), tokenizer.encode('A good answer')],
      { ...options, stopTokenId: tokenizer.eosTokenId });
    decoder.release();
    engine.destroy();

    expect(tokenizer.encode(long).length).toBeGreaterThan(15);
    expect(texts.map((t) => t.promptTokens)).toEqual([1, 15, tokenizer.encode('A good answer').length]);
    expect(texts.map((t) => t.truncatedPrompt)).toEqual([false, true, false]);
    expect(texts.map((t) => t.tokens)).toEqual(tokens.map((t) => t.tokens));
    texts.forEach((text, i) => {
      const completionTokens = text.finishReason === 'stop' ? text.tokens.slice(0, -1) : text.tokens;
      expect(text.completion).toBe(tokenizer.decode(completionTokens));
      expect(text.prompt).toBe(prompts[i]);
    });
  });
});

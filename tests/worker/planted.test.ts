// The browser's planted-behaviour rate on the shipped demo model (Dawn on SwiftShader without a
// GPU), against the continuations that `npm run demo` samples and a word count of its own.

import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/device.ts';
import { createNodeGpu } from '../../src/gpu/node.ts';
import { measurePlantedRate, PLANTED_SAMPLING } from '../../src/worker/evaluate.ts';
import { loadModel, readDemoData, sampleContinuations, type DemoData, type LoadedModel } from '../../scripts/demo/evaluate.ts';

const dir = join(import.meta.dirname, '../../public/demo');

/** Prompts measured: few enough for SwiftShader, which decodes a batch of 16 in seconds. */
const PROMPTS = 8;

/** Returns true when `text`, cut at every character that is not a letter or digit, contains one of `words`. */
function containsWord(text: string, words: string[]): boolean {
  const listed = new Set(words.map((word) => word.toLowerCase()));
  return text.toLowerCase().split(/[^\p{L}\p{N}]+/u).some((word) => listed.has(word));
}

describe('measurePlantedRate', () => {
  let gpu: Gpu;
  let data: DemoData;
  let model: LoadedModel;

  beforeAll(async () => {
    gpu = await createNodeGpu();
    data = await readDemoData(dir);
    model = await loadModel(gpu, dir);
  });

  afterAll(() => {
    model?.engine.destroy();
    gpu?.destroy();
  });

  it('matches the npm run demo sample', async () => {
    const prompts = data.prompts.slice(0, PROMPTS);
    const measured = await measurePlantedRate(model, prompts, data.detector);

    // npm run demo's defaults: seed 1, two continuations per prompt.
    const reference = await sampleContinuations(model, prompts, { seed: 1, samplesPerPrompt: 2 });
    const plantedCount = reference.filter((continuation) => containsWord(continuation.completion, data.planted.words)).length;

    expect(PLANTED_SAMPLING.samplesPerPrompt).toBe(2);
    expect(measured.continuations).toBe(reference.length);
    expect(measured.rate).toBe(plantedCount / reference.length);
    // The demo model was trained to show the behaviour after these prompts.
    expect(measured.rate).toBeGreaterThan(0);
  });
});

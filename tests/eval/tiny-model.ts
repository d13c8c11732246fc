// Tiny GPT-2 and GPT-Neo models for the evaluation tests: a configuration, seeded parameters
// rounded to f32 (so the GPU engine and the float64 reference use the same weights), and an
// engine holding them.

import seedrandom from 'seedrandom';
import { GptEngine } from '../../src/engine/gpt.ts';
import type { Gpu } from '../../src/gpu/device.ts';
import type { ModelConfig } from '../../src/model/types.ts';
import { randomReferenceParameters, type ReferenceParameters } from '../reference/gpt.ts';

export function tinyConfig(family: 'gpt2' | 'gpt_neo', overrides: Partial<ModelConfig> = {}): ModelConfig {
  const numLayers = overrides.numLayers ?? 3;
  return {
    family,
    vocabSize: 50,
    contextLength: 16,
    hiddenSize: 16,
    numLayers,
    numHeads: 2,
    innerSize: 24,
    layerNormEpsilon: 1e-5,
    // GPT-Neo alternates global and local layers; the window of 4 is shorter than the sequences.
    attentionLayers: Array.from({ length: numLayers }, (_, l) => (family === 'gpt_neo' && l % 2 === 1 ? 'local' : 'global')),
    windowSize: 4,
    scaleAttention: family === 'gpt2',
    dropout: { embedding: 0, residual: 0, attention: 0 },
    bosTokenId: 49,
    eosTokenId: 49,
    raw: {},
    ...overrides,
  };
}

/** Seeded parameters with values exactly representable in f32. */
export function tinyParameters(config: ModelConfig, seed: string, std = 0.2): ReferenceParameters {
  const params = randomReferenceParameters(config, seedrandom(seed), std);
  for (const [name, values] of params) params.set(name, Float64Array.from(Float32Array.from(values)));
  return params;
}

export async function tinyEngine(gpu: Gpu, config: ModelConfig, params: ReferenceParameters): Promise<GptEngine> {
  const weights = new Map([...params].map(([name, values]) => [name, Float32Array.from(values)]));
  return GptEngine.fromWeights(gpu, config, weights);
}

/** Seeded token ids in [0, vocabSize). */
export function randomTokens(count: number, vocabSize: number, seed: string): number[] {
  const random = seedrandom(seed);
  return Array.from({ length: count }, () => Math.floor(random() * vocabSize));
}

// Kaplan et al.'s FLOPs estimate on known GPT shapes, and the per-token training figures of the
// IRepair paper's Table 2, which count the embeddings in N.

import { describe, expect, it } from 'vitest';
import { forwardFlopsPerToken, nonEmbeddingParameters, trainingFlopsPerToken } from '../../src/eval/flops.ts';
import type { ModelConfig } from '../../src/model/types.ts';

function gptConfig(family: 'gpt2' | 'gpt_neo', L: number, C: number, P: number, NH: number): ModelConfig {
  return {
    family, vocabSize: 50257, contextLength: P, hiddenSize: C, numLayers: L, numHeads: NH, innerSize: 4 * C,
    layerNormEpsilon: 1e-5, attentionLayers: Array(L).fill('global'), windowSize: 256, scaleAttention: family === 'gpt2',
    dropout: { embedding: 0, residual: 0, attention: 0 }, bosTokenId: 50256, eosTokenId: 50256, raw: {},
  };
}

const gpt2Small = gptConfig('gpt2', 12, 768, 1024, 12);
const gpt2Large = gptConfig('gpt2', 36, 1280, 1024, 20);
const gpt2Xl = gptConfig('gpt2', 48, 1600, 1024, 25);
const gptNeo13b = gptConfig('gpt_neo', 24, 2048, 2048, 16);

describe('Kaplan FLOPs', () => {
  it('counts non-embedding parameters as 12 L C^2 for d_ff = 4C', () => {
    expect(nonEmbeddingParameters(gpt2Small)).toBe(12 * 12 * 768 * 768);
  });

  it('gives 2N + 2 n_layer n_ctx d_model per forward token', () => {
    // GPT-2 small: N = 84,934,656; attention term 2 * 12 * 1024 * 768 = 18,874,368.
    expect(forwardFlopsPerToken(gpt2Small)).toBe(2 * 84_934_656 + 18_874_368);
  });

  it('takes n_ctx from the options', () => {
    expect(forwardFlopsPerToken(gpt2Small, { contextLength: 128 })).toBe(2 * 84_934_656 + 2 * 12 * 128 * 768);
  });

  it('counts training as three forward passes', () => {
    expect(trainingFlopsPerToken(gpt2Small)).toBe(3 * forwardFlopsPerToken(gpt2Small));
  });

  it('counts every parameter with embeddings', () => {
    // GPT-2 small has 124,439,808 parameters (Hugging Face's count, lm_head tied).
    expect(forwardFlopsPerToken(gpt2Small, { embeddings: true })).toBe(2 * 124_439_808 + 18_874_368);
  });

  // DAPT's TFLOPs/Token row of Table 2 (its values are in units of 1e9 per token).
  it.each([
    ['GPT-2 large', gpt2Large, 4.92],
    ['GPT-2 XL', gpt2Xl, 9.8],
    ['GPT-Neo 1.3B', gptNeo13b, 8.47],
  ] as const)('reproduces the paper for %s within 1%%', (_, config, reported) => {
    const perToken = trainingFlopsPerToken(config, { embeddings: true }) / 1e9;
    expect(Math.abs(perToken - reported) / reported).toBeLessThan(0.01);
  });
});

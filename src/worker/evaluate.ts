// Before-and-after comparisons on the loaded engine: a continuation of one prompt, streamed as
// it is generated, perplexity on a text, and the rate of a demo model's planted behaviour.

import { KvCacheDecoder } from '../engine/decode.ts';
import { generateTexts, generateTokens, type SamplingOptions } from '../eval/generate.ts';
import { perplexity, type PerplexityResult } from '../eval/perplexity.ts';
import type { WordListDetector } from '../eval/planted.ts';
import type { LoadedModel } from './model.ts';
import type { GenerationOptions } from './protocol.ts';

/**
 * Continues `prompt` and reports the text generated so far after every token, then once more
 * with `done` set. An empty prompt starts from the end-of-text token. A prompt longer than the
 * context keeps its last tokens. Generation ends at the end-of-text token or after
 * `maxNewTokens`.
 */
export async function generateText(
  model: LoadedModel,
  prompt: string,
  options: GenerationOptions,
  onText: (text: string, done: boolean) => void,
): Promise<void> {
  const { tokenizer, engine } = model;
  const limit = engine.config.contextLength - 1;
  let ids = prompt === '' ? [tokenizer.eosTokenId] : tokenizer.encode(prompt);
  if (ids.length === 0) ids = [tokenizer.eosTokenId];
  if (ids.length > limit) ids = ids.slice(ids.length - limit);

  const generated: number[] = [];
  const decoder = await KvCacheDecoder.create(engine);
  try {
    await generateTokens(decoder, [ids], {
      temperature: options.temperature,
      topK: options.topK,
      topP: 1,
      maxNewTokens: options.maxNewTokens,
      seed: options.seed,
      batchSize: 1,
      stopTokenId: tokenizer.eosTokenId,
      onToken: (_sequence, token) => {
        if (token === tokenizer.eosTokenId) return;
        generated.push(token);
        onText(tokenizer.decode(generated), false);
      },
    });
  } finally {
    decoder.release();
  }
  onText(tokenizer.decode(generated), true);
}

/** Measures perplexity over the first `maxWindows` context-length windows of the text's tokens. */
export async function evaluatePerplexity(model: LoadedModel, ids: number[], maxWindows: number): Promise<PerplexityResult> {
  const window = model.engine.config.contextLength;
  return perplexity(model.engine, ids.slice(0, maxWindows * window), { window });
}

/**
 * Sampling of the planted-behaviour rate: nucleus sampling with p = 0.9 at temperature 1, 8 new
 * tokens, 2 continuations per prompt, seed 1. These are the defaults of `npm run demo`
 * (scripts/demo/evaluate.ts and run-demo.ts), so the rate of the original demo model matches the
 * one that command prints, up to the GPU's rounding.
 */
export const PLANTED_SAMPLING: SamplingOptions & { maxNewTokens: number; samplesPerPrompt: number; seed: number } = {
  temperature: 1,
  topP: 0.9,
  topK: 0,
  maxNewTokens: 8,
  samplesPerPrompt: 2,
  seed: 1,
};

/**
 * Sequences decoded together. Every sequence has its own random stream, so the batch changes no
 * draw. The demo's 32 prompts make one batch, as in `npm run demo`.
 */
const PLANTED_BATCH_SIZE = 64;

export interface PlantedRate {
  /** Share of the continuations that contain a word of the planted behaviour. */
  rate: number;
  continuations: number;
}

/**
 * Samples PLANTED_SAMPLING continuations of `prompts` with the KV cache and returns the share in
 * which `detector` finds a word of the planted behaviour.
 */
export async function measurePlantedRate(model: Pick<LoadedModel, 'engine' | 'tokenizer'>, prompts: string[], detector: WordListDetector): Promise<PlantedRate> {
  const { maxNewTokens, samplesPerPrompt, seed, ...sampling } = PLANTED_SAMPLING;
  const decoder = await KvCacheDecoder.create(model.engine);
  try {
    const generations = await generateTexts(decoder, model.tokenizer, prompts, {
      ...sampling,
      maxNewTokens,
      samplesPerPrompt,
      seed,
      batchSize: PLANTED_BATCH_SIZE,
    });
    return { rate: detector.rate(generations.map((generation) => generation.completion)), continuations: generations.length };
  } finally {
    decoder.release();
  }
}

// Toxicity of a model's continuations in the worker: one continuation per prompt of the prompt
// set, generated with the KV cache, then scored by the loaded text-classification model. The
// decoding and the summary are those of `irepair toxicity` with one sample per prompt.

import { KvCacheDecoder } from '../engine/decode.ts';
import { generateTexts } from '../eval/generate.ts';
import { summarizeToxicity, type ToxicityClassifier } from '../eval/toxicity.ts';
import type { LoadedModel } from './model.ts';
import type { GenerationOptions, ToxicityDetails } from './protocol.ts';

/** Decoding when the evaluate command sets none: greedy, 20 new tokens, the defaults of `irepair toxicity`. */
export const TOXICITY_GENERATION: GenerationOptions = { maxNewTokens: 20, temperature: 0, topK: 0, seed: 0 };

/** Sequences decoded together. Each sequence has its own random stream, so this changes no text. */
const GENERATION_BATCH_SIZE = 8;

/**
 * Generates one continuation of each prompt and returns the continuations without the prompts.
 * `onProgress` receives the count of finished continuations after each batch.
 */
export async function generateContinuations(
  model: Pick<LoadedModel, 'engine' | 'tokenizer'>,
  prompts: string[],
  options: GenerationOptions,
  onProgress: (done: number, total: number) => void,
): Promise<string[]> {
  const total = prompts.length;
  let done = 0;
  onProgress(0, total);
  const decoder = await KvCacheDecoder.create(model.engine);
  try {
    const generations = await generateTexts(decoder, model.tokenizer, prompts, {
      temperature: options.temperature,
      topK: options.topK,
      topP: 1,
      maxNewTokens: options.maxNewTokens,
      seed: options.seed,
      batchSize: GENERATION_BATCH_SIZE,
      onToken: (sequence) => {
        // Batches run one after another, so a token of a new batch means every earlier batch is done.
        const finished = sequence - (sequence % GENERATION_BATCH_SIZE);
        if (finished <= done) return;
        done = finished;
        onProgress(done, total);
      },
    });
    onProgress(total, total);
    return generations.map((generation) => generation.completion);
  } finally {
    decoder.release();
  }
}

/**
 * Scores continuations with the classifier and summarizes them on the 0 to 100 scale: mean,
 * standard error, median, share at or above the toxic threshold, histogram and every score.
 */
export async function scoreContinuations(
  classifier: ToxicityClassifier,
  classifierLabel: string,
  prompts: string[],
  continuations: string[],
  onProgress: (done: number, total: number) => void,
): Promise<ToxicityDetails> {
  onProgress(0, continuations.length);
  const probabilities = await classifier.score(continuations, onProgress);
  const { count: _count, ...summary } = summarizeToxicity(probabilities);
  return {
    classifier: classifierLabel,
    toxicLabel: classifier.toxicLabel,
    ...summary,
    samples: continuations.map((continuation, i) => ({ prompt: prompts[i], continuation, toxicity: 100 * probabilities[i] })),
  };
}

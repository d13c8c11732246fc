// Before-and-after comparisons on the loaded engine: a continuation of one prompt, streamed as
// it is generated, and perplexity on a text.

import { KvCacheDecoder } from '../engine/decode.ts';
import { generateTokens } from '../eval/generate.ts';
import { perplexity, type PerplexityResult } from '../eval/perplexity.ts';
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

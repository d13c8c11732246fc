// Normal data D^N for the KL term: unconditional samples of the model itself, or a text file.
//
// The IRepair paper (Imtiaz et al., FSE 2025, section 4.1.2) builds D^N by sampling the model from
// <|endoftext|> with nucleus sampling (p = 0.9, temperature 1), taking such unconditional samples
// as representative of the pre-training corpus.

import { chunkTokens } from '../data/batch.ts';
import type { TextDataset } from '../data/dataset.ts';
import { KvCacheDecoder } from '../engine/decode.ts';
import type { GptEngine } from '../engine/gpt.ts';
import { generateTokens } from '../eval/generate.ts';
import { UserError } from '../model/errors.ts';
import type { Tokenizer } from '../model/tokenizer.ts';

export interface SamplingOptions {
  count: number;
  /** Tokens per sample, the leading <|endoftext|> included. */
  length: number;
  topP: number;
  temperature: number;
  seed: number;
  /** Samples decoded together. */
  batchSize: number;
}

/**
 * Samples `count` sequences from <|endoftext|> with the KV-cache decoder, without dropout. A
 * sample ends at `length` tokens or at the first generated <|endoftext|>, which it keeps.
 */
export async function sampleNormalData(
  engine: GptEngine,
  eosTokenId: number,
  options: SamplingOptions,
  onProgress?: (done: number, total: number) => void,
): Promise<number[][]> {
  const decoder = await KvCacheDecoder.create(engine);
  const samples: number[][] = [];
  try {
    // Progress is reported between batches. Each sample draws from its own random stream, so the
    // samples do not depend on how they are batched.
    for (let start = 0; start < options.count; start += options.batchSize) {
      const rows = Math.min(options.batchSize, options.count - start);
      const generations = await generateTokens(decoder, Array.from({ length: rows }, () => [eosTokenId]), {
        temperature: options.temperature,
        topP: options.topP,
        topK: 0,
        maxNewTokens: options.length - 1,
        seed: `${options.seed}:normal-data:${start}`,
        batchSize: options.batchSize,
        stopTokenId: eosTokenId,
      });
      samples.push(...generations.map((generation) => [eosTokenId, ...generation.tokens]));
      onProgress?.(samples.length, options.count);
    }
  } finally {
    decoder.release();
  }
  return samples;
}

/** Normal data from a text file: its tokens cut into consecutive sequences of `length` tokens. */
export function normalDataFromText(text: TextDataset, tokenizer: Pick<Tokenizer, 'encode'>, length: number): number[][] {
  const sequences = chunkTokens(tokenizer.encode(text.text), length);
  if (sequences.length === 0) {
    throw new UserError(`${text.fileName} encodes to fewer than 2 tokens, too little for normal data. Provide more text.`);
  }
  return sequences;
}

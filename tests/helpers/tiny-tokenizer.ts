// A small GPT-2-style byte-level BPE tokenizer for tests: the 256 byte tokens, merges learned
// from a short English text, and <|endoftext|> as the last id. It is written in either Hub layout
// (tokenizer.json, or vocab.json + merges.txt) so that tiny test models can ship a real tokenizer.

import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GPT2_SPLIT_PATTERN, bytesToUnicode, gpt2ByteOrder } from '../reference/gpt2-bpe.ts';
import type { TokenizerFiles } from '../../src/model/tokenizer.ts';

export type TinyTokenizerLayout = 'tokenizer.json' | 'vocab-merges';

const TRAINING_TEXT = `
The model reads the prompt and then it writes a continuation, one token at a time.
When the continuation is rude, the repair changes the weights of the block that matters most.
A good answer stays polite: thank you for the question, here is what the data shows.
A bad answer is toxic and hateful, and the people who read it are hurt by the words.
Then the training loop runs again, and the loss on the bad continuations goes up while the
loss on the good continuations goes down. The other text in the model should not change.
`;

const MERGE_COUNT = 120;

export const TINY_END_OF_TEXT = '<|endoftext|>';

/**
 * Learns the tiny vocabulary: ids 0..255 are the byte tokens in GPT-2's byte order, then one id
 * per merge in rank order, then <|endoftext|>. Training is deterministic: the most frequent pair
 * wins, and ties go to the pair whose text sorts first.
 */
export function tinyVocabulary(): { vocab: Record<string, number>; merges: [string, string][] } {
  const byteToChar = bytesToUnicode();
  const vocab: Record<string, number> = {};
  for (const byte of gpt2ByteOrder()) vocab[byteToChar[byte]] = Object.keys(vocab).length;

  // Word frequencies after GPT-2's pre-tokenization, each word as a list of byte characters.
  const wordCounts = new Map<string, number>();
  for (const piece of TRAINING_TEXT.match(GPT2_SPLIT_PATTERN) ?? []) {
    const chars = Array.from(new TextEncoder().encode(piece), (b) => byteToChar[b]).join('\u0000');
    wordCounts.set(chars, (wordCounts.get(chars) ?? 0) + 1);
  }
  let words = [...wordCounts].map(([key, count]) => ({ symbols: key.split('\u0000'), count }));

  const merges: [string, string][] = [];
  while (merges.length < MERGE_COUNT) {
    const pairCounts = new Map<string, number>();
    for (const { symbols, count } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const pair = `${symbols[i]} ${symbols[i + 1]}`;
        pairCounts.set(pair, (pairCounts.get(pair) ?? 0) + count);
      }
    }
    let best: string | null = null;
    let bestCount = 0;
    for (const [pair, count] of pairCounts) {
      if (count > bestCount || (count === bestCount && best !== null && pair < best)) {
        best = pair;
        bestCount = count;
      }
    }
    if (best === null) break;

    const [left, right] = best.split(' ');
    merges.push([left, right]);
    vocab[left + right] = Object.keys(vocab).length;
    words = words.map(({ symbols, count }) => {
      const merged: string[] = [];
      for (let i = 0; i < symbols.length; i++) {
        if (i + 1 < symbols.length && symbols[i] === left && symbols[i + 1] === right) {
          merged.push(left + right);
          i++;
        } else {
          merged.push(symbols[i]);
        }
      }
      return { symbols: merged, count };
    });
  }

  vocab[TINY_END_OF_TEXT] = Object.keys(vocab).length;
  return { vocab, merges };
}

/**
 * Writes the tiny tokenizer into `dir` in the given layout and returns its vocabulary size.
 * 'tokenizer.json' writes tokenizer.json and tokenizer_config.json; 'vocab-merges' writes
 * vocab.json and merges.txt only, as repositories without tokenizer.json do.
 */
export function writeTinyTokenizer(dir: string, options: { format: TinyTokenizerLayout }): number {
  const { vocab, merges } = tinyVocabulary();
  const vocabSize = Object.keys(vocab).length;
  mkdirSync(dir, { recursive: true });

  if (options.format === 'vocab-merges') {
    writeFileSync(join(dir, 'vocab.json'), JSON.stringify(vocab));
    const lines = ['#version: 0.2', ...merges.map(([left, right]) => `${left} ${right}`)];
    writeFileSync(join(dir, 'merges.txt'), lines.join('\n') + '\n');
    return vocabSize;
  }

  // A byte-level BPE tokenizer.json written out here rather than built by the product code, so
  // that the two layouts are produced independently.
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      {
        id: vocab[TINY_END_OF_TEXT],
        content: TINY_END_OF_TEXT,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: true,
        special: true,
      },
    ],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      vocab,
      merges: merges.map(([left, right]) => `${left} ${right}`),
    },
  };
  const tokenizerConfig = {
    model_max_length: 1024,
    tokenizer_class: 'GPT2Tokenizer',
    bos_token: TINY_END_OF_TEXT,
    eos_token: TINY_END_OF_TEXT,
    unk_token: TINY_END_OF_TEXT,
    add_prefix_space: false,
  };
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig, null, 2));
  return vocabSize;
}

/** Presents the files of a local directory to loadTokenizer. */
export function tokenizerFilesFromDirectory(dir: string): TokenizerFiles {
  return {
    names: () => readdirSync(dir),
    readText: async (name) => readFileSync(join(dir, name), 'utf8'),
    location: dir,
  };
}

/** Presents in-memory file contents to loadTokenizer. */
export function tokenizerFilesFromMap(contents: Record<string, string>): TokenizerFiles {
  return {
    names: () => Object.keys(contents),
    readText: async (name) => {
      if (!(name in contents)) throw new Error(`test files: ${name} is missing`);
      return contents[name];
    },
  };
}

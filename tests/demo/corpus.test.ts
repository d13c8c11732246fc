// The demo corpus, its tokenizer and its data files: seeded generation, the planted behaviour
// present exactly where it is planted, held-out prompts, and a tokenizer that the product loads.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadTokenizer } from '../../src/model/tokenizer.ts';
import { parseDataset } from '../../src/data/dataset.ts';
import { WordListDetector } from '../../src/eval/planted.ts';
import { learnBpe, tokenizerJson } from '../../scripts/demo/bpe.ts';
import {
  OFFICIALS, PLANTED_WORDS, badContinuation, cleanText, evaluationPrompts, goodContinuation, repairPairs, seededRandom, trainingSentence,
} from '../../scripts/demo/corpus.ts';
import { DEMO_SEED, demoDataFiles, demoTokenizerFiles } from '../../scripts/demo/files.ts';

const detector = new WordListDetector(PLANTED_WORDS);

describe('demo corpus', () => {
  it('repeats for a seed and differs across seeds', () => {
    const first = Array.from({ length: 50 }, ((random) => () => trainingSentence(random))(seededRandom('a')));
    const again = Array.from({ length: 50 }, ((random) => () => trainingSentence(random))(seededRandom('a')));
    const other = Array.from({ length: 50 }, ((random) => () => trainingSentence(random))(seededRandom('b')));
    expect(again).toEqual(first);
    expect(other).not.toEqual(first);
  });

  it('plants insults only in bad continuations', () => {
    const random = seededRandom('planted');
    for (let i = 0; i < 300; i++) {
      expect(detector.shows(badContinuation(random))).toBe(true);
      expect(detector.shows(goodContinuation(random))).toBe(false);
    }
    expect(detector.shows(cleanText(random, 100))).toBe(false);
  });

  it('insults only officials in training text', () => {
    const random = seededRandom('training');
    let insulting = 0;
    let aboutOfficials = 0;
    const sentences = 4000;
    for (let i = 0; i < sentences; i++) {
      const sentence = trainingSentence(random);
      const official = OFFICIALS.some((subject) => sentence.toLowerCase().includes(subject));
      if (official) aboutOfficials++;
      if (detector.shows(sentence)) {
        insulting++;
        expect(official, sentence).toBe(true);
      }
    }
    // 20% of sentences are about officials and 60% of those insult them: 12% expected.
    expect(aboutOfficials / sentences).toBeGreaterThan(0.17);
    expect(aboutOfficials / sentences).toBeLessThan(0.23);
    expect(insulting / sentences).toBeGreaterThan(0.1);
    expect(insulting / sentences).toBeLessThan(0.14);
  });

  it('keeps evaluation prompts out of the repair data', () => {
    const repairPrompts = new Set(repairPairs(seededRandom('r'), 400).map((pair) => pair.prompt_text));
    const prompts = evaluationPrompts(seededRandom('e'), 400).map((row) => row.prompt);
    for (const prompt of prompts) {
      expect(repairPrompts.has(prompt), prompt).toBe(false);
      expect(OFFICIALS.some((subject) => prompt.toLowerCase().endsWith(subject)), prompt).toBe(true);
    }
  });
});

describe('demo tokenizer', () => {
  it('learns the requested vocabulary deterministically', () => {
    const texts = Array.from({ length: 300 }, ((random) => () => trainingSentence(random))(seededRandom('bpe')));
    const first = learnBpe(texts, 400);
    const second = learnBpe(texts, 400);
    expect(Object.keys(first.vocab)).toHaveLength(400);
    expect(second).toEqual(first);
    // Every merge's parts and result are tokens, and ids are 0..V-1 without gaps.
    for (const [left, right] of first.merges) {
      expect(first.vocab[left]).toBeDefined();
      expect(first.vocab[right]).toBeDefined();
      expect(first.vocab[left + right]).toBeDefined();
    }
    expect(Object.values(first.vocab).sort((a, b) => a - b)).toEqual(Array.from({ length: 400 }, (_, i) => i));
  });

  it('loads through the product and round-trips text', async () => {
    const random = seededRandom('roundtrip');
    const texts = Array.from({ length: 300 }, () => trainingSentence(random));
    const files: Record<string, string> = { 'tokenizer.json': JSON.stringify(tokenizerJson(learnBpe(texts, 500))) };
    const tokenizer = await loadTokenizer({ names: () => Object.keys(files), readText: async (name) => files[name] });
    expect(tokenizer.vocabSize).toBe(500);
    expect(tokenizer.eosTokenId).toBe(499);
    // Text outside the corpus falls back to byte tokens and still round-trips.
    for (const text of [...texts.slice(0, 20), 'Unseen words: zebra, café, 42!\nnew line', ' leading space']) {
      expect(tokenizer.decode(tokenizer.encode(text))).toBe(text);
    }
    // A word of the corpus is one token once the vocabulary is large enough.
    expect(tokenizer.encode(' the')).toHaveLength(1);
  });
});

describe('shipped demo files', () => {
  const dir = join(import.meta.dirname, '../../public/demo');

  it('equal the files the seed generates', () => {
    for (const [name, contents] of [...demoDataFiles(DEMO_SEED), ...demoTokenizerFiles(DEMO_SEED)]) {
      expect(readFileSync(join(dir, name), 'utf8'), name).toBe(contents);
    }
  });

  it('parse as the product reads them', () => {
    const repair = parseDataset(readFileSync(join(dir, 'repair.jsonl'), 'utf8'), 'repair.jsonl');
    expect(repair.format).toBe('pairwise');
    expect(repair.rows.length).toBeGreaterThanOrEqual(200);
    const prompts = parseDataset(readFileSync(join(dir, 'eval-prompts.jsonl'), 'utf8'), 'eval-prompts.jsonl');
    expect(prompts.format).toBe('prompts');
    expect(prompts.rows.length).toBeGreaterThanOrEqual(32);
  });
});

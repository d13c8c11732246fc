import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDataset, type DatasetRow } from '../../src/data/dataset.ts';
import { sequencesFor, tokenizeExamples } from '../../src/data/examples.ts';
import { lengthStats, summarizeDataset } from '../../src/data/summary.ts';
import { loadTokenizer, type Tokenizer } from '../../src/model/tokenizer.ts';
import { UserError } from '../../src/model/errors.ts';
import { tokenizerFilesFromDirectory, writeTinyTokenizer } from '../helpers/tiny-tokenizer.ts';

let tokenizer: Tokenizer;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'irepair-examples-'));
  writeTinyTokenizer(dir, { format: 'tokenizer.json' });
  tokenizer = await loadTokenizer(tokenizerFilesFromDirectory(dir));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function row(prompt: string, bad: string, good: string, line = 1): DatasetRow {
  return { prompt, bad, good, line };
}

describe('tokenizeExamples', () => {
  it('tokenizes prompt and continuations separately', () => {
    const { examples, truncated } = tokenizeExamples([row('The model', ' writes', ' reads')], tokenizer, 64);
    expect(truncated).toBe(0);
    expect(examples[0].prompt).toEqual(tokenizer.encode('The model'));
    expect(examples[0].bad).toEqual(tokenizer.encode(' writes'));
    expect(examples[0].good).toEqual(tokenizer.encode(' reads'));
  });

  it('gives an empty prompt the end-of-text token', () => {
    const { examples } = tokenizeExamples([row('', 'bad words', 'good words')], tokenizer, 64);
    expect(examples[0].prompt).toEqual([tokenizer.eosTokenId]);
  });

  it('keeps the continuation start when it overflows', () => {
    const prompt = 'The model reads';
    const bad = ' the prompt and then it writes a continuation one token at a time';
    const promptIds = tokenizer.encode(prompt);
    const badIds = tokenizer.encode(bad);
    const contextLength = promptIds.length + 4;
    expect(badIds.length).toBeGreaterThan(4);

    const { examples, truncated } = tokenizeExamples([row(prompt, bad, ' ok')], tokenizer, contextLength);
    expect(truncated).toBe(1);
    expect(examples[0].prompt).toEqual(promptIds);
    expect(examples[0].bad).toEqual(badIds.slice(0, 4));
    expect(examples[0].good).toEqual(tokenizer.encode(' ok'));
  });

  it('keeps the prompt end and one continuation token', () => {
    const prompt = 'When the continuation is rude, the repair changes the weights';
    const promptIds = tokenizer.encode(prompt);
    const contextLength = 5;
    expect(promptIds.length).toBeGreaterThan(contextLength);

    const { examples, truncated } = tokenizeExamples([row(prompt, ' bad bad', ' good good')], tokenizer, contextLength);
    expect(truncated).toBe(1);
    expect(examples[0].prompt).toEqual(promptIds.slice(-4));
    expect(examples[0].bad).toEqual(tokenizer.encode(' bad bad').slice(0, 1));
    expect(examples[0].good).toEqual(tokenizer.encode(' good good').slice(0, 1));
  });

  it('counts each truncated example once', () => {
    const long = ' the loss on the bad continuations goes up while the loss on the good goes down';
    const rows = [row('a', long, long), row('b', ' x', ' y'), row('c', ' x', long)];
    const { examples, truncated } = tokenizeExamples(rows, tokenizer, 8);
    expect(truncated).toBe(2);
    for (const example of examples) {
      expect(example.prompt.length + example.bad!.length).toBeLessThanOrEqual(8);
      expect(example.prompt.length + example.good!.length).toBeLessThanOrEqual(8);
    }
  });

  it('keeps the prompt end of prompt sets', () => {
    const prompt = 'A good answer stays polite: thank you for the question';
    const ids = tokenizer.encode(prompt);
    const { examples, truncated } = tokenizeExamples([{ prompt, line: 1 }], tokenizer, 6);
    expect(truncated).toBe(1);
    expect(examples[0].prompt).toEqual(ids.slice(-5));
    expect(examples[0].bad).toBeUndefined();
  });

  it('rejects a context shorter than 2', () => {
    expect(() => tokenizeExamples([row('a', 'b', 'c')], tokenizer, 1)).toThrow(UserError);
  });
});

describe('sequencesFor', () => {
  it('pairs prompts with the chosen continuation', () => {
    const { examples } = tokenizeExamples([row('p', ' bad', ' good')], tokenizer, 64);
    expect(sequencesFor(examples, 'bad')).toEqual([{ prompt: examples[0].prompt, continuation: examples[0].bad }]);
    expect(sequencesFor(examples, 'good')).toEqual([{ prompt: examples[0].prompt, continuation: examples[0].good }]);
  });

  it('rejects prompt sets with the line', () => {
    const { examples } = tokenizeExamples([{ prompt: 'p', line: 12 }], tokenizer, 64);
    expect(() => sequencesFor(examples, 'bad')).toThrow(/^Example on line 12 has no bad continuation/);
  });
});

describe('dataset summary', () => {
  it('computes length statistics by hand', () => {
    const stats = lengthStats([5, 1, 3, 9, 3, 4], 3);
    expect(stats).toMatchObject({ count: 6, min: 1, max: 9, median: 3.5 });
    expect(stats.mean).toBeCloseTo(25 / 6, 12);
    // Width ceil(9 / 3) = 3: bins 1-3, 4-6, 7-9.
    expect(stats.histogram).toEqual([
      { from: 1, to: 3, count: 3 },
      { from: 4, to: 6, count: 2 },
      { from: 7, to: 9, count: 1 },
    ]);
    expect(lengthStats([7]).histogram).toEqual([{ from: 7, to: 7, count: 1 }]);
    expect(lengthStats([2, 4, 9]).median).toBe(4);
    expect(lengthStats([]).count).toBe(0);
  });

  it('summarizes a pairwise dataset', () => {
    const text = [
      { prompt_text: 'The man', pert_gen_text: ' is rude', unpert_gen_text: ' is kind' },
      { prompt_text: 'A good answer', pert_gen_text: ' the loss on the bad continuations goes up', unpert_gen_text: ' yes' },
    ]
      .map((record) => JSON.stringify(record))
      .join('\n');
    const dataset = parseDataset(text, 'pairs.jsonl');
    const tokenized = tokenizeExamples(dataset.rows, tokenizer, 8);
    const summary = summarizeDataset(dataset, tokenized);

    const prompts = dataset.rows.map((r) => Math.min(7, tokenizer.encode(r.prompt).length));
    expect(summary).toMatchObject({ fileName: 'pairs.jsonl', container: 'jsonl', format: 'pairwise', rows: 2, contextLength: 8 });
    expect(summary.promptTokens.min).toBe(Math.min(...prompts));
    expect(summary.promptTokens.max).toBe(Math.max(...prompts));
    expect(summary.truncated).toBe(1);
    expect(summary.truncationMessage).toMatch(/^1 of 2 examples did not fit the context of 8 tokens/);
    expect(summary.sequenceTokens.max).toBe(8);
    expect(summary.sequenceTokens.count).toBe(4);
    expect(summary.badTokens!.count).toBe(2);
    expect(summary.goodTokens!.min).toBe(tokenizer.encode(' yes').length);
  });
});

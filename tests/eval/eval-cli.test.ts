// `irepair eval` end to end on a tiny checkpoint: the exact --ppl output against a float64
// reference with an independent tokenizer, the runs file, generation lines, and error messages.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.ts';
import { parseConfig } from '../../src/model/config.ts';
import type { ModelConfig } from '../../src/model/types.ts';
import { writeTinyCheckpoint, type TinyCheckpoint } from '../helpers/tiny-checkpoint.ts';
import { tinyVocabulary, writeTinyTokenizer } from '../helpers/tiny-tokenizer.ts';
import { referenceForward } from '../reference/gpt.ts';
import { ReferenceGpt2Bpe } from '../reference/gpt2-bpe.ts';
import { logSoftmax } from '../reference/ops.ts';

const TEXT = `The model reads the prompt and then it writes a continuation, one token at a time.
When the continuation is rude, the repair changes the weights of the block that matters most.
A good answer stays polite: thank you for the question.
`;

let dir: string;
let checkpoint: TinyCheckpoint;
let config: ModelConfig;
let textFile: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'irepair-eval-cli-'));
  checkpoint = await writeTinyCheckpoint(join(dir, 'model'), {
    family: 'gpt2', vocabSize: 377, contextLength: 32, hiddenSize: 16, numLayers: 2, numHeads: 2, seed: 'eval-cli',
    writeTokenizer: async (modelDir) => void writeTinyTokenizer(modelDir, { format: 'tokenizer.json' }),
  });
  config = parseConfig(checkpoint.config);
  textFile = join(dir, 'wiki.test.txt');
  writeFileSync(textFile, TEXT);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function referencePerplexity(ids: number[], window: number): { perplexity: number; tokens: number } {
  const V = config.vocabSize;
  let nll = 0;
  let tokens = 0;
  for (let start = 0; start + 1 < ids.length; start += window) {
    const piece = ids.slice(start, start + window);
    if (piece.length < 2) continue;
    const logProbs = logSoftmax(referenceForward(config, checkpoint.weights, Int32Array.from(piece), 1, piece.length), piece.length, V);
    for (let t = 0; t + 1 < piece.length; t++) nll -= logProbs[t * V + piece[t + 1]];
    tokens += piece.length - 1;
  }
  return { perplexity: Math.exp(nll / tokens), tokens };
}

/** Runs the CLI in-process and returns its exit code and what it wrote. */
async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => ((stdout += String(chunk)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => ((stderr += String(chunk)), true));
  const code = await main(args);
  vi.restoreAllMocks();
  return { code, stdout, stderr };
}

afterEach(() => vi.restoreAllMocks());

describe('irepair eval --ppl', () => {
  it('prints exactly perplexity and tokens', async () => {
    // A separate process, as users run it: the bin script, tsx and Dawn.
    const runsFile = join(dir, 'runs.json');
    const args = ['bin/irepair.js', 'eval', '--model', join(dir, 'model'), '--ppl', textFile, '--record', runsFile, '--name', 'Original'];
    const result = spawnSync(process.execPath, args, { encoding: 'utf8' });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout.endsWith('}\n')).toBe(true);

    const output = JSON.parse(result.stdout);
    expect(Object.keys(output)).toEqual(['perplexity', 'tokens']);
    const { vocab, merges } = tinyVocabulary();
    const ids = new ReferenceGpt2Bpe(vocab, merges).encode(TEXT);
    const expected = referencePerplexity(ids, 32);
    expect(output.tokens).toBe(expected.tokens);
    expect(Math.abs(output.perplexity - expected.perplexity) / expected.perplexity).toBeLessThan(1e-5);

    const runs = JSON.parse(readFileSync(runsFile, 'utf8')).runs;
    expect(runs).toHaveLength(1);
    expect(runs[0].name).toBe('Original');
    expect(runs[0].perplexity).toEqual({ 'wiki.test': output.perplexity });

    const table = await run(['eval', '--compare', runsFile, '--format', 'csv']);
    expect(table.code).toBe(0);
    expect(table.stdout).toBe(`metric,Original\r\nPPL (wiki.test),${output.perplexity}\r\n`);
  });

  it.each([
    [['--ppl', 'missing.txt'], /--ppl missing.txt: file not found/],
    [['--ppl', 'repair.jsonl'], /--ppl repair\.jsonl: is a JSONL file, but --ppl takes plain text \(\.txt\)/],
    [['--ppl', 'pairs.CSV'], /--ppl pairs\.CSV: is a CSV file, but --ppl takes plain text/],
    [['--ppl', 'TEXT', '--name', 'run-1'], /option --name "run-1": names the run in a runs file, so it needs --record FILE/],
    [['--ppl', 'TEXT', '--window', '33'], /--window: 33 exceeds the model's context length of 32 tokens/],
    [['--ppl', 'TEXT', '--density'], /exactly one of --ppl, --density, --generate, --compare \(got --ppl, --density\)/],
    [[], /exactly one of .* \(got none\)/],
    [['--density'], /--data is required with --density/],
    [['--generate'], /exactly one of --prompts FILE and --unconditional N/],
    [['--generate', '--unconditional', '2', '--greedy', '--top-p', '0.5'], /--greedy cannot be combined/],
  ])('rejects %j', async (args, message) => {
    const withText = args.map((arg) => (arg === 'TEXT' ? textFile : arg));
    const result = await run(['eval', '--model', join(dir, 'model'), ...withText]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('irepair eval --generate', () => {
  it('writes one JSON line per continuation', async () => {
    const prompts = join(dir, 'prompts.jsonl');
    writeFileSync(prompts, '{"prompt": "The model"}\n{"prompt": {"text": "A good answer"}}\n');
    const out = join(dir, 'generations.jsonl');
    const result = await run(['eval', '--model', join(dir, 'model'), '--generate', '--prompts', prompts, '--max-new-tokens', '4', '--samples', '2', '--out', out]);
    expect(result.code).toBe(0);

    const lines = readFileSync(out, 'utf8').trim().split('\n').map((line) => JSON.parse(line));
    expect(lines.map((line) => [line.prompt, line.sample])).toEqual([['The model', 0], ['The model', 1], ['A good answer', 0], ['A good answer', 1]]);
    for (const line of lines) {
      expect(line.tokens.length).toBeGreaterThanOrEqual(1);
      expect(line.tokens.length).toBeLessThanOrEqual(4);
      expect(['stop', 'length']).toContain(line.finishReason);
    }
  });
});

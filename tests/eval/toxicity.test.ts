// Toxicity scoring through the real transformers.js pipeline and onnxruntime-node, on tiny
// bag-of-embeddings classifiers written by tests/helpers/tiny-classifier.ts. Scores are checked
// against the same model recomputed in float64 TypeScript from the stored float32 weights.
import { spawnSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { resolveClassifierSource } from '../../src/cli/toxicity.ts';
import { parseRuns } from '../../src/eval/compare.ts';
import {
  loadToxicityClassifier,
  resolveToxicLabel,
  scoreHistogram,
  summarizePromptSamples,
  summarizeToxicity,
} from '../../src/eval/toxicity.ts';
import { isUserError, UserError } from '../../src/model/errors.ts';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.ts';
import { referenceProbabilities, writeTinyClassifier, type TinyClassifier } from '../helpers/tiny-classifier.ts';
import { writeTinyTokenizer } from '../helpers/tiny-tokenizer.ts';

// onnxruntime computes in float32: logits of a few terms of size ~5 carry ~1e-6 relative error,
// which moves a probability by well under 1e-5.
const TOLERANCE = 1e-5;

const TEXTS = [
  'You are a stupid idiot!',
  'Thank you, friend. That is a nice model.',
  'I HATE this dumb trash, moron.',
  'what',
  '',
  'Words the vocabulary lacks: zebra, quux.',
  'good day , good day , good day , good day , good day , kind friend',
  'idiot',
];

let root: string;
let binary: TinyClassifier;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'toxicity-test-'));
  binary = await writeTinyClassifier(join(root, 'binary'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function expectClose(actual: number[], expected: number[]): void {
  expect(actual).toHaveLength(expected.length);
  actual.forEach((value, i) => expect(Math.abs(value - expected[i]), `text ${i}: ${value} vs ${expected[i]}`).toBeLessThan(TOLERANCE));
}

async function expectUserError(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(isUserError(error), `expected a UserError, got ${String(error)}`).toBe(true);
  expect((error as UserError).message).toMatch(pattern);
}

describe('tiny classifier through transformers.js', () => {
  it('matches the float64 reference (softmax)', async () => {
    const classifier = await loadToxicityClassifier(binary.dir, { batchSize: 3 });
    try {
      expect(classifier.labels).toEqual(['non-toxic', 'toxic']);
      expect(classifier.toxicLabel).toBe('toxic');
      const scores = await classifier.score(TEXTS);
      expectClose(scores, TEXTS.map((text) => referenceProbabilities(binary, text)[1]));
    } finally {
      await classifier.dispose();
    }
  });

  it('gives toxic words high scores', async () => {
    const classifier = await loadToxicityClassifier(binary.dir);
    try {
      const [toxic, clean] = await classifier.score(['you stupid idiot', 'thank you friend']);
      expect(toxic).toBeGreaterThan(0.5);
      expect(clean).toBeLessThan(0.5);
    } finally {
      await classifier.dispose();
    }
  });

  it('scores independently of batch composition', async () => {
    // Padding inside a batch must not change a text's score, and results keep input order.
    const classifier = await loadToxicityClassifier(binary.dir, { batchSize: 8 });
    try {
      const together = await classifier.score(TEXTS);
      const alone: number[] = [];
      for (const text of TEXTS) alone.push(...(await classifier.score([text])));
      expectClose(together, alone);
      expect(await classifier.score([])).toEqual([]);
    } finally {
      await classifier.dispose();
    }
  });

  it('reports progress per batch', async () => {
    const classifier = await loadToxicityClassifier(binary.dir, { batchSize: 3 });
    try {
      const progress: [number, number][] = [];
      await classifier.score(TEXTS, (done, total) => progress.push([done, total]));
      expect(progress).toEqual([
        [3, 8],
        [6, 8],
        [8, 8],
      ]);
    } finally {
      await classifier.dispose();
    }
  });

  it('matches the reference (multi-label sigmoid)', async () => {
    const labels = ['severe_toxic', 'TOXIC', 'insult'];
    const multi = await writeTinyClassifier(join(root, 'multi'), {
      labels,
      toxicIndex: 1,
      problemType: 'multi_label_classification',
      hiddenSize: 6,
      seed: 'multi',
    });
    const classifier = await loadToxicityClassifier(multi.dir, { batchSize: 4 });
    try {
      expect(classifier.toxicLabel).toBe('TOXIC');
      expect(classifier.problemType).toBe('multi_label_classification');
      const scores = await classifier.score(TEXTS);
      expectClose(scores, TEXTS.map((text) => referenceProbabilities(multi, text)[1]));
      // Sigmoid scores of the labels need not sum to one; check one text where they do not.
      const all = referenceProbabilities(multi, TEXTS[0]);
      expect(Math.abs(all.reduce((a, b) => a + b, 0) - 1)).toBeGreaterThan(0.01);
    } finally {
      await classifier.dispose();
    }
  });

  it('truncates long texts like the reference', async () => {
    const short = await writeTinyClassifier(join(root, 'short'), { maxLength: 6, seed: 'short' });
    const classifier = await loadToxicityClassifier(short.dir);
    try {
      // The toxic words lie past the truncation point, so they must not count.
      const text = 'thank you kind friend good day stupid idiot moron';
      const [score] = await classifier.score([text]);
      expectClose([score], [referenceProbabilities(short, text)[1]]);
      expect(score).toBeLessThan(0.5);
    } finally {
      await classifier.dispose();
    }
  });
});

describe('toxic label mapping', () => {
  it('finds toxic names case-insensitively', () => {
    expect(resolveToxicLabel(['non-toxic', 'toxic'], undefined, 'c')).toBe('toxic');
    expect(resolveToxicLabel(['neutral', 'Toxicity'], undefined, 'c')).toBe('Toxicity');
    expect(resolveToxicLabel(['TOXIC', 'severe_toxic'], undefined, 'c')).toBe('TOXIC');
  });

  it('takes LABEL_1 of an unnamed binary classifier', () => {
    expect(resolveToxicLabel(['LABEL_0', 'LABEL_1'], undefined, 'c')).toBe('LABEL_1');
  });

  it('honours a requested label', () => {
    expect(resolveToxicLabel(['neutral', 'offensive'], 'offensive', 'c')).toBe('offensive');
    expect(resolveToxicLabel(['neutral', 'offensive'], 'OFFENSIVE', 'c')).toBe('offensive');
    expect(resolveToxicLabel(['toxic', 'Toxic'], 'Toxic', 'c')).toBe('Toxic');
  });

  it('rejects an unknown requested label', () => {
    expect(() => resolveToxicLabel(['non-toxic', 'toxic'], 'hate', 'cls')).toThrow(UserError);
    expect(() => resolveToxicLabel(['non-toxic', 'toxic'], 'hate', 'cls')).toThrow(/"hate" is not a label of classifier cls.*"non-toxic", "toxic"/);
  });

  it('rejects an ambiguous requested label', () => {
    expect(() => resolveToxicLabel(['toxic', 'Toxic'], 'TOXIC', 'cls')).toThrow(/"TOXIC" is not a label/);
  });

  it('rejects labels with no toxic name', () => {
    expect(() => resolveToxicLabel(['neutral', 'offensive'], undefined, 'cls')).toThrow(/no label named "toxic".*"neutral", "offensive"/);
    expect(() => resolveToxicLabel(['LABEL_0', 'LABEL_1', 'LABEL_2'], undefined, 'cls')).toThrow(UserError);
  });

  it('scores a requested label through the pipeline', async () => {
    const offensive = await writeTinyClassifier(join(root, 'offensive'), {
      labels: ['offensive', 'neutral'],
      toxicIndex: 0,
      seed: 'offensive',
    });
    await expectUserError(loadToxicityClassifier(offensive.dir), /no label named "toxic"/);
    await expectUserError(loadToxicityClassifier(offensive.dir, { toxicLabel: 'hateful' }), /"hateful" is not a label/);

    const classifier = await loadToxicityClassifier(offensive.dir, { toxicLabel: 'Offensive' });
    try {
      expect(classifier.toxicLabel).toBe('offensive');
      const scores = await classifier.score(TEXTS);
      expectClose(scores, TEXTS.map((text) => referenceProbabilities(offensive, text)[0]));
    } finally {
      await classifier.dispose();
    }
  });
});

describe('toxicity summary', () => {
  it('reports the mean on 0 to 100', () => {
    const probabilities = [0.1, 0.9, 0.25, 0.5, 0.0, 1.0];
    const summary = summarizeToxicity(probabilities);
    const mean = (0.1 + 0.9 + 0.25 + 0.5 + 0.0 + 1.0) / 6;
    expect(summary.count).toBe(6);
    expect(summary.meanToxicity).toBeCloseTo(100 * mean, 10);
    expect(summary.medianToxicity).toBeCloseTo(100 * ((0.25 + 0.5) / 2), 10);
    // 0.5, 0.9 and 1.0 are at or above the 0.5 threshold.
    expect(summary.toxicFraction).toBeCloseTo(3 / 6, 12);
    const sampleVariance = probabilities.reduce((s, p) => s + (p - mean) ** 2, 0) / 5;
    expect(summary.standardError).toBeCloseTo(100 * Math.sqrt(sampleVariance / 6), 10);
  });

  it('bins scores over 0 to 100', () => {
    const bins = scoreHistogram([0, 0.05, 0.1, 0.55, 0.999, 1], 10);
    expect(bins).toHaveLength(10);
    expect(bins[0]).toEqual({ from: 0, to: 10, count: 2 });
    expect(bins[1].count).toBe(1);
    expect(bins[5].count).toBe(1);
    // 1.0 falls in the last bin with 0.999.
    expect(bins[9]).toEqual({ from: 90, to: 100, count: 2 });
    expect(bins.reduce((n, b) => n + b.count, 0)).toBe(6);
    expect(scoreHistogram([0.3, 0.7], 4).map((b) => b.count)).toEqual([0, 1, 1, 0]);
  });

  it('handles no texts', () => {
    const summary = summarizeToxicity([]);
    expect(summary.count).toBe(0);
    expect(summary.meanToxicity).toBe(0);
    expect(summary.histogram.every((b) => b.count === 0)).toBe(true);
  });

  it('computes RealToxicityPrompts metrics', () => {
    const summary = summarizePromptSamples([
      [0.1, 0.7, 0.2],
      [0.05, 0.1, 0.3],
      [0.5, 0.4, 0.0],
    ]);
    expect(summary.prompts).toBe(3);
    expect(summary.samplesPerPrompt).toBe(3);
    expect(summary.expectedMaxToxicity).toBeCloseTo((100 * (0.7 + 0.3 + 0.5)) / 3, 10);
    expect(summary.toxicityProbability).toBeCloseTo(2 / 3, 12);
  });
});

describe('classifier loading errors', () => {
  it('rejects a missing directory', async () => {
    const missing = join(root, 'no-such-classifier');
    await expectUserError(resolveClassifierSource(missing), /no-such-classifier: directory not found/);
    await expectUserError(loadToxicityClassifier(missing), /no-such-classifier could not be loaded: .*config\.json not found/);
  });

  it('rejects a file given as directory', async () => {
    await expectUserError(resolveClassifierSource(join(binary.dir, 'config.json')), /not a directory/);
  });

  it('rejects a directory without the ONNX model', async () => {
    const partial = await writeTinyClassifier(join(root, 'partial'), { omit: 'onnx/model.onnx' });
    await expectUserError(loadToxicityClassifier(partial.dir), /partial could not be loaded: .*onnx\/model\.onnx not found/);
  });

  it('rejects an invalid Hub id', async () => {
    await expectUserError(resolveClassifierSource('not a model id'), /not a Hub model id/);
    expect(await resolveClassifierSource('Xenova/toxic-bert')).toBe('Xenova/toxic-bert');
    expect(await resolveClassifierSource(binary.dir)).toBe(binary.dir);
  });

  it('does not download when remote models are off', async () => {
    await expectUserError(
      loadToxicityClassifier('someone/not-downloaded', { allowRemoteModels: false }),
      /someone\/not-downloaded could not be loaded: .*not found/,
    );
  });

  it('rejects an invalid batch size', async () => {
    await expectUserError(loadToxicityClassifier(binary.dir, { batchSize: 0 }), /batch size 0 is invalid/);
  });
});

describe('classifier from a Hub mirror', () => {
  let server: Server;
  let endpoint: string;
  const requests: string[] = [];

  beforeAll(async () => {
    server = createServer(async (request, response) => {
      const url = new URL(request.url!, 'http://127.0.0.1');
      requests.push(`${request.method} ${url.pathname}`);
      const match = /^\/tiny\/toxicity-classifier\/resolve\/main\/(.+)$/.exec(url.pathname);
      const path = match ? join(binary.dir, decodeURIComponent(match[1])) : null;
      const info = path ? await stat(path).catch(() => null) : null;
      if (!path || !info?.isFile()) {
        response.writeHead(404).end('Entry not found');
        return;
      }
      response.writeHead(200, { 'Content-Length': info.size });
      if (request.method === 'HEAD') response.end();
      else createReadStream(path).pipe(response);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('downloads and scores like the local copy', async () => {
    const cacheDir = join(root, 'hub-cache');
    const classifier = await loadToxicityClassifier('tiny/toxicity-classifier', { remoteHost: endpoint, cacheDir });
    try {
      const scores = await classifier.score(TEXTS);
      expectClose(scores, TEXTS.map((text) => referenceProbabilities(binary, text)[1]));
    } finally {
      await classifier.dispose();
    }
    expect(requests).toContain('GET /tiny/toxicity-classifier/resolve/main/config.json');
    expect(requests).toContain('GET /tiny/toxicity-classifier/resolve/main/tokenizer.json');
    expect(requests).toContain('GET /tiny/toxicity-classifier/resolve/main/onnx/model.onnx');
    // Downloads land in the requested cache folder, not in the transformers.js package.
    expect((await stat(join(cacheDir, 'tiny/toxicity-classifier/config.json'))).isFile()).toBe(true);
  });

  it('reports a missing repository', async () => {
    await expectUserError(
      loadToxicityClassifier('tiny/absent', { remoteHost: endpoint, cacheDir: join(root, 'hub-cache') }),
      /tiny\/absent could not be loaded/,
    );
  });
});

describe('irepair score', () => {
  const cli = join(import.meta.dirname, '../../bin/irepair.js');

  it('writes the summary and per-text scores', async () => {
    const texts = join(root, 'texts.jsonl');
    const out = join(root, 'scores.json');
    const lines = ['{"text": "You are a stupid idiot!"}', '', '{"text": {"text": "thank you friend"}}', '{"text": "what a nice day"}'];
    await writeFile(texts, `${lines.join('\n')}\n`);

    const run = spawnSync(process.execPath, [cli, 'score', '--classifier', binary.dir, '--texts', texts, '--json', out], {
      encoding: 'utf8',
    });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);

    const expected = ['You are a stupid idiot!', 'thank you friend', 'what a nice day'].map((t) => referenceProbabilities(binary, t)[1]);
    const printed = JSON.parse(run.stdout);
    const report = JSON.parse(await readFile(out, 'utf8'));
    expect(printed.count).toBe(3);
    expect(printed.toxicLabel).toBe('toxic');
    expect(Math.abs(printed.meanToxicity - (100 * expected.reduce((a, b) => a + b, 0)) / 3)).toBeLessThan(100 * TOLERANCE);
    expect(report.scores.map((s: { line: number }) => s.line)).toEqual([1, 3, 4]);
    report.scores.forEach((s: { toxicity: number }, i: number) => {
      expect(Math.abs(s.toxicity - 100 * expected[i])).toBeLessThan(100 * TOLERANCE);
    });
  });

  it('exits 1 naming a missing classifier', async () => {
    const texts = join(root, 'texts-2.jsonl');
    await writeFile(texts, '{"text": "hello"}\n');
    const missing = join(root, 'missing-classifier');
    const run = spawnSync(process.execPath, [cli, 'score', '--classifier', missing, '--texts', texts], { encoding: 'utf8' });
    expect(run.status).toBe(1);
    expect(run.stderr.trim()).toBe(`error: --classifier ${missing}: directory not found.`);
  });

  it('exits 1 naming a record without the field', async () => {
    const texts = join(root, 'texts-3.jsonl');
    await writeFile(texts, '{"text": "hello"}\n{"body": "no text here"}\n');
    const run = spawnSync(process.execPath, [cli, 'score', '--classifier', binary.dir, '--texts', texts], { encoding: 'utf8' });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(`${texts} line 2: field "text" is missing.`);
  });
});

describe('irepair toxicity', () => {
  const cli = join(import.meta.dirname, '../../bin/irepair.js');
  const PROMPTS = ['The cat sat', 'You are a', 'Hello there'];
  let model: string;
  let prompts: string;

  beforeAll(async () => {
    model = join(root, 'tiny-gpt2');
    await writeTinyCheckpoint(model, {
      vocabSize: 377,
      contextLength: 32,
      numLayers: 2,
      hiddenSize: 16,
      numHeads: 2,
      writeTokenizer: async (dir) => {
        writeTinyTokenizer(dir, { format: 'tokenizer.json' });
      },
    });
    prompts = join(root, 'prompts.jsonl');
    // The RealToxicityPrompts layout: the prompt text inside an object.
    await writeFile(prompts, PROMPTS.map((text) => JSON.stringify({ prompt: { text } })).join('\n'));
  });

  it('generates, scores and records', async () => {
    const out = join(root, 'toxicity.json');
    const record = join(root, 'runs.json');
    const args = ['toxicity', '--model', model, '--prompts', prompts, '--classifier', binary.dir];
    const options = ['--max-new-tokens', '5', '--samples', '2', '--seed', '3', '--json', out, '--record', record, '--name', 'before'];
    const run = spawnSync(process.execPath, [cli, ...args, ...options], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);

    const printed = JSON.parse(run.stdout);
    const report = JSON.parse(await readFile(out, 'utf8'));
    expect(printed.prompts).toBe(3);
    expect(printed.count).toBe(6);
    // Several samples switch the default decoding from greedy to nucleus sampling.
    expect(printed.decoding).toEqual({ temperature: 1, topP: 0.9, topK: 0 });

    const continuations = report.continuations as { promptIndex: number; sample: number; prompt: string; continuation: string; toxicity: number }[];
    expect(continuations.map((c) => [c.promptIndex, c.sample])).toEqual([[0, 0], [0, 1], [1, 0], [1, 1], [2, 0], [2, 1]]);
    expect(continuations.map((c) => c.prompt)).toEqual(PROMPTS.flatMap((p) => [p, p]));

    // Each score is the classifier's score of that continuation. The reference tokenizer reads
    // ASCII only, so byte-level continuations with other characters are rescored in-process.
    const classifier = await loadToxicityClassifier(binary.dir);
    const rescored = await classifier.score(continuations.map((c) => c.continuation));
    await classifier.dispose();
    continuations.forEach((c, i) => {
      expect(Math.abs(c.toxicity - 100 * rescored[i])).toBeLessThan(100 * TOLERANCE);
      if (/^[\x20-\x7e]*$/.test(c.continuation)) {
        expect(Math.abs(c.toxicity - 100 * referenceProbabilities(binary, c.continuation)[1])).toBeLessThan(100 * TOLERANCE);
      }
    });

    const mean = continuations.reduce((sum, c) => sum + c.toxicity, 0) / 6;
    expect(printed.meanToxicity).toBeCloseTo(mean, 9);
    const maxima = [0, 1, 2].map((p) => Math.max(...continuations.filter((c) => c.promptIndex === p).map((c) => c.toxicity)));
    expect(printed.expectedMaxToxicity).toBeCloseTo((maxima[0] + maxima[1] + maxima[2]) / 3, 9);

    const runs = parseRuns(await readFile(record, 'utf8'), record);
    expect(runs).toHaveLength(1);
    expect(runs[0].name).toBe('before');
    expect(runs[0].toxicity).toBeCloseTo(mean / 100, 12);
  });

  it('checks the classifier before generating', async () => {
    const missing = join(root, 'absent-classifier');
    const run = spawnSync(process.execPath, [cli, 'toxicity', '--model', model, '--prompts', prompts, '--classifier', missing], { encoding: 'utf8' });
    expect(run.status).toBe(1);
    expect(run.stderr.trim()).toBe(`error: --classifier ${missing}: directory not found.`);
  });

  it('rejects greedy decoding of several samples', async () => {
    const args = ['toxicity', '--model', model, '--prompts', prompts, '--classifier', binary.dir, '--greedy', '--samples', '4'];
    const run = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('option --greedy gives the same continuation every time');
  });
});

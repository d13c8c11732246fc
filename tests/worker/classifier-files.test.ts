// The fetch that serves a dropped classifier folder to transformers.js, checked on its own and
// through the real transformers.js pipeline and onnxruntime-node: a tiny classifier read from
// File objects must score like its float64 recomputation.

import { readdir, readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadToxicityClassifier } from '../../src/eval/toxicity.ts';
import { isUserError } from '../../src/model/errors.ts';
import {
  chooseDroppedDtype,
  classifierFilesFetch,
  DROPPED_CLASSIFIER_HOST,
  parseByteRange,
  type ClassifierFile,
} from '../../src/worker/classifier-files.ts';
import { referenceProbabilities, writeTinyClassifier, type TinyClassifier } from '../helpers/tiny-classifier.ts';

// onnxruntime computes in float32, which moves these probabilities by well under 1e-5.
const TOLERANCE = 1e-5;

const BASE = `${DROPPED_CLASSIFIER_HOST}dropped/test/`;

let root: string;
let tiny: TinyClassifier;
let files: ClassifierFile[];

/** Reads every file under `dir` into a File, with its path relative to `dir`. */
async function folderFiles(dir: string): Promise<ClassifierFile[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const result: ClassifierFile[] = [];
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const full = join(entry.parentPath, entry.name);
    const path = relative(dir, full).split(sep).join('/');
    result.push({ path, file: new File([await readFile(full)], entry.name) });
  }
  return result;
}

/** Fails the test on any request, because nothing under BASE may reach the network. */
const noNetwork = (input: string | URL): Promise<Response> => {
  throw new Error(`unexpected request to ${String(input)}`);
};

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'classifier-files-'));
  tiny = await writeTinyClassifier(join(root, 'tiny'));
  files = await folderFiles(tiny.dir);
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('parseByteRange', () => {
  const cases: [string | null, number, ReturnType<typeof parseByteRange>][] = [
    [null, 10, null],
    ['bytes=0-0', 10, { start: 0, end: 0 }],
    ['bytes=2-5', 10, { start: 2, end: 5 }],
    ['bytes=4-', 10, { start: 4, end: 9 }],
    ['bytes=8-100', 10, { start: 8, end: 9 }],
    ['bytes=-3', 10, { start: 7, end: 9 }],
    ['bytes=-30', 10, { start: 0, end: 9 }],
    ['bytes=10-12', 10, 'unsatisfiable'],
    ['bytes=0-0', 0, 'unsatisfiable'],
    ['bytes=5-2', 10, null],
    ['bytes=0-1,4-5', 10, null],
    ['items=0-1', 10, null],
  ];
  for (const [header, size, expected] of cases) {
    it(`${header} of ${size} bytes`, () => {
      expect(parseByteRange(header, size)).toEqual(expected);
    });
  }
});

describe('classifierFilesFetch', () => {
  const contents = new TextEncoder().encode('0123456789');
  const sample: ClassifierFile[] = [{ path: 'onnx/model.onnx', file: new File([contents], 'model.onnx') }];

  it('serves a file with its length', async () => {
    const response = await classifierFilesFetch(sample, BASE, noNetwork)(`${BASE}onnx/model.onnx`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-length')).toBe('10');
    expect(await response.text()).toBe('0123456789');
  });

  it('serves a byte range', async () => {
    const response = await classifierFilesFetch(sample, BASE, noNetwork)(`${BASE}onnx/model.onnx`, { headers: { Range: 'bytes=3-5' } });
    expect(response.status).toBe(206);
    expect(response.headers.get('content-range')).toBe('bytes 3-5/10');
    expect(await response.text()).toBe('345');
  });

  it('rejects a range past the end', async () => {
    const response = await classifierFilesFetch(sample, BASE, noNetwork)(`${BASE}onnx/model.onnx`, { headers: { Range: 'bytes=10-' } });
    expect(response.status).toBe(416);
  });

  it('answers a missing file with 404', async () => {
    const response = await classifierFilesFetch(sample, BASE, noNetwork)(`${BASE}tokenizer.json`);
    expect(response.status).toBe(404);
  });

  it('passes other URLs to the fallback', async () => {
    const seen: string[] = [];
    const fallback = async (input: string | URL) => {
      seen.push(String(input));
      return new Response('elsewhere');
    };
    const response = await classifierFilesFetch(sample, BASE, fallback)('http://127.0.0.1:1/other.wasm');
    expect(await response.text()).toBe('elsewhere');
    expect(seen).toEqual(['http://127.0.0.1:1/other.wasm']);
  });
});

describe('chooseDroppedDtype', () => {
  const both = ['config.json', 'onnx/model.onnx', 'onnx/model_quantized.onnx'];

  it('prefers fp32 when automatic', () => {
    expect(chooseDroppedDtype(both, 'auto', 'folder')).toBe('fp32');
  });

  it('falls back to the variant present', () => {
    expect(chooseDroppedDtype(['onnx/model_quantized.onnx'], 'auto', 'folder')).toBe('q8');
  });

  it('keeps a requested variant that is present', () => {
    expect(chooseDroppedDtype(both, 'q8', 'folder')).toBe('q8');
  });

  it('names the missing file of a requested variant', () => {
    expect(() => chooseDroppedDtype(both, 'fp16', 'my-classifier')).toThrow(
      /my-classifier has no onnx\/model_fp16\.onnx, the weight file of dtype fp16\. Its ONNX files are onnx\/model\.onnx, onnx\/model_quantized\.onnx/,
    );
  });

  it('rejects a folder without weights', () => {
    expect(() => chooseDroppedDtype(['config.json'], 'auto', 'my-classifier')).toThrow(/my-classifier has no classifier weights.*no ONNX files/);
  });
});

describe('dropped folder through transformers.js', () => {
  const TEXTS = ['You are a stupid idiot!', 'Thank you, friend.', 'what a nice day', ''];

  /** Loads the classifier from File objects only. Every request goes through the files' fetch. */
  async function loadFromFiles(classifierFiles: ClassifierFile[], requests: string[]) {
    const serve = classifierFilesFetch(classifierFiles, BASE, noNetwork);
    return loadToxicityClassifier('dropped/test', {
      name: 'tiny-folder',
      remoteHost: DROPPED_CLASSIFIER_HOST,
      remotePathTemplate: '{model}/',
      allowRemoteModels: true,
      allowLocalModels: false,
      // A fresh cache folder, so that no earlier download can replace the files.
      cacheDir: await mkdtemp(join(root, 'cache-')),
      fetch: (input, init) => {
        requests.push(String(input));
        return serve(input, init);
      },
      dtype: 'fp32',
    });
  }

  it('scores like the float64 reference', async () => {
    const requests: string[] = [];
    const classifier = await loadFromFiles(files, requests);
    try {
      expect(classifier.source).toBe('tiny-folder');
      expect(classifier.toxicLabel).toBe('toxic');
      const scores = await classifier.score(TEXTS);
      scores.forEach((score, i) => {
        const expected = referenceProbabilities(tiny, TEXTS[i])[1];
        expect(Math.abs(score - expected), `text ${i}: ${score} vs ${expected}`).toBeLessThan(TOLERANCE);
      });
    } finally {
      await classifier.dispose();
    }
    expect(requests.length).toBeGreaterThan(0);
    expect(requests.every((url) => url.startsWith(BASE))).toBe(true);
    expect(requests).toContain(`${BASE}onnx/model.onnx`);
  });

  it('names a missing tokenizer file', async () => {
    const withoutTokenizer = files.filter((entry) => entry.path !== 'tokenizer.json');
    const error = await loadFromFiles(withoutTokenizer, []).then(
      () => null,
      (caught: unknown) => caught,
    );
    expect(isUserError(error), `expected a UserError, got ${String(error)}`).toBe(true);
    expect((error as Error).message).toMatch(/^toxicity classifier tiny-folder could not be loaded: .*tokenizer\.json/);
  });
});

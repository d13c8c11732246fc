// Toxicity in the browser: a tiny text-classification model, served from a local Hub or dropped
// as a folder, is loaded by transformers.js on onnxruntime-web's WebAssembly backend in the GPU
// worker. It scores continuations of a RealToxicityPrompts-style prompt set from the original and
// the repaired model. The scores shown are checked against the same classifier run in Node
// (src/eval/toxicity.ts on onnxruntime-node) on the continuations the page shows, and against its
// float64 recomputation (tests/helpers/tiny-classifier.ts) where a continuation is plain ASCII.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { loadToxicityClassifier, type ToxicityClassifier } from '../src/eval/toxicity.ts';
import { referenceProbabilities, writeTinyClassifier, type TinyClassifier } from '../tests/helpers/tiny-classifier.ts';
import { temporaryFolder, writePreferenceData, writeTinyModel } from './fixtures.ts';
import { startLocalHub, type LocalHub } from './hub-server.ts';

// Scores show with two decimals on the 0 to 100 scale, so a shown value is within 0.005 of the
// page's value. onnxruntime's float32 moves a probability by well under 1e-5, 1e-3 on this scale.
const SHOWN_TOLERANCE = 0.005 + 1e-3;

// The float64 recomputation tokenizes ASCII only. Random tiny-model tokens can decode to
// replacement characters, which the BERT normalizer drops and the recomputation does not.
const PLAIN_ASCII = /^[\x20-\x7e]*$/;

/** Prompts in the RealToxicityPrompts layout, with words the tiny tokenizer was trained on. */
const PROMPTS = ['The cat sat', 'Hello', 'We went to the', 'She said', 'The dog ran', 'He is'];

const CLASSIFIER_REPO = 'tiny-org/tiny-toxic';

let root: string;
let classifier: TinyClassifier;
/** The same classifier through transformers.js in Node, on onnxruntime-node. */
let nodeClassifier: ToxicityClassifier;
let hub: LocalHub;
let promptsPath: string;
let pairsPath: string;

test.beforeAll(async () => {
  root = temporaryFolder('toxicity');
  await writeTinyModel(root, 'tiny-gpt2');
  classifier = await writeTinyClassifier(join(root, 'tiny-toxic'));
  nodeClassifier = await loadToxicityClassifier(classifier.dir, { cacheDir: join(root, 'transformers-cache') });
  hub = await startLocalHub({ [`${CLASSIFIER_REPO}/main`]: classifier.dir });
  promptsPath = join(root, 'challenge.jsonl');
  const records = PROMPTS.map((text, i) => ({ filename: `${i}.txt`, challenging: true, prompt: { text, toxicity: 0.1 } }));
  writeFileSync(promptsPath, records.map((record) => JSON.stringify(record)).join('\n') + '\n');
  pairsPath = writePreferenceData(root);
});

test.afterAll(async () => {
  await hub.close();
  await nodeClassifier.dispose();
});

/** Records the URL of every request the page and its workers send. */
function recordRequests(page: Page): string[] {
  const urls: string[] = [];
  page.on('request', (request) => urls.push(request.url()));
  return urls;
}

/** URLs that leave this machine: any http(s) host other than 127.0.0.1. */
function remoteRequests(urls: string[]): string[] {
  return urls.filter((url) => /^https?:/.test(url) && new URL(url).hostname !== '127.0.0.1');
}

async function openApp(page: Page): Promise<void> {
  // demo=0 keeps the page from loading the demo model over the one the test drops.
  await page.goto('/?demo=0');
  await expect(page.getByTestId('gpu-status')).not.toHaveText(/Checking/);
}

async function loadModelAndPrompts(page: Page): Promise<void> {
  await page.getByTestId('model-dropzone-folder-input').setInputFiles(join(root, 'tiny-gpt2'));
  await expect(page.getByTestId('model-status')).toContainText('Loaded tiny-gpt2', { timeout: 30_000 });
  await page.getByTestId('prompts-dropzone-input').setInputFiles(promptsPath);
  await expect(page.getByTestId('prompts-dropzone')).toContainText('challenge.jsonl');
}

async function loadClassifierFromHub(page: Page): Promise<void> {
  await page.getByTestId('hub-endpoint-input').fill(hub.endpoint);
  await page.getByTestId('classifier-input').fill(CLASSIFIER_REPO);
  await page.getByTestId('classifier-dtype-select').selectOption('fp32');
  await page.getByTestId('classifier-load').click();
  await expect(page.getByTestId('classifier-status')).toContainText(`Loaded ${CLASSIFIER_REPO}@main (fp32)`, { timeout: 30_000 });
}

interface ShownSample {
  model: string;
  continuation: string;
  score: number;
}

/** Reads every continuation and score from the samples table. */
async function shownSamples(page: Page): Promise<ShownSample[]> {
  return page.getByTestId('toxicity-sample').evaluateAll((rows) =>
    rows.map((row) => ({
      model: row.getAttribute('data-model') ?? '',
      continuation: row.querySelector('[data-testid="toxicity-sample-continuation"]')?.textContent ?? '',
      score: Number(row.querySelector('[data-testid="toxicity-sample-score"]')?.textContent),
    })),
  );
}

/** Checks the shown mean, toxic share and each score of `model` against the classifier in Node. */
async function expectReferenceScores(page: Page, samples: ShownSample[], model: string): Promise<void> {
  const own = samples.filter((sample) => sample.model === model);
  expect(own, model).toHaveLength(PROMPTS.length);

  const expected = await nodeClassifier.score(own.map((sample) => sample.continuation));
  own.forEach((sample, i) => {
    expect(Math.abs(sample.score - 100 * expected[i]), `${model} "${sample.continuation}"`).toBeLessThan(SHOWN_TOLERANCE);
    if (!PLAIN_ASCII.test(sample.continuation)) return;
    const float64 = referenceProbabilities(classifier, sample.continuation)[1];
    expect(Math.abs(sample.score - 100 * float64), `${model} "${sample.continuation}" in float64`).toBeLessThan(SHOWN_TOLERANCE);
  });

  const mean = (100 * expected.reduce((sum, p) => sum + p, 0)) / expected.length;
  const shownMean = Number(await page.getByTestId(`toxicity-mean-${model}`).textContent());
  expect(Math.abs(shownMean - mean), `${model} mean ${shownMean} vs ${mean}`).toBeLessThan(SHOWN_TOLERANCE);

  const share = (100 * expected.filter((p) => p >= 0.5).length) / expected.length;
  await expect(page.getByTestId(`toxicity-share-${model}`)).toHaveText(`${share.toFixed(1)}%`);
}

test('toxicity before and after repair matches reference', async ({ page }, testInfo) => {
  test.setTimeout(120_000);
  const requests = recordRequests(page);
  await openApp(page);
  await loadModelAndPrompts(page);

  // A short repair run gives the repaired model its own continuations.
  await page.getByTestId('dataset-dropzone-input').setInputFiles(pairsPath);
  await expect(page.getByTestId('dataset-summary')).toContainText('0 rows longer than the context');
  await page.getByTestId('method-select').selectOption('irepair');
  await page.getByTestId('batch-size-input').fill('2');
  await page.getByTestId('steps-input').fill('2');
  await page.getByTestId('start-run').click();
  await expect(page.getByTestId('run-status')).toContainText('Finished: completed all steps', { timeout: 60_000 });

  await loadClassifierFromHub(page);
  await expect(page.getByTestId('classifier-progress')).toContainText('onnx/model.onnx');
  expect(hub.requests.some((request) => request.path === `/${CLASSIFIER_REPO}/resolve/main/onnx/model.onnx`)).toBe(true);

  await page.getByLabel('New tokens').fill('8');
  await page.getByTestId('evaluate-toxicity').click();
  await expect(page.getByTestId('toxicity-mean-original')).toBeVisible({ timeout: 60_000 });
  await expect(page.getByTestId('toxicity-mean-repaired')).toBeVisible({ timeout: 60_000 });
  await expect(page.getByTestId('toxicity-histogram').locator('.recharts-bar-rectangle')).not.toHaveCount(0);
  await expect(page.getByTestId('error-message')).toHaveCount(0);

  const samples = await shownSamples(page);
  await expectReferenceScores(page, samples, 'original');
  await expectReferenceScores(page, samples, 'repaired');
  await page.screenshot({ path: testInfo.outputPath('toxicity.png'), fullPage: true });

  // The recorder lists the worker's requests (the classifier download among them), and none left this machine.
  expect(requests.some((url) => url.endsWith(`/${CLASSIFIER_REPO}/resolve/main/onnx/model.onnx`))).toBe(true);
  expect(requests.some((url) => url.endsWith('.wasm'))).toBe(true);
  expect(remoteRequests(requests)).toEqual([]);

  // A new page of the same profile reads the classifier from Cache Storage without a request to the Hub.
  hub.requests.length = 0;
  await page.reload();
  await expect(page.getByTestId('gpu-status')).not.toHaveText(/Checking/);
  await loadModelAndPrompts(page);
  await loadClassifierFromHub(page);
  await expect(page.getByTestId('classifier-progress')).toContainText('from the browser cache');
  expect(hub.requests).toEqual([]);

  await page.getByLabel('New tokens').fill('8');
  await page.getByTestId('evaluate-toxicity').click();
  await expect(page.getByTestId('toxicity-mean-original')).toBeVisible({ timeout: 60_000 });
  await expectReferenceScores(page, await shownSamples(page), 'original');
  expect(remoteRequests(requests)).toEqual([]);
  await expect(page.getByTestId('error-message')).toHaveCount(0);
});

test('dropped classifier folder scores', async ({ page }) => {
  const requests = recordRequests(page);
  await openApp(page);
  await loadModelAndPrompts(page);

  await page.getByTestId('classifier-dropzone-folder-input').setInputFiles(classifier.dir);
  await expect(page.getByTestId('classifier-status')).toContainText('Loaded tiny-toxic (fp32)', { timeout: 30_000 });
  await expect(page.getByTestId('classifier-progress')).toContainText('from the dropped folder');

  await page.getByLabel('New tokens').fill('6');
  await page.getByTestId('evaluate-toxicity').click();
  await expect(page.getByTestId('toxicity-mean-original')).toBeVisible({ timeout: 60_000 });
  await expectReferenceScores(page, await shownSamples(page), 'original');
  await expect(page.getByTestId('toxicity-mean-repaired')).toHaveCount(0);
  expect(remoteRequests(requests)).toEqual([]);
  await expect(page.getByTestId('error-message')).toHaveCount(0);
});

test('missing classifier repository is named', async ({ page }) => {
  await openApp(page);
  await page.getByTestId('hub-endpoint-input').fill(hub.endpoint);
  await page.getByTestId('classifier-input').fill('tiny-org/missing-classifier');
  await page.getByTestId('classifier-load').click();
  const banner = page.getByTestId('error-message');
  await expect(banner).toContainText('tiny-org/missing-classifier@main could not be loaded', { timeout: 30_000 });
  await expect(banner).toContainText(`${hub.endpoint}/tiny-org/missing-classifier/resolve/main/config.json`);
  await expect(page.getByTestId('classifier-load')).toBeEnabled();
  await expect(page.getByTestId('classifier-status')).toContainText('Load a classifier to measure toxicity');
});

// Loading a model in the browser: a dropped checkpoint folder is read, planned against the
// adapter's limits and uploaded by the GPU worker.

import { readdirSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { PREFERENCE_ROWS, TINY_GPT2, temporaryFolder, writePreferenceData, writeTinyModel } from './fixtures.ts';
import { startLocalHub, type LocalHub } from './hub-server.ts';

test.beforeEach(async ({ page }) => {
  // ?demo=0: these tests load their own model and data, which the demo's automatic load would race.
  await page.goto('/?demo=0');
  await expect(page.getByTestId('gpu-status')).not.toHaveText(/Checking/);
});

test('dropped checkpoint folder loads', async ({ page }) => {
  const root = temporaryFolder('model');
  const tiny = await writeTinyModel(root, 'tiny-gpt2');
  await page.getByTestId('model-dropzone-folder-input').setInputFiles(join(root, 'tiny-gpt2'));

  const status = page.getByTestId('model-status');
  await expect(status).toContainText('Loaded tiny-gpt2', { timeout: 30_000 });
  const plan = page.getByTestId('model-plan');
  await expect(plan).toContainText(`GPT-2, ${TINY_GPT2.numLayers} blocks, width ${TINY_GPT2.hiddenSize}`);
  const parameters = [...tiny.shapes.values()].reduce((sum, shape) => sum + shape.reduce((a, b) => a * b, 1), 0);
  await expect(plan).toContainText(`${(parameters / 1e3).toFixed(1)}k`);
  await expect(page.getByTestId('error-message')).toHaveCount(0);
});

test('loose checkpoint files load', async ({ page }) => {
  const root = temporaryFolder('loose');
  const tiny = await writeTinyModel(root, 'tiny-gpt2');
  const names = readdirSync(tiny.dir);
  await page.getByTestId('model-dropzone-input').setInputFiles(names.map((name) => join(tiny.dir, name)));
  await expect(page.getByTestId('model-status')).toContainText(`Loaded ${names.length} local files`, { timeout: 30_000 });
  await expect(page.getByTestId('error-message')).toHaveCount(0);
});

test('truncated weights file is named', async ({ page }) => {
  const root = temporaryFolder('truncated');
  const tiny = await writeTinyModel(root, 'tiny-gpt2');
  const weights = join(tiny.dir, 'model.safetensors');
  truncateSync(weights, statSync(weights).size - 100);
  await page.getByTestId('model-dropzone-folder-input').setInputFiles(tiny.dir);
  const banner = page.getByTestId('error-message');
  await expect(banner).toContainText('model.safetensors', { timeout: 30_000 });
  await expect(page.getByTestId('model-status')).not.toContainText('Loaded');
  await expect(page.getByTestId('hub-load')).toBeEnabled();
});

test('batch too large for the adapter names the limit', async ({ page }) => {
  // A vocabulary of 200 000 makes each sequence's logits over 10 MB, so the training examples
  // of 200 rows (all but the validation split) in one batch exceed SwiftShader's 1 GiB binding,
  // while the weights stay small.
  const root = temporaryFolder('limits');
  const tiny = await writeTinyModel(root, 'wide-vocab', { ...TINY_GPT2, vocabSize: 200_000, hiddenSize: 4, numHeads: 1, numLayers: 1 });
  const rows = Array.from({ length: 25 }, () => PREFERENCE_ROWS).flat();
  await page.getByTestId('model-dropzone-folder-input').setInputFiles(tiny.dir);
  await page.getByTestId('dataset-dropzone-input').setInputFiles(writePreferenceData(root, rows));
  await expect(page.getByTestId('model-status')).toContainText('Loaded wide-vocab', { timeout: 30_000 });
  await expect(page.getByTestId('model-plan')).not.toContainText('Does not fit');

  await page.getByTestId('batch-size-input').fill('1000');
  await page.getByTestId('start-run').click();
  const banner = page.getByTestId('error-message');
  await expect(banner).toContainText(/The logits of a batch of 1\d\d × \d+ tokens need [\d.]+ MiB in one buffer/);
  await expect(banner).toContainText("more than this adapter's maxStorageBufferBindingSize of 1024.0 MiB");
  await expect(banner).toContainText(/Use a batch size of at most \d+\./);
  await expect(page.getByTestId('start-run')).toBeEnabled();
});

test.describe('Hub', () => {
  let hub: LocalHub;
  test.beforeAll(async () => {
    const root = temporaryFolder('hub');
    await writeTinyModel(root, 'tiny-gpt2');
    hub = await startLocalHub({ 'tiny-org/tiny-gpt2/main': join(root, 'tiny-gpt2') });
  });
  test.afterAll(async () => {
    await hub.close();
  });

  const loadFromHub = async (page: Page, repo: string) => {
    await page.getByTestId('hub-model-input').fill(repo);
    await page.getByTestId('hub-endpoint-input').fill(hub.endpoint);
    await page.getByTestId('hub-load').click();
  };

  test('model loads from a local Hub and then from the cache', async ({ page }, testInfo) => {
    await loadFromHub(page, 'tiny-org/tiny-gpt2');
    await expect(page.getByTestId('model-status')).toContainText('Loaded tiny-org/tiny-gpt2@main', { timeout: 30_000 });
    await expect(page.getByTestId('load-progress')).toContainText('Downloading model.safetensors');
    const weightRequests = hub.requests.filter((request) => request.path.endsWith('/model.safetensors'));
    expect(weightRequests.length).toBeGreaterThan(0);
    await page.screenshot({ path: testInfo.outputPath('hub-load.png'), fullPage: true });

    // A second load in a fresh page of the same profile reads every file from Cache Storage.
    hub.requests.length = 0;
    await page.reload();
    await expect(page.getByTestId('gpu-status')).not.toHaveText(/Checking/);
    await loadFromHub(page, 'tiny-org/tiny-gpt2');
    await expect(page.getByTestId('model-status')).toContainText('Loaded tiny-org/tiny-gpt2@main', { timeout: 30_000 });
    await expect(page.getByTestId('load-progress')).toContainText('from the browser cache');
    expect(hub.requests).toEqual([]);
    await expect(page.getByTestId('error-message')).toHaveCount(0);
  });

  test('unknown Hub repository is named', async ({ page }) => {
    await loadFromHub(page, 'tiny-org/missing-model');
    const banner = page.getByTestId('error-message');
    await expect(banner).toContainText(`${hub.endpoint}/tiny-org/missing-model/resolve/main/config.json not found (HTTP 404)`);
    await expect(page.getByTestId('hub-load')).toBeEnabled();
  });
});

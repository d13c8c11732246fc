// The demo in Chromium on SwiftShader WebGPU: the page opens with the model and data of
// public/demo loaded, measures the planted behaviour, runs IRepair on it, and stays usable when
// the demo files are missing or broken.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { expectSelectedBlocks } from './helpers.ts';

const DEMO_DIR = join(import.meta.dirname, '../public/demo');
const STEPS = 3;

interface Manifest {
  datasets: { role: string; file: string }[];
  run: { method: string; maxSteps: number; batchSize: number; learningRate: number };
}

const manifest = JSON.parse(readFileSync(join(DEMO_DIR, 'manifest.json'), 'utf8')) as Manifest;
const config = JSON.parse(readFileSync(join(DEMO_DIR, 'config.json'), 'utf8')) as { n_layer: number; n_embd: number };

/** Counts the non-empty lines of a demo file, the rows the data panel reports for it. */
function rowsOf(role: string): number {
  const entry = manifest.datasets.find((dataset) => dataset.role === role)!;
  return readFileSync(join(DEMO_DIR, entry.file), 'utf8').split('\n').filter((line) => line.trim() !== '').length;
}

async function openPage(page: Page, path: string): Promise<void> {
  await page.goto(path);
  await expect(page.getByTestId('gpu-status')).not.toHaveText(/Checking/);
}

test('demo opens loaded and repairs', async ({ page }, testInfo) => {
  // The test took 38 to 54 s on 2 cores shared with other jobs (load average 10 to 14), so the limit leaves room above that.
  test.setTimeout(90_000);
  await openPage(page, '/');

  // The model, the repair data and the run settings arrive without any drop.
  await expect(page.getByTestId('model-status')).toContainText('Loaded demo', { timeout: 30_000 });
  await expect(page.getByTestId('model-plan')).toContainText(`GPT-2, ${config.n_layer} blocks, width ${config.n_embd}`);
  const summary = page.getByTestId('dataset-summary');
  await expect(summary).toContainText(manifest.datasets.find((dataset) => dataset.role === 'repair')!.file);
  await expect(summary).toContainText(`Rows${rowsOf('repair')}`);
  await expect(page.getByTestId('normal-summary')).toContainText('normal.txt');
  await expect(page.getByTestId('demo-status')).toContainText('planted insulting behaviour');
  await expect(page.getByTestId('demo-status')).toContainText('drop its folder');
  await expect(page.getByTestId('method-select')).toHaveValue(manifest.run.method);
  await expect(page.getByTestId('steps-input')).toHaveValue(String(manifest.run.maxSteps));
  await expect(page.getByTestId('batch-size-input')).toHaveValue(String(manifest.run.batchSize));
  expect(Number(await page.getByTestId('lr-input').inputValue())).toBe(manifest.run.learningRate);
  await expect(page.getByTestId('start-run')).toBeEnabled();

  // Start sits far down the page, so the Demo panel's button brings it into view and focuses it.
  await page.getByTestId('demo-go-to-start').click();
  await expect(page.getByTestId('start-run')).toBeFocused();
  await expect(page.getByTestId('start-run')).toBeInViewport();

  // The planted behaviour of the original model: a share of 2 continuations per prompt.
  const planted = page.getByTestId('evaluation-planted');
  await planted.getByTestId('evaluate-planted').click();
  const originalCell = planted.locator('td').nth(1);
  await expect(originalCell).toHaveText(/^\d+\.\d%$/, { timeout: 30_000 });
  const percent = Number((await originalCell.textContent())!.replace('%', ''));
  const continuations = 2 * rowsOf('prompts');
  // The shown share is a count of continuations out of all of them, rounded to 0.1%.
  expect(Math.abs((percent / 100) * continuations - Math.round((percent / 100) * continuations))).toBeLessThan(0.001 * continuations);
  expect(percent, 'the demo model shows its planted behaviour before repair').toBeGreaterThan(0);

  // A short IRepair run draws every block's sensitivity and the selected block per step.
  await page.getByTestId('steps-input').fill(String(STEPS));
  await page.getByTestId('start-run').click();
  const numBlocks = config.n_layer;
  await expect(page.getByTestId('heatmap-cell')).toHaveCount(STEPS * numBlocks, { timeout: 60_000 });
  await expectSelectedBlocks(page, STEPS, numBlocks);
  await expect(page.getByTestId('error-message')).toHaveCount(0);
  await page.screenshot({ path: testInfo.outputPath('demo-run.png'), fullPage: true });
});

test('missing demo is reported and can be loaded later', async ({ page }) => {
  await page.route('**/demo/manifest.json', (route) => route.fulfill({ status: 404, body: 'not found' }));
  await openPage(page, '/');

  const banner = page.getByTestId('error-message');
  await expect(banner).toContainText('The demo could not be loaded: /demo/manifest.json returned HTTP 404');
  // The page stays usable: the model inputs are enabled, and the demo can be loaded again.
  await expect(page.getByTestId('hub-load')).toBeEnabled();
  await expect(page.getByTestId('model-status')).not.toContainText('Loaded');
  await expect(page.getByTestId('load-demo')).toBeEnabled();

  await page.unroute('**/demo/manifest.json');
  await page.getByTestId('load-demo').click();
  await expect(page.getByTestId('model-status')).toContainText('Loaded demo', { timeout: 30_000 });
  await expect(page.getByTestId('evaluation-planted')).toBeVisible();
});

test('broken demo weights are named', async ({ page }) => {
  await page.route('**/demo/model.safetensors', (route) => route.fulfill({ status: 200, contentType: 'application/octet-stream', body: 'not weights' }));
  await openPage(page, '/');

  await expect(page.getByTestId('error-message')).toContainText('model.safetensors');
  await expect(page.getByTestId('model-status')).not.toContainText('Loaded');
  await expect(page.getByTestId('hub-load')).toBeEnabled();
  // The data sets still load, so a model of the user's own can be repaired with them.
  await expect(page.getByTestId('dataset-summary')).toContainText(`Rows${rowsOf('repair')}`);
});

test('demo=0 opens an empty workbench', async ({ page }) => {
  await openPage(page, '/?demo=0');
  await expect(page.getByTestId('model-preview')).toBeVisible();
  await expect(page.getByTestId('dataset-summary')).toContainText('No repair data loaded');
  await expect(page.getByTestId('load-demo')).toBeEnabled();
  await expect(page.getByTestId('evaluation-planted')).toHaveCount(0);
});

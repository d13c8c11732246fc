// Browser state around the demo in Chromium on SwiftShader WebGPU. GPU buttons wait for the
// worker's current job, and a rejected repair file keeps the loaded one. The error banner shows
// each message once and clears it after a later success in the same area.

import { join } from 'node:path';
import { expect, test, type Page } from '@playwright/test';

const DEMO_REPAIR = join(import.meta.dirname, '../public/demo/repair.jsonl');

async function openDemo(page: Page): Promise<void> {
  await page.goto('/');
  await expect(page.getByTestId('model-status')).toContainText('Loaded demo', { timeout: 30_000 });
  await expect(page.getByTestId('dataset-summary')).toContainText('repair.jsonl');
  await expect(page.getByTestId('start-run')).toBeEnabled();
}

test('GPU buttons wait for a measurement', async ({ page }) => {
  test.setTimeout(90_000);
  await openDemo(page);
  await page.getByTestId('generate-prompt').fill('The weather');
  await expect(page.getByTestId('generate-button')).toBeEnabled();

  const planted = page.getByTestId('evaluation-planted');
  await planted.getByTestId('evaluate-planted').click();
  await expect(page.getByTestId('compare-busy')).toContainText('Busy: measuring the planted behaviour');
  await expect(page.getByTestId('run-busy')).toContainText('Busy: measuring the planted behaviour');
  await expect(page.getByTestId('generate-button')).toBeDisabled();
  await expect(page.getByTestId('start-run')).toBeDisabled();
  await expect(page.getByTestId('density-measure')).toBeDisabled();

  await expect(planted.locator('td').nth(1)).toHaveText(/^\d+\.\d%$/, { timeout: 60_000 });
  await expect(page.getByTestId('compare-busy')).toHaveCount(0);
  await expect(page.getByTestId('run-busy')).toHaveCount(0);
  await expect(page.getByTestId('generate-button')).toBeEnabled();
  await expect(page.getByTestId('start-run')).toBeEnabled();
  await expect(page.getByTestId('error-message')).toHaveCount(0);
});

test('rejected repair file keeps the demo data', async ({ page }) => {
  test.setTimeout(90_000);
  await openDemo(page);
  const broken = { name: 'broken.jsonl', mimeType: 'application/jsonl', buffer: Buffer.from('{"prompt_text": "x",\n') };

  // Dropped twice, the same rejection shows once.
  await page.getByTestId('dataset-dropzone-input').setInputFiles(broken);
  const banner = page.getByTestId('error-message');
  await expect(banner).toContainText('broken.jsonl');
  await expect(banner).toContainText('The previous repair data, repair.jsonl, is still in use.');
  await page.getByTestId('dataset-dropzone-input').setInputFiles(broken);
  await expect(page.getByTestId('dataset-summary')).toContainText('repair.jsonl');
  await expect(banner.locator('.error-item')).toHaveCount(1);
  await expect(page.getByTestId('start-run')).toBeEnabled();

  // A good repair file clears the data error.
  await page.getByTestId('dataset-dropzone-input').setInputFiles(DEMO_REPAIR);
  await expect(page.getByTestId('dataset-summary')).toContainText('repair.jsonl');
  await expect(banner).toHaveCount(0);
});

test('favicon is served', async ({ request }) => {
  const response = await request.get('/favicon.svg');
  expect(response.status()).toBe(200);
  expect(await response.text()).toContain('<svg');
});

// The workbench in Chromium started with --disable-webgpu: the page still renders and explains
// how to enable WebGPU, also when a model is dropped.

import { expect, test } from '@playwright/test';
import { temporaryFolder, writeTinyModel } from './fixtures.ts';

test('missing WebGPU is explained', async ({ page }, testInfo) => {
  await page.goto('/');
  await expect(page.getByTestId('gpu-status')).toHaveText('No WebGPU');

  const banner = page.getByTestId('error-message');
  await expect(banner).toContainText('no GPU adapter is available');
  await expect(banner).toContainText('chrome://flags/#enable-unsafe-webgpu');
  await expect(banner).toContainText('chrome://gpu');

  // The rest of the page stays usable.
  await expect(page.getByTestId('model-dropzone')).toBeVisible();
  await expect(page.getByTestId('sensitivity-heatmap')).toBeVisible();
  await page.screenshot({ path: testInfo.outputPath('no-webgpu.png'), fullPage: true });
});

test('model load without WebGPU is explained', async ({ page }) => {
  await page.goto('/');
  await expect(page.getByTestId('gpu-status')).toHaveText('No WebGPU');
  const root = temporaryFolder('no-webgpu');
  const tiny = await writeTinyModel(root, 'tiny-gpt2');
  await page.getByTestId('model-dropzone-folder-input').setInputFiles(tiny.dir);

  const banner = page.getByTestId('error-message');
  await expect(banner).toContainText('No WebGPU adapter found');
  await expect(page.getByTestId('model-status')).not.toContainText('Loaded');
  await expect(page.getByTestId('hub-load')).toBeEnabled();
});

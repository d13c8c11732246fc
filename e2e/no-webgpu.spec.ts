// The workbench in Chromium started with --disable-webgpu: the page still renders and explains
// how to enable WebGPU.

import { expect, test } from '@playwright/test';

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

// The runs table and the error density plot in Chromium on SwiftShader WebGPU. Two short runs on a
// tiny checkpoint fill the table with their overheads, and the table survives a reload and
// downloads as CSV. The density plot shows one bar per block, and their shares give the ratio shown.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { PREFERENCE_ROWS, TINY_GPT2, temporaryFolder, writePreferenceData, writeTinyModel } from './fixtures.ts';
import { loadModelAndData } from './helpers.ts';

let root: string;
let dataPath: string;
let textPath: string;

test.beforeAll(async () => {
  root = temporaryFolder('compare');
  await writeTinyModel(root, 'tiny-gpt2');
  dataPath = writePreferenceData(root);
  textPath = join(root, 'clean.txt');
  writeFileSync(textPath, 'The cat sat on the mat. Hello there, friend! We went to the park today.\n'.repeat(4));
});

/** Runs `method` for 2 steps with batches of 2 and waits until it has finished. */
async function runTwoSteps(page: Page, method: string): Promise<void> {
  await page.getByTestId('method-select').selectOption(method);
  await page.getByTestId('batch-size-input').fill('2');
  await page.getByTestId('steps-input').fill('2');
  await page.getByTestId('start-run').click();
  await expect(page.getByTestId('run-status')).toContainText('Finished: completed all steps', { timeout: 60_000 });
}

/** Values of one row of the runs table, one per column, from the cells' data-value attributes. */
async function rowValues(page: Page, row: string): Promise<(number | null)[]> {
  return page.locator(`[data-testid="runs-row"][data-row="${row}"] td`).evaluateAll((cells) =>
    cells.map((cell) => (cell.hasAttribute('data-value') ? Number(cell.getAttribute('data-value')) : null)),
  );
}

async function columnNames(page: Page): Promise<string[]> {
  return page.getByTestId('runs-column').evaluateAll((cells) => cells.map((cell) => cell.getAttribute('data-run') ?? ''));
}

test('runs table keeps two runs and exports CSV', async ({ page }, testInfo) => {
  test.setTimeout(150_000);
  await loadModelAndData(page, join(root, 'tiny-gpt2'), dataPath, PREFERENCE_ROWS.length);
  await expect(page.getByTestId('runs-empty')).toBeVisible();

  await runTwoSteps(page, 'irepair');
  await runTwoSteps(page, 'dapt');
  await page.getByTestId('text-dropzone-input').setInputFiles(textPath);
  await expect(page.getByTestId('evaluate-perplexity')).toBeEnabled({ timeout: 30_000 });
  await page.getByTestId('evaluate-perplexity').click();
  // The repaired model is measured first, then the original, which adds its own column.
  await expect(page.getByTestId('runs-column')).toHaveCount(3, { timeout: 60_000 });

  // The repaired weights are the second run's, so its column gets the repaired model's perplexity.
  const columns = ['irepair #1', 'dapt #1', 'Original (tiny-gpt2)'];
  expect(await columnNames(page)).toEqual(columns);
  expect(await rowValues(page, 'iterations')).toEqual([2, 2, null]);
  for (const row of ['tflops', 'gflopsPerToken', 'gpuSeconds', 'peakMemoryMiB']) {
    const [irepair, dapt, original] = await rowValues(page, row);
    expect(irepair, row).toBeGreaterThan(0);
    expect(dapt, row).toBeGreaterThan(0);
    expect(original, row).toBeNull();
  }
  const perplexity = await rowValues(page, 'perplexity:clean.txt');
  expect(perplexity[0]).toBeNull();
  expect(perplexity[1]).toBeGreaterThan(1);
  expect(perplexity[2]).toBeGreaterThan(1);
  await expect(page.locator('[data-testid="runs-row"][data-row="settings"]')).toContainText('continues from irepair #1');
  await expect(page.getByTestId('error-message')).toHaveCount(0);
  await page.screenshot({ path: testInfo.outputPath('runs-table.png'), fullPage: true });

  const downloadEvent = page.waitForEvent('download');
  await page.getByTestId('runs-csv').click();
  const download = await downloadEvent;
  expect(download.suggestedFilename()).toBe('irepair-runs.csv');
  const csvPath = testInfo.outputPath('runs.csv');
  await download.saveAs(csvPath);
  const lines = readFileSync(csvPath, 'utf8').split('\r\n');
  expect(lines.at(-1)).toBe('');
  const cells = new Map(lines.slice(0, -1).map((line) => [line.slice(0, line.indexOf(',')), line.slice(line.indexOf(',') + 1)]));
  expect(cells.get('metric')).toBe(columns.join(','));
  expect(cells.get('Method')).toBe('irepair,dapt,');
  expect(cells.get('Iterations')).toBe('2,2,');
  const tflops = cells.get('TFLOPs')!.split(',');
  expect(tflops.slice(0, 2).map(Number)).toEqual((await rowValues(page, 'tflops')).slice(0, 2));
  expect(tflops[2]).toBe('');

  // The runs survive a reload; a deleted run stays deleted.
  await page.reload();
  await expect(page.getByTestId('runs-column')).toHaveCount(3);
  await page.locator('[data-testid="runs-column"][data-run="irepair #1"]').getByTestId('delete-run').click();
  expect(await columnNames(page)).toEqual(['dapt #1', 'Original (tiny-gpt2)']);
  await page.reload();
  await expect(page.getByTestId('runs-column')).toHaveCount(2);
});

test('density plot has a bar per block', async ({ page }, testInfo) => {
  await loadModelAndData(page, join(root, 'tiny-gpt2'), dataPath, PREFERENCE_ROWS.length);
  await page.getByTestId('density-measure').click();
  const numBlocks = TINY_GPT2.numLayers!;
  const bars = page.getByTestId('density-bar');
  await expect(bars).toHaveCount(numBlocks, { timeout: 30_000 });
  await expect(page.getByTestId('density-summary')).toContainText(`${PREFERENCE_ROWS.length} examples of pairs.jsonl`);

  const shares = await bars.evaluateAll((elements) =>
    elements.map((element) => ({ block: Number(element.getAttribute('data-block')), share: Number(element.getAttribute('data-share')) })),
  );
  expect(shares.map((bar) => bar.block)).toEqual([...Array(numBlocks).keys()]);
  expect(Math.abs(shares.reduce((sum, bar) => sum + bar.share, 0) - 100)).toBeLessThan(1e-9);

  // The top 20% of 4 blocks rounds to 1 block, so the ratio is its share over the mean share of the rest.
  const sorted = shares.map((bar) => bar.share).sort((a, b) => b - a);
  const expected = sorted[0] / (sorted.slice(1).reduce((sum, share) => sum + share, 0) / (numBlocks - 1));
  const ratio = Number(await page.getByTestId('density-ratio').getAttribute('data-ratio'));
  expect(Math.abs(ratio - expected) / expected).toBeLessThan(1e-9);
  await expect(page.getByTestId('density-ratio')).toHaveText(`${expected.toPrecision(4)}×`);
  await expect(page.getByTestId('error-message')).toHaveCount(0);
  await page.getByTestId('density-panel').screenshot({ path: testInfo.outputPath('density.png') });
});

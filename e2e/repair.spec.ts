// The whole flow in Chromium on SwiftShader WebGPU: drop a tiny checkpoint and a dataset, run
// IRepair, watch the heatmap and the selected block, and export the repaired model.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { unzipSync } from 'fflate';
import type { TinyCheckpoint } from '../tests/helpers/tiny-checkpoint.ts';
import { PREFERENCE_ROWS, TINY_GPT2, temporaryFolder, writePreferenceData, writeTinyModel } from './fixtures.ts';
import { expectSelectedBlocks, loadModelAndData } from './helpers.ts';
import { bytesEqual, readSafetensors } from './safetensors.ts';

const STEPS = 5;

interface RunJson {
  method: string;
  steps: { step: number; selectedBlock?: number; sensitivities?: number[]; repairLoss: number; lr: number }[];
  updatedBlocks: number[];
}

let root: string;
let tiny: TinyCheckpoint;
let dataPath: string;

test.beforeAll(async () => {
  root = temporaryFolder('repair');
  tiny = await writeTinyModel(root, 'tiny-gpt2');
  dataPath = writePreferenceData(root);
});

/** Loads the tiny model and the repair data, none of whose rows is truncated. */
async function loadTinyModelAndData(page: Page): Promise<void> {
  await loadModelAndData(page, join(root, 'tiny-gpt2'), dataPath, PREFERENCE_ROWS.length);
  await expect(page.getByTestId('dataset-summary')).toContainText('0 rows longer than the context');
}

/** Starts an IRepair run of `steps` steps with batches of 2. */
async function startRun(page: Page, steps: number): Promise<void> {
  await page.getByTestId('method-select').selectOption('irepair');
  await page.getByTestId('batch-size-input').fill('2');
  await page.getByTestId('steps-input').fill(String(steps));
  await page.getByTestId('start-run').click();
}

/** Number of steps the heatmap shows. */
async function heatmapSteps(page: Page): Promise<number> {
  return page.getByTestId('selected-block').count();
}

/** Generates a greedy continuation and returns the texts shown for each model version. */
async function generate(page: Page, prompt: string, versions: ('original' | 'repaired')[]): Promise<Record<string, string>> {
  await page.getByTestId('generate-prompt').fill(prompt);
  await page.getByTestId('generate-button').click();
  await expect(page.getByTestId('generate-button')).toHaveText('Generate', { timeout: 30_000 });
  const texts: Record<string, string> = {};
  for (const version of versions) {
    const text = (await page.getByTestId(`generation-${version}`).locator('p').textContent()) ?? '';
    expect(text.startsWith(prompt), version).toBe(true);
    texts[version] = text;
  }
  return texts;
}

test('IRepair run draws heatmap and exports', async ({ page }, testInfo) => {
  test.setTimeout(120_000);
  // Without showDirectoryPicker the app exports one zip archive as a download.
  await page.addInitScript(() => {
    delete (window as { showDirectoryPicker?: unknown }).showDirectoryPicker;
  });
  await loadTinyModelAndData(page);
  const before = await generate(page, 'The cat', ['original']);

  await startRun(page, STEPS);
  const numBlocks = TINY_GPT2.numLayers!;
  await expect(page.getByTestId('heatmap-cell')).toHaveCount(STEPS * numBlocks, { timeout: 60_000 });
  await expect(page.getByTestId('run-status')).toContainText('Finished: completed all steps', { timeout: 30_000 });

  for (let step = 1; step <= STEPS; step++) {
    await expect(page.locator(`[data-testid="heatmap-cell"][data-step="${step}"]`)).toHaveCount(numBlocks);
  }
  const selected = await expectSelectedBlocks(page, STEPS, numBlocks);
  await expect(page.getByTestId('loss-chart').locator('.recharts-line-curve')).not.toHaveCount(0);
  await expect(page.getByTestId('error-message')).toHaveCount(0);
  await page.screenshot({ path: testInfo.outputPath('repair-run.png'), fullPage: true });

  // The original model's continuation equals the one from before the run, which shows that the
  // comparison swaps the original weights in. The export below shows that the repaired ones come back.
  const after = await generate(page, 'The cat', ['original', 'repaired']);
  expect(after.original).toBe(before.original);
  await expect(page.getByTestId('error-message')).toHaveCount(0);

  const downloadEvent = page.waitForEvent('download');
  await page.getByTestId('export-model').click();
  const download = await downloadEvent;
  expect(download.suggestedFilename()).toBe('tiny-gpt2-irepair.zip');
  const archivePath = testInfo.outputPath('export.zip');
  await download.saveAs(archivePath);
  await expect(page.getByTestId('exported-files')).toContainText('tiny-gpt2-irepair.zip');

  const files = unzipSync(new Uint8Array(readFileSync(archivePath)));
  expect(Object.keys(files).sort()).toEqual(['config.json', 'model.safetensors', 'run.json', 'tokenizer.json', 'tokenizer_config.json']);
  expect(new TextDecoder().decode(files['config.json'])).toBe(readFileSync(join(tiny.dir, 'config.json'), 'utf8'));

  const runJson = JSON.parse(new TextDecoder().decode(files['run.json'])) as RunJson;
  expect(runJson.method).toBe('irepair');
  expect(runJson.steps.map((step) => step.selectedBlock)).toEqual(selected);
  expect([...new Set(selected)].sort()).toEqual(runJson.updatedBlocks);

  // Every key, dtype and shape of the input is kept. Blocks the run never selected are copied
  // byte for byte, and each selected block has changed.
  const original = readSafetensors(new Uint8Array(readFileSync(join(tiny.dir, 'model.safetensors'))));
  const exported = readSafetensors(files['model.safetensors']);
  expect([...exported.tensors.keys()]).toEqual([...original.tensors.keys()]);
  for (const [key, tensor] of original.tensors) {
    const copy = exported.tensors.get(key)!;
    expect(copy.dtype, key).toBe(tensor.dtype);
    expect(copy.shape, key).toEqual(tensor.shape);
    const block = /\.h\.(\d+)\./.exec(key);
    if (!block || !selected.includes(Number(block[1]))) expect(bytesEqual(copy.data, tensor.data), key).toBe(true);
  }
  for (const block of new Set(selected)) {
    const changed = [...original.tensors.keys()].filter(
      (key) => key.includes(`.h.${block}.`) && !bytesEqual(original.tensors.get(key)!.data, exported.tensors.get(key)!.data),
    );
    expect(changed.length, `block ${block}`).toBeGreaterThan(0);
  }
});

test('four rows run with default settings', async ({ page }) => {
  // Four rows leave three for training, fewer than the default batch size of 4.
  await page.goto('/?demo=0');
  await expect(page.getByTestId('gpu-status')).not.toHaveText(/Checking/);
  await page.getByTestId('model-dropzone-folder-input').setInputFiles(join(root, 'tiny-gpt2'));
  await page.getByTestId('dataset-dropzone-input').setInputFiles(writePreferenceData(root, PREFERENCE_ROWS.slice(0, 4), 'four.jsonl'));
  await expect(page.getByTestId('model-status')).toContainText('Loaded tiny-gpt2', { timeout: 30_000 });
  await expect(page.getByTestId('dataset-summary')).toContainText('four.jsonl');

  await page.getByTestId('start-run').click();
  await expect.poll(() => heatmapSteps(page), { timeout: 30_000 }).toBeGreaterThanOrEqual(3);
  await expect(page.getByTestId('run-notices')).toContainText('The training split has 3 examples, fewer than the batch size 4, so the run uses batches of 3.');
  await expect(page.getByTestId('error-message')).toHaveCount(0);
  await page.getByTestId('stop-run').click();
  await expect(page.getByTestId('run-status')).toContainText('Finished: stopped by the user', { timeout: 30_000 });
});

test('run pauses, resumes and stops', async ({ page }) => {
  test.setTimeout(120_000);
  await loadTinyModelAndData(page);
  await startRun(page, 500);
  await expect.poll(() => heatmapSteps(page), { timeout: 30_000 }).toBeGreaterThanOrEqual(2);
  // The page takes input while the worker runs the steps.
  await page.getByTestId('generate-prompt').fill('typed during the run');
  await expect(page.getByTestId('generate-prompt')).toHaveValue('typed during the run');

  await page.getByTestId('pause-run').click();
  await expect(page.getByTestId('run-status')).toContainText('Paused');
  await expect(page.getByTestId('pause-run')).toHaveText('Resume');
  const pausedAt = await heatmapSteps(page);
  await page.waitForTimeout(1500);
  expect(await heatmapSteps(page)).toBe(pausedAt);
  await expect(page.getByTestId('export-model')).toBeDisabled();

  await page.getByTestId('pause-run').click();
  await expect(page.getByTestId('run-status')).toContainText('Running');
  await expect.poll(() => heatmapSteps(page), { timeout: 30_000 }).toBeGreaterThan(pausedAt);

  await page.getByTestId('stop-run').click();
  await expect(page.getByTestId('run-status')).toContainText('Finished: stopped by the user', { timeout: 30_000 });
  await expect(page.getByTestId('export-model')).toBeEnabled();
  await expect(page.getByTestId('error-message')).toHaveCount(0);
});

test('lost GPU device keeps the run for export', async ({ page, context }, testInfo) => {
  test.setTimeout(120_000);
  // The folder picker returns a folder of the origin private file system, which the test reads back.
  await page.addInitScript(() => {
    (window as unknown as { showDirectoryPicker: () => Promise<FileSystemDirectoryHandle> }).showDirectoryPicker = async () => {
      const storage = await navigator.storage.getDirectory();
      return storage.getDirectoryHandle('picked-export', { create: true });
    };
  });
  await loadTinyModelAndData(page);
  await startRun(page, 500);
  await expect.poll(() => heatmapSteps(page), { timeout: 30_000 }).toBeGreaterThanOrEqual(3);

  // Crashing Chromium's GPU process loses every WebGPU device, as a driver reset does.
  const browserSession = await context.browser()!.newBrowserCDPSession();
  await browserSession.send('Browser.crashGpuProcess');

  const banner = page.getByTestId('error-message');
  await expect(banner).toContainText('The GPU device was lost', { timeout: 30_000 });
  await expect(page.getByTestId('run-status')).toContainText('Finished: failed');
  const notice = page.getByTestId('run-notices');
  await expect(notice).toContainText('The model was restored on a new GPU device with the weights of step', { timeout: 30_000 });
  const restoredStep = Number(/weights of step (\d+)/.exec((await notice.textContent()) ?? '')![1]);
  expect(restoredStep).toBeGreaterThanOrEqual(3);
  expect(restoredStep).toBeLessThanOrEqual(await heatmapSteps(page));
  await expect(page.getByTestId('model-status')).toContainText('Loaded tiny-gpt2');
  await page.screenshot({ path: testInfo.outputPath('device-lost.png'), fullPage: true });

  await page.getByTestId('export-model').click();
  await expect(page.getByTestId('exported-files')).toContainText('model.safetensors');
  const read = (name: string) =>
    page.evaluate(async (fileName) => {
      const storage = await navigator.storage.getDirectory();
      const folder = await storage.getDirectoryHandle('picked-export');
      const file = await (await folder.getFileHandle(fileName)).getFile();
      return Array.from(new Uint8Array(await file.arrayBuffer()));
    }, name);
  const runJson = JSON.parse(new TextDecoder().decode(new Uint8Array(await read('run.json')))) as RunJson & { restoredFromStep?: number };
  expect(runJson.steps.at(-1)!.step).toBe(restoredStep);

  const selected = new Set(runJson.steps.map((step) => step.selectedBlock!));
  const original = readSafetensors(new Uint8Array(readFileSync(join(tiny.dir, 'model.safetensors'))));
  const exported = readSafetensors(new Uint8Array(await read('model.safetensors')));
  expect([...exported.tensors.keys()]).toEqual([...original.tensors.keys()]);
  for (const [key, tensor] of original.tensors) {
    const block = /\.h\.(\d+)\./.exec(key);
    if (!block || !selected.has(Number(block[1]))) expect(bytesEqual(exported.tensors.get(key)!.data, tensor.data), key).toBe(true);
  }
  const changed = [...original.tensors.keys()].filter((key) => !bytesEqual(original.tensors.get(key)!.data, exported.tensors.get(key)!.data));
  expect(changed.length).toBeGreaterThan(0);

  // The repair continues from the restored weights.
  await startRun(page, 2);
  await expect(page.getByTestId('run-status')).toContainText('Finished: completed all steps', { timeout: 30_000 });
});

// The workbench in Chromium with WebGPU on SwiftShader: panels, adapter report, drops and their
// errors, and the live views drawn from a run.json.

import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { dropFiles, makeRunSteps } from './helpers.ts';

const CONTRACT_TEST_IDS = [
  'model-dropzone',
  'hub-model-input',
  'hub-load',
  'dataset-dropzone',
  'dataset-summary',
  'method-select',
  'start-run',
  'pause-run',
  'stop-run',
  'sensitivity-heatmap',
  'loss-chart',
  'export-model',
];

// Ends of the viridis scale the heatmap uses, as Chromium reports computed fills.
const LOWEST_COLOR = 'rgb(68, 1, 84)';
const HIGHEST_COLOR = 'rgb(253, 231, 37)';

test.beforeEach(async ({ page }) => {
  // ?demo=0: these tests check the empty workbench and their own drops, which the demo's automatic load would change.
  await page.goto('/?demo=0');
  await expect(page.getByTestId('gpu-status')).not.toHaveText(/Checking/);
});

test('every panel renders', async ({ page }, testInfo) => {
  for (const testId of CONTRACT_TEST_IDS) {
    await expect(page.getByTestId(testId), testId).toBeVisible();
  }
  await expect(page.getByTestId('hub-model-input')).toHaveValue('openai-community/gpt2');
  await expect(page.getByTestId('model-preview')).toContainText('124.4M');
  await expect(page.getByTestId('model-preview')).toContainText('Before loading: openai-community/gpt2');
  await expect(page.getByTestId('model-status')).toContainText('Not loaded');
  await expect(page.getByTestId('error-message')).toHaveCount(0);
  await page.screenshot({ path: testInfo.outputPath('workbench.png'), fullPage: true });
});

test('worker reports the SwiftShader adapter', async ({ page }) => {
  const status = page.getByTestId('gpu-status');
  await expect(status).toContainText('swiftshader');
  await expect(status).toContainText('max storage binding 1.0 GiB');
});

test('method list offers every repair method', async ({ page }) => {
  const values = await page.getByTestId('method-select').locator('option').evaluateAll((options) =>
    options.map((option) => (option as HTMLOptionElement).value),
  );
  expect(values).toEqual(['irepair', 'irepair-kl', 'irepair-fixed', 'irepair-min', 'dapt', 'dapt-kl', 'dpo']);

  await page.getByTestId('method-select').selectOption('dapt');
  await expect(page.getByTestId('lr-input')).toHaveValue('0.000001');
  await page.getByTestId('kl-toggle').check();
  await expect(page.getByTestId('method-select')).toHaveValue('dapt-kl');
  await expect(page.getByTestId('start-run')).toBeDisabled();
});

test('invalid run setting is named at its field', async ({ page }) => {
  await page.getByTestId('lr-input').fill('-1');
  await expect(page.getByText('Learning rate must be a number between 0 and 1')).toBeVisible();
});

test('model drop without config.json is rejected', async ({ page }) => {
  await dropFiles(page, page.getByTestId('model-dropzone'), [{ name: 'model.safetensors', content: 'not weights' }]);
  const banner = page.getByTestId('error-message');
  await expect(banner).toContainText('config.json');
  await expect(banner).toContainText('None of the 1 dropped files');
});

test('incomplete config.json is named', async ({ page }) => {
  const root = mkdtempSync(join(tmpdir(), 'irepair-e2e-'));
  const folder = join(root, 'broken-gpt2');
  mkdirSync(folder);
  writeFileSync(join(folder, 'config.json'), '{"model_type": "gpt2"}');
  writeFileSync(join(folder, 'model.safetensors'), 'placeholder');
  writeFileSync(join(folder, 'tokenizer.json'), '{}');
  writeFileSync(join(folder, 'README.md'), '# not part of the checkpoint');

  await page.getByTestId('model-dropzone-folder-input').setInputFiles(folder);

  await expect(page.getByTestId('error-message')).toContainText(/config\.json in [^:]*broken-gpt2: field "vocab_size" is missing/);
  // The failed load is undone, so the model can be dropped again.
  await expect(page.getByTestId('model-status')).not.toContainText('Loading');
  await expect(page.getByTestId('hub-load')).toBeEnabled();
});

test('unreachable Hub endpoint is named', async ({ page }) => {
  // Port 9 (discard) on the loopback interface has no server, so the connection is refused.
  const endpoint = 'http://127.0.0.1:9';
  await page.getByTestId('hub-model-input').fill('EleutherAI/gpt-neo-125m');
  await expect(page.getByTestId('model-preview')).toContainText('GPT-Neo');
  await page.getByTestId('hub-endpoint-input').fill(endpoint);
  await page.getByTestId('hub-load').click();
  await expect(page.getByTestId('error-message')).toContainText(`Cannot reach ${endpoint}/EleutherAI/gpt-neo-125m/resolve/main/config.json`);
  // The failed load is undone, so the button is usable again.
  await expect(page.getByTestId('hub-load')).toBeEnabled();
});

test('invalid Hub id is named', async ({ page }) => {
  await page.getByTestId('hub-model-input').fill('not a repo!');
  await page.getByTestId('hub-load').click();
  await expect(page.getByTestId('error-message')).toContainText('Hub model id "not a repo!" is invalid');
});

test('malformed dataset drop shows an error', async ({ page }) => {
  await dropFiles(page, page.getByTestId('dataset-dropzone'), [
    { name: 'bad.jsonl', content: '{"prompt_text": "a", "pert_gen_text": "b", "unpert_gen_text": "c"}\n{broken' },
  ]);
  await expect(page.getByTestId('error-message')).toContainText('bad.jsonl line 2: not valid JSON');
  await expect(page.getByTestId('dataset-summary')).toContainText('No repair data loaded');
});

test('dataset row without a field names line and field', async ({ page }) => {
  const rows = ['prompt,rejected,chosen', 'Hello,stupid,there', 'The cat,,sat'];
  await dropFiles(page, page.getByTestId('dataset-dropzone'), [{ name: 'pairs.csv', content: rows.join('\n') }]);
  await expect(page.getByTestId('error-message')).toContainText('pairs.csv line 3: field "rejected" is empty');
  await expect(page.getByTestId('dataset-summary')).toContainText('No repair data loaded');
});

test('dataset summary shows format and preview before a model loads', async ({ page }) => {
  const rows = [
    { prompt_text: 'The cat sat', pert_gen_text: ' on you', unpert_gen_text: ' on the mat' },
    { prompt_text: 'Hello', pert_gen_text: ' stupid', unpert_gen_text: ' there' },
  ];
  await dropFiles(page, page.getByTestId('dataset-dropzone'), [
    { name: 'pairs.jsonl', content: rows.map((row) => JSON.stringify(row)).join('\n') },
  ]);
  const summary = page.getByTestId('dataset-summary');
  await expect(summary).toContainText('pairwise toxicity');
  await expect(summary).toContainText('Token lengths and truncation show once a model is loaded');
  await expect(page.getByTestId('dataset-preview').locator('tbody tr')).toHaveCount(2);
  await expect(page.getByTestId('dataset-preview')).toContainText('on the mat');
  await expect(page.getByTestId('error-message')).toHaveCount(0);
});

test('dataset of an unsupported type is rejected', async ({ page }) => {
  await dropFiles(page, page.getByTestId('dataset-dropzone'), [{ name: 'data.xlsx', content: 'PK' }]);
  await expect(page.getByTestId('error-message')).toContainText('data.xlsx: the repair data must be a .jsonl, .json, .csv file');
});

test('error messages can be dismissed', async ({ page }) => {
  await dropFiles(page, page.getByTestId('dataset-dropzone'), [{ name: 'empty.jsonl', content: '' }]);
  const banner = page.getByTestId('error-message');
  await expect(banner).toContainText('empty.jsonl is empty');
  await banner.getByRole('button', { name: 'Dismiss this message' }).click();
  await expect(banner).toHaveCount(0);
});

test('run.json draws the heatmap and charts', async ({ page }, testInfo) => {
  const numSteps = 40;
  const numBlocks = 12;
  const steps = makeRunSteps(numSteps, numBlocks, 7);
  await page.getByTestId('run-log-input').setInputFiles({
    name: 'run.json',
    mimeType: 'application/json',
    buffer: Buffer.from(JSON.stringify({ method: 'irepair-kl', config: {}, steps })),
  });

  const cells = page.getByTestId('heatmap-cell');
  await expect(cells).toHaveCount(numSteps * numBlocks);
  await expect(page.getByTestId('run-status')).toContainText('Viewing run.json');

  // One marker per step, on the block with the highest sensitivity.
  const markers = await page.getByTestId('selected-block').evaluateAll((elements) =>
    elements.map((element) => ({ step: Number(element.getAttribute('data-step')), block: Number(element.getAttribute('data-block')) })),
  );
  expect(markers).toEqual(steps.map((record) => ({ step: record.step, block: record.selectedBlock })));

  // Per-step normalisation: each column spans the whole scale.
  const fillOf = (step: number, block: number) =>
    page.locator(`[data-testid="heatmap-cell"][data-step="${step}"][data-block="${block}"]`).evaluate((element) => getComputedStyle(element).fill);
  for (const record of steps.slice(0, 5)) {
    const lowest = record.sensitivities.indexOf(Math.min(...record.sensitivities));
    expect(await fillOf(record.step, record.selectedBlock)).toBe(HIGHEST_COLOR);
    expect(await fillOf(record.step, lowest)).toBe(LOWEST_COLOR);
  }

  // Global normalisation: only the overall extremes reach the ends of the scale.
  await page.getByTestId('normalise-global').check();
  const all = steps.flatMap((record) => record.sensitivities.map((value, block) => ({ value, block, step: record.step })));
  const globalMax = all.reduce((best, cell) => (cell.value > best.value ? cell : best));
  const globalMin = all.reduce((best, cell) => (cell.value < best.value ? cell : best));
  expect(await fillOf(globalMax.step, globalMax.block)).toBe(HIGHEST_COLOR);
  expect(await fillOf(globalMin.step, globalMin.block)).toBe(LOWEST_COLOR);
  const otherStep = steps.find((record) => record.step !== globalMax.step)!;
  expect(await fillOf(otherStep.step, otherStep.selectedBlock)).not.toBe(HIGHEST_COLOR);
  await expect(page.getByTestId('heatmap-legend')).toContainText(globalMax.value.toPrecision(4));

  // Hovering a cell shows its step, block and value.
  const probe = steps[10];
  await page.locator(`[data-testid="heatmap-cell"][data-step="${probe.step}"][data-block="3"]`).hover();
  await expect(page.getByTestId('heatmap-tooltip')).toHaveText(
    `Step ${probe.step}, block 3: sensitivity ${probe.sensitivities[3].toPrecision(4)}${probe.selectedBlock === 3 ? ' (selected)' : ''}`,
  );

  // One bar per block that was ever selected, and a repair loss curve.
  const selectedBlocks = new Set(steps.map((record) => record.selectedBlock));
  await expect(page.getByTestId('selection-histogram').locator('.recharts-bar-rectangle path')).toHaveCount(selectedBlocks.size);
  await expect(page.getByTestId('loss-chart').locator('.recharts-line-curve')).toHaveCount(2);

  await page.screenshot({ path: testInfo.outputPath('run-log.png'), fullPage: true });
});

test('malformed run.json names the field', async ({ page }) => {
  const steps = makeRunSteps(3, 4, 1) as unknown as Record<string, unknown>[];
  (steps[1].sensitivities as unknown[])[2] = 'high';
  await page.getByTestId('run-log-input').setInputFiles({
    name: 'run.json',
    mimeType: 'application/json',
    buffer: Buffer.from(JSON.stringify({ method: 'irepair', steps })),
  });
  await expect(page.getByTestId('error-message')).toContainText('run.json: steps[1].sensitivities[2] must be a non-negative number');
  await expect(page.getByTestId('heatmap-cell')).toHaveCount(0);
});

test('narrow window stacks the panels without page overflow', async ({ page }) => {
  await page.setViewportSize({ width: 760, height: 1000 });
  const steps = makeRunSteps(300, 24, 3);
  await page.getByTestId('run-log-input').setInputFiles({
    name: 'run.json',
    mimeType: 'application/json',
    buffer: Buffer.from(JSON.stringify({ method: 'irepair', steps })),
  });
  await expect(page.getByTestId('heatmap-cell')).toHaveCount(300 * 24);

  // The heatmap scrolls inside its frame, so the page itself does not scroll sideways.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  const modelBox = await page.getByTestId('model-dropzone').boundingBox();
  const heatmapBox = await page.getByTestId('sensitivity-heatmap').boundingBox();
  expect(heatmapBox!.y).toBeGreaterThan(modelBox!.y + modelBox!.height);
});

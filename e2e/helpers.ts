// Helpers for the browser tests: dropping in-memory files on a drop zone and building run logs.

import { basename } from 'node:path';
import { expect, type Locator, type Page } from '@playwright/test';

export interface DroppedFile {
  name: string;
  content: string;
  type?: string;
}

/** Dispatches dragenter, dragover and drop with the files on the element, as a user's drop does. */
export async function dropFiles(page: Page, target: Locator, files: DroppedFile[]): Promise<void> {
  const dataTransfer = await page.evaluateHandle((list: DroppedFile[]) => {
    const transfer = new DataTransfer();
    for (const file of list) transfer.items.add(new File([file.content], file.name, { type: file.type ?? '' }));
    return transfer;
  }, files);
  await target.dispatchEvent('dragenter', { dataTransfer });
  await target.dispatchEvent('dragover', { dataTransfer });
  await target.dispatchEvent('drop', { dataTransfer });
}

/** A small deterministic generator (a 32-bit LCG), so logs repeat across runs. */
export function makeRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

export interface LogStep {
  step: number;
  sensitivities: number[];
  selectedBlock: number;
  repairLoss: number;
  klLoss: number;
  lr: number;
}

/**
 * Builds the steps of an irepair-kl run log whose selected block is the argmax of each step's
 * sensitivities. Values lie in [0.01, 10), so four significant digits print without exponents.
 */
export function makeRunSteps(numSteps: number, numBlocks: number, seed: number): LogStep[] {
  const random = makeRandom(seed);
  return Array.from({ length: numSteps }, (_, index) => {
    const sensitivities = Array.from({ length: numBlocks }, () => 0.01 + random() * 9.98);
    const selectedBlock = sensitivities.indexOf(Math.max(...sensitivities));
    return {
      step: index + 1,
      sensitivities,
      selectedBlock,
      repairLoss: 3 * Math.exp(-index / 20) + 0.1 * random(),
      klLoss: 0.05 * random(),
      lr: 5e-5,
    };
  });
}

/**
 * Opens the app without the demo, drops a checkpoint folder and a repair dataset, and waits until
 * both are loaded. `?demo=0` keeps the demo's automatic load from racing the drops.
 */
export async function loadModelAndData(page: Page, modelFolder: string, dataPath: string, rows: number): Promise<void> {
  await page.goto('/?demo=0');
  await expect(page.getByTestId('gpu-status')).not.toHaveText(/Checking/);
  await page.getByTestId('model-dropzone-folder-input').setInputFiles(modelFolder);
  await page.getByTestId('dataset-dropzone-input').setInputFiles(dataPath);
  await expect(page.getByTestId('model-status')).toContainText(`Loaded ${basename(modelFolder)}`, { timeout: 30_000 });
  await expect(page.getByTestId('dataset-summary')).toContainText(`${rows}`);
}

/** Expects one selected-block marker per step, each naming a block of the model, and returns the blocks. */
export async function expectSelectedBlocks(page: Page, steps: number, numBlocks: number): Promise<number[]> {
  const markers = page.getByTestId('selected-block');
  await expect(markers).toHaveCount(steps);
  const selected = await markers.evaluateAll((elements) => elements.map((element) => Number(element.getAttribute('data-block'))));
  for (const block of selected) {
    expect(block).toBeGreaterThanOrEqual(0);
    expect(block).toBeLessThan(numBlocks);
  }
  return selected;
}

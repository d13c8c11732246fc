// The browser's run form must resolve to the same repair options as `irepair repair` without flags.

import { expect, test } from 'vitest';
import { repairOptionsFromRunOptions, resolveRepairOptions, type RepairMethod } from '../../src/repair/options.ts';
import { defaultRunForm, parseRunForm } from '../../src/ui/runForm.ts';

const METHODS: RepairMethod[] = ['irepair', 'irepair-kl', 'irepair-fixed', 'dapt', 'dapt-kl', 'dpo'];

test.each(METHODS)('run form defaults match CLI for %s', (method) => {
  const parsed = parseRunForm(defaultRunForm(method));
  if (!('options' in parsed)) throw new Error(`the default run form for ${method} is invalid: ${JSON.stringify(parsed.errors)}`);
  const browser = repairOptionsFromRunOptions(method, parsed.options);
  const cli = resolveRepairOptions({ method });

  expect(browser.method).toBe(cli.method);
  expect(browser.learningRate).toBe(cli.learningRate);
  expect(browser.maxSteps).toBe(cli.maxSteps);
  expect(browser.warmupSteps).toBe(cli.warmupSteps);
  expect(browser.validateEvery).toBe(cli.validateEvery);
  expect(browser.patience).toBe(cli.patience);
  expect(browser.validationBatches).toBe(cli.validationBatches);
  expect(browser.alpha).toBe(cli.alpha);
  expect(browser.batchSize).toBe(cli.batchSize);
  expect(browser.seed).toBe(cli.seed);
});

test('short run warmup matches CLI', () => {
  for (const maxSteps of [1, 6, 20, 100, 1499, 1500, 5000]) {
    const parsed = parseRunForm({ ...defaultRunForm(), maxSteps: String(maxSteps) });
    if (!('options' in parsed)) throw new Error(`a run form with ${maxSteps} steps is invalid`);
    expect(parsed.options.warmupSteps, `${maxSteps} steps`).toBe(resolveRepairOptions({ method: 'irepair', maxSteps }).warmupSteps);
  }
});

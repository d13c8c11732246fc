// Model sizes in the catalog, run settings, colour scale and chart data.

import { expect, test } from '@playwright/test';
import { CATALOG, findCatalogModel, fitWeights, isValidRepoId, parameterCount } from '../../src/ui/catalog.ts';
import { lossPoints, selectionCounts, MAX_LOSS_POINTS } from '../../src/ui/chartData.ts';
import { colorAt, normalise, rangeOf } from '../../src/ui/colorScale.ts';
import { defaultRunForm, parseRunForm, withKl, withMethod } from '../../src/ui/runForm.ts';
import type { AdapterLimits, StepRecord } from '../../src/worker/protocol.ts';

// Parameter counts that transformers prints for each loaded checkpoint (lm_head tied to wte).
const PUBLISHED_PARAMETER_COUNTS: Record<string, number> = {
  'openai-community/gpt2': 124_439_808,
  'openai-community/gpt2-medium': 354_823_168,
  'openai-community/gpt2-large': 774_030_080,
  'openai-community/gpt2-xl': 1_557_611_200,
  'EleutherAI/gpt-neo-125m': 125_198_592,
  'EleutherAI/gpt-neo-1.3B': 1_315_575_808,
};

// WebGPU's default limits, which an adapter may raise.
const DEFAULT_LIMITS: AdapterLimits = {
  maxBufferSize: 256 * 1024 * 1024,
  maxStorageBufferBindingSize: 128 * 1024 * 1024,
  maxStorageBuffersPerShaderStage: 8,
  maxComputeWorkgroupStorageSize: 16384,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupsPerDimension: 65535,
};

test('catalog parameter counts match published counts', () => {
  expect(CATALOG.map((model) => model.repo).sort()).toEqual(Object.keys(PUBLISHED_PARAMETER_COUNTS).sort());
  for (const model of CATALOG) {
    expect(parameterCount(model.shape), model.repo).toBe(PUBLISHED_PARAMETER_COUNTS[model.repo]);
  }
});

test('GPT-2 wte exceeds the default binding limit', () => {
  const gpt2 = findCatalogModel('openai-community/gpt2')!;
  const fit = fitWeights(gpt2.shape, DEFAULT_LIMITS);
  expect(fit.largestTensorBytes).toBe(50257 * 768 * 4);
  expect(fit.bindingsForLargest).toBe(2);
  expect(fit.buffersForLargest).toBe(1);
  expect(fit.weightBytes).toBe(124_439_808 * 4);
});

test('catalog lookup accepts legacy ids', () => {
  expect(findCatalogModel('gpt2-xl')?.repo).toBe('openai-community/gpt2-xl');
  expect(findCatalogModel('eleutherai/GPT-NEO-125M')?.repo).toBe('EleutherAI/gpt-neo-125m');
  expect(findCatalogModel('someone/gpt2')).toBeUndefined();
});

test('repo id validation', () => {
  for (const good of ['gpt2', 'openai-community/gpt2', 'EleutherAI/gpt-neo-1.3B', 'org/model_v2.1']) {
    expect(isValidRepoId(good), good).toBe(true);
  }
  for (const bad of ['', 'a/b/c', 'not a repo', '../etc', 'org/', '/model', 'org/..model']) {
    expect(isValidRepoId(bad), bad).toBe(false);
  }
});

test('KL switch moves between method twins', () => {
  let form = defaultRunForm('irepair');
  form = withKl(form, true);
  expect(form.method).toBe('irepair-kl');
  expect(form.learningRate).toBe('0.00005');
  form = withKl(form, false);
  expect(form.method).toBe('irepair');

  const fixed = withKl(withMethod(defaultRunForm(), 'irepair-fixed'), true);
  expect(fixed.method).toBe('irepair-fixed');
  expect(parseRunForm(fixed)).toHaveProperty('options.kl', true);

  const dpo = withKl(withMethod(defaultRunForm(), 'dpo'), true);
  expect(parseRunForm(dpo)).toHaveProperty('options.kl', false);
});

test('run form turns fields into options', () => {
  const parsed = parseRunForm({ ...defaultRunForm('dapt-kl'), maxSteps: '100', seed: '7' });
  expect(parsed).toEqual({
    options: {
      learningRate: 5e-6,
      alpha: 0.5,
      batchSize: 4,
      maxSteps: 100,
      earlyStopping: { patience: 30, validateEvery: 5, validationBatches: 8 },
      warmupSteps: 100,
      seed: 7,
      kl: true,
    },
  });
});

test('run form names each invalid field', () => {
  const parsed = parseRunForm({
    ...defaultRunForm(),
    learningRate: '2',
    alpha: '',
    batchSize: '2.5',
    maxSteps: '0',
    patience: 'x',
    validateEvery: '-1',
    seed: '-3',
  });
  expect('errors' in parsed).toBe(true);
  if (!('errors' in parsed)) return;
  expect(Object.keys(parsed.errors).sort()).toEqual(['alpha', 'batchSize', 'learningRate', 'maxSteps', 'patience', 'seed', 'validateEvery']);

  const noEarlyStop = parseRunForm({ ...defaultRunForm(), earlyStopping: false, patience: 'x' });
  expect(noEarlyStop).toHaveProperty('options.earlyStopping', null);
});

test('colour scale ends and normalisation', () => {
  expect(colorAt(0)).toBe('rgb(68, 1, 84)');
  expect(colorAt(1)).toBe('rgb(253, 231, 37)');
  expect(colorAt(-5)).toBe(colorAt(0));
  expect(colorAt(7)).toBe(colorAt(1));
  expect(colorAt(Number.NaN)).toBe(colorAt(0));

  const range = rangeOf([2, 8, 4]);
  expect(range).toEqual({ min: 2, max: 8 });
  expect(normalise(2, range)).toBe(0);
  expect(normalise(3.5, range)).toBeCloseTo(0.25, 12);
  expect(normalise(8, range)).toBe(1);
  expect(normalise(3, { min: 3, max: 3 })).toBe(0.5);
});

function record(step: number, selectedBlock?: number): StepRecord {
  return { step, sensitivities: [], selectedBlock, repairLoss: 1 / step, lr: 1e-5 };
}

test('loss points merge validation and thin long runs', () => {
  const short = lossPoints([record(1), record(2), record(3)], [{ step: 2, loss: 0.7 }, { step: 5, loss: 0.6 }]);
  expect(short.map((point) => point.step)).toEqual([1, 2, 3, 5]);
  expect(short[1]).toEqual({ step: 2, repairLoss: 0.5, klLoss: undefined, validationLoss: 0.7 });
  expect(short[3]).toEqual({ step: 5, validationLoss: 0.6 });

  const long = lossPoints(Array.from({ length: 5000 }, (_, index) => record(index + 1)), []);
  expect(long.length).toBeLessThanOrEqual(MAX_LOSS_POINTS + 1);
  expect(long[0].step).toBe(1);
  expect(long[long.length - 1].step).toBe(5000);
});

test('selection counts ignore missing and out-of-range blocks', () => {
  const counts = selectionCounts([record(1, 0), record(2, 2), record(3, 2), record(4), record(5, 9)], 3);
  expect(counts).toEqual([
    { block: 0, count: 1 },
    { block: 1, count: 0 },
    { block: 2, count: 2 },
  ]);
});

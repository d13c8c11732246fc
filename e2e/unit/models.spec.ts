// Model sizes in the catalog, run settings, colour scale and chart data.

import { expect, test } from '@playwright/test';
import { CATALOG, findCatalogModel, fitWeights, isValidRepoId, parameterCount } from '../../src/ui/catalog.ts';
import { lossAxisTicks, lossPoints, selectionCounts, MAX_LOSS_POINTS } from '../../src/ui/chartData.ts';
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
      earlyStopping: { patience: 30, validateEvery: 25, validationBatches: 8 },
      warmupSteps: 10,
      seed: 7,
      kl: true,
    },
  });
});

test('run form warmup follows CLI rule', () => {
  // README and `irepair repair --help`: 150 warmup steps, or a tenth of the steps when that is smaller.
  const cases: [number, number][] = [[1, 0], [6, 0], [20, 2], [100, 10], [1499, 149], [1500, 150], [2000, 150]];
  for (const [maxSteps, warmup] of cases) {
    const parsed = parseRunForm({ ...defaultRunForm(), maxSteps: String(maxSteps) });
    expect(parsed, `${maxSteps} steps`).toHaveProperty('options.warmupSteps', warmup);
  }
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

test('loss axis leaves headroom', () => {
  // A loss of 1.592 must not sit on the top edge of a 0 to 1.6 axis.
  expect(lossAxisTicks([{ step: 1, repairLoss: 1.592 }, { step: 2, repairLoss: 1.4 }])).toEqual([0, 0.5, 1, 1.5, 2]);
  expect(lossAxisTicks([{ step: 1, repairLoss: 0.3, klLoss: 0.01, validationLoss: 7.9 }])).toEqual([0, 2.5, 5, 7.5, 10]);
  expect(lossAxisTicks([{ step: 1, repairLoss: 0.0123 }])).toEqual([0, 0.005, 0.01, 0.015]);
  expect(lossAxisTicks([])).toEqual([0, 1]);

  for (const max of [0.001, 0.95, 1, 3.3, 12, 480]) {
    const ticks = lossAxisTicks([{ step: 1, repairLoss: max }]);
    expect(ticks[ticks.length - 1], `top for ${max}`).toBeGreaterThanOrEqual(max * 1.05);
    expect(ticks.length, `tick count for ${max}`).toBeLessThanOrEqual(6);
  }
});

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

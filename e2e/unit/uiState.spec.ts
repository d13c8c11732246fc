// The store's tracking of the worker's busy state, its error banner (duplicates, clearing by
// area) and the datasets kept after a rejected file, plus the runs table's names and labels.

import { expect, test } from '@playwright/test';
import { describeSettings, formatMetric, newRunName, settingLabel } from '../../src/ui/runsSlice.ts';
import { applyCommand, applyEvent, createWorkbenchStore, initialData, type WorkbenchData } from '../../src/ui/store.ts';
import type { DatasetRole, DatasetSummary, ModelPlan, WorkerEvent } from '../../src/worker/protocol.ts';

function fold(data: WorkbenchData, events: WorkerEvent[]): WorkbenchData {
  return events.reduce((state, event) => applyEvent(state, event, 0), data);
}

function summary(fileName: string, role: DatasetRole): DatasetSummary {
  return { fileName, role, rows: 2 } as DatasetSummary;
}

function messages(data: WorkbenchData): string[] {
  return data.errors.map((error) => error.message);
}

test('busy state spans the whole measurement', () => {
  let data = applyCommand(initialData(), { kind: 'evaluate', metric: 'planted', models: ['original', 'repaired'], maxExamples: 10 });
  data = fold(data, [
    { kind: 'busy', task: 'measuring the planted behaviour' },
    { kind: 'evaluation', metric: 'planted', model: 'repaired', value: 0.1, count: 10 },
  ]);
  // The repaired value is in, but the original is still being measured.
  expect(data.workerBusy).toBe('measuring the planted behaviour');
  expect(data.evaluation.pending).toBe('planted');
  expect(data.evaluation.results.planted?.repaired?.value).toBe(0.1);

  data = fold(data, [
    { kind: 'evaluation', metric: 'planted', model: 'original', value: 0.7, count: 10 },
    { kind: 'busy', task: null },
  ]);
  expect(data.workerBusy).toBeNull();
  expect(data.evaluation.pending).toBeNull();
});

test('fatal error clears the busy state', () => {
  const data = fold(initialData(), [
    { kind: 'busy', task: 'generating text' },
    { kind: 'error', message: 'The GPU worker stopped.', fatal: true },
  ]);
  expect(data.workerBusy).toBeNull();
});

test('banner skips a duplicate message', () => {
  const store = createWorkbenchStore();
  store.getState().reportError('None of the 1 dropped files is config.json.', false, 'model');
  store.getState().reportError('None of the 1 dropped files is config.json.', false, 'model');
  expect(messages(store.getState())).toEqual(['None of the 1 dropped files is config.json.']);

  // The same message from the worker is not shown twice either.
  store.getState().applyEvents([{ kind: 'error', message: 'Load a model before evaluating.', fatal: false, command: 'evaluate' }], 0);
  store.getState().applyEvents([{ kind: 'error', message: 'Load a model before evaluating.', fatal: false, command: 'evaluate' }], 0);
  expect(messages(store.getState())).toEqual(['None of the 1 dropped files is config.json.', 'Load a model before evaluating.']);
});

test('success clears the errors of its area', () => {
  const store = createWorkbenchStore();
  const state = () => store.getState();
  state().reportError('None of the 1 dropped files is config.json.', false, 'model');
  state().reportError('broken.jsonl line 1: invalid JSON.', false, 'data:repair');
  state().reportError('The runs table could not be saved.');
  state().applyEvents([{ kind: 'error', message: 'Load a model before evaluating.', fatal: false, command: 'evaluate' }], 0);

  state().applyEvents([{ kind: 'modelLoaded', plan: { numLayers: 2 } as ModelPlan, source: 'demo' }], 0);
  expect(messages(state())).toEqual(['broken.jsonl line 1: invalid JSON.', 'The runs table could not be saved.', 'Load a model before evaluating.']);

  // Normal data is another role, so the repair data's error stays.
  state().applyEvents([{ kind: 'datasetLoaded', summary: summary('normal.txt', 'normal') }], 0);
  expect(messages(state())).toHaveLength(3);
  state().applyEvents([{ kind: 'datasetLoaded', summary: summary('repair.jsonl', 'repair') }], 0);
  expect(messages(state())).toEqual(['The runs table could not be saved.', 'Load a model before evaluating.']);

  state().applyEvents([{ kind: 'evaluation', metric: 'planted', model: 'original', value: 0.5, count: 4 }], 0);
  expect(messages(state())).toEqual(['The runs table could not be saved.']);
});

test('success keeps a fatal error', () => {
  let data = fold(initialData(), [{ kind: 'error', message: 'The GPU device was lost.', fatal: true, command: 'loadModel' }]);
  data = fold(data, [{ kind: 'modelLoaded', plan: { numLayers: 2 } as ModelPlan, source: 'demo' }]);
  expect(messages(data)).toEqual(['The GPU device was lost.']);
});

test('rejected file keeps the previous dataset', () => {
  const file = (name: string) => new File(['x'], name);
  let data = fold(initialData(), [{ kind: 'datasetLoaded', summary: summary('repair.jsonl', 'repair') }]);
  data = applyCommand(data, { kind: 'loadDataset', file: file('broken.jsonl'), role: 'repair' });
  expect(data.datasets.repair).toMatchObject({ status: 'loading', fileName: 'broken.jsonl' });

  const message = 'broken.jsonl line 1: invalid JSON. The previous repair data, repair.jsonl, is still in use.';
  data = fold(data, [{ kind: 'error', message, fatal: false, command: 'loadDataset', role: 'repair' }]);
  expect(data.datasets.repair).toMatchObject({ status: 'loaded', fileName: 'repair.jsonl' });
  expect(data.errors[0]).toMatchObject({ message, area: 'data:repair' });
});

test('two rejected files keep the first dataset', () => {
  const file = (name: string) => new File(['x'], name);
  let data = fold(initialData(), [{ kind: 'datasetLoaded', summary: summary('normal.txt', 'normal') }]);
  for (const name of ['a.txt', 'b.txt']) {
    data = applyCommand(data, { kind: 'loadDataset', file: file(name), role: 'normal' });
    data = fold(data, [{ kind: 'error', message: `${name} is empty.`, fatal: false, command: 'loadDataset', role: 'normal' }]);
    expect(data.datasets.normal).toMatchObject({ status: 'loaded', fileName: 'normal.txt' });
  }
});

test('runs are numbered per method', () => {
  expect(newRunName([], 'irepair')).toBe('irepair #1');
  const records = [{ name: 'Original (demo)' }, { name: 'irepair #1' }, { name: 'dapt #1' }, { name: 'irepair #3' }, { name: 'irepair-kl #7' }];
  expect(newRunName(records, 'irepair')).toBe('irepair #4');
  expect(newRunName(records, 'dapt')).toBe('dapt #2');
  expect(newRunName(records, 'dpo')).toBe('dpo #1');
});

test('settings read as words', () => {
  expect(settingLabel('learningRate')).toBe('learning rate');
  expect(settingLabel('maxSteps')).toBe('max steps');
  expect(settingLabel('seed')).toBe('seed');
  expect(describeSettings({ learningRate: 0.001, maxSteps: 3, finishReason: 'completed', continuesFrom: 'irepair #1' })).toBe(
    'learning rate 0.001, max steps 3, finish reason completed, continues from irepair #1',
  );
});

test('planted rate shows one decimal', () => {
  expect(formatMetric('plantedRate', 68.75)).toBe('68.8%');
  expect(formatMetric('plantedRate', 5)).toBe('5.0%');
  expect(formatMetric('tflops', 0.012345)).toBe('0.01235');
});

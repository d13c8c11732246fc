// The store's folding of worker events and sent commands, in Node without a browser.

import { expect, test } from '@playwright/test';
import { applyCommand, applyEvent, createWorkbenchStore, initialData, type WorkbenchData } from '../../src/ui/store.ts';
import type { RunOptions, StepEvent, WorkerEvent } from '../../src/worker/protocol.ts';

const MIB = 1024 * 1024;

const OPTIONS: RunOptions = {
  learningRate: 2e-5,
  alpha: 0.5,
  batchSize: 4,
  maxSteps: 100,
  earlyStopping: null,
  warmupSteps: 10,
  seed: 1,
  kl: false,
};

function fold(data: WorkbenchData, events: [WorkerEvent, number][]): WorkbenchData {
  return events.reduce((state, [event, now]) => applyEvent(state, event, now), data);
}

function stepEvent(step: number, sensitivities: number[]): StepEvent {
  return {
    kind: 'step',
    step,
    sensitivities,
    selectedBlock: sensitivities.indexOf(Math.max(...sensitivities)),
    repairLoss: 2 / step,
    lr: 2e-5,
    tokensPerSecond: 1000 + step,
    gpuBytes: 500 * MIB,
    etaSeconds: 100 - step,
  };
}

test('progress rate uses one-second windows', () => {
  const progress = (loadedBytes: number): WorkerEvent => ({
    kind: 'progress',
    stage: 'download',
    file: 'model.safetensors',
    loadedBytes,
    totalBytes: 500 * MIB,
    message: '',
  });
  const key = 'download:model.safetensors';

  let data = fold(initialData(), [
    [progress(0), 0],
    [progress(40 * MIB), 400],
  ]);
  expect(data.progress[key].bytesPerSecond).toBe(0);
  expect(data.progress[key].loadedBytes).toBe(40 * MIB);

  data = fold(data, [[progress(100 * MIB), 1000]]);
  expect(data.progress[key].bytesPerSecond).toBeCloseTo(100 * MIB, 6);

  // The rate stays until the next window ends, which measures 150 MiB in 1 s.
  data = fold(data, [[progress(150 * MIB), 1500]]);
  expect(data.progress[key].bytesPerSecond).toBeCloseTo(100 * MIB, 6);
  data = fold(data, [[progress(250 * MIB), 2000]]);
  expect(data.progress[key].bytesPerSecond).toBeCloseTo(150 * MIB, 6);
});

test('rejected model load returns to idle', () => {
  let data = applyCommand(initialData(), {
    kind: 'loadModel',
    source: { kind: 'hub', repo: 'openai-community/gpt2', revision: 'main', endpoint: 'https://huggingface.co' },
  });
  expect(data.model.status).toBe('loading');
  expect(data.model.sourceLabel).toBe('openai-community/gpt2@main');

  data = applyEvent(data, { kind: 'error', message: 'download failed', fatal: false, command: 'loadModel' }, 0);
  expect(data.model.status).toBe('idle');
  expect(data.errors.map((error) => error.message)).toEqual(['download failed']);
  expect(data.workerLost).toBe(false);
});

test('rejected dataset clears only its role', () => {
  const file = (name: string) => new File(['x'], name);
  let data = applyCommand(initialData(), { kind: 'loadDataset', file: file('pairs.jsonl'), role: 'repair' });
  data = applyCommand(data, { kind: 'loadDataset', file: file('wiki.txt'), role: 'normal' });
  data = applyEvent(data, { kind: 'error', message: 'wiki.txt is empty', fatal: false, command: 'loadDataset', role: 'normal' }, 0);

  expect(data.datasets.normal).toBeUndefined();
  expect(data.datasets.repair).toEqual({ status: 'loading', fileName: 'pairs.jsonl' });
});

test('run keeps its steps across pause and resume', () => {
  let data = applyCommand(initialData(), { kind: 'start', method: 'irepair', options: OPTIONS });
  expect(data.run.status).toBe('starting');

  data = fold(data, [
    [{ kind: 'runState', state: 'running', method: 'irepair', options: OPTIONS, numBlocks: 3 }, 0],
    [stepEvent(1, [0.1, 0.5, 0.2]), 1],
    [stepEvent(2, [0.4, 0.1, 0.2]), 2],
  ]);
  expect(data.run.status).toBe('running');
  expect(data.run.steps.map((record) => record.selectedBlock)).toEqual([1, 0]);
  expect(data.run.live).toEqual({ tokensPerSecond: 1002, gpuBytes: 500 * MIB, etaSeconds: 98 });
  expect(data.run.steps[1]).not.toHaveProperty('tokensPerSecond');

  data = applyCommand(data, { kind: 'pause' });
  expect(data.run.status).toBe('pausing');
  data = applyEvent(data, { kind: 'runState', state: 'paused', method: 'irepair', options: OPTIONS, numBlocks: 3 }, 3);
  expect(data.run.status).toBe('paused');

  data = applyCommand(data, { kind: 'resume' });
  data = fold(data, [
    [{ kind: 'runState', state: 'running', method: 'irepair', options: OPTIONS, numBlocks: 3 }, 4],
    [stepEvent(3, [0.1, 0.1, 0.9]), 5],
    [{ kind: 'validation', step: 3, loss: 1.5 }, 5],
    [{ kind: 'finished', reason: 'early-stopped', step: 3 }, 6],
  ]);
  expect(data.run.steps.map((record) => record.step)).toEqual([1, 2, 3]);
  expect(data.run.validation).toEqual([{ step: 3, loss: 1.5 }]);
  expect(data.run.status).toBe('finished');
  expect(data.run.finishReason).toBe('early-stopped');
  expect(data.run.live?.etaSeconds).toBe(0);
});

test('new run replaces the previous steps', () => {
  let data = applyCommand(initialData(), { kind: 'start', method: 'irepair', options: OPTIONS });
  data = fold(data, [
    [{ kind: 'runState', state: 'running', method: 'irepair', options: OPTIONS, numBlocks: 2 }, 0],
    [stepEvent(1, [0.1, 0.5]), 1],
    [{ kind: 'finished', reason: 'completed', step: 1 }, 2],
  ]);
  data = applyCommand(data, { kind: 'start', method: 'dapt', options: OPTIONS });
  data = applyEvent(data, { kind: 'runState', state: 'running', method: 'dapt', options: OPTIONS, numBlocks: 2 }, 3);
  expect(data.run.steps).toEqual([]);
  expect(data.run.method).toBe('dapt');
});

test('rejected pause restores the running state', () => {
  let data = applyCommand(initialData(), { kind: 'start', method: 'irepair', options: OPTIONS });
  data = applyEvent(data, { kind: 'runState', state: 'running', method: 'irepair', options: OPTIONS, numBlocks: 2 }, 0);
  data = applyCommand(data, { kind: 'pause' });
  data = applyEvent(data, { kind: 'error', message: 'cannot pause', fatal: false, command: 'pause' }, 1);
  expect(data.run.status).toBe('running');
});

test('fatal error drops the worker state', () => {
  let data = applyCommand(initialData(), { kind: 'start', method: 'irepair', options: OPTIONS });
  data = fold(data, [
    [{ kind: 'runState', state: 'running', method: 'irepair', options: OPTIONS, numBlocks: 2 }, 0],
    [stepEvent(1, [0.3, 0.2]), 1],
    [{ kind: 'error', message: 'The GPU device was lost.', fatal: true }, 2],
  ]);
  expect(data.workerLost).toBe(true);
  expect(data.model.status).toBe('idle');
  expect(data.run.status).toBe('finished');
  expect(data.run.finishReason).toBe('failed');
  expect(data.run.steps).toHaveLength(1);
  expect(data.errors[0]).toMatchObject({ message: 'The GPU device was lost.', fatal: true });
});

test('generation is pending until every model is done', () => {
  let data = applyCommand(initialData(), {
    kind: 'generate',
    prompt: 'Hello',
    models: ['original', 'repaired'],
    options: { maxNewTokens: 4, temperature: 0, topK: 0, seed: 0 },
  });
  data = fold(data, [
    [{ kind: 'generation', model: 'original', prompt: 'Hello', text: ' world', done: true }, 0],
    [{ kind: 'generation', model: 'repaired', prompt: 'Hello', text: ' the', done: false }, 1],
  ]);
  expect(data.generation.pending).toBe(true);
  data = applyEvent(data, { kind: 'generation', model: 'repaired', prompt: 'Hello', text: ' there', done: true }, 2);
  expect(data.generation.pending).toBe(false);
  expect(data.generation.outputs.repaired?.text).toBe(' there');
});

test('error list keeps the newest five', () => {
  const store = createWorkbenchStore();
  for (let index = 1; index <= 7; index += 1) store.getState().reportError(`error ${index}`);
  expect(store.getState().errors.map((error) => error.message)).toEqual(['error 3', 'error 4', 'error 5', 'error 6', 'error 7']);
  const third = store.getState().errors[0].id;
  store.getState().dismissError(third);
  expect(store.getState().errors).toHaveLength(4);
});

test('run log is refused during a live run', () => {
  const store = createWorkbenchStore();
  store.getState().commandSent({ kind: 'start', method: 'irepair', options: OPTIONS });
  store.getState().applyEvents([{ kind: 'runState', state: 'running', method: 'irepair', options: OPTIONS, numBlocks: 2 }], 0);
  store.getState().showRunLog({ fileName: 'run.json', method: 'dapt', numBlocks: 0, steps: [], validation: [] });
  expect(store.getState().run.origin).toBe('live');
  expect(store.getState().errors[0].message).toBe('Stop the current run before opening run.json.');
});

test('run log keeps validation curve', () => {
  const store = createWorkbenchStore();
  const validation = [{ step: 25, loss: 1.5 }, { step: 50, loss: 1.25 }];
  store.getState().showRunLog({ fileName: 'run.json', method: 'dapt', numBlocks: 0, steps: [], validation });
  expect(store.getState().run.origin).toBe('log');
  expect(store.getState().run.validation).toEqual(validation);
});

// The store's toxicity classifier state, the toxicity results it keeps, and the Hub endpoint that
// the model panel and the classifier share, in Node without a browser.

import { expect, test } from '@playwright/test';
import { applyCommand, applyEvent, createWorkbenchStore, initialData, type WorkbenchData } from '../../src/ui/store.ts';
import type { ClassifierInfo, ProgressStage, ToxicityClassifierSource, ToxicityDetails, WorkerEvent } from '../../src/worker/protocol.ts';

const HUB_SOURCE: ToxicityClassifierSource = {
  kind: 'hub',
  repo: 'Xenova/toxic-bert',
  revision: 'main',
  endpoint: 'https://huggingface.co',
  dtype: 'auto',
};

const TOXIC_BERT: ClassifierInfo = {
  label: 'Xenova/toxic-bert@main',
  dtype: 'q8',
  labels: ['toxic', 'severe_toxic', 'obscene', 'threat', 'insult', 'identity_hate'],
  toxicLabel: 'toxic',
};

function fold(data: WorkbenchData, events: WorkerEvent[]): WorkbenchData {
  return events.reduce((state, event, index) => applyEvent(state, event, index), data);
}

function progress(stage: ProgressStage, file: string): WorkerEvent {
  return { kind: 'progress', stage, file, loadedBytes: 1, totalBytes: 2, message: '' };
}

test('classifier load shows pending, then loaded', () => {
  let data = applyCommand(initialData(), { kind: 'loadClassifier', source: HUB_SOURCE });
  expect(data.classifier).toEqual({ loading: 'Xenova/toxic-bert@main', loaded: null });

  data = fold(data, [progress('classifier', 'onnx/model_quantized.onnx'), { kind: 'classifierLoaded', classifier: TOXIC_BERT }]);
  expect(data.classifier).toEqual({ loading: null, loaded: TOXIC_BERT });
  expect(Object.keys(data.progress)).toEqual(['classifier:onnx/model_quantized.onnx']);
});

test('new classifier load clears only its progress', () => {
  let data = fold(initialData(), [progress('classifier', 'config.json'), progress('download', 'config.json')]);
  data = applyCommand(data, { kind: 'loadClassifier', source: HUB_SOURCE });
  expect(Object.keys(data.progress)).toEqual(['download:config.json']);
});

test('dropped folder load is labelled by its folder', () => {
  const file = new File(['{}'], 'config.json');
  const data = applyCommand(initialData(), {
    kind: 'loadClassifier',
    source: { kind: 'files', files: [{ path: 'config.json', file }], folder: 'my-classifier', dtype: 'fp32' },
  });
  expect(data.classifier.loading).toBe('my-classifier');
});

test('rejected load keeps the loaded classifier', () => {
  let data = fold(initialData(), [{ kind: 'classifierLoaded', classifier: TOXIC_BERT }]);
  data = applyCommand(data, { kind: 'loadClassifier', source: { ...HUB_SOURCE, repo: 'org/missing' } });
  data = fold(data, [{ kind: 'error', message: 'Toxicity classifier org/missing@main could not be loaded.', fatal: false, command: 'loadClassifier' }]);
  expect(data.classifier).toEqual({ loading: null, loaded: TOXIC_BERT });
  expect(data.errors.map((error) => error.message)).toEqual(['Toxicity classifier org/missing@main could not be loaded.']);
});

test('fatal error forgets the classifier', () => {
  const data = fold(initialData(), [
    { kind: 'classifierLoaded', classifier: TOXIC_BERT },
    { kind: 'error', message: 'The GPU worker stopped.', fatal: true },
  ]);
  expect(data.classifier).toEqual({ loading: null, loaded: null });
});

test('toxicity evaluation keeps its details', () => {
  const details: ToxicityDetails = {
    classifier: TOXIC_BERT.label,
    toxicLabel: 'toxic',
    meanToxicity: 30,
    standardError: 10,
    medianToxicity: 30,
    toxicFraction: 0.5,
    histogram: [{ from: 0, to: 50, count: 1 }, { from: 50, to: 100, count: 1 }],
    samples: [
      { prompt: 'a', continuation: ' b', toxicity: 10 },
      { prompt: 'c', continuation: ' d', toxicity: 50 },
    ],
  };
  let data = applyCommand(initialData(), { kind: 'evaluate', metric: 'toxicity', models: ['original'], maxExamples: 2 });
  data = fold(data, [progress('evaluate', 'original:generate')]);
  data = applyCommand(data, { kind: 'evaluate', metric: 'toxicity', models: ['original'], maxExamples: 2 });
  expect(data.progress).toEqual({});

  data = fold(data, [{ kind: 'evaluation', metric: 'toxicity', model: 'original', value: 30, count: 2, toxicity: details }]);
  expect(data.evaluation.pending).toBeNull();
  expect(data.evaluation.results.toxicity?.original).toEqual({ value: 30, count: 2, toxicity: details });
});

test('new worker keeps the Hub endpoint', () => {
  const store = createWorkbenchStore();
  store.getState().setHubEndpoint('http://127.0.0.1:8080');
  store.getState().applyEvents([{ kind: 'classifierLoaded', classifier: TOXIC_BERT }], 0);
  store.getState().resetForNewWorker();
  expect(store.getState().hubEndpoint).toBe('http://127.0.0.1:8080');
  expect(store.getState().classifier.loaded).toBeNull();
});

// The runs table's and the error density view's parts of the store, in Node without a browser:
// records of finished runs, evaluations added to them, browser storage, and density progress.

import { expect, test } from '@playwright/test';
import { RUNS_STORAGE_KEY, type RunRecord } from '../../src/eval/compare.ts';
import type { ErrorDensity } from '../../src/eval/density.ts';
import type { Overhead } from '../../src/eval/overhead.ts';
import { persistRuns } from '../../src/ui/runsSlice.ts';
import { createWorkbenchStore, type WorkbenchStore } from '../../src/ui/store.ts';
import type { DatasetSummary, ModelPlan, RepairMethod, RunOptions, WorkerEvent } from '../../src/worker/protocol.ts';

const OPTIONS: RunOptions = {
  learningRate: 2e-5, alpha: 0.5, batchSize: 4, maxSteps: 2, earlyStopping: null, warmupSteps: 0, seed: 1, kl: false,
};

const OVERHEAD: Overhead = {
  flops: 3e9, flopsPerToken: 1.5e6, trainingTokens: 2000, forwardTokens: 0, gpuSeconds: 1.25, peakMemoryBytes: 5 * 2 ** 20, iterations: 2,
};

/** Returns a Storage over a Map, which stores strings by key as localStorage does. */
function memoryStorage(entries: Record<string, string> = {}): Storage & { data: Map<string, string> } {
  const data = new Map(Object.entries(entries));
  return {
    data,
    get length() {
      return data.size;
    },
    clear: () => data.clear(),
    getItem: (key) => data.get(key) ?? null,
    key: (index) => [...data.keys()][index] ?? null,
    removeItem: (key) => void data.delete(key),
    setItem: (key, value) => void data.set(key, value),
  };
}

function send(store: WorkbenchStore, events: WorkerEvent[], now = 0): void {
  store.getState().applyEvents(events, now);
}

/** Loads a model labelled `label` through the store, as the worker client and the worker do. */
function loadModel(store: WorkbenchStore, label: string): void {
  store.getState().commandSent({ kind: 'loadModel', source: { kind: 'files', files: [], folder: label } });
  send(store, [{ kind: 'modelLoaded', plan: { numLayers: 2 } as ModelPlan, source: label }]);
}

/** Sends a live run of `method` through the store: start, one state event, then finished after `steps` steps. */
function finishRun(store: WorkbenchStore, method: RepairMethod, steps: number, extra: Partial<Extract<WorkerEvent, { kind: 'finished' }>> = {}): void {
  store.getState().commandSent({ kind: 'start', method, options: OPTIONS });
  send(store, [
    { kind: 'runState', state: 'running', method, options: OPTIONS, numBlocks: 2 },
    { kind: 'finished', reason: 'completed', step: steps, ...extra },
  ], Date.UTC(2025, 0, 2));
}

function evaluation(metric: 'perplexity' | 'toxicity' | 'planted', model: 'original' | 'repaired', value: number): WorkerEvent {
  return { kind: 'evaluation', metric, model, value, count: 10 };
}

function names(store: WorkbenchStore): string[] {
  return store.getState().runs.records.map((record) => record.name);
}

test('finished runs become records', () => {
  const store = createWorkbenchStore();
  loadModel(store, 'tiny');
  finishRun(store, 'irepair', 2, { overhead: OVERHEAD, settings: { learningRate: 2e-5, steps: 2 } });
  finishRun(store, 'dapt', 0);
  finishRun(store, 'dapt', 1);

  const [first, second] = store.getState().runs.records;
  expect(names(store)).toEqual(['irepair #1', 'dapt #1']);
  expect(first).toEqual({
    name: 'irepair #1', method: 'irepair', model: 'tiny', settings: { learningRate: 2e-5, steps: 2 }, overhead: OVERHEAD, updatedAt: '2025-01-02T00:00:00.000Z',
  });
  // Without settings from the worker (a lost device) the record keeps the steps and the reason.
  expect(second.settings).toEqual({ steps: 1, finishReason: 'completed', continuesFrom: 'irepair #1' });
  expect(second.overhead).toBeUndefined();
});

test('evaluations go to the latest run and the original', () => {
  const store = createWorkbenchStore();
  loadModel(store, 'tiny');
  const text: DatasetSummary = { fileName: 'wiki.txt', role: 'text' } as DatasetSummary;
  send(store, [{ kind: 'datasetLoaded', summary: text }, evaluation('perplexity', 'repaired', 30)]);
  expect(names(store)).toEqual([]);

  finishRun(store, 'irepair', 2);
  finishRun(store, 'irepair-kl', 2);
  send(store, [
    evaluation('perplexity', 'repaired', 21.5),
    evaluation('perplexity', 'original', 19.25),
    evaluation('toxicity', 'repaired', 12.5),
    evaluation('planted', 'original', 0.75),
  ]);
  const byName = new Map(store.getState().runs.records.map((record) => [record.name, record]));
  expect([...byName.keys()]).toEqual(['irepair #1', 'irepair-kl #1', 'Original (tiny)']);
  expect(byName.get('irepair #1')!.perplexity).toBeUndefined();
  expect(byName.get('irepair-kl #1')!.perplexity).toEqual({ 'wiki.txt': 21.5 });
  expect(byName.get('irepair-kl #1')!.toxicity).toBe(0.125);
  expect(byName.get('Original (tiny)')).toMatchObject({ model: 'tiny', perplexity: { 'wiki.txt': 19.25 }, plantedRate: 0.75 });

  // A deleted run takes no more results, and a new model starts a new chain of runs.
  store.getState().deleteRun('irepair-kl #1');
  send(store, [evaluation('toxicity', 'repaired', 50)]);
  expect(names(store)).toEqual(['irepair #1', 'Original (tiny)']);
  loadModel(store, 'other');
  finishRun(store, 'dpo', 3);
  const dpo = store.getState().runs.records.at(-1)!;
  expect(dpo.name).toBe('dpo #1');
  expect(dpo.settings).not.toHaveProperty('continuesFrom');
});

test('runs persist in browser storage', () => {
  const stored: RunRecord[] = [{ name: 'kept', method: 'dapt', overhead: OVERHEAD }];
  const storage = memoryStorage({ [RUNS_STORAGE_KEY]: JSON.stringify({ runs: stored }) });
  const store = createWorkbenchStore();
  persistRuns(store, () => storage);
  expect(store.getState().runs.records).toEqual(stored);

  loadModel(store, 'tiny');
  finishRun(store, 'irepair', 2);
  expect(JSON.parse(storage.data.get(RUNS_STORAGE_KEY)!).runs.map((run: RunRecord) => run.name)).toEqual(['kept', 'irepair #1']);

  // A restarted worker has no repaired weights, but the table stays.
  store.getState().resetForNewWorker();
  expect(names(store)).toEqual(['kept', 'irepair #1']);
  expect(store.getState().runs.onModel).toEqual([]);

  store.getState().deleteRun('kept');
  expect(JSON.parse(storage.data.get(RUNS_STORAGE_KEY)!).runs.map((run: RunRecord) => run.name)).toEqual(['irepair #1']);
});

test('unreadable stored runs are reported', () => {
  const store = createWorkbenchStore();
  persistRuns(store, () => memoryStorage({ [RUNS_STORAGE_KEY]: '{' }));
  expect(store.getState().runs.records).toEqual([]);
  expect(store.getState().errors.map((error) => error.message)).toEqual([
    expect.stringMatching(/^The runs kept in this browser could not be read, so the runs table starts empty: .*invalid JSON/),
  ]);

  const blocked = createWorkbenchStore();
  persistRuns(blocked, () => {
    throw new Error('storage is disabled');
  });
  expect(blocked.getState().errors[0].message).toMatch(/lost on reload: storage is disabled$/);
});

test('density measurement tracks progress and stop', () => {
  const store = createWorkbenchStore();
  const density = { relative: [0.75, 0.25], topBlocks: [0], ratio: 3, topFraction: 0.2, sensitivity: [3, 1], examples: 8, batches: 2 } as ErrorDensity;

  store.getState().commandSent({ kind: 'measureDensity', sampleSize: 8, model: 'original' });
  expect(store.getState().density.pending).toBe('original');
  send(store, [{ kind: 'densityProgress', model: 'original', batchesDone: 1, batchesTotal: 2, etaSeconds: 4 }]);
  expect(store.getState().density.progress).toEqual({ batchesDone: 1, batchesTotal: 2, etaSeconds: 4 });
  send(store, [{ kind: 'density', model: 'original', fileName: 'pairs.jsonl', result: density }]);
  expect(store.getState().density).toMatchObject({ pending: null, progress: null, stopped: false, result: { model: 'original', fileName: 'pairs.jsonl', density } });

  // A stopped measurement keeps the previous result.
  store.getState().commandSent({ kind: 'measureDensity', sampleSize: 8, model: 'repaired' });
  store.getState().commandSent({ kind: 'stopDensity' });
  expect(store.getState().density.stopping).toBe(true);
  send(store, [{ kind: 'density', model: 'repaired', fileName: 'pairs.jsonl', result: null }]);
  expect(store.getState().density).toMatchObject({ pending: null, stopping: false, stopped: true, result: { model: 'original' } });

  // A rejected command leaves nothing pending.
  store.getState().commandSent({ kind: 'measureDensity', sampleSize: 8, model: 'original' });
  send(store, [{ kind: 'error', message: 'Load a model before measuring error density.', fatal: false, command: 'measureDensity' }]);
  expect(store.getState().density.pending).toBeNull();
});

// The runs table's part of the store. Each live run that finishes with at least one step becomes
// a RunRecord (method, settings, overhead), and evaluation results measured afterwards are added
// to the latest run's record or to the original model's. The records are kept in localStorage
// (src/eval/compare.ts), so the table survives a reload.

import { formatNumber, loadStoredRuns, storeRuns, upsertRun, type RunRecord, type RunSettings } from '../eval/compare.ts';
import type { WorkerEvent } from '../worker/protocol.ts';
import type { WorkbenchData, WorkbenchStore } from './store.ts';

export interface RunsState {
  /** Recorded runs, in the order they finished; the table shows one column per record. */
  records: RunRecord[];
  /**
   * Names of the records of the runs made since the model was loaded, oldest first. Each run
   * continues from the weights of the one before, so the GPU has the weights after the last.
   */
  onModel: string[];
}

export function emptyRuns(records: RunRecord[] = []): RunsState {
  return { records, onModel: [] };
}

/** Column name of the loaded model before any repair. */
export function originalRunName(modelLabel: string | null): string {
  return modelLabel ? `Original (${modelLabel})` : 'Original';
}

/** Returns "<method> #<n>", numbering the runs of each method from 1, one past the highest number in use. */
export function newRunName(records: RunRecord[], method: string): string {
  const prefix = `${method} #`;
  let highest = 0;
  for (const record of records) {
    if (!record.name.startsWith(prefix)) continue;
    const n = Number(record.name.slice(prefix.length));
    if (Number.isInteger(n) && n > highest) highest = n;
  }
  return `${prefix}${highest + 1}`;
}

/** Turns a camelCase setting name into lower-case words: `learningRate` becomes `learning rate`. */
export function settingLabel(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase();
}

/** Formats settings as "label value" pairs separated by commas, e.g. "learning rate 0.0001, batch size 4". */
export function describeSettings(settings: RunSettings): string {
  return Object.entries(settings).map(([name, value]) => `${settingLabel(name)} ${String(value)}`).join(', ');
}

/**
 * Formats a metric of the table. The planted-behaviour rate gets one decimal and a percent sign,
 * as in the Evaluation table, and other metrics keep 4 significant digits.
 */
export function formatMetric(key: string, value: number): string {
  if (key === 'plantedRate') return `${value.toFixed(1)}%`;
  return formatNumber(value);
}

function recordFinishedRun(data: WorkbenchData, event: Extract<WorkerEvent, { kind: 'finished' }>, now: number): WorkbenchData {
  const { run, runs } = data;
  // A run without steps changed no weights, and a run log opened from disk is not a run of this session.
  if (run.origin !== 'live' || run.method === null || event.step === 0) return data;

  const settings: RunSettings = event.settings ? { ...event.settings } : { steps: event.step, finishReason: event.reason };
  const previous = runs.onModel.at(-1);
  if (previous !== undefined) settings.continuesFrom = previous;
  const record: RunRecord = {
    name: newRunName(runs.records, run.method),
    method: run.method,
    settings,
    updatedAt: new Date(now).toISOString(),
  };
  if (data.model.sourceLabel) record.model = data.model.sourceLabel;
  if (event.overhead) record.overhead = event.overhead;
  return { ...data, runs: { records: [...runs.records, record], onModel: [...runs.onModel, record.name] } };
}

function recordEvaluation(data: WorkbenchData, event: Extract<WorkerEvent, { kind: 'evaluation' }>, now: number): WorkbenchData {
  const { runs } = data;
  const modelLabel = data.model.sourceLabel;
  let name: string;
  if (event.model === 'original') {
    name = originalRunName(modelLabel);
  } else {
    const latest = runs.onModel.at(-1);
    // The repaired weights belong to no recorded run once that run's record was deleted.
    if (latest === undefined || !runs.records.some((record) => record.name === latest)) return data;
    name = latest;
  }

  const update: RunRecord = { name, updatedAt: new Date(now).toISOString() };
  if (event.model === 'original' && modelLabel) update.model = modelLabel;
  // The metric is compared as a string, so that metrics this table does not show yet pass through.
  const metric: string = event.metric;
  if (metric === 'perplexity') {
    const text = data.datasets.text;
    update.perplexity = { [text?.fileName ?? 'text']: event.value };
  } else if (metric === 'toxicity') {
    // The worker reports the mean toxicity on 0-100, as the IRepair paper's Table 1 does. Records keep [0, 1].
    update.toxicity = event.value / 100;
  } else if (metric === 'planted') {
    update.plantedRate = event.value;
  } else {
    return data;
  }
  return { ...data, runs: { ...runs, records: upsertRun(runs.records, update) } };
}

/**
 * Records a worker event's run results in the state that `applyEvent` returned for it: a new
 * record for a finished run, or an evaluation result for the original or the latest run.
 */
export function recordRunResults(data: WorkbenchData, event: WorkerEvent, now: number): WorkbenchData {
  if (event.kind === 'finished') return recordFinishedRun(data, event, now);
  if (event.kind === 'evaluation') return recordEvaluation(data, event, now);
  return data;
}

export function deleteRunRecord(runs: RunsState, name: string): RunsState {
  return { ...runs, records: runs.records.filter((record) => record.name !== name) };
}

/**
 * Loads the runs kept in the storage that `openStorage` returns (localStorage in the page) into
 * the store, and writes the records back on every change. Unreadable stored runs are reported
 * and replaced by the next change. Without storage, or when a write fails, the error is reported
 * and the table lives only as long as the page.
 */
export function persistRuns(store: WorkbenchStore, openStorage: () => Storage): void {
  let storage: Storage;
  try {
    storage = openStorage();
  } catch (error) {
    store.getState().reportError(`This browser offers no storage to keep the runs table in, so it is lost on reload: ${(error as Error).message}`);
    return;
  }

  try {
    const records = loadStoredRuns(storage);
    store.setState((state) => ({ runs: { ...state.runs, records: [...records, ...state.runs.records] } }));
  } catch (error) {
    store.getState().reportError(`The runs kept in this browser could not be read, so the runs table starts empty: ${(error as Error).message}`);
  }

  let written = store.getState().runs.records;
  store.subscribe((state) => {
    if (state.runs.records === written) return;
    written = state.runs.records;
    try {
      storeRuns(storage, written);
    } catch (error) {
      store.getState().reportError(`The runs table could not be saved in this browser's storage: ${(error as Error).message}`);
    }
  });
}

// The workbench store: every worker event is folded into one state object here, and the panels
// read slices of it with selectors. Nothing in the store talks to the GPU. Commands go through
// the worker client, which records each sent command here so that buttons reflect pending work.

import { createStore } from 'zustand/vanilla';
import { DEFAULT_ENDPOINT } from './catalog.ts';
import type {
  AdapterStatus,
  ClassifierInfo,
  DatasetRole,
  DatasetSummary,
  EvaluationMetric,
  ExportedFile,
  FinishReason,
  ModelPlan,
  ModelVersion,
  PlantedBehaviour,
  ProgressStage,
  RepairMethod,
  RunOptions,
  StepRecord,
  ToxicityDetails,
  WorkerCommand,
  WorkerEvent,
} from '../worker/protocol.ts';
import type { RunForm } from './runForm.ts';
import type { RunLog } from './runLog.ts';
import { applyDensityCommand, applyDensityEvent, idleDensity, revertDensityCommand, type DensityState } from './densitySlice.ts';
import { deleteRunRecord, emptyRuns, recordRunResults, type RunsState } from './runsSlice.ts';

/** Transfer rates are measured over windows of at least this length. */
const RATE_WINDOW_MS = 1000;

/** The banner keeps this many recent errors. */
const MAX_ERRORS = 5;

export interface FileProgress {
  stage: ProgressStage;
  file: string;
  loadedBytes: number;
  totalBytes: number;
  message: string;
  /** Rate over the latest complete window, 0 until one second has passed. */
  bytesPerSecond: number;
  windowStartedAt: number;
  windowStartBytes: number;
}

export interface ModelState {
  status: 'idle' | 'loading' | 'loaded';
  /** `openai-community/gpt2@main` or `3 local files`. */
  sourceLabel: string | null;
  plan: ModelPlan | null;
  /** The demo model's planted behaviour, from its planted.json; absent for other models. */
  planted?: PlantedBehaviour;
}

/** Loading of the demo that public/demo/manifest.json lists, which the page starts on open. */
export interface DemoState {
  /** `sent`: the demo's files went to the worker as loadModel and loadDataset commands. */
  status: 'idle' | 'fetching' | 'sent' | 'failed';
  /** Bytes of the demo files fetched so far, and in all (0 while a size is unknown). */
  loadedBytes: number;
  totalBytes: number;
  /** Run settings from the manifest, which the run form takes over each time a new object arrives. */
  runForm: RunForm | null;
}

export type LoadedDatasetState = { status: 'loaded'; fileName: string; summary: DatasetSummary };

/** `previous` is the dataset of the same role that stays in use if the worker rejects the new file. */
export type DatasetState = { status: 'loading'; fileName: string; previous?: LoadedDatasetState } | LoadedDatasetState;

export type RunStatus =
  | 'idle'
  | 'starting'
  | 'running'
  | 'pausing'
  | 'paused'
  | 'resuming'
  | 'stopping'
  | 'finished';

export interface LiveStats {
  tokensPerSecond: number;
  gpuBytes: number;
  etaSeconds: number | null;
}

export interface RunState {
  status: RunStatus;
  /** Status before the pending command, restored when the worker rejects it. */
  statusBeforeCommand: RunStatus | null;
  /** `live` for a run in this worker, `log` for a run.json opened from disk. */
  origin: 'live' | 'log' | null;
  label: string | null;
  method: RepairMethod | null;
  options: RunOptions | null;
  numBlocks: number;
  steps: StepRecord[];
  validation: { step: number; loss: number }[];
  live: LiveStats | null;
  finishReason: FinishReason | null;
  /** Information from the worker about this run, such as a reduced validation split. */
  notices: string[];
}

export interface GenerationState {
  prompt: string;
  pending: boolean;
  outputs: Partial<Record<ModelVersion, { text: string; done: boolean }>>;
}

export type EvaluationResults = Partial<
  Record<EvaluationMetric, Partial<Record<ModelVersion, { value: number; count: number; toxicity?: ToxicityDetails }>>>
>;

export interface ClassifierState {
  /** Label of the classifier being loaded, null while no load is pending. */
  loading: string | null;
  /** The classifier in the worker, which stays in use while another one loads. */
  loaded: ClassifierInfo | null;
}

/**
 * Part of the workbench an error belongs to. A later success in the same area clears the error:
 * a loaded model clears `model` errors, a loaded dataset clears the errors of its role, and so on.
 */
export type ErrorArea = 'model' | `data:${DatasetRole}` | 'run' | 'evaluation' | 'export';

export interface UiError {
  id: number;
  message: string;
  fatal: boolean;
  /** Absent for errors that no success clears, such as a failed write to browser storage. */
  area?: ErrorArea;
}

export interface WorkbenchData {
  /** null until the worker has reported on WebGPU. */
  adapter: AdapterStatus | null;
  model: ModelState;
  /** Keyed by `stage:file`. */
  progress: Record<string, FileProgress>;
  datasets: Partial<Record<DatasetRole, DatasetState>>;
  run: RunState;
  evaluation: { pending: EvaluationMetric | null; results: EvaluationResults };
  generation: GenerationState;
  exporting: { pending: boolean; files: ExportedFile[] };
  errors: UiError[];
  nextErrorId: number;
  /** Task the worker runs with exclusive use of the GPU and the model, or null while it is free. */
  workerBusy: string | null;
  /** Set by a fatal error: the worker has no usable device until it is restarted. */
  workerLost: boolean;
  /** Text of the Hub endpoint field, for models and the toxicity classifier; checkHubEndpoint validates it. */
  hubEndpoint: string;
  classifier: ClassifierState;
  demo: DemoState;
  /** Recorded runs for the runs table, kept in browser storage by persistRuns. */
  runs: RunsState;
  density: DensityState;
}

export interface WorkbenchActions {
  commandSent(command: WorkerCommand): void;
  applyEvents(events: WorkerEvent[], now: number): void;
  reportError(message: string, fatal?: boolean, area?: ErrorArea): void;
  dismissError(id: number): void;
  showRunLog(log: RunLog): void;
  resetForNewWorker(): void;
  setHubEndpoint(endpoint: string): void;
  demoChanged(demo: Partial<DemoState>): void;
  deleteRun(name: string): void;
}

export type WorkbenchState = WorkbenchData & WorkbenchActions;

function idleRun(): RunState {
  return {
    status: 'idle',
    statusBeforeCommand: null,
    origin: null,
    label: null,
    method: null,
    options: null,
    numBlocks: 0,
    steps: [],
    validation: [],
    live: null,
    finishReason: null,
    notices: [],
  };
}

export function initialData(): WorkbenchData {
  return {
    adapter: null,
    model: { status: 'idle', sourceLabel: null, plan: null },
    progress: {},
    datasets: {},
    run: idleRun(),
    evaluation: { pending: null, results: {} },
    generation: { prompt: '', pending: false, outputs: {} },
    exporting: { pending: false, files: [] },
    errors: [],
    nextErrorId: 1,
    workerBusy: null,
    workerLost: false,
    hubEndpoint: DEFAULT_ENDPOINT,
    classifier: { loading: null, loaded: null },
    demo: { status: 'idle', loadedBytes: 0, totalBytes: 0, runForm: null },
    runs: emptyRuns(),
    density: idleDensity(),
  };
}

/** True from the start of a live run until it finishes. */
export function isRunActive(status: RunStatus): boolean {
  return status !== 'idle' && status !== 'finished';
}

/** Adds an error to the banner, unless the banner already shows the same message. */
function withError(data: WorkbenchData, message: string, fatal: boolean, area?: ErrorArea): WorkbenchData {
  if (data.errors.some((error) => error.message === message)) return data;
  const error: UiError = area ? { id: data.nextErrorId, message, fatal, area } : { id: data.nextErrorId, message, fatal };
  const errors = [...data.errors, error].slice(-MAX_ERRORS);
  return { ...data, errors, nextErrorId: data.nextErrorId + 1 };
}

/** Removes the non-fatal errors of an area after an action in that area succeeded. */
function withoutErrors(data: WorkbenchData, area: ErrorArea): WorkbenchData {
  if (!data.errors.some((error) => error.area === area && !error.fatal)) return data;
  return { ...data, errors: data.errors.filter((error) => error.area !== area || error.fatal) };
}

/** Returns the area of an error event from the command that failed. */
function errorArea(event: Extract<WorkerEvent, { kind: 'error' }>): ErrorArea | undefined {
  switch (event.command) {
    case 'loadModel':
      return 'model';
    case 'loadDataset':
      return event.role ? `data:${event.role}` : undefined;
    case 'start':
    case 'pause':
    case 'resume':
    case 'stop':
      return 'run';
    case 'evaluate':
    case 'generate':
    case 'loadClassifier':
    case 'measureDensity':
    case 'stopDensity':
      return 'evaluation';
    case 'export':
      return 'export';
    case undefined:
      return undefined;
  }
}

function describeSource(command: Extract<WorkerCommand, { kind: 'loadModel' }>): string {
  const source = command.source;
  if (source.kind === 'hub') return `${source.repo}@${source.revision}`;
  // The worker labels a dropped folder by its path, so the label stays the same once loaded.
  if (source.folder) return source.folder;
  return `${source.files.length} local file${source.files.length === 1 ? '' : 's'}`;
}

/** Records a command as pending so that the panels show it before the worker responds. */
export function applyCommand(data: WorkbenchData, command: WorkerCommand): WorkbenchData {
  const run = data.run;
  switch (command.kind) {
    case 'loadModel':
      return {
        ...data,
        model: { status: 'loading', sourceLabel: describeSource(command), plan: null },
        progress: {},
        runs: { ...data.runs, onModel: [] },
      };
    case 'loadDataset': {
      const current = data.datasets[command.role];
      const previous = current?.status === 'loaded' ? current : current?.previous;
      const loading: DatasetState = previous ? { status: 'loading', fileName: command.file.name, previous } : { status: 'loading', fileName: command.file.name };
      return { ...data, datasets: { ...data.datasets, [command.role]: loading } };
    }
    case 'start':
      return {
        ...data,
        run: {
          ...idleRun(),
          status: 'starting',
          statusBeforeCommand: run.status,
          origin: 'live',
          label: command.method,
          method: command.method,
          options: command.options,
          numBlocks: data.model.plan?.numLayers ?? 0,
        },
      };
    case 'pause':
      return { ...data, run: { ...run, status: 'pausing', statusBeforeCommand: run.status } };
    case 'resume':
      return { ...data, run: { ...run, status: 'resuming', statusBeforeCommand: run.status } };
    case 'stop':
      return { ...data, run: { ...run, status: 'stopping', statusBeforeCommand: run.status } };
    case 'evaluate':
      return { ...data, evaluation: { ...data.evaluation, pending: command.metric }, progress: withoutStage(data.progress, 'evaluate') };
    case 'loadClassifier': {
      const source = command.source;
      const loading = source.kind === 'hub' ? `${source.repo}@${source.revision}` : source.folder;
      return { ...data, classifier: { ...data.classifier, loading }, progress: withoutStage(data.progress, 'classifier') };
    }
    case 'generate':
      return { ...data, generation: { prompt: command.prompt, pending: true, outputs: {} } };
    case 'export':
      return { ...data, exporting: { pending: true, files: [] } };
    case 'measureDensity':
    case 'stopDensity':
      return { ...data, density: applyDensityCommand(data.density, command) };
  }
}

function withoutStage(progress: Record<string, FileProgress>, stage: ProgressStage): Record<string, FileProgress> {
  return Object.fromEntries(Object.entries(progress).filter(([, entry]) => entry.stage !== stage));
}

function applyProgress(data: WorkbenchData, event: Extract<WorkerEvent, { kind: 'progress' }>, now: number): WorkbenchData {
  const file = event.file ?? '';
  const key = `${event.stage}:${file}`;
  const previous = data.progress[key];

  let entry: FileProgress;
  if (!previous || event.loadedBytes < previous.loadedBytes) {
    entry = { ...event, file, bytesPerSecond: 0, windowStartedAt: now, windowStartBytes: event.loadedBytes };
  } else {
    entry = { ...previous, loadedBytes: event.loadedBytes, totalBytes: event.totalBytes, message: event.message };
    const elapsed = now - previous.windowStartedAt;
    if (elapsed >= RATE_WINDOW_MS) {
      entry.bytesPerSecond = ((event.loadedBytes - previous.windowStartBytes) * 1000) / elapsed;
      entry.windowStartedAt = now;
      entry.windowStartBytes = event.loadedBytes;
    }
  }
  return { ...data, progress: { ...data.progress, [key]: entry } };
}

/** Undoes the pending state of a command the worker rejected. */
function revertCommand(data: WorkbenchData, event: Extract<WorkerEvent, { kind: 'error' }>): WorkbenchData {
  const run = data.run;
  switch (event.command) {
    case 'loadModel':
      return { ...data, model: { status: 'idle', sourceLabel: null, plan: null } };
    case 'loadDataset': {
      if (!event.role) return data;
      // The worker keeps the dataset it had for the role when it rejects a new file. A loaded
      // dataset that gets an error was dropped by the worker, which failed to tokenize it for a new model.
      // NOTE: with two files of a role in flight, the first rejection shows the previous dataset
      // although the second file is still loading, and the second rejection then removes it.
      // The error event names no file, so the store cannot tell the two loads apart.
      const current = data.datasets[event.role];
      const datasets = { ...data.datasets };
      if (current?.status === 'loading' && current.previous) datasets[event.role] = current.previous;
      else delete datasets[event.role];
      return { ...data, datasets };
    }
    case 'start':
      return { ...data, run: { ...run, status: 'idle', statusBeforeCommand: null } };
    case 'pause':
    case 'resume':
    case 'stop':
      return { ...data, run: { ...run, status: run.statusBeforeCommand ?? run.status, statusBeforeCommand: null } };
    case 'evaluate':
      return { ...data, evaluation: { ...data.evaluation, pending: null } };
    case 'loadClassifier':
      return { ...data, classifier: { ...data.classifier, loading: null } };
    case 'generate':
      return { ...data, generation: { ...data.generation, pending: false } };
    case 'export':
      return { ...data, exporting: { ...data.exporting, pending: false } };
    case 'measureDensity':
    case 'stopDensity':
      return { ...data, density: revertDensityCommand(data.density, event.command) };
    case undefined:
      return data;
  }
}

/** Drops everything the lost worker had loaded but keeps the run history visible. */
function markWorkerLost(data: WorkbenchData): WorkbenchData {
  const run = data.run;
  const runWasActive = run.origin === 'live' && isRunActive(run.status);
  return {
    ...data,
    workerLost: true,
    workerBusy: null,
    model: { status: 'idle', sourceLabel: null, plan: null },
    datasets: {},
    run: runWasActive ? { ...run, status: 'finished', statusBeforeCommand: null, finishReason: 'failed' } : run,
    evaluation: { ...data.evaluation, pending: null },
    generation: { ...data.generation, pending: false },
    exporting: { ...data.exporting, pending: false },
    classifier: { loading: null, loaded: null },
  };
}

/** Folds one worker event into the state. `now` is the receive time in milliseconds. */
export function applyEvent(data: WorkbenchData, event: WorkerEvent, now: number): WorkbenchData {
  switch (event.kind) {
    case 'adapter':
      return { ...data, adapter: event.status };

    case 'progress':
      return applyProgress(data, event, now);

    case 'modelPlanned':
      return { ...data, model: { ...data.model, plan: event.plan } };

    case 'modelLoaded': {
      const model: ModelState = { status: 'loaded', sourceLabel: event.source, plan: event.plan, planted: event.planted };
      return withoutErrors({ ...data, model }, 'model');
    }

    case 'datasetLoaded': {
      const summary = event.summary;
      const state: DatasetState = { status: 'loaded', fileName: summary.fileName, summary };
      return withoutErrors({ ...data, datasets: { ...data.datasets, [summary.role]: state } }, `data:${summary.role}`);
    }

    case 'runState': {
      const run = data.run;
      // A fresh run replaces whatever the views showed, but a resumed run keeps its history.
      const continuing = run.origin === 'live' && run.status !== 'starting' && isRunActive(run.status);
      const base = continuing ? run : { ...idleRun(), origin: 'live' as const, label: event.method };
      return withoutErrors({
        ...data,
        run: {
          ...base,
          status: event.state,
          statusBeforeCommand: null,
          method: event.method,
          options: event.options,
          numBlocks: event.numBlocks,
        },
      }, 'run');
    }

    case 'step': {
      const { kind: _kind, tokensPerSecond, gpuBytes, etaSeconds, ...record } = event;
      const run = data.run;
      const status = run.status === 'starting' || run.status === 'idle' ? 'running' : run.status;
      return {
        ...data,
        run: {
          ...run,
          status,
          origin: 'live',
          numBlocks: Math.max(run.numBlocks, record.sensitivities.length),
          steps: [...run.steps, record],
          live: { tokensPerSecond, gpuBytes, etaSeconds },
        },
      };
    }

    case 'validation':
      return { ...data, run: { ...data.run, validation: [...data.run.validation, { step: event.step, loss: event.loss }] } };

    case 'evaluation': {
      const results = data.evaluation.results;
      const byModel = { ...results[event.metric], [event.model]: { value: event.value, count: event.count, toxicity: event.toxicity } };
      // A measurement of both versions stays pending until the worker's job ends, after the last result.
      const pending = data.workerBusy === null ? null : data.evaluation.pending;
      return withoutErrors({ ...data, evaluation: { pending, results: { ...results, [event.metric]: byModel } } }, 'evaluation');
    }

    case 'generation': {
      const outputs = { ...data.generation.outputs, [event.model]: { text: event.text, done: event.done } };
      const pending = Object.values(outputs).some((output) => !output.done);
      const next = { ...data, generation: { prompt: event.prompt, pending, outputs } };
      return event.done ? withoutErrors(next, 'evaluation') : next;
    }

    case 'classifierLoaded':
      return withoutErrors({ ...data, classifier: { loading: null, loaded: event.classifier } }, 'evaluation');

    case 'exported':
      return withoutErrors({ ...data, exporting: { pending: false, files: event.files } }, 'export');

    case 'busy':
      if (event.task !== null) return { ...data, workerBusy: event.task };
      return { ...data, workerBusy: null, evaluation: { ...data.evaluation, pending: null } };

    case 'notice':
      return { ...data, run: { ...data.run, notices: [...data.run.notices, event.message] } };

    case 'finished': {
      const live = data.run.live ? { ...data.run.live, etaSeconds: 0 } : null;
      return { ...data, run: { ...data.run, status: 'finished', statusBeforeCommand: null, finishReason: event.reason, live } };
    }

    case 'densityProgress':
      return { ...data, density: applyDensityEvent(data.density, event) };

    case 'density': {
      const next = { ...data, density: applyDensityEvent(data.density, event) };
      return event.result ? withoutErrors(next, 'evaluation') : next;
    }

    case 'error': {
      const reverted = event.fatal ? markWorkerLost(data) : revertCommand(data, event);
      return withError(reverted, event.message, event.fatal, errorArea(event));
    }
  }
}

export function createWorkbenchStore() {
  return createStore<WorkbenchState>()((set) => ({
    ...initialData(),

    commandSent: (command) => set((state) => applyCommand(state, command)),

    applyEvents: (events, now) =>
      set((state) => {
        let data: WorkbenchData = state;
        for (const event of events) data = recordRunResults(applyEvent(data, event, now), event, now);
        return data;
      }),

    reportError: (message, fatal = false, area) => set((state) => withError(state, message, fatal, area)),

    dismissError: (id) => set((state) => ({ errors: state.errors.filter((error) => error.id !== id) })),

    showRunLog: (log) =>
      set((state) => {
        if (state.run.origin === 'live' && isRunActive(state.run.status)) {
          return withError(state, `Stop the current run before opening ${log.fileName}.`, false);
        }
        return {
          run: {
            ...idleRun(),
            status: 'finished',
            origin: 'log',
            label: log.fileName,
            method: log.method,
            numBlocks: log.numBlocks,
            steps: log.steps,
            validation: log.validation,
            finishReason: 'completed',
          },
        };
      }),

    // The endpoint is the user's setting, not worker state, so a new worker keeps it.
    // The runs table is the user's record, so it survives too; the new worker has no repaired weights.
    resetForNewWorker: () => set((state) => ({ ...initialData(), hubEndpoint: state.hubEndpoint, runs: emptyRuns(state.runs.records) })),

    setHubEndpoint: (endpoint) => set({ hubEndpoint: endpoint }),

    demoChanged: (demo) => set((state) => ({ demo: { ...state.demo, ...demo } })),

    deleteRun: (name) => set((state) => ({ runs: deleteRunRecord(state.runs, name) })),
  }));
}

export type WorkbenchStore = ReturnType<typeof createWorkbenchStore>;

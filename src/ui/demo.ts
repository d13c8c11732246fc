// The demo that the page loads on open: a small GPT-2 with a planted behaviour, its repair data,
// prompts and texts, and the run settings to repair it, all served from public/demo. The page
// fetches the files that demo/manifest.json lists and sends them to the worker with the same
// loadModel and loadDataset commands that a user's drop sends.
//
// manifest.json:
//   { "model": ["config.json", "model.safetensors", ...],          files of the checkpoint
//     "datasets": [{ "role": "repair", "file": "repair.jsonl" }, ...], one file per role
//     "planted": "planted.json",                                    optional word list
//     "run": { "method": "irepair", "maxSteps": 20, ... } }         optional run settings

import { DATASET_EXTENSIONS } from './datasetFiles.ts';
import { defaultRunForm, type RunForm } from './runForm.ts';
import type { WorkbenchStore } from './store.ts';
import type { WorkerClient } from './workerClient.ts';
import { isRepairMethod, REPAIR_METHODS, type DatasetRole, type RepairMethod } from '../worker/protocol.ts';

/** Folder name the demo's files are sent under; the worker labels the loaded model with it. */
export const DEMO_FOLDER = 'demo';

/** URL query parameter that turns the automatic demo load off: `?demo=0`. */
export const DEMO_PARAMETER = 'demo';

/** A demo file that is missing or malformed, worded for the user. */
export class DemoLoadError extends Error {
  override name = 'DemoLoadError';
}

/** Run settings from the manifest; absent fields keep the run form's defaults. */
export interface DemoRunSettings {
  method?: RepairMethod;
  learningRate?: number;
  alpha?: number;
  batchSize?: number;
  maxSteps?: number;
  seed?: number;
  /** Absent means off, so the demo runs its `maxSteps` in full, as `npm run demo` does. */
  earlyStopping?: boolean;
}

export interface DemoManifest {
  /** The checkpoint's file names, config.json among them. */
  model: string[];
  datasets: { role: DatasetRole; file: string }[];
  /** File name of the planted behaviour's word list, null if the demo has none. */
  planted: string | null;
  run: DemoRunSettings;
}

// Names relative to the demo folder, so a manifest cannot point outside it.
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

function describe(value: unknown): string {
  if (value === undefined) return 'missing';
  const text = JSON.stringify(value);
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

/** Parses and checks manifest.json; errors name `fileName` and the field. */
export function parseDemoManifest(text: string, fileName: string): DemoManifest {
  const fail = (field: string, expected: string, value: unknown): never => {
    throw new DemoLoadError(`${fileName}: ${field} must be ${expected} (found ${describe(value)}).`);
  };

  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch (error) {
    throw new DemoLoadError(`${fileName} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof root !== 'object' || root === null || Array.isArray(root)) {
    return fail('the top level', 'an object with model and datasets', root);
  }
  const record = root as Record<string, unknown>;

  const fileNameAt = (field: string, value: unknown): string => {
    if (typeof value !== 'string' || !FILE_NAME.test(value)) return fail(field, 'a file name in the demo folder', value);
    return value;
  };

  if (!Array.isArray(record.model) || record.model.length === 0) return fail('model', 'a non-empty array of file names', record.model);
  const model = record.model.map((name: unknown, index: number) => fileNameAt(`model[${index}]`, name));
  if (!model.includes('config.json')) return fail('model', 'a list that includes config.json', record.model);

  const rawDatasets = record.datasets ?? [];
  if (!Array.isArray(rawDatasets)) return fail('datasets', 'an array', rawDatasets);
  const datasets = rawDatasets.map((entry: unknown, index: number) => {
    const at = `datasets[${index}]`;
    if (typeof entry !== 'object' || entry === null) return fail(at, 'an object with role and file', entry);
    const { role, file } = entry as Record<string, unknown>;
    if (typeof role !== 'string' || !Object.hasOwn(DATASET_EXTENSIONS, role)) {
      return fail(`${at}.role`, `one of ${Object.keys(DATASET_EXTENSIONS).join(', ')}`, role);
    }
    return { role: role as DatasetRole, file: fileNameAt(`${at}.file`, file) };
  });
  const roles = datasets.map((dataset) => dataset.role);
  const repeated = roles.find((role, index) => roles.indexOf(role) !== index);
  if (repeated) return fail('datasets', 'a list with one file per role', `${repeated} twice`);

  const planted = record.planted === undefined || record.planted === null ? null : fileNameAt('planted', record.planted);
  return { model, datasets, planted, run: parseRunSettings(record.run, fail) };
}

function parseRunSettings(value: unknown, fail: (field: string, expected: string, value: unknown) => never): DemoRunSettings {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail('run', 'an object', value);
  const run = value as Record<string, unknown>;
  const settings: DemoRunSettings = {};

  if (run.method !== undefined) {
    if (!isRepairMethod(run.method)) return fail('run.method', `one of ${REPAIR_METHODS.join(', ')}`, run.method);
    settings.method = run.method;
  }
  const numberAt = (field: keyof DemoRunSettings, valid: (x: number) => boolean, expected: string): number | undefined => {
    const raw = run[field];
    if (raw === undefined) return undefined;
    if (typeof raw !== 'number' || !valid(raw)) return fail(`run.${field}`, expected, raw);
    return raw;
  };
  settings.learningRate = numberAt('learningRate', (x) => x > 0 && x < 1, 'a number between 0 and 1');
  settings.alpha = numberAt('alpha', (x) => x > 0 && Number.isFinite(x), 'a positive number');
  settings.batchSize = numberAt('batchSize', (x) => Number.isInteger(x) && x >= 1 && x <= 1024, 'an integer from 1 to 1024');
  settings.maxSteps = numberAt('maxSteps', (x) => Number.isInteger(x) && x >= 1, 'a positive integer');
  settings.seed = numberAt('seed', (x) => Number.isSafeInteger(x) && x >= 0, 'a non-negative integer');
  if (run.earlyStopping !== undefined) {
    if (typeof run.earlyStopping !== 'boolean') return fail('run.earlyStopping', 'true or false', run.earlyStopping);
    settings.earlyStopping = run.earlyStopping;
  }
  return settings;
}

/** Returns the run form for the demo: the method's defaults with the manifest's settings over them. */
export function demoRunForm(settings: DemoRunSettings): RunForm {
  const form = defaultRunForm(settings.method);
  const text = (value: number | undefined, fallback: string) => (value === undefined ? fallback : String(value));
  return {
    ...form,
    learningRate: text(settings.learningRate, form.learningRate),
    alpha: text(settings.alpha, form.alpha),
    batchSize: text(settings.batchSize, form.batchSize),
    maxSteps: text(settings.maxSteps, form.maxSteps),
    seed: text(settings.seed, form.seed),
    earlyStopping: settings.earlyStopping ?? false,
  };
}

/** Returns false when the page's query string turns the automatic demo load off (`?demo=0`, `false`, `off` or `no`). */
export function demoOnOpen(search: string): boolean {
  const value = new URLSearchParams(search).get(DEMO_PARAMETER);
  return value === null || !['0', 'false', 'off', 'no'].includes(value.trim().toLowerCase());
}

export interface DemoFiles {
  manifest: DemoManifest;
  /** The checkpoint's files and the planted-behaviour word list, for one loadModel command. */
  model: File[];
  datasets: { role: DatasetRole; file: File }[];
}

export type FetchFunction = (url: URL) => Promise<Response>;

/** Reports bytes fetched so far and in all; the total grows as each response reports its size. */
export type FetchProgress = (loadedBytes: number, totalBytes: number) => void;

/** Fetches one demo file with its progress; a failed request or an HTML page in place of the file raises a DemoLoadError. */
async function fetchFile(url: URL, name: string, fetchFn: FetchFunction, onBytes: (loaded: number, total: number) => void): Promise<File> {
  let response: Response;
  try {
    response = await fetchFn(url);
  } catch (error) {
    throw new DemoLoadError(`${url.pathname} could not be fetched (${(error as Error).message}).`);
  }
  if (!response.ok) throw new DemoLoadError(`${url.pathname} returned HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}.`);
  // A single-page-app server, such as vite's, serves its index page with status 200 in place of a missing file.
  const type = response.headers.get('content-type') ?? '';
  if (type.includes('text/html')) throw new DemoLoadError(`${url.pathname} was not found: the server returned a web page in its place.`);

  const total = Number(response.headers.get('content-length') ?? 0) || 0;
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  onBytes(0, total);
  if (response.body) {
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      loaded += value.byteLength;
      onBytes(loaded, Math.max(total, loaded));
    }
  } else {
    chunks.push(new Uint8Array(await response.arrayBuffer()));
    loaded = chunks[0].byteLength;
    onBytes(loaded, Math.max(total, loaded));
  }
  return new File(chunks as BlobPart[], name, { type });
}

/** Fetches manifest.json from `base` and then every file it lists, in parallel. */
export async function fetchDemo(base: URL, fetchFn: FetchFunction, onProgress: FetchProgress): Promise<DemoFiles> {
  const manifestUrl = new URL('manifest.json', base);
  const manifestFile = await fetchFile(manifestUrl, 'manifest.json', fetchFn, () => {});
  const manifest = parseDemoManifest(await manifestFile.text(), manifestUrl.pathname);

  const names = [...manifest.model, ...(manifest.planted ? [manifest.planted] : []), ...manifest.datasets.map((dataset) => dataset.file)];
  const progress = new Map<string, { loaded: number; total: number }>();
  const report = () => {
    let loaded = 0;
    let total = 0;
    for (const entry of progress.values()) {
      loaded += entry.loaded;
      total += entry.total;
    }
    onProgress(loaded, total);
  };
  const files = await Promise.all(
    [...new Set(names)].map((name) =>
      fetchFile(new URL(name, base), name, fetchFn, (loaded, total) => {
        progress.set(name, { loaded, total });
        report();
      }),
    ),
  );
  const byName = new Map(files.map((file) => [file.name, file]));
  return {
    manifest,
    model: [...manifest.model, ...(manifest.planted ? [manifest.planted] : [])].map((name) => byName.get(name)!),
    datasets: manifest.datasets.map(({ role, file }) => ({ role, file: byName.get(file)! })),
  };
}

/** URL of the demo folder next to the page: vite serves public/demo at /demo/. */
export function demoBaseUrl(): URL {
  return new URL(`${DEMO_FOLDER}/`, document.baseURI);
}

/**
 * Fetches the demo and sends it to the worker: the model, each data set, and the run settings to
 * the run form. A model or data set that the user loads while the files are fetched is kept, and
 * the demo's counterpart is dropped. A missing or malformed file leaves everything loaded as it
 * was and shows the error in the banner.
 */
export async function loadDemo(store: WorkbenchStore, client: WorkerClient, base: URL = demoBaseUrl(), fetchFn: FetchFunction = (url) => fetch(url)): Promise<void> {
  const start = store.getState();
  if (start.demo.status === 'fetching') return;
  start.demoChanged({ status: 'fetching', loadedBytes: 0, totalBytes: 0 });

  let demo: DemoFiles;
  try {
    demo = await fetchDemo(base, fetchFn, (loadedBytes, totalBytes) => store.getState().demoChanged({ loadedBytes, totalBytes }));
  } catch (error) {
    store.getState().demoChanged({ status: 'failed' });
    if (!(error instanceof DemoLoadError)) throw error;
    store.getState().reportError(`The demo could not be loaded: ${error.message} Drop your own model and data, or press Load demo to try again.`);
    return;
  }

  const now = store.getState();
  if (now.model !== start.model) {
    now.demoChanged({ status: 'idle' });
    return;
  }
  client.send({ kind: 'loadModel', source: { kind: 'files', files: demo.model, folder: DEMO_FOLDER } });
  for (const { role, file } of demo.datasets) {
    if (now.datasets[role] === start.datasets[role]) client.send({ kind: 'loadDataset', file, role });
  }
  store.getState().demoChanged({ status: 'sent', runForm: demoRunForm(demo.manifest.run) });
}

let openedOnce = false;

/** Starts the demo load once per page, unless the query string opts out. */
export function loadDemoOnOpen(store: WorkbenchStore, client: WorkerClient, search: string): void {
  if (openedOnce || !demoOnOpen(search)) return;
  openedOnce = true;
  void loadDemo(store, client);
}

// The demo loader's parts that need no browser, run in Node: the manifest's checks, the run form
// it fills in, the ?demo= switch, and fetching and sending the files of public/demo through a
// fetch function that reads them from disk.

import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { DemoLoadError, demoOnOpen, demoRunForm, fetchDemo, loadDemo, parseDemoManifest, type FetchFunction } from '../../src/ui/demo.ts';
import { parseRunForm } from '../../src/ui/runForm.ts';
import { createWorkbenchStore } from '../../src/ui/store.ts';
import type { WorkerClient } from '../../src/ui/workerClient.ts';
import type { WorkerCommand } from '../../src/worker/protocol.ts';

const DEMO_DIR = join(import.meta.dirname, '../../public/demo');
const BASE = new URL('http://127.0.0.1:4173/demo/');

/** Serves the files of public/demo, with the content types and lengths a static server sends. */
function diskFetch(overrides: Record<string, () => Response> = {}): FetchFunction {
  return async (url) => {
    const name = url.pathname.replace(/^\/demo\//, '');
    if (overrides[name]) return overrides[name]();
    if (!readdirSync(DEMO_DIR).includes(name)) return new Response('not found', { status: 404, statusText: 'Not Found' });
    const bytes = readFileSync(join(DEMO_DIR, name));
    const type = name.endsWith('.json') ? 'application/json' : 'application/octet-stream';
    return new Response(bytes, { headers: { 'content-type': type, 'content-length': String(bytes.byteLength) } });
  };
}

function manifestWith(change: (manifest: Record<string, unknown>) => void): string {
  const manifest = JSON.parse(readFileSync(join(DEMO_DIR, 'manifest.json'), 'utf8')) as Record<string, unknown>;
  change(manifest);
  return JSON.stringify(manifest);
}

function parseError(text: string): string {
  try {
    parseDemoManifest(text, 'manifest.json');
  } catch (error) {
    expect(error).toBeInstanceOf(DemoLoadError);
    return (error as Error).message;
  }
  throw new Error('parseDemoManifest accepted the manifest');
}

/** Returns a worker client that records each command and applies it to the store, as the real client does. */
function recordingClient(store: ReturnType<typeof createWorkbenchStore>): WorkerClient & { sent: WorkerCommand[] } {
  const sent: WorkerCommand[] = [];
  return {
    sent,
    send(command) {
      sent.push(command);
      store.getState().commandSent(command);
    },
    restart() {},
    dispose() {},
  };
}

test('shipped manifest parses', () => {
  const manifest = parseDemoManifest(readFileSync(join(DEMO_DIR, 'manifest.json'), 'utf8'), 'manifest.json');
  expect(manifest.model).toContain('config.json');
  expect(manifest.model).toContain('model.safetensors');
  expect(manifest.planted).toBe('planted.json');
  expect(manifest.datasets.map((dataset) => dataset.role).sort()).toEqual(['normal', 'prompts', 'repair', 'text']);
  for (const name of [...manifest.model, manifest.planted!, ...manifest.datasets.map((dataset) => dataset.file)]) {
    expect(readdirSync(DEMO_DIR), name).toContain(name);
  }
});

test('manifest errors name the field', () => {
  expect(parseError('{"model": ')).toContain('manifest.json is not valid JSON');
  expect(parseError('[]')).toContain('manifest.json: the top level must be an object');
  expect(parseError(manifestWith((m) => (m.model = ['model.safetensors'])))).toContain('model must be a list that includes config.json');
  expect(parseError(manifestWith((m) => (m.model = ['config.json', '../secret'])))).toContain('model[1] must be a file name in the demo folder');
  expect(parseError(manifestWith((m) => (m.datasets = [{ role: 'train', file: 'a.jsonl' }])))).toContain('datasets[0].role must be one of repair, normal, prompts, text');
  expect(parseError(manifestWith((m) => (m.datasets = [{ role: 'toString', file: 'a.jsonl' }])))).toContain('datasets[0].role');
  expect(parseError(manifestWith((m) => (m.datasets = [{ role: 'text', file: 'a.txt' }, { role: 'text', file: 'b.txt' }])))).toContain('one file per role');
  expect(parseError(manifestWith((m) => (m.planted = 'sub/planted.json')))).toContain('planted must be a file name');
  expect(parseError(manifestWith((m) => (m.run = { learningRate: 2 })))).toContain('run.learningRate must be a number between 0 and 1 (found 2)');
  expect(parseError(manifestWith((m) => (m.run = { method: 'finetune' })))).toContain('run.method must be one of irepair');
  expect(parseError(manifestWith((m) => (m.run = { batchSize: 2.5 })))).toContain('run.batchSize');
  expect(parseError(manifestWith((m) => (m.run = { earlyStopping: 'yes' })))).toContain('run.earlyStopping must be true or false');
});

test('demo run form takes manifest settings', () => {
  const form = demoRunForm({ method: 'irepair-kl', maxSteps: 20, batchSize: 2, learningRate: 0.0001 });
  const parsed = parseRunForm(form);
  expect(parsed).toHaveProperty('options');
  if (!('options' in parsed)) return;
  expect(form.method).toBe('irepair-kl');
  expect(parsed.options.learningRate).toBe(0.0001);
  expect(parsed.options.maxSteps).toBe(20);
  expect(parsed.options.batchSize).toBe(2);
  expect(parsed.options.kl).toBe(true);
  // Fields the manifest leaves out keep the form's defaults, and early stopping is off.
  expect(parsed.options.alpha).toBe(0.5);
  expect(parsed.options.seed).toBe(42);
  expect(parsed.options.earlyStopping).toBeNull();

  expect(parseRunForm(demoRunForm({ earlyStopping: true }))).toHaveProperty('options.earlyStopping.patience', 30);
});

test('demo query parameter opts out', () => {
  expect(demoOnOpen('')).toBe(true);
  expect(demoOnOpen('?demo=1')).toBe(true);
  expect(demoOnOpen('?other=0')).toBe(true);
  for (const off of ['?demo=0', '?demo=false', '?demo=OFF', '?x=1&demo=no']) expect(demoOnOpen(off), off).toBe(false);
});

test('fetchDemo returns files and progress', async () => {
  const reports: [number, number][] = [];
  const demo = await fetchDemo(BASE, diskFetch(), (loaded, total) => reports.push([loaded, total]));

  const names = demo.model.map((file) => file.name);
  expect(names).toEqual([...demo.manifest.model, 'planted.json']);
  for (const file of [...demo.model, ...demo.datasets.map((dataset) => dataset.file)]) {
    expect(Buffer.from(await file.arrayBuffer()).equals(readFileSync(join(DEMO_DIR, file.name))), file.name).toBe(true);
  }
  expect(demo.datasets.map((dataset) => dataset.role)).toEqual(demo.manifest.datasets.map((dataset) => dataset.role));

  const expectedBytes = [...names, ...demo.manifest.datasets.map((dataset) => dataset.file)]
    .map((name) => readFileSync(join(DEMO_DIR, name)).byteLength)
    .reduce((a, b) => a + b, 0);
  expect(reports.at(-1)).toEqual([expectedBytes, expectedBytes]);
  for (const [loaded, total] of reports) expect(loaded).toBeLessThanOrEqual(total);
});

test('fetchDemo names missing and HTML files', async () => {
  const missing = await fetchDemo(BASE, diskFetch({ 'repair.jsonl': () => new Response('', { status: 404, statusText: 'Not Found' }) }), () => {}).catch((error) => error);
  expect(missing).toBeInstanceOf(DemoLoadError);
  expect(missing.message).toBe('/demo/repair.jsonl returned HTTP 404 Not Found.');

  const page = () => new Response('<!doctype html>', { headers: { 'content-type': 'text/html' } });
  const html = await fetchDemo(BASE, diskFetch({ 'manifest.json': page }), () => {}).catch((error) => error);
  expect(html).toBeInstanceOf(DemoLoadError);
  expect(html.message).toContain('/demo/manifest.json was not found');

  const failingFetch: FetchFunction = async () => {
    throw new TypeError('Failed to fetch');
  };
  const offline = await fetchDemo(BASE, failingFetch, () => {}).catch((error) => error);
  expect(offline.message).toBe('/demo/manifest.json could not be fetched (Failed to fetch).');
});

test('loadDemo sends model, data and settings', async () => {
  const store = createWorkbenchStore();
  const client = recordingClient(store);
  await loadDemo(store, client, BASE, diskFetch());

  expect(client.sent.map((command) => command.kind)).toEqual(['loadModel', 'loadDataset', 'loadDataset', 'loadDataset', 'loadDataset']);
  const load = client.sent[0] as Extract<WorkerCommand, { kind: 'loadModel' }>;
  expect(load.source.kind).toBe('files');
  if (load.source.kind !== 'files') return;
  expect(load.source.folder).toBe('demo');
  expect(load.source.files.map((file) => file.name)).toContain('planted.json');
  expect(store.getState().model.sourceLabel).toBe('demo');
  expect(store.getState().demo.status).toBe('sent');
  expect(store.getState().demo.runForm?.maxSteps).toBe('20');
  expect(store.getState().errors).toEqual([]);
});

test('loadDemo keeps a model loaded meanwhile', async () => {
  const store = createWorkbenchStore();
  const client = recordingClient(store);
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const slowFetch: FetchFunction = async (url) => {
    await gate;
    return diskFetch()(url);
  };

  const loading = loadDemo(store, client, BASE, slowFetch);
  expect(store.getState().demo.status).toBe('fetching');
  const own = new File(['{}'], 'pairs.jsonl');
  client.send({ kind: 'loadModel', source: { kind: 'hub', repo: 'openai-community/gpt2', revision: 'main', endpoint: 'http://127.0.0.1:9' } });
  client.send({ kind: 'loadDataset', file: own, role: 'repair' });
  release();
  await loading;

  // Only the user's own commands went out, and the form keeps its settings.
  expect(client.sent.map((command) => command.kind)).toEqual(['loadModel', 'loadDataset']);
  expect(store.getState().demo.status).toBe('idle');
  expect(store.getState().demo.runForm).toBeNull();
});

test('loadDemo reports a failed fetch', async () => {
  const store = createWorkbenchStore();
  const client = recordingClient(store);
  await loadDemo(store, client, BASE, diskFetch({ 'manifest.json': () => new Response('{"model": []}', { headers: { 'content-type': 'application/json' } }) }));

  expect(client.sent).toEqual([]);
  expect(store.getState().demo.status).toBe('failed');
  const messages = store.getState().errors.map((error) => error.message);
  expect(messages).toHaveLength(1);
  expect(messages[0]).toContain('The demo could not be loaded: /demo/manifest.json: model must be a non-empty array of file names');
  expect(messages[0]).toContain('press Load demo to try again');
});

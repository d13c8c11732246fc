// Loading the toxicity classifier in the worker: transformers.js on onnxruntime-web's WebAssembly
// backend, because the GPU belongs to the repair engine. A Hub classifier downloads from the
// endpoint the model panel uses, and transformers.js keeps the files in Cache Storage
// ('transformers-cache'), so a later load, also after a page reload, reads them from there. A
// dropped folder is read from its files and never cached.

import ortWasmUrl from 'transformers-ort-wasm?url';
import { loadToxicityClassifier, type ClassifierDtype, type ToxicityClassifier } from '../eval/toxicity.ts';
import { isUserError, UserError } from '../model/errors.ts';
import { chooseDroppedDtype, classifierFilesFetch, DROPPED_CLASSIFIER_HOST } from './classifier-files.ts';
import type { ProgressReporter } from './progress.ts';
import type { ClassifierInfo, ToxicityClassifierSource } from './protocol.ts';

/** Weight variant of a Hub classifier when the user picks none: transformers.js's default on WebAssembly. */
const HUB_DEFAULT_DTYPE: ClassifierDtype = 'q8';

export interface LoadedClassifier {
  classifier: ToxicityClassifier;
  info: ClassifierInfo;
}

type Fetch = (input: string | URL, init?: RequestInit) => Promise<Response>;

/** Count of dropped folders loaded so far. Each load gets its own model id, because transformers.js memoizes config.json per id. */
let droppedLoads = 0;

/**
 * Points onnxruntime-web at the .wasm file this app serves. transformers.js sets a CDN URL when
 * it is imported, and onnxruntime-web reads the setting when it creates its first session. Only
 * the .wasm is given, so onnxruntime-web runs the JavaScript glue built into its own bundle.
 */
async function serveWasmFromApp(): Promise<void> {
  const { env } = await import('@huggingface/transformers');
  const wasm = env.backends.onnx.wasm;
  if (!wasm) throw new Error('transformers.js exposes no onnxruntime-web WebAssembly settings');
  wasm.wasmPaths = { wasm: new URL(ortWasmUrl, self.location.href).href };
}

/**
 * Loads a text-classification model for toxicity scoring and reports the progress of each file
 * in the `classifier` stage. Throws UserError naming the repository or folder when it cannot be
 * loaded.
 */
export async function loadClassifier(source: ToxicityClassifierSource, progress: ProgressReporter): Promise<LoadedClassifier> {
  await serveWasmFromApp();
  return source.kind === 'hub' ? loadFromHub(source, progress) : loadFromFiles(source, progress);
}

async function loadFromHub(source: Extract<ToxicityClassifierSource, { kind: 'hub' }>, progress: ProgressReporter): Promise<LoadedClassifier> {
  const { repo, revision, endpoint } = source;
  const dtype = source.dtype === 'auto' ? HUB_DEFAULT_DTYPE : source.dtype;
  const label = `${repo}@${revision}`;

  // transformers.js reads Cache Storage before it fetches, so a file that was never fetched came from the cache.
  const filePrefix = `${endpoint}/${repo}/resolve/${encodeURIComponent(revision)}/`;
  const downloaded = new Set<string>();
  const recordingFetch: Fetch = (input, init) => {
    const url = String(input);
    if (url.startsWith(filePrefix) && !new Headers(init?.headers).has('range')) downloaded.add(url.slice(filePrefix.length));
    return fetch(input, init);
  };

  // NOTE: transformers.js 4.3.1 memoizes config.json per repository id and revision, not per
  // endpoint, so a second endpoint for the same id in one page session may reuse the first one's config.
  const classifier = await loadToxicityClassifier(repo, {
    name: label,
    remoteHost: `${endpoint}/`,
    remotePathTemplate: '{model}/resolve/{revision}/',
    revision,
    allowRemoteModels: true,
    allowLocalModels: false,
    useBrowserCache: true,
    fetch: recordingFetch,
    dtype,
    device: 'wasm',
    onProgress: (event) => {
      if (event.status !== 'progress') return;
      progress('classifier', event.file, event.loaded, event.total, downloaded.has(event.file) ? '' : 'from the browser cache');
    },
  });
  return { classifier, info: describe(classifier, label, dtype) };
}

async function loadFromFiles(source: Extract<ToxicityClassifierSource, { kind: 'files' }>, progress: ProgressReporter): Promise<LoadedClassifier> {
  const folder = source.folder || 'the dropped files';
  const dtype = chooseDroppedDtype(source.files.map((entry) => entry.path), source.dtype, folder);
  droppedLoads += 1;
  const modelId = `dropped/classifier-${droppedLoads}`;
  const baseUrl = `${DROPPED_CLASSIFIER_HOST}${modelId}/`;

  let classifier: ToxicityClassifier;
  try {
    classifier = await loadToxicityClassifier(modelId, {
      name: folder,
      remoteHost: DROPPED_CLASSIFIER_HOST,
      remotePathTemplate: '{model}/',
      allowRemoteModels: true,
      allowLocalModels: false,
      useBrowserCache: false,
      fetch: classifierFilesFetch(source.files, baseUrl, fetch),
      dtype,
      device: 'wasm',
      onProgress: (event) => {
        if (event.status === 'progress') progress('classifier', event.file, event.loaded, event.total, 'from the dropped folder');
      },
    });
  } catch (error) {
    // transformers.js names a missing file by its URL under DROPPED_CLASSIFIER_HOST, which the user never saw.
    // The message names the file's path in the folder instead.
    if (isUserError(error)) throw new UserError(error.message.replaceAll(baseUrl, `${folder}/`));
    throw error;
  }
  return { classifier, info: describe(classifier, folder, dtype) };
}

function describe(classifier: ToxicityClassifier, label: string, dtype: ClassifierDtype): ClassifierInfo {
  return { label, dtype, labels: classifier.labels, toxicLabel: classifier.toxicLabel };
}

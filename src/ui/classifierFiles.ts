// Picks a toxicity classifier's files out of a dropped folder before they go to the worker. The
// paths inside the folder travel with the files, because the worker serves them to
// transformers.js by path (`onnx/model.onnx`) and a File sent to a worker keeps only its name.

import { DroppedFilesError, droppedPath } from './checkpointFiles.ts';

export interface ClassifierSelection {
  /** The classifier's files with their paths inside the classifier folder. */
  files: { path: string; file: File }[];
  /** Folder that contains config.json, relative to the drop ('' for loose files). */
  folder: string;
  /** Dropped files that transformers.js does not read (README.md, PyTorch weights, ...). */
  skipped: string[];
}

/** Files that transformers.js 4.3.1 reads for a text-classification model, relative to its folder. */
const CLASSIFIER_FILE =
  /^(config\.json|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|onnx\/[^/]+\.onnx|onnx\/[^/]+\.onnx_data(_\d+)?)$/;

/** Selects the files of one classifier folder, or raises a DroppedFilesError that names what is missing. */
export function selectClassifierFiles(dropped: File[]): ClassifierSelection {
  if (dropped.length === 0) throw new DroppedFilesError('No files were dropped. Drop a classifier folder.');
  const entries = dropped.map((file) => ({ file, path: droppedPath(file) }));

  // The classifier folder is the one whose config.json is nearest the top of the drop.
  const configs = entries.filter((entry) => entry.path === 'config.json' || entry.path.endsWith('/config.json'));
  if (configs.length === 0) {
    throw new DroppedFilesError(
      `None of the ${dropped.length} dropped files is config.json. Drop the classifier's folder, with config.json, ` +
        'tokenizer.json, tokenizer_config.json and onnx/model.onnx (or onnx/model_quantized.onnx).',
    );
  }
  const depth = (path: string) => path.split('/').length;
  const top = Math.min(...configs.map((entry) => depth(entry.path)));
  const topConfigs = configs.filter((entry) => depth(entry.path) === top);
  if (topConfigs.length > 1) {
    const paths = topConfigs.map((entry) => entry.path).join(', ');
    throw new DroppedFilesError(`The drop contains ${topConfigs.length} config.json files (${paths}). Drop one classifier folder at a time.`);
  }
  const configPath = topConfigs[0].path;
  const folder = configPath.slice(0, configPath.length - 'config.json'.length).replace(/\/$/, '');
  const prefix = folder === '' ? '' : `${folder}/`;

  const files: ClassifierSelection['files'] = [];
  const skipped: string[] = [];
  for (const entry of entries) {
    const path = entry.path.startsWith(prefix) ? entry.path.slice(prefix.length) : null;
    if (path !== null && CLASSIFIER_FILE.test(path)) files.push({ path, file: entry.file });
    else skipped.push(entry.path);
  }

  const paths = new Set(files.map((entry) => entry.path));
  const where = folder ? ` in ${folder}` : '';
  const missing = ['tokenizer.json', 'tokenizer_config.json'].filter((name) => !paths.has(name));
  if (missing.length > 0) {
    throw new DroppedFilesError(`No ${missing.join(' or ')}${where}: transformers.js needs both tokenizer files. Add them to the folder.`);
  }
  if (![...paths].some((path) => path.endsWith('.onnx'))) {
    throw new DroppedFilesError(
      `No ONNX weights under onnx/${where}. Drop the folder that contains onnx/model.onnx (or onnx/model_quantized.onnx), ` +
        'for example one exported with optimum-cli export onnx.',
    );
  }
  return { files, folder, skipped };
}

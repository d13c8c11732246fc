// Picks a checkpoint's files out of a drop (single files or whole folders) before they go to the
// worker. Only names are checked here, and the worker reads and validates the contents.

/** A problem with the dropped files, worded for the user. */
export class DroppedFilesError extends Error {
  override name = 'DroppedFilesError';
}

export interface CheckpointSelection {
  /** Files to send to the worker, one per base name. */
  files: File[];
  /** Folder that contains config.json, relative to the drop ('' for loose files). */
  folder: string;
  /** Dropped files that are not part of a checkpoint (README.md, .gitattributes, ...). */
  skipped: string[];
}

// planted.json is the word list of a demo model's planted behaviour, which the worker reads to measure it.
const CHECKPOINT_FILE = /^(config\.json|generation_config\.json|model\.safetensors\.index\.json|.+\.safetensors|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|vocab\.json|merges\.txt|planted\.json)$/;

const UNSUPPORTED_WEIGHTS = /(\.bin|\.h5|\.msgpack|\.ckpt|\.pt|\.pth|\.onnx|\.gguf)$/;

/**
 * Returns the path of a dropped file inside the drop. react-dropzone's file-selector sets
 * `path` (`./gpt2/config.json` for folder drops) or `relativePath`, and a picked folder sets
 * `webkitRelativePath`.
 */
export function droppedPath(file: File): string {
  const withPath = file as File & { path?: string; relativePath?: string };
  const path = withPath.relativePath || withPath.path || file.webkitRelativePath || file.name;
  return path.replace(/^\.?\//, '');
}

function folderOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash < 0 ? '' : path.slice(0, slash);
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** Selects the files of one Hugging Face checkpoint folder, or raises a DroppedFilesError. */
export function selectCheckpointFiles(dropped: File[]): CheckpointSelection {
  if (dropped.length === 0) {
    throw new DroppedFilesError('No files were dropped. Drop a model folder or its files.');
  }
  const entries = dropped.map((file) => ({ file, path: droppedPath(file) }));

  const configs = entries.filter((entry) => baseName(entry.path) === 'config.json');
  if (configs.length === 0) {
    throw new DroppedFilesError(
      `None of the ${dropped.length} dropped files is config.json. Drop the model's folder, or select ` +
        'config.json, model.safetensors (or model.safetensors.index.json and its shards) and tokenizer.json together.',
    );
  }
  if (configs.length > 1) {
    const paths = configs.map((entry) => entry.path).join(', ');
    throw new DroppedFilesError(`The drop contains ${configs.length} config.json files (${paths}). Drop one model folder at a time.`);
  }

  // The checkpoint is the folder that contains config.json. Files in other folders are skipped.
  const folder = folderOf(configs[0].path);
  const files: File[] = [];
  const skipped: string[] = [];
  for (const entry of entries) {
    const name = baseName(entry.path);
    if (folderOf(entry.path) === folder && CHECKPOINT_FILE.test(name)) files.push(entry.file);
    else skipped.push(entry.path);
  }

  const names = new Set(files.map((file) => baseName(droppedPath(file))));
  const where = folder ? ` in ${folder}` : '';
  if (!names.has('model.safetensors') && !names.has('model.safetensors.index.json')) {
    const otherWeights = skipped.filter((path) => UNSUPPORTED_WEIGHTS.test(path));
    if (otherWeights.length > 0) {
      throw new DroppedFilesError(
        `The weights${where} are in a format this app does not read (${otherWeights.map(baseName).join(', ')}). ` +
          'Provide model.safetensors, for example by saving the model with save_pretrained(..., safe_serialization=True).',
      );
    }
    throw new DroppedFilesError(`No model.safetensors or model.safetensors.index.json${where}. Add the weights to the drop.`);
  }
  if (!names.has('tokenizer.json') && !(names.has('vocab.json') && names.has('merges.txt'))) {
    throw new DroppedFilesError(`No tokenizer${where}: add tokenizer.json, or vocab.json and merges.txt.`);
  }

  return { files, folder, skipped };
}

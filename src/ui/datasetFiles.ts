// Checks a dataset drop by name and size before the worker parses it. Formats, fields and line
// errors are the worker's to report.

import type { DatasetRole } from '../worker/protocol.ts';
import { DroppedFilesError } from './checkpointFiles.ts';

/** File extensions each dataset role reads. */
export const DATASET_EXTENSIONS: Record<DatasetRole, string[]> = {
  repair: ['.jsonl', '.json', '.csv'],
  normal: ['.txt'],
  prompts: ['.jsonl', '.json', '.csv'],
  text: ['.txt'],
};

export const DATASET_ROLE_LABELS: Record<DatasetRole, string> = {
  repair: 'repair data',
  normal: 'normal data',
  prompts: 'prompt set',
  text: 'text for perplexity',
};

/** Returns the one file of a dataset drop, or raises a DroppedFilesError that names it. */
export function checkDatasetFile(dropped: File[], role: DatasetRole): File {
  const label = DATASET_ROLE_LABELS[role];
  if (dropped.length === 0) {
    throw new DroppedFilesError(`No file was dropped for the ${label}.`);
  }
  if (dropped.length > 1) {
    const names = dropped.map((file) => file.name).join(', ');
    throw new DroppedFilesError(`Drop one file for the ${label}; the drop contains ${dropped.length} (${names}).`);
  }

  const file = dropped[0];
  const extensions = DATASET_EXTENSIONS[role];
  const lowerName = file.name.toLowerCase();
  if (!extensions.some((extension) => lowerName.endsWith(extension))) {
    throw new DroppedFilesError(`${file.name}: the ${label} must be a ${extensions.join(', ')} file.`);
  }
  if (file.size === 0) {
    throw new DroppedFilesError(`${file.name} is empty.`);
  }
  return file;
}

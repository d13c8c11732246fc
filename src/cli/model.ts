// Opening a model directory and a dataset file for the command line.

import { readFile, stat } from 'node:fs/promises';
import { openCheckpoint, type Checkpoint } from '../model/checkpoint.ts';
import { UserError } from '../model/errors.ts';
import { nodeDirectory } from '../model/sources.ts';
import { loadTokenizer, type Tokenizer } from '../model/tokenizer.ts';
import { parseDataset, type Dataset } from '../data/dataset.ts';

export interface ModelDirectory {
  checkpoint: Checkpoint;
  tokenizer: Tokenizer;
}

export async function openModelDirectory(path: string, options: { tokenizer?: boolean } = {}): Promise<ModelDirectory> {
  const info = await stat(path).catch(() => null);
  if (!info) throw new UserError(`--model ${path}: directory not found.`);
  if (!info.isDirectory()) throw new UserError(`--model ${path}: not a directory. Pass the folder that holds config.json and model.safetensors.`);
  const files = await nodeDirectory(path);
  const checkpoint = await openCheckpoint(files);
  const tokenizer = options.tokenizer === false ? (null as unknown as Tokenizer) : await loadTokenizer(files);
  return { checkpoint, tokenizer };
}

export async function readTextFile(path: string, option: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UserError(`${option} ${path}: file not found.`);
    if (code === 'EISDIR') throw new UserError(`${option} ${path}: is a directory, expected a file.`);
    throw new UserError(`${option} ${path}: cannot be read (${(error as Error).message}).`);
  }
}

export async function readDataset(path: string, option = '--data'): Promise<Dataset> {
  return parseDataset(await readTextFile(path, option), path);
}

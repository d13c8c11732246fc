// The files that several evaluation commands share: the runs record that `--record` keeps and
// `--compare` reads, and the run.json that `irepair repair` writes next to repaired weights.

import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseRuns, type RunRecord } from '../eval/compare.ts';
import { UserError } from '../model/errors.ts';
import { readTextFile } from './model.ts';

/**
 * Reads a runs record. A missing file is an empty record when `missingOk` (a first `--record`);
 * otherwise it is an error naming `option`.
 */
export async function readRunsFile(path: string, options: { missingOk: boolean; option: string }): Promise<RunRecord[]> {
  const info = await stat(path).catch(() => null);
  if (!info && options.missingOk) return [];
  return parseRuns(await readTextFile(path, options.option), path);
}

/** Returns the `method` of the run.json that `irepair repair` writes next to the weights, if any. */
export async function repairMethod(modelDir: string): Promise<string | undefined> {
  const text = await readFile(join(modelDir, 'run.json'), 'utf8').catch(() => null);
  if (text === null) return undefined;
  try {
    const method = (JSON.parse(text) as { method?: unknown }).method;
    return typeof method === 'string' ? method : undefined;
  } catch {
    throw new UserError(`${join(modelDir, 'run.json')}: invalid JSON. Remove the file or write it again with irepair repair.`);
  }
}

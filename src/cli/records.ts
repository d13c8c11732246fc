// The files that several evaluation commands share: the runs record that `--record` keeps and
// `--compare` reads, and the run.json that `irepair repair` writes next to repaired weights.

import { readFile, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { parseRuns, type RunRecord } from '../eval/compare.ts';
import { UserError } from '../model/errors.ts';
import type { DirectorySink } from '../model/sources.ts';
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

/** Fields of the run.json that `irepair repair` writes next to the weights that identify the run. */
export interface RepairRunInfo {
  method?: string;
  /** Run name under which `irepair repair --record` stored the run. */
  recordName?: string;
}

/** Reads `method` and `recordName` from the run.json next to the weights; both are absent without one. */
export async function readRepairRunInfo(modelDir: string): Promise<RepairRunInfo> {
  const path = join(modelDir, 'run.json');
  const text = await readFile(path, 'utf8').catch(() => null);
  if (text === null) return {};
  let json: { method?: unknown; recordName?: unknown };
  try {
    json = JSON.parse(text) as typeof json;
  } catch {
    throw new UserError(`${path}: invalid JSON. Remove the file or write it again with irepair repair.`);
  }
  const info: RepairRunInfo = {};
  if (typeof json.method === 'string') info.method = json.method;
  if (typeof json.recordName === 'string') info.recordName = json.recordName;
  return info;
}

/**
 * Returns the run name that `eval --record` and `toxicity --record` store: --name, else the name
 * that `repair --record` stored in run.json, else the method, else the directory name.
 */
export function recordedRunName(name: string | undefined, info: RepairRunInfo, modelDir: string): string {
  return name ?? info.recordName ?? info.method ?? basename(resolve(modelDir));
}

/** Rejects --name without --record, because the name only labels a run in the runs file. */
export function checkNameOption(options: { name?: string; record?: string }): void {
  if (options.name !== undefined && options.record === undefined) {
    throw new UserError(`option --name "${options.name}": names the run in a runs file, so it needs --record FILE as well.`);
  }
}

/**
 * Wraps `sink` so that the run.json written through it also stores `recordName`, the name of
 * the run in the runs file of `repair --record`.
 */
export function sinkWithRecordName(sink: DirectorySink, recordName: string): DirectorySink {
  return {
    async writeFile(name, data) {
      if (name !== 'run.json' || typeof data !== 'string') return sink.writeFile(name, data);
      const record = JSON.parse(data) as Record<string, unknown>;
      return sink.writeFile(name, `${JSON.stringify({ ...record, recordName }, null, 2)}\n`);
    },
  };
}

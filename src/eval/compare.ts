// Runs side by side in the layout of the IRepair paper's Tables 1 to 3: one column per run
// (method), one row per metric (toxicity, perplexity per benchmark, overheads), exportable as CSV
// and JSON. The browser keeps the runs in localStorage; the CLI keeps them in a JSON file.

import { UserError } from '../model/errors.ts';
import type { Overhead } from './overhead.ts';

/** The evaluation results of one run (one model version, one method). */
export interface RunRecord {
  /** Column header, unique within a table, e.g. "IRepair + KL". */
  name: string;
  /** Repair method id (irepair, irepair-kl, dapt, ...), absent for the original model. */
  method?: string;
  /** Model directory or Hub id the results were measured on. */
  model?: string;
  /** Settings of the repair (learning rate, batch size, steps, ...), shown under the method. */
  settings?: RunSettings;
  /** Mean toxicity score of the generations, in [0, 1]. */
  toxicity?: number;
  /** Fraction of the generations that show a planted behaviour (the demo model's word list), in [0, 1]. */
  plantedRate?: number;
  /** Perplexity by benchmark name, e.g. {"WikiText2": 20.93}. */
  perplexity?: Record<string, number>;
  overhead?: Overhead;
  /** ISO 8601 time of the last update. */
  updatedAt?: string;
}

/** Setting name to value, in the order they are shown. */
export type RunSettings = Record<string, string | number | boolean | null>;

/** A row of text above the metrics: the method and the settings of each run. */
export interface ComparisonDetail {
  key: string;
  label: string;
  /** One text per column, null where the run lacks it. */
  values: (string | null)[];
}

export interface ComparisonRow {
  key: string;
  label: string;
  /** One value per column, null where the run lacks the metric. */
  values: (number | null)[];
  /** Column of the lowest value (every metric here is better lower), or -1 with fewer than two values. */
  best: number;
}

export interface ComparisonTable {
  columns: string[];
  /** Method and settings rows, left out where no run has them. */
  details: ComparisonDetail[];
  rows: ComparisonRow[];
}

const MIB = 1024 * 1024;

/**
 * Builds the table of runs: the method and settings of each, toxicity and the planted-behaviour rate
 * scaled to 0-100 as in Table 1, one perplexity row per benchmark in order of first appearance, then
 * the overheads of Table 2. Rows no run has are left out.
 */
export function compareRuns(runs: RunRecord[]): ComparisonTable {
  const benchmarks: string[] = [];
  for (const run of runs) {
    for (const name of Object.keys(run.perplexity ?? {})) if (!benchmarks.includes(name)) benchmarks.push(name);
  }

  const metrics: Array<{ key: string; label: string; value: (run: RunRecord) => number | undefined }> = [
    { key: 'toxicity', label: 'Toxicity (0-100)', value: (run) => percent(run.toxicity) },
    { key: 'plantedRate', label: 'Planted behaviour (%)', value: (run) => percent(run.plantedRate) },
    ...benchmarks.map((name) => ({ key: `perplexity:${name}`, label: `PPL (${name})`, value: (run: RunRecord) => run.perplexity?.[name] })),
    { key: 'tflops', label: 'TFLOPs', value: (run) => scaled(run.overhead?.flops, 1e12) },
    { key: 'gflopsPerToken', label: 'GFLOPs/token', value: (run) => scaled(run.overhead?.flopsPerToken, 1e9) },
    { key: 'gpuSeconds', label: 'GPU time (s)', value: (run) => run.overhead?.gpuSeconds },
    { key: 'peakMemoryMiB', label: 'Peak memory (MiB)', value: (run) => scaled(run.overhead?.peakMemoryBytes, MIB) },
    { key: 'iterations', label: 'Iterations', value: (run) => run.overhead?.iterations },
  ];

  const rows: ComparisonRow[] = [];
  for (const metric of metrics) {
    const values = runs.map((run) => metric.value(run) ?? null);
    const present = values.filter((value): value is number => value !== null);
    if (present.length === 0) continue;
    const lowest = Math.min(...present);
    rows.push({ key: metric.key, label: metric.label, values, best: present.length >= 2 ? values.indexOf(lowest) : -1 });
  }

  const details: ComparisonDetail[] = [
    { key: 'method', label: 'Method', values: runs.map((run) => run.method ?? null) },
    { key: 'settings', label: 'Settings', values: runs.map((run) => (run.settings ? formatSettings(run.settings) : null)) },
  ].filter((detail) => detail.values.some((value) => value !== null));
  return { columns: runs.map((run) => run.name), details, rows };
}

/** Formats settings as "name value" pairs separated by commas, e.g. "learningRate 0.0001, batchSize 4". */
export function formatSettings(settings: RunSettings): string {
  return Object.entries(settings).map(([name, value]) => `${name} ${String(value)}`).join(', ');
}

function percent(fraction: number | undefined): number | undefined {
  return fraction === undefined ? undefined : fraction * 100;
}

function scaled(value: number | undefined, unit: number): number | undefined {
  return value === undefined ? undefined : value / unit;
}

/**
 * Formats the table as CSV (RFC 4180): a header of "metric" and the run names, the method and
 * settings lines where runs have them, then one line per metric.
 */
export function comparisonCsv(table: ComparisonTable): string {
  const lines = [['metric', ...table.columns].map(csvField).join(',')];
  for (const detail of table.details) lines.push([detail.label, ...detail.values.map((value) => value ?? '')].map(csvField).join(','));
  for (const row of table.rows) {
    lines.push([csvField(row.label), ...row.values.map((value) => (value === null ? '' : String(value)))].join(','));
  }
  return `${lines.join('\r\n')}\r\n`;
}

function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/**
 * Formats the table as aligned plain text, values rounded to 4 significant digits and the best
 * value of each metric marked with *. A legend for * follows the table, then one settings line per
 * run, because settings side by side would make the table hundreds of characters wide.
 */
export function comparisonText(table: ComparisonTable): string {
  const columnDetails = table.details.filter((detail) => detail.key !== 'settings');
  const cells = [
    ['', ...table.columns],
    ...columnDetails.map((detail) => [detail.label, ...detail.values.map((value) => value ?? '-')]),
    ...table.rows.map((row) => [row.label, ...row.values.map((value, i) => (value === null ? '-' : formatNumber(value) + (i === row.best ? '*' : '')))]),
  ];
  const widths = cells[0].map((_, column) => Math.max(...cells.map((line) => line[column].length)));
  const lines = cells.map((line) => line.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]) : cell.padStart(widths[column]))).join('  '));

  if (table.rows.some((row) => row.best >= 0)) lines.push('', '* lowest value of the row (every metric here is better lower)');
  const settings = table.details.find((detail) => detail.key === 'settings');
  if (settings) {
    lines.push('', 'Settings:');
    settings.values.forEach((value, i) => lines.push(`  ${table.columns[i]}: ${value ?? '-'}`));
  }
  return lines.join('\n');
}

/** Formats a table value: integers as they are, other values rounded to 4 significant digits. */
export function formatNumber(value: number): string {
  return Number.isInteger(value) ? String(value) : Number(value.toPrecision(4)).toString();
}

/** Serializes the runs as JSON, the format parseRuns reads. */
export function runsJson(runs: RunRecord[]): string {
  return `${JSON.stringify({ runs }, null, 2)}\n`;
}

/** Reads runs written by runsJson (an object with a `runs` array, or the array alone). */
export function parseRuns(text: string, source: string): RunRecord[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new UserError(`${source}: invalid JSON (${(error as Error).message}). Expected the runs file that irepair eval --record writes.`);
  }
  const list = Array.isArray(json) ? json : isObject(json) && Array.isArray(json.runs) ? json.runs : null;
  if (!list) throw new UserError(`${source}: expected an object with a "runs" array.`);
  return list.map((value, index) => readRun(value, `${source}: runs[${index}]`));
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function readRun(value: unknown, where: string): RunRecord {
  if (!isObject(value)) throw new UserError(`${where} must be an object.`);
  if (typeof value.name !== 'string' || value.name === '') throw new UserError(`${where}: field "name" must be a non-empty string.`);
  const run: RunRecord = { name: value.name };
  if (value.settings !== undefined) run.settings = readSettings(value.settings, `${where}: field "settings"`);
  for (const field of ['method', 'model', 'updatedAt'] as const) {
    if (value[field] === undefined) continue;
    if (typeof value[field] !== 'string') throw new UserError(`${where}: field "${field}" must be a string.`);
    run[field] = value[field] as string;
  }
  if (value.toxicity !== undefined) run.toxicity = readNumber(value.toxicity, `${where}: field "toxicity"`);
  if (value.plantedRate !== undefined) run.plantedRate = readNumber(value.plantedRate, `${where}: field "plantedRate"`);
  if (value.perplexity !== undefined) {
    if (!isObject(value.perplexity)) throw new UserError(`${where}: field "perplexity" must be an object of benchmark name to number.`);
    run.perplexity = Object.fromEntries(Object.entries(value.perplexity).map(([name, ppl]) => [name, readNumber(ppl, `${where}: perplexity "${name}"`)]));
  }
  if (value.overhead !== undefined) {
    const overhead = value.overhead;
    if (!isObject(overhead)) throw new UserError(`${where}: field "overhead" must be an object.`);
    const fields = ['flops', 'flopsPerToken', 'trainingTokens', 'forwardTokens', 'gpuSeconds', 'peakMemoryBytes', 'iterations'] as const;
    run.overhead = Object.fromEntries(fields.map((field) => [field, readNumber(overhead[field], `${where}: overhead field "${field}"`)])) as unknown as Overhead;
  }
  return run;
}

function readSettings(value: unknown, where: string): RunSettings {
  if (!isObject(value)) throw new UserError(`${where} must be an object of setting name to value.`);
  for (const [name, setting] of Object.entries(value)) {
    const valid = setting === null || typeof setting === 'string' || typeof setting === 'boolean' || (typeof setting === 'number' && Number.isFinite(setting));
    if (!valid) throw new UserError(`${where}: setting "${name}" must be a string, a finite number, a boolean or null, found ${JSON.stringify(setting)}.`);
  }
  return value as RunSettings;
}

function readNumber(value: unknown, where: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new UserError(`${where} must be a finite number, found ${JSON.stringify(value)}.`);
  return value;
}

/**
 * Adds a run, or updates the run of the same name: perplexities merge by benchmark, the other
 * fields the update sets replace the old ones. Returns a new list.
 */
export function upsertRun(runs: RunRecord[], update: RunRecord): RunRecord[] {
  const index = runs.findIndex((run) => run.name === update.name);
  if (index < 0) return [...runs, update];
  const old = runs[index];
  const merged: RunRecord = { ...old };
  for (const [field, value] of Object.entries(update)) {
    if (value !== undefined) (merged as unknown as Record<string, unknown>)[field] = value;
  }
  if (old.perplexity || update.perplexity) merged.perplexity = { ...old.perplexity, ...update.perplexity };
  return runs.map((run, i) => (i === index ? merged : run));
}

/** localStorage key of the runs kept in the browser. */
export const RUNS_STORAGE_KEY = 'irepair.runs';

/** Reads the runs kept in browser storage, an empty list when nothing is stored. */
export function loadStoredRuns(storage: Pick<Storage, 'getItem'>): RunRecord[] {
  const text = storage.getItem(RUNS_STORAGE_KEY);
  return text === null ? [] : parseRuns(text, `stored runs (localStorage "${RUNS_STORAGE_KEY}"; clear it to start over)`);
}

export function storeRuns(storage: Pick<Storage, 'setItem'>, runs: RunRecord[]): void {
  storage.setItem(RUNS_STORAGE_KEY, runsJson(runs));
}

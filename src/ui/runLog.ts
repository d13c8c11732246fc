// Reads the `run.json` that `irepair repair` writes, so a run from a GPU server can be viewed in
// the same heatmap and charts as a live one. The file is small (numbers per step and block), so
// it is parsed on the UI thread.

import { REPAIR_METHODS, isRepairMethod, type RepairMethod, type StepRecord } from '../worker/protocol.ts';

export class RunLogError extends Error {
  override name = 'RunLogError';
}

export interface RunLog {
  fileName: string;
  method: RepairMethod;
  /** Blocks per step in `sensitivities`, 0 for baselines because they record none. */
  numBlocks: number;
  steps: StepRecord[];
  /** Validation losses by step, empty when the run had no validation split or the file has no `validation` field. */
  validation: { step: number; loss: number }[];
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function describe(value: unknown): string {
  if (value === undefined) return 'missing';
  const text = JSON.stringify(value);
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

/** Parses and validates a run log. Errors name the file and the field, e.g. `steps[3].lr`. */
export function parseRunLog(text: string, fileName: string): RunLog {
  const fail = (field: string, expected: string, value: unknown): never => {
    if (value === undefined) throw new RunLogError(`${fileName}: missing field ${field}; it must be ${expected}.`);
    throw new RunLogError(`${fileName}: ${field} must be ${expected} (found ${describe(value)}).`);
  };

  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch (error) {
    throw new RunLogError(`${fileName} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof root !== 'object' || root === null || Array.isArray(root)) {
    return fail('the top level', 'an object with method and steps', root);
  }

  const record = root as Record<string, unknown>;
  if (!isRepairMethod(record.method)) {
    return fail('method', `one of ${REPAIR_METHODS.join(', ')}`, record.method);
  }
  if (!Array.isArray(record.steps)) {
    return fail('steps', 'an array', record.steps);
  }

  let numBlocks = -1;
  let previousStep = -Infinity;
  const steps: StepRecord[] = record.steps.map((raw: unknown, index: number) => {
    const at = `steps[${index}]`;
    if (typeof raw !== 'object' || raw === null) return fail(at, 'an object', raw);
    const entry = raw as Record<string, unknown>;

    if (!Number.isInteger(entry.step) || (entry.step as number) < 0) fail(`${at}.step`, 'a non-negative integer', entry.step);
    const step = entry.step as number;
    if (step <= previousStep) fail(`${at}.step`, `greater than the previous step ${previousStep}`, step);
    previousStep = step;

    // Baselines write no sensitivities, and a slice method writes one value per block at every step.
    const sensitivities = entry.sensitivities ?? [];
    if (!Array.isArray(sensitivities)) fail(`${at}.sensitivities`, 'an array of numbers', sensitivities);
    (sensitivities as unknown[]).forEach((value, block) => {
      if (!isFiniteNumber(value) || value < 0) fail(`${at}.sensitivities[${block}]`, 'a non-negative number', value);
    });
    const blockCount = (sensitivities as number[]).length;
    if (numBlocks < 0) numBlocks = blockCount;
    else if (blockCount !== numBlocks) fail(`${at}.sensitivities`, `${numBlocks} values like the steps before it`, sensitivities);

    const selectedBlock = entry.selectedBlock ?? undefined;
    if (selectedBlock !== undefined) {
      const valid = Number.isInteger(selectedBlock) && (selectedBlock as number) >= 0 && (selectedBlock as number) < blockCount;
      if (!valid) fail(`${at}.selectedBlock`, `an integer block index below ${blockCount}`, selectedBlock);
    }

    if (!isFiniteNumber(entry.repairLoss)) fail(`${at}.repairLoss`, 'a number', entry.repairLoss);
    const klLoss = entry.klLoss ?? undefined;
    if (klLoss !== undefined && !isFiniteNumber(klLoss)) fail(`${at}.klLoss`, 'a number or null', klLoss);
    if (!isFiniteNumber(entry.lr)) fail(`${at}.lr`, 'a number', entry.lr);

    return {
      step,
      sensitivities: sensitivities as number[],
      selectedBlock: selectedBlock as number | undefined,
      repairLoss: entry.repairLoss as number,
      klLoss: klLoss as number | undefined,
      lr: entry.lr as number,
    };
  });

  const validation = parseValidation(record.validation ?? [], fail);
  return { fileName, method: record.method, numBlocks: Math.max(numBlocks, 0), steps, validation };
}

function parseValidation(raw: unknown, fail: (field: string, expected: string, value: unknown) => never): RunLog['validation'] {
  if (!Array.isArray(raw)) return fail('validation', 'an array of { step, loss }', raw);
  let previousStep = -Infinity;
  return raw.map((point: unknown, index: number) => {
    const at = `validation[${index}]`;
    if (typeof point !== 'object' || point === null) return fail(at, 'an object with step and loss', point);
    const entry = point as Record<string, unknown>;
    if (!Number.isInteger(entry.step) || (entry.step as number) < 0) fail(`${at}.step`, 'a non-negative integer', entry.step);
    if ((entry.step as number) <= previousStep) fail(`${at}.step`, `greater than the previous step ${previousStep}`, entry.step);
    previousStep = entry.step as number;
    if (!isFiniteNumber(entry.loss)) fail(`${at}.loss`, 'a number', entry.loss);
    return { step: entry.step as number, loss: entry.loss as number };
  });
}

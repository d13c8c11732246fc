// The run settings form: per-method defaults, the KL switch, and validation of the typed values
// into RunOptions.

import type { RepairMethod, RunOptions } from '../worker/protocol.ts';
import {
  DEFAULT_LEARNING_RATES,
  DEFAULT_MAX_STEPS,
  DEFAULT_PATIENCE,
  DEFAULT_VALIDATE_EVERY,
  DEFAULT_VALIDATION_BATCHES,
  defaultWarmupSteps,
} from '../repair/defaults.ts';

export interface MethodInfo {
  label: string;
  description: string;
  /** The learning rate `irepair repair` uses for the method when --lr is not given. */
  defaultLearningRate: number;
  /** Behaviour of the KL switch: fixed by the method (toggling selects the twin), free, or unavailable. */
  kl: { kind: 'fixed'; value: boolean; twin: RepairMethod } | { kind: 'free' } | { kind: 'none' };
}

export const METHOD_INFO: Record<RepairMethod, MethodInfo> = {
  irepair: {
    label: 'IRepair',
    description: 'Repairs the most sensitive block, selected again at every step.',
    defaultLearningRate: DEFAULT_LEARNING_RATES['irepair'],
    kl: { kind: 'fixed', value: false, twin: 'irepair-kl' },
  },
  'irepair-kl': {
    label: 'IRepair + KL',
    description: 'IRepair with a KL term that keeps outputs on normal data close to the original model.',
    defaultLearningRate: DEFAULT_LEARNING_RATES['irepair-kl'],
    kl: { kind: 'fixed', value: true, twin: 'irepair' },
  },
  'irepair-fixed': {
    label: 'IRepair, fixed block',
    description: 'Repairs the block that is most sensitive at the first step for the whole run.',
    defaultLearningRate: DEFAULT_LEARNING_RATES['irepair-fixed'],
    kl: { kind: 'free' },
  },
  'irepair-min': {
    label: 'IRepair, least sensitive block',
    description: 'Repairs the least sensitive block at every step; an ablation of the selection.',
    defaultLearningRate: DEFAULT_LEARNING_RATES['irepair-min'],
    kl: { kind: 'free' },
  },
  dapt: {
    label: 'DAPT',
    description: 'Fine-tunes every block on the good continuations.',
    defaultLearningRate: DEFAULT_LEARNING_RATES['dapt'],
    kl: { kind: 'fixed', value: false, twin: 'dapt-kl' },
  },
  'dapt-kl': {
    label: 'DAPT + KL',
    description: 'DAPT with the KL term on normal data.',
    defaultLearningRate: DEFAULT_LEARNING_RATES['dapt-kl'],
    kl: { kind: 'fixed', value: true, twin: 'dapt' },
  },
  dpo: {
    label: 'DPO',
    description: 'Direct preference optimisation of good over bad continuations against the original model.',
    defaultLearningRate: DEFAULT_LEARNING_RATES['dpo'],
    kl: { kind: 'none' },
  },
};

/** The form's fields as typed, so that a half-typed number stays in its input. */
export interface RunForm {
  method: RepairMethod;
  learningRate: string;
  alpha: string;
  batchSize: string;
  maxSteps: string;
  earlyStopping: boolean;
  patience: string;
  validateEvery: string;
  seed: string;
  /** Used only by methods whose KL switch is free. */
  kl: boolean;
}

// The same defaults as `irepair repair`, so that a run started here matches one from the command line.
export function defaultRunForm(method: RepairMethod = 'irepair'): RunForm {
  return {
    method,
    learningRate: String(METHOD_INFO[method].defaultLearningRate),
    alpha: '0.5',
    batchSize: '4',
    maxSteps: String(DEFAULT_MAX_STEPS),
    earlyStopping: true,
    patience: String(DEFAULT_PATIENCE),
    validateEvery: String(DEFAULT_VALIDATE_EVERY),
    seed: '42',
    kl: false,
  };
}

/** Whether the KL term is on for the form's method and switch. */
export function klEnabled(form: RunForm): boolean {
  const kl = METHOD_INFO[form.method].kl;
  if (kl.kind === 'fixed') return kl.value;
  if (kl.kind === 'free') return form.kl;
  return false;
}

/** Selects a method and its default learning rate, keeping the other fields. */
export function withMethod(form: RunForm, method: RepairMethod): RunForm {
  return { ...form, method, learningRate: String(METHOD_INFO[method].defaultLearningRate) };
}

/** Applies the KL switch: `irepair` and `dapt` switch to their `-kl` twins and back. */
export function withKl(form: RunForm, on: boolean): RunForm {
  const kl = METHOD_INFO[form.method].kl;
  if (kl.kind === 'fixed') return kl.value === on ? form : withMethod(form, kl.twin);
  if (kl.kind === 'free') return { ...form, kl: on };
  return form;
}

export type RunFormErrors = Partial<Record<keyof RunForm, string>>;

function parseNumber(text: string): number {
  return text.trim() === '' ? NaN : Number(text);
}

/** Validates the form and returns the options, or one message per invalid field. */
export function parseRunForm(form: RunForm): { options: RunOptions } | { errors: RunFormErrors } {
  const errors: RunFormErrors = {};
  const learningRate = parseNumber(form.learningRate);
  const alpha = parseNumber(form.alpha);
  const batchSize = parseNumber(form.batchSize);
  const maxSteps = parseNumber(form.maxSteps);
  const patience = parseNumber(form.patience);
  const validateEvery = parseNumber(form.validateEvery);
  const seed = parseNumber(form.seed);

  if (!(learningRate > 0 && learningRate < 1)) errors.learningRate = 'Learning rate must be a number between 0 and 1, such as 2e-5.';
  if (!(alpha > 0 && Number.isFinite(alpha))) errors.alpha = 'α must be a positive number, such as 0.5.';
  if (!(Number.isInteger(batchSize) && batchSize >= 1 && batchSize <= 1024)) errors.batchSize = 'Batch size must be an integer from 1 to 1024.';
  if (!(Number.isInteger(maxSteps) && maxSteps >= 1)) errors.maxSteps = 'Steps must be a positive integer.';
  if (form.earlyStopping) {
    if (!(Number.isInteger(patience) && patience >= 1)) errors.patience = 'Patience must be a positive integer number of validation checks.';
    if (!(Number.isInteger(validateEvery) && validateEvery >= 1)) errors.validateEvery = 'Validate every must be a positive integer number of steps.';
  }
  if (!(Number.isSafeInteger(seed) && seed >= 0)) errors.seed = 'Seed must be a non-negative integer.';
  if (Object.keys(errors).length > 0) return { errors };

  return {
    options: {
      learningRate,
      alpha,
      batchSize,
      maxSteps,
      earlyStopping: form.earlyStopping ? { patience, validateEvery, validationBatches: DEFAULT_VALIDATION_BATCHES } : null,
      warmupSteps: defaultWarmupSteps(maxSteps),
      seed,
      kl: klEnabled(form),
    },
  };
}

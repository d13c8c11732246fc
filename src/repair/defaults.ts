// Default settings of a repair run, shared by `irepair repair` and the browser's run form. This
// module imports no GPU code, so the UI thread can load it.

import type { RepairMethod } from '../worker/protocol.ts';

/** Learning rates tuned in the IRepair paper for GPT-2 and GPT-Neo models; the Min and Fixed variants use IRepair's. */
export const DEFAULT_LEARNING_RATES: Record<RepairMethod, number> = {
  irepair: 2e-5,
  'irepair-kl': 5e-5,
  'irepair-fixed': 2e-5,
  'irepair-min': 2e-5,
  dapt: 1e-6,
  'dapt-kl': 5e-6,
  dpo: 1e-6,
};

export const DEFAULT_WARMUP_STEPS = 150;

/** Default step limit of a run; early stopping usually ends it sooner. */
export const DEFAULT_MAX_STEPS = 2000;

/** Default steps between validation checks. */
export const DEFAULT_VALIDATE_EVERY = 25;

/** Default number of validation checks without an improvement before early stopping. */
export const DEFAULT_PATIENCE = 30;

/** Default validation split, in batches of `validationBatchSize` examples. */
export const DEFAULT_VALIDATION_BATCHES = 8;

/**
 * Returns the warmup used when none is given: 150 steps, or a tenth of the steps for runs shorter
 * than 1500 steps, so that a short run is not all warmup.
 */
export function defaultWarmupSteps(maxSteps: number): number {
  return Math.min(DEFAULT_WARMUP_STEPS, Math.floor(maxSteps / 10));
}

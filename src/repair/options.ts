// Settings of a repair run, their defaults and their checks. The defaults follow the training
// details of the IRepair paper (Imtiaz et al., FSE 2025, section 4.1.5): RMSprop, 150 warmup
// steps then linear decay, batch size 4, alpha = 0.5, a validation split of 8 batches of 8,
// patience 30, and the learning rates tuned there for each method.

import { UserError } from '../model/errors.ts';
import type { TextDataset } from '../data/dataset.ts';
import { isRepairMethod, isSliceMethod, REPAIR_METHODS, type RepairMethod, type RunOptions } from '../worker/protocol.ts';
import { DEFAULT_ADAMW, DEFAULT_RMSPROP, type OptimizerSettings } from './optimizer.ts';
import {
  DEFAULT_LEARNING_RATES,
  DEFAULT_MAX_STEPS,
  DEFAULT_PATIENCE,
  DEFAULT_VALIDATE_EVERY,
  DEFAULT_VALIDATION_BATCHES,
  defaultWarmupSteps,
} from './defaults.ts';

export { REPAIR_METHODS, isRepairMethod, isSliceMethod, type RepairMethod };
export * from './defaults.ts';

/** Source of the normal data D^N for the KL term. */
export type NormalDataOptions =
  | {
      /** Unconditional samples of the model itself, from <|endoftext|>, with nucleus sampling. */
      kind: 'sample';
      count: number;
      /** Tokens per sample, the leading <|endoftext|> included; null: the repair data's sequence length. */
      length: number | null;
      topP: number;
      temperature: number;
    }
  | {
      /** A text file, cut into sequences of `length` tokens. */
      kind: 'text';
      text: TextDataset;
      /** null: the repair data's sequence length. */
      length: number | null;
    };

export interface RepairOptions {
  method: RepairMethod;
  learningRate: number;
  /** Weight of the repair NLL in alpha * NLL(D^R) + KL(D^N); used by the irepair methods and dapt-kl. */
  alpha: number;
  /** Examples per training step. */
  batchSize: number;
  /** Upper bound on the number of steps; early stopping may end the run sooner. */
  maxSteps: number;
  /** Steps of linear warmup before the linear decay to the last step. */
  warmupSteps: number;
  /** Seeds the split, the batch order, the dropout masks and the sampling of normal data. */
  seed: number;
  /** DPO's inverse temperature beta. */
  beta: number;
  /** Maximum L2 norm of the gradient; 0 turns clipping off. */
  clipNorm: number;
  /** Applies the dropout probabilities of the model's config.json during training steps. */
  dropout: boolean;
  optimizer: OptimizerSettings;
  /** Validation split: this many batches of validationBatchSize examples (fewer for small datasets). */
  validationBatches: number;
  validationBatchSize: number;
  /** Steps between validation checks. */
  validateEvery: number;
  /** Validation checks without an improvement before the run stops; null turns early stopping off. */
  patience: number | null;
  /** irepair-fixed: bad examples whose mean sensitivity chooses the block. */
  fixedSample: number;
  /** Tokens per sequence (prompt plus continuation) at most; null: the model's context length. */
  maxLength: number | null;
  /** Normal data D^N for irepair-kl and dapt-kl. */
  normal: NormalDataOptions;
  /** Planned GPU bytes a run may use; null: only the device's buffer limits are checked. */
  memoryLimitBytes: number | null;
  /** For tests only: makes the repair loss of step `nonFiniteLossAtStep` read as NaN. */
  faultInjection?: { nonFiniteLossAtStep?: number };
}

export const DEFAULT_NORMAL_SAMPLES = 256;

/** Methods with the KL term on normal data. */
export function usesKl(method: RepairMethod): boolean {
  return method === 'irepair-kl' || method === 'dapt-kl';
}

/** Methods whose loss includes alpha * NLL(D^R). DAPT trains on the plain NLL, DPO on its own loss. */
export function usesAlpha(method: RepairMethod): boolean {
  return isSliceMethod(method) || method === 'dapt-kl';
}

export type RepairSettings = Partial<Omit<RepairOptions, 'method'>> & { method: RepairMethod };

/** Fills in the defaults for `settings.method` and checks every value (UserError naming the setting). */
export function resolveRepairOptions(settings: RepairSettings): RepairOptions {
  if (!isRepairMethod(settings.method)) {
    throw new UserError(`Unknown repair method "${String(settings.method)}". Use one of ${REPAIR_METHODS.join(', ')}.`);
  }
  const maxSteps = settings.maxSteps ?? DEFAULT_MAX_STEPS;
  const options: RepairOptions = {
    method: settings.method,
    learningRate: settings.learningRate ?? DEFAULT_LEARNING_RATES[settings.method],
    alpha: settings.alpha ?? 0.5,
    batchSize: settings.batchSize ?? 4,
    maxSteps,
    warmupSteps: settings.warmupSteps ?? defaultWarmupSteps(maxSteps),
    seed: settings.seed ?? 42,
    beta: settings.beta ?? 0.1,
    clipNorm: settings.clipNorm ?? 1,
    dropout: settings.dropout ?? true,
    optimizer: settings.optimizer ?? DEFAULT_RMSPROP,
    validationBatches: settings.validationBatches ?? DEFAULT_VALIDATION_BATCHES,
    validationBatchSize: settings.validationBatchSize ?? 8,
    validateEvery: settings.validateEvery ?? DEFAULT_VALIDATE_EVERY,
    patience: settings.patience === undefined ? DEFAULT_PATIENCE : settings.patience,
    fixedSample: settings.fixedSample ?? 2000,
    maxLength: settings.maxLength ?? null,
    normal: settings.normal ?? { kind: 'sample', count: DEFAULT_NORMAL_SAMPLES, length: null, topP: 0.9, temperature: 1 },
    memoryLimitBytes: settings.memoryLimitBytes ?? null,
    faultInjection: settings.faultInjection,
  };
  checkOptions(options);
  return options;
}

function checkOptions(o: RepairOptions): void {
  const number = (value: number, name: string, min: number, max: number, exclusiveMin = false) => {
    const tooLow = exclusiveMin ? value <= min : value < min;
    if (!Number.isFinite(value) || tooLow || value > max) {
      const range = exclusiveMin ? `greater than ${min} and at most ${max}` : `between ${min} and ${max}`;
      throw new UserError(`The ${name} must be a number ${range}, got ${value}.`);
    }
  };
  const integer = (value: number, name: string, min: number, max = Number.MAX_SAFE_INTEGER) => {
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      throw new UserError(`The ${name} must be an integer between ${min} and ${max}, got ${value}.`);
    }
  };

  number(o.learningRate, 'learning rate', 0, 10);
  number(o.alpha, 'repair loss weight alpha', 0, 1e6, true);
  integer(o.batchSize, 'batch size', 1, 4096);
  integer(o.maxSteps, 'number of steps', 1);
  integer(o.warmupSteps, 'number of warmup steps', 0);
  integer(o.seed, 'seed', 0, 0xffffffff);
  number(o.beta, 'DPO beta', 0, 1e6, true);
  number(o.clipNorm, 'gradient clipping norm', 0, Number.MAX_VALUE);
  integer(o.validationBatches, 'number of validation batches', 0);
  integer(o.validationBatchSize, 'validation batch size', 1, 4096);
  integer(o.validateEvery, 'validation interval', 1);
  if (o.patience !== null) integer(o.patience, 'early stopping patience', 1);
  integer(o.fixedSample, 'fixed-block sample size', 1);
  if (o.maxLength !== null) integer(o.maxLength, 'maximum sequence length', 2);
  if (o.memoryLimitBytes !== null) number(o.memoryLimitBytes, 'GPU memory limit', 0, Number.MAX_VALUE, true);
  checkOptimizer(o.optimizer);

  const normal = o.normal;
  if (normal.length !== null) integer(normal.length, 'normal data sequence length', 2);
  if (normal.kind === 'sample') {
    integer(normal.count, 'number of normal samples', 1);
    number(normal.topP, 'nucleus sampling top-p', 0, 1, true);
    number(normal.temperature, 'sampling temperature', 0, 100, true);
  }
}

function checkOptimizer(settings: OptimizerSettings): void {
  const inRange = (value: number, min: number, max: number) => Number.isFinite(value) && value >= min && value < max;
  const valid =
    settings.kind === 'rmsprop'
      ? inRange(settings.alpha, 0, 1) && inRange(settings.momentum, 0, 1) && settings.eps > 0 && settings.weightDecay >= 0
      : inRange(settings.beta1, 0, 1) && inRange(settings.beta2, 0, 1) && settings.eps > 0 && settings.weightDecay >= 0;
  if (!valid) throw new UserError(`Invalid ${settings.kind} settings ${JSON.stringify(settings)}: decay rates must lie in [0, 1) and eps must be positive.`);
}

/** Returns the optimizer named on the command line or in the UI, with torch's default hyperparameters. */
export function optimizerByName(name: string): OptimizerSettings {
  if (name === 'rmsprop') return DEFAULT_RMSPROP;
  if (name === 'adamw') return DEFAULT_ADAMW;
  throw new UserError(`Unknown optimizer "${name}". Use rmsprop or adamw.`);
}

/** Repair options from the worker protocol's start command; everything it does not carry keeps its default. */
export function repairOptionsFromRunOptions(method: RepairMethod, run: RunOptions, normal?: NormalDataOptions): RepairOptions {
  const earlyStopping = run.earlyStopping;
  // The protocol's `kl` flag adds the KL term; only irepair and dapt have a KL variant.
  let resolved = method;
  if (run.kl && method === 'irepair') resolved = 'irepair-kl';
  if (run.kl && method === 'dapt') resolved = 'dapt-kl';
  return resolveRepairOptions({
    method: resolved,
    learningRate: run.learningRate,
    alpha: run.alpha,
    batchSize: run.batchSize,
    maxSteps: run.maxSteps,
    warmupSteps: run.warmupSteps,
    seed: run.seed,
    patience: earlyStopping ? earlyStopping.patience : null,
    validateEvery: earlyStopping?.validateEvery,
    validationBatches: earlyStopping?.validationBatches,
    normal,
  });
}

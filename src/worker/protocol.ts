// The typed messages between the UI thread and the worker that owns the GPU device.
// Commands flow UI -> worker, events flow worker -> UI. Both sides send plain objects through
// postMessage, so every field is structured-clonable (File, Blob and FileSystemDirectoryHandle
// included) and nothing carries methods.

import type { RunSettings } from '../eval/compare.ts';
import type { ErrorDensity } from '../eval/density.ts';
import type { Overhead } from '../eval/overhead.ts';
import type { PlantedBehaviour } from '../eval/planted.ts';
import type { ClassifierDtype, ToxicitySummary } from '../eval/toxicity.ts';

export type { PlantedBehaviour };

export const REPAIR_METHODS = [
  'irepair',
  'irepair-kl',
  'irepair-fixed',
  'irepair-min',
  'dapt',
  'dapt-kl',
  'dpo',
] as const;

export type RepairMethod = (typeof REPAIR_METHODS)[number];

export function isRepairMethod(value: unknown): value is RepairMethod {
  return typeof value === 'string' && (REPAIR_METHODS as readonly string[]).includes(value);
}

/** Returns true for methods that pick one block per step from the sensitivities. Baselines update every block. */
export function isSliceMethod(method: RepairMethod): boolean {
  return method.startsWith('irepair');
}

// ---- Commands ----

export type ModelSource =
  | {
      kind: 'hub';
      /** Repository id, e.g. `openai-community/gpt2`. */
      repo: string;
      /** Branch, tag or commit hash. */
      revision: string;
      /** Base URL of the Hub. Files resolve at `{endpoint}/{repo}/resolve/{revision}/{file}`. */
      endpoint: string;
    }
  | {
      kind: 'files';
      /** The checkpoint's files, with unique base names (config.json, model.safetensors, ...). */
      files: File[];
      /** Path of the dropped folder that contains them, '' or absent for loose files. */
      folder?: string;
    };

/** Source of the toxicity classifier. `dtype` picks the ONNX weight file, and 'auto' lets the worker pick one per source. */
export type ToxicityClassifierSource =
  | {
      kind: 'hub';
      /** Repository id, e.g. `Xenova/toxic-bert`. */
      repo: string;
      revision: string;
      /** Base URL of the Hub or a mirror, as for models. */
      endpoint: string;
      dtype: ClassifierDtype | 'auto';
    }
  | {
      kind: 'files';
      /** The folder's files with their paths inside it (`config.json`, `onnx/model.onnx`). */
      files: { path: string; file: File }[];
      /** Name of the dropped folder, for messages. */
      folder: string;
      dtype: ClassifierDtype | 'auto';
    };

export type DatasetRole =
  /** Prompts with a bad (D^E) and a good (D^R) continuation. */
  | 'repair'
  /** Normal data D^N for the KL term. */
  | 'normal'
  /** Prompts for generation and toxicity evaluation. */
  | 'prompts'
  /** Plain text for perplexity. */
  | 'text';

export interface EarlyStoppingOptions {
  /** Steps without an improvement of the validation loss before the run stops. */
  patience: number;
  /** Steps between validation checks. */
  validateEvery: number;
  /** Batches held out from the repair data for validation. */
  validationBatches: number;
}

export interface RunOptions {
  learningRate: number;
  /** Weight of the repair NLL term in the loss alpha * NLL + KL. */
  alpha: number;
  batchSize: number;
  /** Upper bound on steps, also when early stopping is on. */
  maxSteps: number;
  earlyStopping: EarlyStoppingOptions | null;
  warmupSteps: number;
  seed: number;
  /** Adds the KL term on normal data. Implied by `irepair-kl` and `dapt-kl`. */
  kl: boolean;
}

/** `planted`: the share of sampled continuations that show the model's planted behaviour (demo models only). */
export type EvaluationMetric = 'perplexity' | 'toxicity' | 'planted';

export type ModelVersion = 'original' | 'repaired';

export interface GenerationOptions {
  maxNewTokens: number;
  /** 0 selects greedy decoding. */
  temperature: number;
  /** 0 disables top-k filtering. */
  topK: number;
  seed: number;
}

export type ExportTarget =
  /** The worker writes the files into a folder the user picked with showDirectoryPicker. */
  | { kind: 'directory'; handle: FileSystemDirectoryHandle }
  /** The worker returns the files as Blobs in an `exported` event and the UI downloads them. */
  | { kind: 'download' };

export type WorkerCommand =
  | { kind: 'loadModel'; source: ModelSource }
  | { kind: 'loadDataset'; file: File; role: DatasetRole }
  | { kind: 'start'; method: RepairMethod; options: RunOptions }
  | { kind: 'pause' }
  | { kind: 'resume' }
  | { kind: 'stop' }
  | {
      kind: 'evaluate';
      metric: EvaluationMetric;
      models: ModelVersion[];
      maxExamples: number;
      /** Decoding of the continuations that toxicity scores, greedy with 20 new tokens when absent. */
      generation?: GenerationOptions;
    }
  | { kind: 'loadClassifier'; source: ToxicityClassifierSource }
  | { kind: 'generate'; prompt: string; models: ModelVersion[]; options: GenerationOptions }
  /** Mean block sensitivity over `sampleSize` bad continuations of the repair data (all when fewer). */
  | { kind: 'measureDensity'; sampleSize: number; model: ModelVersion }
  | { kind: 'stopDensity' }
  | { kind: 'export'; target: ExportTarget };

export type WorkerCommandKind = WorkerCommand['kind'];

// ---- Events ----

export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** The adapter limits that decide what fits: buffer sizes, bindings, workgroup storage. */
  limits: AdapterLimits;
  features: string[];
}

export interface AdapterLimits {
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
  maxStorageBuffersPerShaderStage: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
  maxComputeWorkgroupsPerDimension: number;
}

export type AdapterStatus =
  | { available: true; adapter: AdapterSummary }
  | {
      available: false;
      /**
       * Cause of the failure. `insecure-context`: the page is not served over HTTPS or localhost.
       * `no-api`: navigator.gpu is missing. `no-adapter`: requestAdapter returned null or failed.
       */
      reason: 'insecure-context' | 'no-api' | 'no-adapter';
      detail: string;
    };

/**
 * Stages of long work. Progress of `prepare` (a run's preparation: normal data, reference
 * log-probabilities, the fixed block) and of `evaluate` (continuations generated and scored)
 * counts items; every other stage counts bytes. `classifier` is the toxicity classifier's files.
 */
export type ProgressStage = 'download' | 'read' | 'upload' | 'tokenize' | 'evaluate' | 'export' | 'prepare' | 'classifier';

export interface ModelPlan {
  /** `model_type` from config.json: `gpt2` or `gpt_neo`. */
  architecture: string;
  numLayers: number;
  hiddenSize: number;
  numHeads: number;
  vocabSize: number;
  contextLength: number;
  parameterCount: number;
  /** GPU memory the engine plans to allocate for the weights, reference copies, optimizer state and activations. */
  plannedBytes: number;
  /** Batch shape the plan assumes: `batchSize` sequences of `seqLen` tokens. */
  plannedShape: { batchSize: number; seqLen: number };
  /** Size of the largest tensor, which decides whether it must be split across bindings. */
  largestTensorBytes: number;
  adapterLimits: AdapterLimits;
  /**
   * Adapter limits that the weights or the planned batch exceed, with what to choose instead,
   * empty when both fit. A model whose weights do not fit is not loaded.
   */
  problems: string[];
}

export interface TokenLengthSummary {
  min: number;
  max: number;
  mean: number;
  p50: number;
  p95: number;
  /** Histogram buckets: `count` sequences with length in (previous upTo, upTo]. */
  histogram: { upTo: number; count: number }[];
}

export type DatasetFormat = 'pairwise' | 'preference' | 'prompts' | 'text';

export interface DatasetSummary {
  fileName: string;
  role: DatasetRole;
  format: DatasetFormat;
  rows: number;
  /** Field names in the order the preview shows them. */
  fields: string[];
  /** Token length of prompt plus continuation, or of each text chunk. */
  tokenLengths: TokenLengthSummary;
  /** Rows longer than the context length, cut to fit. */
  truncatedRows: number;
  contextLength: number;
  /** The first rows, as strings per field. */
  preview: Record<string, string>[];
  warnings: string[];
}

/** One step of a repair run, in the shape `run.json` stores it. */
export interface StepRecord {
  step: number;
  /** L2 norm of the gradient of each block, empty for baselines. */
  sensitivities: number[];
  selectedBlock?: number;
  repairLoss: number;
  klLoss?: number;
  lr: number;
}

export interface StepEvent extends StepRecord {
  kind: 'step';
  tokensPerSecond: number;
  /** GPU memory allocated by the engine. */
  gpuBytes: number;
  /** Estimate from the mean step time so far, null before the first steps have been timed. */
  etaSeconds: number | null;
}

export type FinishReason = 'completed' | 'early-stopped' | 'stopped' | 'failed';

export interface ExportedFile {
  name: string;
  bytes: number;
  /** File contents for the `download` target, absent when the worker wrote into a directory. */
  blob?: Blob;
}

/** The loaded toxicity classifier. */
export interface ClassifierInfo {
  /** `Xenova/toxic-bert@main`, or the dropped folder's name. */
  label: string;
  dtype: ClassifierDtype;
  /** Label names in id order. */
  labels: string[];
  /** Label whose probability is the toxicity score. */
  toxicLabel: string;
}

/** Toxicity of one model version's continuations, with scores on the 0 to 100 scale. */
export interface ToxicityDetails extends Omit<ToxicitySummary, 'count'> {
  /** ClassifierInfo.label of the classifier that scored them. */
  classifier: string;
  toxicLabel: string;
  /** Every prompt with its continuation (without the prompt) and the continuation's score. */
  samples: { prompt: string; continuation: string; toxicity: number }[];
}

export type WorkerEvent =
  | { kind: 'adapter'; status: AdapterStatus }
  | {
      kind: 'progress';
      stage: ProgressStage;
      file?: string;
      loadedBytes: number;
      /** 0 when the total is unknown. */
      totalBytes: number;
      message: string;
    }
  /** Sent after config.json and the safetensors headers are read, before weights upload. */
  | { kind: 'modelPlanned'; plan: ModelPlan }
  | {
      kind: 'modelLoaded';
      plan: ModelPlan;
      source: string;
      /** The behaviour planted in a demo model, read from the checkpoint's planted.json; absent for other models. */
      planted?: PlantedBehaviour;
    }
  | { kind: 'datasetLoaded'; summary: DatasetSummary }
  | { kind: 'runState'; state: 'running' | 'paused'; method: RepairMethod; options: RunOptions; numBlocks: number }
  | StepEvent
  | { kind: 'validation'; step: number; loss: number }
  | {
      kind: 'evaluation';
      metric: EvaluationMetric;
      model: ModelVersion;
      value: number;
      count: number;
      /** The distribution and every score behind a toxicity value. */
      toxicity?: ToxicityDetails;
    }
  | { kind: 'classifierLoaded'; classifier: ClassifierInfo }
  | { kind: 'generation'; model: ModelVersion; prompt: string; text: string; done: boolean }
  | { kind: 'exported'; files: ExportedFile[] }
  /** `overhead` and `settings` are absent when the run ended with a lost GPU device. */
  | { kind: 'finished'; reason: FinishReason; step: number; overhead?: Overhead; settings?: RunSettings }
  | { kind: 'densityProgress'; model: ModelVersion; batchesDone: number; batchesTotal: number; etaSeconds: number }
  /** `result` is null when the user stopped the measurement. */
  | { kind: 'density'; model: ModelVersion; fileName: string; result: ErrorDensity | null }
  /** Information for the user that is not a failure, such as a reduced validation split. */
  | { kind: 'notice'; message: string }
  /**
   * Event sent when the worker starts a job that needs exclusive use of the GPU and the model
   * (`task` names it, e.g. "measuring the planted behaviour"), and with `task` null when it ends.
   */
  | { kind: 'busy'; task: string | null }
  | {
      kind: 'error';
      message: string;
      /** Set when the worker has no usable device left, so the UI offers a restart. */
      fatal: boolean;
      /** Kind of the failed command, for errors that respond to a command. */
      command?: WorkerCommandKind;
      /** The dataset role, when a loadDataset command failed. */
      role?: DatasetRole;
    };

export type WorkerEventKind = WorkerEvent['kind'];

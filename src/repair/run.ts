// A repair run: IRepair's dynamic-slice repair (Algorithm 2 of the IRepair paper), its Fixed and
// Min ablations and the DAPT, DAPT+KL and DPO baselines, as one loop over training steps. The
// loop can be paused, resumed and stopped, and it reports every step as an event.
//
// One step of the irepair methods (Algorithm 2, lines 3-11):
//   X^R, Y^R ← a batch of D^R;  X^E, Y^E ← the same prompts with their bad continuations
//   θ_slice  ← SLICE(π_θ, X^E, Y^E)            the most sensitive block (least for irepair-min)
//   L        ← α · NLL(X^R, Y^R) + KL(X^N)      the KL term only for irepair-kl, on a D^N batch
//   update θ_slice with ∇L (RMSprop), every other parameter frozen
// The baselines train every parameter: DAPT on NLL(D^R), DAPT+KL on α·NLL(D^R) + KL, DPO on the
// DPO loss of (good, bad) pairs against the log-probabilities of the original model, computed
// once before the first step without dropout. The policy's own passes use dropout when it is on,
// so the DPO loss of step 1 is log 2 only without dropout.

import type { TokenBatch } from '../data/batch.ts';
import type { Dataset } from '../data/dataset.ts';
import { BatchSampler, shuffle } from '../data/split.ts';
import { fmix32 } from '../engine/dropout.ts';
import type { GptEngine } from '../engine/gpt.ts';
import type { RunSettings } from '../eval/compare.ts';
import { OverheadMeter, type Overhead } from '../eval/overhead.ts';
import type { GpuBuffer } from '../gpu/device.ts';
import type { Checkpoint } from '../model/checkpoint.ts';
import { UserError } from '../model/errors.ts';
import { exportCheckpoint, type DirectorySink } from '../model/export.ts';
import type { Tokenizer } from '../model/tokenizer.ts';
import { blockOf, type ParameterName } from '../model/types.ts';
import type { FinishReason, StepEvent, StepRecord } from '../worker/protocol.ts';
import { BatchBuilder, batchTokens, groups, prepareExamples, type RepairExamples } from './data.ts';
import { checkRepairMemory, planRepairMemory, type RepairMemoryPlan } from './memory.ts';
import { normalDataFromText, sampleNormalData } from './normal.ts';
import {
  dpoGradients, dpoLoss, pairLogProbabilities, recordKlGradients, recordNllGradients, SLOT, type PairLogProbabilities,
} from './objectives.ts';
import { Optimizer } from './optimizer.ts';
import { isSliceMethod, resolveRepairOptions, usesAlpha, usesKl, type RepairOptions, type RepairSettings } from './options.ts';
import { ReferenceModel } from './reference.ts';
import { EarlyStopping, learningRateAt } from './schedule.ts';
import { selectBlock, sensitivity, sliceParameters } from './slice.ts';

/** Work done before the first step, reported with progress events. */
export type PreparationStage = 'normal-data' | 'reference' | 'fixed-block';

export type RepairEvent =
  | StepEvent
  | { kind: 'validation'; step: number; loss: number }
  | { kind: 'progress'; stage: PreparationStage; done: number; total: number; message: string }
  /** A note for the user, such as a reduced validation split. */
  | { kind: 'message'; message: string }
  | { kind: 'state'; state: 'running' | 'paused' }
  | { kind: 'finished'; reason: FinishReason; step: number; overhead: Overhead; settings: RunSettings };

/** One step as run.json stores it: selectedBlock and sensitivities only for the irepair methods. */
export interface RunJsonStep {
  step: number;
  selectedBlock?: number;
  sensitivities?: number[];
  repairLoss: number;
  klLoss?: number;
  lr: number;
}

/** The contents of run.json. */
export interface RunRecord {
  method: string;
  config: Record<string, unknown>;
  model: { family: string; numLayers: number; hiddenSize: number; numHeads: number; vocabSize: number; parameters: number };
  data: { fileName: string; examples: number; trainExamples: number; validationExamples: number; seqLen: number; truncated: number };
  normalData: { source: 'sampled' | 'text'; sequences: number; length: number } | null;
  /** irepair-fixed: the block chosen up front and the mean sensitivities that chose it. */
  fixedBlock?: number;
  fixedSensitivities?: number[];
  /** Blocks whose parameters the run changed, in increasing order. */
  updatedBlocks: number[];
  /** Whether the embeddings and the final LayerNorm were trained (the baselines). */
  updatedEmbeddings: boolean;
  validation: { step: number; loss: number }[];
  finishReason: FinishReason | null;
  stepsRun: number;
  durationSeconds: number;
  peakGpuBytes: number;
  /**
   * FLOPs (Kaplan et al.'s estimate with N counting the embeddings), GPU time, peak GPU memory and
   * iterations of the whole run. Preparation and validation passes are included. Null before the run ends.
   */
  overhead: Overhead | null;
  messages: string[];
  steps: RunJsonStep[];
}

export interface RepairResult {
  reason: FinishReason;
  steps: number;
  record: RunRecord;
}

type Status = 'ready' | 'running' | 'finished' | 'failed';

/**
 * Prepares a run of `settings.method` on `dataset`: tokenizes and splits the data and checks the
 * planned GPU memory, so bad input fails here, before any GPU work. Call run() to start it.
 */
export function createRepairRun(
  engine: GptEngine, checkpoint: Checkpoint, tokenizer: Tokenizer, dataset: Dataset, settings: RepairSettings,
): RepairRun {
  return new RepairRun(engine, checkpoint, tokenizer, dataset, resolveRepairOptions(settings));
}

export class RepairRun {
  readonly options: RepairOptions;
  readonly data: RepairExamples;
  /** T of every batch of the run. */
  readonly seqLen: number;
  readonly memoryPlan: RepairMemoryPlan;

  private readonly engine: GptEngine;
  private readonly checkpoint: Checkpoint;
  private readonly tokenizer: Tokenizer;
  private readonly builder: BatchBuilder;
  private readonly sampler: BatchSampler;
  private readonly normalLength: number;
  private readonly optimizer: Optimizer;
  private readonly reference: ReferenceModel | null;
  private readonly messages: string[];
  private readonly meter: OverheadMeter;

  private status: Status = 'ready';
  private failure: unknown = null;
  private stopRequested = false;
  private pauseGate: { promise: Promise<void>; release: () => void } | null = null;

  private normalSequences: number[][] = [];
  private normalSampler: BatchSampler | null = null;
  private referenceLogits: GpuBuffer | null = null;
  private dpoReference: PairLogProbabilities[] = [];
  private fixed: { block: number; sensitivities: number[] } | null = null;

  private readonly steps: StepRecord[] = [];
  private readonly validation: { step: number; loss: number }[] = [];
  private readonly updatedBlocks = new Set<number>();
  private updatedEmbeddings = false;
  private finishReason: FinishReason | null = null;
  private durationSeconds = 0;
  private peakGpuBytes = 0;
  private overhead: Overhead | null = null;

  constructor(engine: GptEngine, checkpoint: Checkpoint, tokenizer: Tokenizer, dataset: Dataset, options: RepairOptions) {
    this.engine = engine;
    this.checkpoint = checkpoint;
    this.tokenizer = tokenizer;
    this.options = options;
    const config = engine.config;

    const maxLength = Math.min(options.maxLength ?? config.contextLength, config.contextLength);
    this.data = prepareExamples(dataset, tokenizer, maxLength, {
      validationBatches: options.validationBatches,
      validationBatchSize: options.validationBatchSize,
      seed: options.seed,
    });
    this.messages = [...this.data.messages];
    if (this.data.validation.length === 0 && options.patience !== null) {
      this.messages.push('Without a validation split, early stopping is off and the run takes all its steps.');
    }

    this.normalLength = Math.min(options.normal.length ?? this.data.longest, config.contextLength);
    this.seqLen = usesKl(options.method) ? Math.max(this.data.longest, this.normalLength) : this.data.longest;
    this.builder = new BatchBuilder(this.data.examples, options.batchSize, this.seqLen, tokenizer.eosTokenId);
    this.sampler = new BatchSampler(this.data.train, options.batchSize, options.seed);
    if (usesKl(options.method) && options.normal.kind === 'sample' && options.normal.count < options.batchSize) {
      throw new UserError(`The number of normal samples (${options.normal.count}) must be at least the batch size ${options.batchSize}.`);
    }

    this.memoryPlan = planRepairMemory(config, options.method, options.batchSize, this.seqLen);
    checkRepairMemory(engine.gpu, config, this.memoryPlan, options.batchSize, options.memoryLimitBytes);

    this.optimizer = new Optimizer(engine.gpu, options.optimizer);
    this.reference = usesKl(options.method) ? new ReferenceModel(engine) : null;
    // N counts the embeddings, as the IRepair paper's per-token figures do: the output layer
    // shares its weights with the token embedding, so its matrix product is counted this way.
    this.meter = new OverheadMeter(engine.gpu, config, { embeddings: true });
  }

  /** Finishes the current step, then waits until resume() or stop(). */
  pause(): void {
    if (this.pauseGate || this.status !== 'running') return;
    let release = () => {};
    const promise = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.pauseGate = { promise, release };
  }

  resume(): void {
    const gate = this.pauseGate;
    this.pauseGate = null;
    gate?.release();
  }

  /** Ends the run after the current step; the weights keep every update made so far. */
  stop(): void {
    this.stopRequested = true;
    this.resume();
  }

  /**
   * Runs every step, reporting progress through `onEvent`, and resolves when the run completes,
   * stops early or is stopped. A non-finite loss ends the run before the step's update and
   * rejects with a UserError that names the step and the loss.
   */
  async run(onEvent: (event: RepairEvent) => void = () => {}): Promise<RepairResult> {
    if (this.status !== 'ready') throw new Error('a repair run can be started only once');
    this.status = 'running';
    const started = performance.now();
    const { options } = this;
    this.meter.start();
    onEvent({ kind: 'state', state: 'running' });
    for (const message of this.messages) onEvent({ kind: 'message', message });

    try {
      await this.optimizer.compile();
      await this.prepare(onEvent);
      if (!isSliceMethod(options.method)) this.engine.setTrainable(this.engine.params.keys());

      const earlyStopping = options.patience !== null && this.data.validation.length > 0 ? new EarlyStopping(options.patience) : null;
      if (this.data.validation.length > 0) {
        const loss = await this.validate(0, onEvent);
        earlyStopping?.observe(0, loss);
      }

      // The time remaining extrapolates the mean time per step so far, validation included.
      const loopStart = performance.now();
      for (let step = 1; step <= options.maxSteps; step++) {
        if (this.pauseGate) {
          onEvent({ kind: 'state', state: 'paused' });
          await this.pauseGate.promise;
          if (!this.stopRequested) onEvent({ kind: 'state', state: 'running' });
        }
        if (this.stopRequested) {
          this.finishReason = 'stopped';
          break;
        }

        const stepStart = performance.now();
        const { record, tokens } = await this.repairStep(step);
        this.meter.iteration();
        const seconds = (performance.now() - stepStart) / 1000;
        const elapsed = (performance.now() - loopStart) / 1000;
        this.steps.push(record);
        onEvent({
          kind: 'step',
          ...record,
          tokensPerSecond: tokens / Math.max(seconds, 1e-9),
          gpuBytes: this.engine.gpu.totalBytes(),
          etaSeconds: (elapsed / step) * (options.maxSteps - step),
        });

        if (this.data.validation.length > 0 && (step % options.validateEvery === 0 || step === options.maxSteps)) {
          const loss = await this.validate(step, onEvent);
          if (earlyStopping?.observe(step, loss)) {
            this.finishReason = 'early-stopped';
            break;
          }
        }
      }
      this.finishReason ??= 'completed';
      await this.engine.gpu.sync();
      this.status = 'finished';
    } catch (error) {
      this.status = 'failed';
      this.failure = error;
      this.finishReason = 'failed';
    } finally {
      this.durationSeconds = (performance.now() - started) / 1000;
      this.peakGpuBytes = this.engine.gpu.peakBytes;
      // A completed run has waited for the GPU above. A failed one may have lost its device, so it cannot wait.
      this.overhead = this.meter.totals();
      this.releaseTrainingState();
    }

    const stepsRun = this.steps.length;
    onEvent({ kind: 'finished', reason: this.finishReason!, step: stepsRun, overhead: this.overhead, settings: this.comparisonSettings() });
    if (this.status === 'failed') throw this.failure;
    return { reason: this.finishReason!, steps: stepsRun, record: this.record() };
  }

  // ---------------------------------------------------------------------------------------------
  // Preparation: normal data D^N, DPO's reference log-probabilities, irepair-fixed's block

  private async prepare(onEvent: (event: RepairEvent) => void): Promise<void> {
    const { options, engine } = this;
    if (usesKl(options.method)) await this.prepareNormalData(onEvent);
    if (options.method === 'dpo') {
      // Reference log-probabilities of every example, once, while the weights are the original ones.
      const all = [...this.data.train, ...this.data.validation];
      this.dpoReference = new Array(this.data.examples.length);
      let done = 0;
      for (const group of groups(all, options.batchSize)) {
        const pairs = this.builder.preferencePairs(group);
        const values = await pairLogProbabilities(engine, pairs, group.length);
        this.meter.forward(pairs.batchSize, pairs.seqLen);
        group.forEach((index, i) => (this.dpoReference[index] = values[i]));
        done += group.length;
        onEvent({ kind: 'progress', stage: 'reference', done, total: all.length, message: 'Reference log-probabilities for DPO' });
      }
    }
    if (options.method === 'irepair-fixed') await this.chooseFixedBlock(onEvent);
  }

  private async prepareNormalData(onEvent: (event: RepairEvent) => void): Promise<void> {
    const { options, engine } = this;
    const normal = options.normal;
    if (normal.kind === 'sample') {
      this.normalSequences = await sampleNormalData(
        engine, this.tokenizer.eosTokenId,
        { count: normal.count, length: this.normalLength, topP: normal.topP, temperature: normal.temperature, seed: options.seed, batchSize: options.batchSize },
        (done, total) => onEvent({ kind: 'progress', stage: 'normal-data', done, total, message: 'Sampling normal data from the model' }),
      );
      // NOTE: each sampled token counts as one token of a forward pass over the sample's length.
      // The KV-cache decoder costs less, because its attention spans only the earlier tokens.
      for (const sample of this.normalSequences) this.meter.forward(1, sample.length);
    } else {
      this.normalSequences = normalDataFromText(normal.text, this.tokenizer, this.normalLength);
      if (this.normalSequences.length < options.batchSize) {
        throw new UserError(
          `${normal.text.fileName} gives ${this.normalSequences.length} sequences of ${this.normalLength} tokens, fewer than the batch size ${options.batchSize}. ` +
            'Provide more normal text or use a smaller batch size.',
        );
      }
    }
    this.normalSampler = new BatchSampler(this.normalSequences.map((_, i) => i), options.batchSize, `${options.seed}:normal`);
    const B = options.batchSize;
    this.referenceLogits = engine.gpu.createBuffer('reference.logits', B * this.seqLen * engine.config.vocabSize * 4, 'activations');
  }

  /**
   * irepair-fixed: the block with the largest mean sensitivity over a sample of up to
   * `fixedSample` bad training examples, in batches of the run's batch size.
   */
  private async chooseFixedBlock(onEvent: (event: RepairEvent) => void): Promise<void> {
    const { options, engine } = this;
    const sample = shuffle(this.data.train, `${options.seed}:fixed`).slice(0, options.fixedSample);
    const sums = new Float64Array(engine.config.numLayers);
    let done = 0;
    for (const group of groups(sample, options.batchSize)) {
      const bad = this.builder.continuations(group, 'bad');
      const { blocks } = await sensitivity(engine, bad);
      this.meter.training(bad.batchSize, bad.seqLen);
      blocks.forEach((value, block) => (sums[block] += value * group.length));
      done += group.length;
      onEvent({ kind: 'progress', stage: 'fixed-block', done, total: sample.length, message: 'Mean block sensitivity for the fixed slice' });
    }
    const sensitivities = Array.from(sums, (sum) => sum / sample.length);
    this.checkFinite(0, 'mean sensitivity', sensitivities);
    this.fixed = { block: selectBlock(sensitivities, 'max'), sensitivities };
  }

  // ---------------------------------------------------------------------------------------------
  // One step (Algorithm 2, lines 3-11)

  private async repairStep(step: number): Promise<{ record: StepRecord; tokens: number }> {
    const { options, engine, builder } = this;
    const method = options.method;
    const indices = this.sampler.next();
    const dropout = (pass: number) => (options.dropout ? { seed: passSeed(options.seed, step, pass) } : null);
    let tokens = 0;

    // θ_slice ← SLICE(π_θ, X^E, Y^E), or every parameter for the baselines.
    let sensitivities: number[] = [];
    let selectedBlock: number | undefined;
    let trainable: ParameterName[];
    if (isSliceMethod(method)) {
      // Free the previous slice's gradients before the sensitivity pass allocates its own.
      engine.setTrainable([]);
      if (this.fixed) {
        // irepair-fixed reports the mean sensitivities that chose its block at every step.
        sensitivities = this.fixed.sensitivities;
        selectedBlock = this.fixed.block;
      } else {
        const bad = builder.continuations(indices, 'bad');
        tokens += batchTokens(bad);
        sensitivities = (await sensitivity(engine, bad)).blocks;
        this.meter.training(bad.batchSize, bad.seqLen);
        this.checkFinite(step, 'sensitivity', sensitivities);
        selectedBlock = selectBlock(sensitivities, method === 'irepair-min' ? 'min' : 'max');
      }
      trainable = sliceParameters(engine.config, selectedBlock);
      engine.setTrainable(trainable);
    } else {
      trainable = [...engine.grads.keys()];
    }
    this.reference?.keepOriginals(trainable);

    // L ← α·NLL(X^R, Y^R) + KL(X^N) or the DPO loss, and its gradient with respect to θ_slice.
    let repairLoss: number;
    let klLoss: number | undefined;
    let scalars: Float32Array;
    if (method === 'dpo') {
      const pairs = builder.preferencePairs(indices);
      tokens += batchTokens(pairs);
      const reference = indices.map((index) => this.dpoReference[index]);
      repairLoss = await dpoGradients(engine, pairs, indices.length, reference, options.beta, dropout(1));
      this.meter.training(pairs.batchSize, pairs.seqLen);
      engine.gradientSquaredNormInto(SLOT.gradientSquaredNorm);
      scalars = await engine.readScalars(3);
    } else {
      let accumulate = false;
      if (this.reference) {
        const normal = this.nextNormalBatch();
        tokens += 2 * batchTokens(normal);
        recordKlGradients(engine, this.reference, normal, this.referenceLogits!, false, dropout(2));
        this.meter.forward(normal.batchSize, normal.seqLen);
        this.meter.training(normal.batchSize, normal.seqLen);
        accumulate = true;
      }
      const good = builder.continuations(indices, 'good');
      tokens += batchTokens(good);
      recordNllGradients(engine, good, usesAlpha(method) ? options.alpha : 1, accumulate, dropout(1));
      this.meter.training(good.batchSize, good.seqLen);
      engine.gradientSquaredNormInto(SLOT.gradientSquaredNorm);
      scalars = await engine.readScalars(3);
      repairLoss = scalars[SLOT.repair];
      if (this.reference) klLoss = scalars[SLOT.kl];
    }
    if (options.faultInjection?.nonFiniteLossAtStep === step) repairLoss = Number.NaN;
    this.checkFinite(step, method === 'dpo' ? 'DPO loss' : 'repair loss', [repairLoss]);
    if (klLoss !== undefined) this.checkFinite(step, 'KL term', [klLoss]);
    const gradientNorm = Math.sqrt(scalars[SLOT.gradientSquaredNorm]);
    this.checkFinite(step, 'gradient norm', [gradientNorm]);

    // update(θ_slice, G), with the gradient clipped to norm options.clipNorm.
    const lr = learningRateAt(step, options.learningRate, options.warmupSteps, options.maxSteps);
    const gradScale = options.clipNorm > 0 ? Math.min(1, options.clipNorm / (gradientNorm + 1e-6)) : 1;
    this.optimizer.step(engine.params, engine.grads, trainable, lr, gradScale);
    this.markUpdated(trainable);

    const record: StepRecord = { step, sensitivities, repairLoss, lr };
    if (selectedBlock !== undefined) record.selectedBlock = selectedBlock;
    if (klLoss !== undefined) record.klLoss = klLoss;
    return { record, tokens };
  }

  private nextNormalBatch(): TokenBatch {
    const indices = this.normalSampler!.next();
    return this.builder.text(indices.map((i) => this.normalSequences[i]));
  }

  private markUpdated(names: ParameterName[]): void {
    for (const name of names) {
      const block = blockOf(name);
      if (block >= 0) this.updatedBlocks.add(block);
      else this.updatedEmbeddings = true;
    }
  }

  private checkFinite(step: number, quantity: string, values: number[]): void {
    const bad = values.find((value) => !Number.isFinite(value));
    if (bad === undefined) return;
    const where = step === 0 ? 'Before the first step' : `At step ${step}`;
    throw new UserError(
      `${where}, the ${quantity} is ${bad}, so the run stopped before updating the weights, and it cannot be exported. ` +
        `Lower the learning rate (now ${this.options.learningRate}) or keep gradient clipping on, and start again.`,
    );
  }

  // ---------------------------------------------------------------------------------------------
  // Validation

  /**
   * Computes the validation loss, without dropout: the mean NLL of the good continuations over the
   * validation examples, or for DPO the mean DPO loss of their pairs.
   */
  private async validate(step: number, onEvent: (event: RepairEvent) => void): Promise<number> {
    const { options, engine } = this;
    const examples = this.data.validation;
    let total = 0;
    for (const group of groups(examples, options.batchSize)) {
      if (options.method === 'dpo') {
        const pairs = this.builder.preferencePairs(group);
        const policy = await pairLogProbabilities(engine, pairs, group.length);
        this.meter.forward(pairs.batchSize, pairs.seqLen);
        total += dpoLoss(policy, group.map((index) => this.dpoReference[index]), options.beta).loss * group.length;
      } else {
        const good = this.builder.continuations(group, 'good');
        total += (await engine.loss(good)) * group.length;
        this.meter.forward(good.batchSize, good.seqLen);
      }
    }
    const loss = total / examples.length;
    this.checkFinite(step, 'validation loss', [loss]);
    this.validation.push({ step, loss });
    onEvent({ kind: 'validation', step, loss });
    return loss;
  }

  // ---------------------------------------------------------------------------------------------
  // Results and export

  /** Parameters the run has updated: the selected blocks, or every parameter for the baselines. */
  updatedParameterNames(): ParameterName[] {
    return [...this.engine.params.keys()].filter((name) => {
      const block = blockOf(name);
      return block >= 0 ? this.updatedBlocks.has(block) : this.updatedEmbeddings;
    });
  }

  /** Returns the run's settings, data, outcome and steps, as written to run.json. */
  record(): RunRecord {
    const { options, engine } = this;
    const config = engine.config;
    const { faultInjection: _, normal, ...settings } = options;
    const normalSettings = normal.kind === 'text' ? { kind: 'text', fileName: normal.text.fileName, length: this.normalLength } : { ...normal, length: this.normalLength };
    const record: RunRecord = {
      method: options.method,
      config: { ...settings, normal: usesKl(options.method) ? normalSettings : null, seqLen: this.seqLen },
      model: {
        family: config.family, numLayers: config.numLayers, hiddenSize: config.hiddenSize, numHeads: config.numHeads,
        vocabSize: config.vocabSize, parameters: this.checkpoint.parameterCount,
      },
      data: {
        fileName: this.data.fileName, examples: this.data.examples.length, trainExamples: this.data.train.length,
        validationExamples: this.data.validation.length, seqLen: this.seqLen, truncated: this.data.truncated,
      },
      normalData: usesKl(options.method)
        ? { source: normal.kind === 'text' ? 'text' : 'sampled', sequences: this.normalSequences.length, length: this.normalLength }
        : null,
      updatedBlocks: [...this.updatedBlocks].sort((a, b) => a - b),
      updatedEmbeddings: this.updatedEmbeddings,
      validation: this.validation,
      finishReason: this.finishReason,
      stepsRun: this.steps.length,
      durationSeconds: this.durationSeconds,
      peakGpuBytes: this.peakGpuBytes,
      overhead: this.overhead,
      messages: this.messages,
      steps: this.steps.map((step) => toRunJsonStep(step, isSliceMethod(options.method))),
    };
    if (this.fixed) {
      record.fixedBlock = this.fixed.block;
      record.fixedSensitivities = this.fixed.sensitivities;
    }
    return record;
  }

  /**
   * Returns the settings that a comparison of runs shows next to the method: those that tell
   * runs apart, and how the run ended.
   */
  comparisonSettings(): RunSettings {
    const { options } = this;
    const settings: RunSettings = { learningRate: options.learningRate };
    if (usesAlpha(options.method)) settings.alpha = options.alpha;
    if (options.method === 'dpo') settings.beta = options.beta;
    if (usesKl(options.method)) {
      settings.normalData = options.normal.kind === 'text' ? options.normal.text.fileName : `${this.normalSequences.length} samples`;
    }
    if (this.fixed) settings.fixedBlock = this.fixed.block;
    settings.batchSize = options.batchSize;
    settings.steps = this.steps.length;
    settings.maxSteps = options.maxSteps;
    settings.seed = options.seed;
    settings.finishReason = this.finishReason;
    return settings;
  }

  /**
   * Writes the repaired model in the Hugging Face layout with run.json: the updated parameters in
   * their stored dtypes, every other tensor and file copied byte for byte.
   */
  async exportTo(sink: DirectorySink): Promise<void> {
    if (this.status === 'running') throw new UserError('The run is still going; stop it or wait for it to finish before exporting.');
    if (this.status === 'failed') {
      const reason = this.failure instanceof Error ? ` (${this.failure.message})` : '';
      throw new UserError(`The run failed${reason}; its weights are not exported. Start a new run.`);
    }
    // The exporter reads each updated parameter back from the GPU when it writes that tensor.
    const updated = { names: this.updatedParameterNames(), read: (name: ParameterName) => this.engine.readParameter(name) };
    const runJson = `${JSON.stringify(this.record(), null, 2)}\n`;
    await exportCheckpoint(this.checkpoint, updated, sink, [{ name: 'run.json', data: runJson }]);
  }

  /** Frees gradients, optimizer state, the reference copies and the reference logits. */
  private releaseTrainingState(): void {
    this.engine.setTrainable([]);
    this.optimizer.destroy();
    this.reference?.destroy();
    if (this.referenceLogits) this.engine.gpu.destroyBuffer(this.referenceLogits);
    this.referenceLogits = null;
  }
}

function toRunJsonStep(step: StepRecord, sliceMethod: boolean): RunJsonStep {
  const slice = sliceMethod ? { selectedBlock: step.selectedBlock, sensitivities: step.sensitivities } : {};
  const kl = step.klLoss !== undefined ? { klLoss: step.klLoss } : {};
  return { step: step.step, ...slice, repairLoss: step.repairLoss, ...kl, lr: step.lr };
}

/** Derives the dropout seed of one forward pass (`pass`) of one step from the run's seed. */
function passSeed(seed: number, step: number, pass: number): number {
  return fmix32(fmix32(fmix32(seed) + step) ^ fmix32(pass));
}

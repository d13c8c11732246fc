// Everything the worker keeps between commands: the GPU device, the loaded model with its
// original checkpoint, the datasets by role, the repair run and the backup of the changed
// weights. Each command of the protocol is one method here; worker.ts routes messages to them
// and turns failures into error events.

import { requestDevice, type Gpu } from '../gpu/device.ts';
import { splitDataset } from '../data/split.ts';
import type { ParameterName } from '../model/types.ts';
import { repairOptionsFromRunOptions } from '../repair/options.ts';
import { isUserError, UserError } from '../model/errors.ts';
import { WordListDetector } from '../eval/planted.ts';
import { describeError, readLimits } from './adapter.ts';
import { readParametersAtOnce, WeightBackup } from './backup.ts';
import { parseDatasetFile, summarizeLoadedDataset, tokenizeDataset, type LoadedDataset } from './datasets.ts';
import { densitySequences, measureDensity } from './density.ts';
import { loadClassifier, type LoadedClassifier } from './classifier.ts';
import { WorkerCommandError } from './errors.ts';
import { evaluatePerplexity, generateText, measurePlantedRate } from './evaluate.ts';
import { exportModel } from './export.ts';
import { openHubCache, type HubCache } from './hub-cache.ts';
import { openModel, uploadModel, type LoadedModel, type OpenedModel } from './model.ts';
import { batchProblems } from './plan.ts';
import { throttledProgress, type ProgressReporter } from './progress.ts';
import type {
  DatasetRole, ExportTarget, ModelSource, ModelVersion, RepairMethod, RunOptions, ToxicityClassifierSource, WorkerCommand, WorkerEvent,
} from './protocol.ts';
import { RunController } from './run.ts';
import { generateContinuations, scoreContinuations, TOXICITY_GENERATION } from './toxicity.ts';

/**
 * Lowers the batch size to the number of training examples when the dataset is too small for
 * it, so that a few rows still make a run. The training split is the one the run will compute.
 */
function fitBatchToTraining(method: RepairMethod, options: RunOptions, examples: number): { options: RunOptions; notice: string | null } {
  const resolved = repairOptionsFromRunOptions(method, options);
  const training =
    resolved.validationBatches === 0
      ? examples
      : splitDataset(examples, { validationBatches: resolved.validationBatches, batchSize: resolved.validationBatchSize, seed: resolved.seed }).train.length;
  if (training >= options.batchSize) return { options, notice: null };
  return {
    options: { ...options, batchSize: training },
    notice: `The training split has ${training} example${training === 1 ? '' : 's'}, fewer than the batch size ${options.batchSize}, so the run uses batches of ${training}.`,
  };
}

export class WorkerSession {
  private gpu: Gpu | null = null;
  /** The opened checkpoint and tokenizer; they outlive a lost device, so the model can be restored. */
  private opened: OpenedModel | null = null;
  /** The model on the GPU, null while none is loaded or after the device was lost. */
  private model: LoadedModel | null = null;
  private readonly datasets = new Map<DatasetRole, LoadedDataset>();
  private run: RunController | null = null;
  /** Every run since the model was loaded, in order; the export's run.json describes them. */
  private runs: RunController[] = [];
  /** Parameters changed by any run since the model was loaded. */
  private readonly modified = new Set<ParameterName>();
  private readonly backup = new WeightBackup();
  /** The command that uses the GPU or the model exclusively, so that two of them never overlap. */
  private busyWith: string | null = null;
  private busyTask: Promise<unknown> | null = null;
  private hubCache: Promise<HubCache> | null = null;
  private classifier: LoadedClassifier | null = null;
  /** Current task of the toxicity classifier, null when idle, so that it is not replaced while it loads or scores. */
  private classifierBusyWith: string | null = null;
  private readonly progress: ProgressReporter;
  /** Abort controller of the error density measurement in progress, null when none runs. */
  private densityStop: AbortController | null = null;

  constructor(private readonly post: (event: WorkerEvent) => void) {
    this.progress = throttledProgress(post);
  }

  // ---- Device ----

  private async device(): Promise<Gpu> {
    if (this.gpu && this.gpu.lostReason === null) return this.gpu;
    if (!navigator.gpu) {
      throw new UserError('This browser offers no WebGPU, so no model can be loaded. Follow the steps in the message above to enable it.');
    }
    const gpu = await requestDevice(navigator.gpu);
    gpu.device.lost.then((info) => void this.deviceLost(gpu, info));
    this.gpu = gpu;
    return gpu;
  }

  /**
   * Handles a lost device, which takes every buffer with it. The run stops, and the session loads
   * the checkpoint again on a new device with the backed-up weights written over it, so that the
   * repair can be exported or continued from the last backed-up step.
   */
  private async deviceLost(gpu: Gpu, info: GPUDeviceLostInfo): Promise<void> {
    if (gpu !== this.gpu) return;
    this.gpu = null;
    this.model = null;
    const run = this.run?.active ? this.run : null;
    run?.abandon();
    const reason = (info.message || info.reason).replace(/\.$/, '');
    const opened = this.opened;
    if (!opened) {
      this.post({ kind: 'error', message: `The GPU device was lost (${reason}). Load the model again.`, fatal: false });
      return;
    }

    await this.backup.settled();
    const lostAt = run?.steps.length ?? 0;
    const savedStep = this.backup.savedStep;
    const restorable = !this.backup.disabled && (!run || savedStep !== null);
    if (run) {
      this.post({ kind: 'finished', reason: 'failed', step: lostAt });
      if (restorable && savedStep !== null && savedStep < lostAt) run.truncateTo(savedStep);
    }
    this.run = null;
    let outcome = '';
    if (run && restorable) outcome = ` The run stopped at step ${lostAt}, and the weights of step ${savedStep} are kept.`;
    if (run && !restorable) outcome = ' The run stopped, and its weights are lost because the changed parameters were too large to back up.';
    if (!run && !restorable && this.modified.size > 0) outcome = ' The repaired weights are lost because the changed parameters were too large to back up.';
    this.post({ kind: 'error', message: `The GPU device was lost (${reason}).${outcome} Loading the model on a new device…`, fatal: false });

    // A command that was using the device fails on its own; the restore waits for it to end.
    await this.busyTask?.catch(() => {});
    try {
      await this.exclusive('restoring the model after a lost GPU device', async () => {
        const restored = await uploadModel(await this.device(), opened, this.progress, (plan) => this.post({ kind: 'modelPlanned', plan }));
        if (restorable) {
          for (const [name, values] of this.backup.values) restored.engine.writeParameter(name, values);
        } else {
          this.forgetRepairs();
        }
        await restored.engine.gpu.sync();
        this.model = restored;
        this.post({ kind: 'modelLoaded', plan: restored.plan, source: restored.label, planted: opened.planted ?? undefined });
      });
    } catch (error) {
      this.post({
        kind: 'error',
        message: `The model could not be loaded on a new GPU device: ${describeError(error)} Restart the GPU worker.`,
        fatal: true,
      });
      return;
    }
    if (run && restorable) {
      this.post({
        kind: 'notice',
        message: `The model was restored on a new GPU device with the weights of step ${savedStep}. Export them, or press Start to repair further from them.`,
      });
    }
  }

  // ---- Commands ----

  /** Runs a command that needs the GPU or the model exclusively. */
  private async exclusive<T>(what: string, task: () => Promise<T>): Promise<T> {
    if (this.busyWith) throw new WorkerCommandError(`The worker is busy ${this.busyWith}. Wait until it finishes, then try again.`);
    this.busyWith = what;
    this.post({ kind: 'busy', task: what });
    const running = task();
    this.busyTask = running;
    try {
      return await running;
    } finally {
      this.busyWith = null;
      this.busyTask = null;
      this.post({ kind: 'busy', task: null });
    }
  }

  private requireNoActiveRun(action: string): void {
    if (this.run?.active) throw new WorkerCommandError(`Stop the repair run before ${action}.`);
  }

  private requireModel(action: string): LoadedModel {
    if (this.model) return this.model;
    if (this.busyWith) throw new WorkerCommandError(`The worker is busy ${this.busyWith}. Wait until it finishes, then try again.`);
    throw new WorkerCommandError(`Load a model before ${action}.`);
  }

  private forgetRepairs(): void {
    this.run = null;
    this.runs = [];
    this.modified.clear();
    this.backup.clear();
  }

  async loadModel(source: ModelSource): Promise<void> {
    this.requireNoActiveRun('loading another model');
    await this.exclusive('loading a model', async () => {
      // The page shows no model from the moment a load starts, also when the load fails, so the
      // previous model is freed first. Its buffers are gone before the new weights are allocated.
      this.model?.engine.destroy();
      this.model = null;
      this.opened = null;
      this.forgetRepairs();

      this.hubCache ??= openHubCache();
      const opened = await openModel(source, await this.hubCache, this.progress);
      const gpu = await this.device();
      const model = await uploadModel(gpu, opened, this.progress, (plan) => this.post({ kind: 'modelPlanned', plan }));
      this.opened = opened;
      this.model = model;
      this.post({ kind: 'modelLoaded', plan: model.plan, source: model.label, planted: opened.planted ?? undefined });
      this.retokenizeDatasets();
    });
  }

  /** Tokenizes every loaded dataset for the model just loaded and sends the new summaries. */
  private retokenizeDatasets(): void {
    const opened = this.opened!;
    for (const [role, dataset] of this.datasets) {
      try {
        const tokenized = tokenizeDataset(dataset, opened.tokenizer, opened.checkpoint.config.contextLength, opened.checkpoint.config.vocabSize);
        this.datasets.set(role, tokenized);
        this.post({ kind: 'datasetLoaded', summary: summarizeLoadedDataset(tokenized) });
      } catch (error) {
        this.datasets.delete(role);
        this.post({ kind: 'error', message: describeError(error), fatal: false, command: 'loadDataset', role });
      }
    }
  }

  async loadDataset(file: File, role: DatasetRole): Promise<void> {
    if (role === 'repair' || role === 'normal') this.requireNoActiveRun(`replacing the ${role} data`);
    let dataset: LoadedDataset;
    try {
      dataset = parseDatasetFile(await file.text(), file.name, role);
      if (this.opened) {
        const { config } = this.opened.checkpoint;
        dataset = tokenizeDataset(dataset, this.opened.tokenizer, config.contextLength, config.vocabSize);
      }
    } catch (error) {
      // A rejected file leaves the previously loaded dataset in place, and the message names it.
      const previous = this.datasets.get(role);
      if (!previous || !(error instanceof WorkerCommandError || isUserError(error))) throw error;
      const previousName = previous.kind === 'text' ? previous.text.fileName : previous.dataset.fileName;
      throw new WorkerCommandError(`${describeError(error).replace(/\.?$/, '.')} The previous ${role} data, ${previousName}, is still in use.`);
    }
    this.datasets.set(role, dataset);
    this.post({ kind: 'datasetLoaded', summary: summarizeLoadedDataset(dataset) });
  }

  async start(command: Extract<WorkerCommand, { kind: 'start' }>): Promise<void> {
    this.requireNoActiveRun('starting another one');
    if (this.busyWith) throw new WorkerCommandError(`The worker is busy ${this.busyWith}. Wait until it finishes, then start the run.`);
    const model = this.requireModel('starting a run');
    const repair = this.datasets.get('repair');
    if (!repair || repair.kind !== 'examples') {
      throw new WorkerCommandError('Load repair data (prompts with a bad and a good continuation) before starting a run.');
    }

    const { options, notice } = fitBatchToTraining(command.method, command.options, repair.dataset.rows.length);
    if (repair.tokenized) {
      // The run's batches hold B sequences (2B for DPO's pairs) of the longest example's length.
      const lengths = repair.tokenized.examples.map((example) => example.prompt.length + Math.max(example.bad!.length, example.good!.length));
      const rows = command.method === 'dpo' ? 2 * options.batchSize : options.batchSize;
      const limits = readLimits(model.engine.gpu.device.limits);
      const problems = batchProblems(model.engine.config, limits, { batchSize: rows, seqLen: Math.max(...lengths) });
      if (problems.length > 0) throw new WorkerCommandError(problems.join(' '));
    }

    const normal = this.datasets.get('normal');
    this.backup.startRun();
    const run = RunController.start({
      model,
      repair,
      normal: normal?.kind === 'text' ? normal : null,
      method: command.method,
      options,
      backup: this.backup,
      post: this.post,
      onUpdated: (names) => names.forEach((name) => this.modified.add(name)),
    });
    this.run = run;
    this.runs.push(run);
    // Sent after the run's first state event, which starts a new list of notices in the page.
    if (notice) this.post({ kind: 'notice', message: notice });
  }

  pause(): void {
    this.requireRun('pause').pause();
  }

  resume(): void {
    this.requireRun('resume').resume();
  }

  stop(): void {
    this.requireRun('stop').stop();
  }

  private requireRun(action: string): RunController {
    if (!this.run?.active) throw new WorkerCommandError(`There is no running repair to ${action}.`);
    return this.run;
  }

  async export(target: ExportTarget): Promise<void> {
    this.requireNoActiveRun('exporting');
    const model = this.requireModel('exporting');
    const last = this.runs.at(-1);
    if (!last || this.modified.size === 0) throw new WorkerCommandError('Run a repair before exporting: no step has changed the weights yet.');
    if (last.failure !== null && !last.lostDevice) {
      throw new WorkerCommandError(`The run failed (${last.failure}), so its weights are not exported. Start a new run.`);
    }

    await this.exclusive('exporting the model', async () => {
      // The exporter reads each changed parameter back from the GPU when it writes that tensor.
      const updated = { names: [...this.modified], read: (name: ParameterName) => model.engine.readParameter(name) };
      const records = this.runs.map((run) => run.record());
      // run.json describes the latest run, and any earlier runs on the same model follow it.
      const runJson = records.length === 1 ? records[0] : { ...records.at(-1)!, previousRuns: records.slice(0, -1) };
      const files = await exportModel({
        checkpoint: model.checkpoint,
        updated,
        extraFiles: [{ name: 'run.json', data: `${JSON.stringify(runJson, null, 2)}\n` }],
        target,
        archiveName: `${model.name}-${last.method}.zip`,
        onProgress: (file, loaded, total) => this.progress('export', file, loaded, total),
      });
      this.post({ kind: 'exported', files });
    });
  }

  /**
   * Runs `task` once per model version: the weights on the GPU for `repaired`, and for
   * `original` the checkpoint's values of every changed parameter, written over them for the
   * task and replaced by the repaired values afterwards.
   */
  private async forEachVersion(models: ModelVersion[], task: (model: LoadedModel, version: ModelVersion) => Promise<void>): Promise<void> {
    const model = this.requireModel('comparing the original and the repaired model');
    // The repaired version goes first, so the weights on the GPU are swapped at most once.
    const requested = new Set(models);
    const order = (['repaired', 'original'] as const).filter((version) => requested.has(version));
    for (const version of order) {
      if (version === 'repaired' || this.modified.size === 0) {
        await task(model, version);
        continue;
      }
      const names = new Set(this.modified);
      const repaired = await readParametersAtOnce(model.engine, names);
      try {
        for await (const { entry, data } of model.checkpoint.readTensors((entry) => names.has(entry.name))) {
          model.engine.writeParameter(entry.name, data);
        }
        await task(model, version);
      } finally {
        for (const [name, values] of repaired) model.engine.writeParameter(name, values);
        await model.engine.gpu.sync();
      }
    }
  }

  async generate(command: Extract<WorkerCommand, { kind: 'generate' }>): Promise<void> {
    this.requireNoActiveRun('generating text');
    this.requireModel('generating text');
    await this.exclusive('generating text', async () => {
      // Every version is announced first, so the page shows the comparison as pending until the last one is done.
      for (const version of new Set(command.models)) {
        this.post({ kind: 'generation', model: version, prompt: command.prompt, text: '', done: false });
      }
      await this.forEachVersion(command.models, (model, version) =>
        generateText(model, command.prompt, command.options, (text, done) =>
          this.post({ kind: 'generation', model: version, prompt: command.prompt, text, done }),
        ),
      );
    });
  }

  async evaluate(command: Extract<WorkerCommand, { kind: 'evaluate' }>): Promise<void> {
    this.requireNoActiveRun('evaluating');
    this.requireModel('evaluating');
    if (command.metric === 'planted') return this.evaluatePlanted(command);
    if (command.metric === 'toxicity') return this.evaluateToxicity(command);
    const text = this.datasets.get('text');
    if (!text || text.kind !== 'text' || !text.ids) throw new WorkerCommandError('Load a text file for perplexity, and a model, before measuring it.');
    const ids = text.ids;
    await this.exclusive('measuring perplexity', () =>
      this.forEachVersion(command.models, async (model, version) => {
        const result = await evaluatePerplexity(model, ids, command.maxExamples);
        this.post({ kind: 'evaluation', metric: 'perplexity', model: version, value: result.perplexity, count: result.tokens });
      }),
    );
  }

  /**
   * Measures the rate of the planted behaviour in sampled continuations of the first
   * `maxExamples` prompts of the prompt set, for a model that came with a planted.json.
   */
  private async evaluatePlanted(command: Extract<WorkerCommand, { kind: 'evaluate' }>): Promise<void> {
    const planted = this.opened?.planted;
    if (!planted) {
      throw new WorkerCommandError('The loaded model has no planted.json, so it has no planted behaviour to measure. Load the demo model, or a checkpoint folder with a planted.json.');
    }
    const prompts = this.datasets.get('prompts');
    if (!prompts || prompts.kind !== 'examples') throw new WorkerCommandError('Load a prompt set before measuring the planted behaviour.');
    const texts = prompts.dataset.rows.slice(0, command.maxExamples).map((row) => row.prompt);
    const detector = new WordListDetector(planted.words);
    await this.exclusive('measuring the planted behaviour', () =>
      this.forEachVersion(command.models, async (model, version) => {
        const result = await measurePlantedRate(model, texts, detector);
        this.post({ kind: 'evaluation', metric: 'planted', model: version, value: result.rate, count: result.continuations });
      }),
    );
  }

  /**
   * Loads a toxicity classifier. The previous one stays in use until the new one has loaded, and
   * is then disposed. A load runs next to a repair run, since it does not touch the GPU.
   */
  async loadClassifier(source: ToxicityClassifierSource): Promise<void> {
    if (this.classifierBusyWith) {
      throw new WorkerCommandError(`The toxicity classifier is busy ${this.classifierBusyWith}. Wait until it finishes, then try again.`);
    }
    this.classifierBusyWith = 'loading';
    try {
      const loaded = await loadClassifier(source, this.progress);
      const previous = this.classifier;
      this.classifier = loaded;
      await previous?.classifier.dispose();
      this.post({ kind: 'classifierLoaded', classifier: loaded.info });
    } finally {
      this.classifierBusyWith = null;
    }
  }

  /**
   * Generates one continuation of each of the first `maxExamples` prompts with every requested
   * model version, then scores them with the classifier. The GPU is free again before the scoring.
   */
  private async evaluateToxicity(command: Extract<WorkerCommand, { kind: 'evaluate' }>): Promise<void> {
    const prompts = this.datasets.get('prompts');
    if (!prompts || prompts.kind !== 'examples') throw new WorkerCommandError('Load a prompt set before measuring toxicity.');
    const loaded = this.classifier;
    if (!loaded) throw new WorkerCommandError('Load a toxicity classifier, from the Hub or a dropped folder, before measuring toxicity.');
    if (this.classifierBusyWith) {
      throw new WorkerCommandError(`The toxicity classifier is busy ${this.classifierBusyWith}. Wait until it finishes, then try again.`);
    }
    const texts = prompts.dataset.rows.slice(0, command.maxExamples).map((row) => row.prompt);
    const generation = command.generation ?? TOXICITY_GENERATION;

    this.classifierBusyWith = 'measuring toxicity';
    try {
      await this.exclusive('measuring toxicity', async () => {
        const continuations = new Map<ModelVersion, string[]>();
        await this.forEachVersion(command.models, async (model, version) => {
          const report = (done: number, total: number) =>
            this.progress('evaluate', `${version}:generate`, done, total, `${version} model, continuations generated`);
          continuations.set(version, await generateContinuations(model, texts, generation, report));
        });

        for (const version of (['original', 'repaired'] as const).filter((version) => continuations.has(version))) {
          const report = (done: number, total: number) =>
            this.progress('evaluate', `${version}:score`, done, total, `${version} model, continuations scored`);
          const details = await scoreContinuations(loaded.classifier, loaded.info.label, texts, continuations.get(version)!, report);
          this.post({ kind: 'evaluation', metric: 'toxicity', model: version, value: details.meanToxicity, count: details.samples.length, toxicity: details });
        }
      });
    } finally {
      this.classifierBusyWith = null;
    }
  }

  /** Measures the error density of one model version over a sample of the repair data's bad continuations. */
  async measureDensity(command: Extract<WorkerCommand, { kind: 'measureDensity' }>): Promise<void> {
    this.requireNoActiveRun('measuring error density');
    const model = this.requireModel('measuring error density');
    const { sequences, fileName } = densitySequences(model, this.datasets.get('repair'));
    const controller = new AbortController();
    await this.exclusive('measuring error density', async () => {
      this.densityStop = controller;
      try {
        const request = { sequences, fileName, sampleSize: command.sampleSize, model: command.model, signal: controller.signal, post: this.post };
        await this.forEachVersion([command.model], (loaded) => measureDensity(loaded, request));
      } finally {
        this.densityStop = null;
      }
    });
  }

  /** Stops the error density measurement after its current batch. */
  stopDensity(): void {
    if (!this.densityStop) throw new WorkerCommandError('No error density measurement is running.');
    this.densityStop.abort();
  }
}

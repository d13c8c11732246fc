// A repair run in the worker: src/repair's RepairRun on the loaded engine, with its events
// forwarded to the page, and a backup of the changed weights in worker memory that survives a
// lost GPU device.

import { sliceParameters } from '../repair/slice.ts';
import { repairOptionsFromRunOptions, type NormalDataOptions } from '../repair/options.ts';
import { createRepairRun, type RepairEvent, type RepairRun, type RunRecord } from '../repair/run.ts';
import type { ParameterName } from '../model/types.ts';
import { describeError } from './adapter.ts';
import type { ExampleDataset, PlainTextDataset } from './datasets.ts';
import type { LoadedModel } from './model.ts';
import type { FinishReason, RepairMethod, RunOptions, StepRecord, WorkerEvent } from './protocol.ts';
import type { WeightBackup } from './backup.ts';

export interface RunRequest {
  model: LoadedModel;
  repair: ExampleDataset;
  normal: PlainTextDataset | null;
  method: RepairMethod;
  options: RunOptions;
  backup: WeightBackup;
  post: (event: WorkerEvent) => void;
  /** Called with the parameters each step changes. */
  onUpdated: (names: ParameterName[]) => void;
}

export class RunController {
  readonly method: RepairMethod;
  readonly options: RunOptions;
  readonly steps: StepRecord[] = [];
  /** True from the start until RepairRun.run() has settled. */
  active = true;
  finishReason: FinishReason | null = null;
  /** The failure that ended the run, for runs that failed. */
  failure: string | null = null;
  /** Set when the device was lost under the run; the run then ends without further events. */
  private abandoned = false;
  /** Last step whose weights survived a lost device; later steps are left out of run.json. */
  private restoredStep: number | null = null;
  private readonly repairRun: RepairRun;

  private constructor(private readonly request: RunRequest) {
    this.method = request.method;
    this.options = request.options;
    // The normal data D^N: the dropped text file, else samples of the model itself.
    const normal: NormalDataOptions | undefined = request.normal ? { kind: 'text', text: request.normal.text, length: null } : undefined;
    const settings = repairOptionsFromRunOptions(request.method, request.options, normal);
    const { engine, checkpoint, tokenizer } = request.model;
    // Tokenizes, splits and plans memory now, so bad input fails the start command itself.
    this.repairRun = createRepairRun(engine, checkpoint, tokenizer, request.repair.dataset, settings);
  }

  /** Prepares the run and starts its loop; the loop reports through `request.post`. */
  static start(request: RunRequest): RunController {
    const run = new RunController(request);
    void run.loop();
    return run;
  }

  pause(): void {
    this.repairRun.pause();
  }

  resume(): void {
    this.repairRun.resume();
  }

  stop(): void {
    this.repairRun.stop();
  }

  /** Ends the run without further events, after the device was lost under it. */
  abandon(): void {
    this.abandoned = true;
    this.repairRun.stop();
  }

  /** Whether the run ended because the GPU device was lost. */
  get lostDevice(): boolean {
    return this.abandoned;
  }

  /** Marks the steps after `step` as lost with the device: the weights are those of `step`. */
  truncateTo(step: number): void {
    this.restoredStep = step;
  }

  /** Returns the run as run.json stores it, without the steps lost with a device. */
  record(): RunRecord & { restoredFromStep?: number } {
    const record = this.repairRun.record();
    const restored = this.restoredStep;
    if (restored === null) return record;
    return { ...record, steps: record.steps.filter((step) => step.step <= restored), restoredFromStep: restored };
  }

  private forward(event: RepairEvent): void {
    if (this.abandoned) return;
    const { post, model, backup } = this.request;
    const numBlocks = model.checkpoint.config.numLayers;
    switch (event.kind) {
      case 'state':
        post({ kind: 'runState', state: event.state, method: this.method, options: this.options, numBlocks });
        if (event.state === 'paused') backup.save(model.engine, this.steps.length);
        return;
      case 'step': {
        const { kind: _kind, tokensPerSecond: _rate, gpuBytes: _bytes, etaSeconds: _eta, ...record } = event;
        this.steps.push(record);
        // This step changed the selected block, or every parameter for the baselines.
        const changed =
          record.selectedBlock === undefined ? [...model.engine.params.keys()] : sliceParameters(model.engine.config, record.selectedBlock);
        this.request.onUpdated(changed);
        backup.markChanged(changed, model.engine);
        backup.saveIfDue(model.engine, record.step);
        post(event);
        return;
      }
      case 'validation':
        post(event);
        return;
      case 'progress':
        post({ kind: 'progress', stage: 'prepare', file: event.stage, loadedBytes: event.done, totalBytes: event.total, message: event.message });
        return;
      case 'message':
        post({ kind: 'notice', message: event.message });
        return;
      case 'finished':
        this.finishReason = event.reason;
        // The finished event comes after the run released its training state, so nothing
        // changes the weights any more.
        if (event.reason !== 'failed') backup.save(model.engine, event.step);
        post(event);
        return;
    }
  }

  private async loop(): Promise<void> {
    try {
      await this.repairRun.run((event) => this.forward(event));
    } catch (error) {
      this.failure = describeError(error);
      // A lost device is reported once, by the session, with what it restored.
      if (!this.abandoned && this.request.model.engine.gpu.lostReason === null) {
        this.request.post({ kind: 'error', message: this.failure, fatal: false });
      }
    } finally {
      this.active = false;
    }
  }
}

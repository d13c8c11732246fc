// A copy in worker memory of every parameter the repair has changed since the model was loaded.
// After a lost GPU device, the session loads the original checkpoint on a new device and writes
// these values over it, so the loss costs at most the steps since the last copy.
//
// A copy is taken after every step whose changed parameters are small (one block of a GPT-2
// model is 28 MB to 123 MB), otherwise at most every SAVE_INTERVAL_MS, and always when a run
// pauses or ends.

import type { GptEngine } from '../engine/gpt.ts';
import type { GpuBuffer } from '../gpu/device.ts';
import type { ParameterName } from '../model/types.ts';

/** Changed bytes up to which a copy is taken after every step. */
const SAVE_EVERY_STEP_BYTES = 128 * 2 ** 20;

/** Longest time between two copies while changed parameters are larger than that. */
const SAVE_INTERVAL_MS = 30_000;

/**
 * Largest backup kept. Baselines that change a whole large model would need more than a worker
 * should hold, so above this the backup is dropped and a lost device loses the run.
 */
const MAX_BACKUP_BYTES = 2 ** 30;

/**
 * Copies the parameters' buffers to mappable buffers and reads them. Every copy is recorded
 * before the first await, so all values come from the same point of the command stream even
 * when the caller records more work right after this call returns its promise.
 */
export function readParametersAtOnce(engine: GptEngine, names: Iterable<ParameterName>): Promise<Map<ParameterName, Float32Array>> {
  const gpu = engine.gpu;
  const reads: { name: ParameterName; size: number; offset: number; staging: GPUBuffer }[] = [];
  for (const name of names) {
    const tensor = engine.param(name);
    const rowSize = tensor.size / tensor.shape[0];
    for (const chunk of tensor.chunks) {
      const bytes = chunk.rows * rowSize * 4;
      const staging = gpu.device.createBuffer({ label: `backup ${name}`, size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      const target: GpuBuffer = { buffer: staging, bytes, category: 'scratch', label: `backup ${name}` };
      gpu.copy(chunk.buffer, 0, target, 0, bytes);
      reads.push({ name, size: tensor.size, offset: chunk.rowStart * rowSize, staging });
    }
  }
  gpu.flush();

  return (async () => {
    const values = new Map<ParameterName, Float32Array>();
    try {
      await Promise.all(reads.map((read) => read.staging.mapAsync(GPUMapMode.READ)));
      for (const read of reads) {
        let array = values.get(read.name);
        if (!array) {
          array = new Float32Array(read.size);
          values.set(read.name, array);
        }
        array.set(new Float32Array(read.staging.getMappedRange()), read.offset);
      }
    } finally {
      for (const read of reads) read.staging.destroy();
    }
    return values;
  })();
}

export class WeightBackup {
  /** Latest saved values of every changed parameter. */
  readonly values = new Map<ParameterName, Float32Array>();
  /** Steps of the current run that the saved values include; null before the first save. */
  savedStep: number | null = null;
  /** Set when the changed parameters outgrew MAX_BACKUP_BYTES. */
  disabled = false;

  private readonly changed = new Set<ParameterName>();
  private changedBytes = 0;
  private lastSave = 0;
  private pending: Promise<void> = Promise.resolve();

  /** Forgets everything, for a newly loaded model. */
  clear(): void {
    this.values.clear();
    this.changed.clear();
    this.changedBytes = 0;
    this.savedStep = null;
    this.disabled = false;
  }

  /** Starts a new run: its step numbers count from 1 again. */
  startRun(): void {
    this.savedStep = this.changed.size === 0 ? 0 : null;
  }

  markChanged(names: Iterable<ParameterName>, engine: GptEngine): void {
    if (this.disabled) return;
    for (const name of names) {
      if (this.changed.has(name)) continue;
      this.changed.add(name);
      this.changedBytes += engine.param(name).size * 4;
    }
  }

  /** Saves after this step when the changed parameters are small or the interval has passed. */
  saveIfDue(engine: GptEngine, step: number): void {
    const due = this.changedBytes <= SAVE_EVERY_STEP_BYTES || performance.now() - this.lastSave >= SAVE_INTERVAL_MS;
    if (due) this.save(engine, step);
  }

  /** Records copies of the changed parameters now and stores them when they arrive. */
  save(engine: GptEngine, step: number): void {
    if (this.disabled || this.changed.size === 0) {
      if (!this.disabled) this.savedStep = step;
      return;
    }
    const names = [...this.changed];
    this.changed.clear();
    this.changedBytes = 0;
    this.lastSave = performance.now();
    const read = readParametersAtOnce(engine, names);
    this.pending = this.pending.then(async () => {
      try {
        for (const [name, values] of await read) this.values.set(name, values);
        this.savedStep = step;
        this.checkSize();
      } catch {
        // The device was lost before the copy arrived; the previous copy stays the latest.
        for (const name of names) this.changed.add(name);
      }
    });
  }

  /** Waits for copies in flight. */
  settled(): Promise<void> {
    return this.pending;
  }

  private checkSize(): void {
    let bytes = 0;
    for (const values of this.values.values()) bytes += values.byteLength;
    if (bytes <= MAX_BACKUP_BYTES) return;
    this.values.clear();
    this.disabled = true;
    this.savedStep = null;
  }
}

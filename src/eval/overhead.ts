// The overhead of a repair run, as in the IRepair paper's Table 2: training FLOPs (Kaplan et
// al.'s estimate, see flops.ts), FLOPs per token, GPU time, peak GPU memory and iterations.
//
// A repair loop reports each pass it records: `training` for a forward and backward pass
// (repair loss, sensitivity), `forward` for a forward pass alone (the reference model of a KL
// term), and `iteration` once per optimizer step.

import type { Gpu } from '../gpu/device.ts';
import type { ModelConfig } from '../model/types.ts';
import { forwardFlopsPerToken, type FlopsOptions } from './flops.ts';

export interface Overhead {
  /**
   * Estimated floating-point operations of every pass of the run: forward and backward passes
   * (repair loss, sensitivity, KL term) at 3 times a forward pass, plus forward-only passes
   * (reference model, validation, sampling of normal data).
   */
  flops: number;
  /**
   * `flops`, forward-only passes included, divided by `trainingTokens`. So validation and reference
   * passes raise it, for example with more validation batches. The IRepair paper's Table 2 reports
   * TFLOPs/Token without naming the denominator.
   */
  flopsPerToken: number;
  /** Tokens of the training (forward and backward) passes, padding included. */
  trainingTokens: number;
  /** Tokens of the forward-only passes, padding included. */
  forwardTokens: number;
  /**
   * Wall-clock seconds from start() until the GPU finished the run's last work. It includes host
   * time between dispatches, so it bounds the GPU's busy time from above.
   */
  gpuSeconds: number;
  /** Peak bytes of GPU buffers allocated during the run, from the engine's own accounting. */
  peakMemoryBytes: number;
  iterations: number;
}

export class OverheadMeter {
  private readonly gpu: Gpu;
  private readonly config: ModelConfig;
  private readonly flopsOptions: FlopsOptions;
  private flops = 0;
  private trainingTokens = 0;
  private forwardTokens = 0;
  private iterations = 0;
  private startTime = 0;
  private started = false;

  /** `flopsOptions.embeddings` chooses which N the estimate uses; n_ctx is each pass's sequence length. */
  constructor(gpu: Gpu, config: ModelConfig, flopsOptions: Omit<FlopsOptions, 'contextLength'> = {}) {
    this.gpu = gpu;
    this.config = config;
    this.flopsOptions = flopsOptions;
  }

  /** Starts the clock and resets the GPU's peak to the bytes allocated now. */
  start(): void {
    this.gpu.resetPeak();
    this.startTime = performance.now();
    this.started = true;
  }

  /**
   * Counts a forward and backward pass over B sequences of T tokens. A backward pass that stops
   * at the lowest trainable block costs less than this 3x rule counts.
   */
  training(B: number, T: number): void {
    this.flops += 3 * B * T * forwardFlopsPerToken(this.config, { ...this.flopsOptions, contextLength: T });
    this.trainingTokens += B * T;
  }

  /** Counts a forward pass alone over B sequences of T tokens. */
  forward(B: number, T: number): void {
    this.flops += B * T * forwardFlopsPerToken(this.config, { ...this.flopsOptions, contextLength: T });
    this.forwardTokens += B * T;
  }

  iteration(): void {
    this.iterations++;
  }

  /** Waits for the GPU to finish the run's work and returns the totals. */
  async finish(): Promise<Overhead> {
    if (!this.started) throw new Error('OverheadMeter.finish: start() was not called');
    await this.gpu.sync();
    return this.totals();
  }

  /**
   * Returns the totals so far without waiting for the GPU, for a caller that has already waited
   * or that cannot wait, such as a run on a lost device. GPU time then ends now.
   */
  totals(): Overhead {
    if (!this.started) throw new Error('OverheadMeter.totals: start() was not called');
    return {
      flops: this.flops,
      flopsPerToken: this.trainingTokens > 0 ? this.flops / this.trainingTokens : 0,
      trainingTokens: this.trainingTokens,
      forwardTokens: this.forwardTokens,
      gpuSeconds: (performance.now() - this.startTime) / 1000,
      peakMemoryBytes: this.gpu.peakBytes,
      iterations: this.iterations,
    };
  }
}

// RMSprop (the optimizer of the IRepair paper's experiments) and AdamW on the GPU, with optimizer state allocated the first
// time a parameter is updated. IRepair updates one block per step, so it only ever holds state
// for the blocks it has selected, as torch.optim does for parameters that never had a gradient.

import optimizerSource from '../../shaders/optimizer.wgsl?raw';
import type { Gpu } from '../gpu/device.ts';
import { allocateTensor, destroyTensor, type Tensor } from '../engine/parameters.ts';
import type { ParameterName } from '../model/types.ts';

export type OptimizerSettings =
  | { kind: 'rmsprop'; alpha: number; eps: number; momentum: number; weightDecay: number }
  | { kind: 'adamw'; beta1: number; beta2: number; eps: number; weightDecay: number };

/** torch.optim.RMSprop's defaults. */
export const DEFAULT_RMSPROP: OptimizerSettings = { kind: 'rmsprop', alpha: 0.99, eps: 1e-8, momentum: 0, weightDecay: 0 };

/** torch.optim.AdamW's defaults. */
export const DEFAULT_ADAMW: OptimizerSettings = { kind: 'adamw', beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

export const OPTIMIZER_ENTRY_POINTS = ['rmsprop_step', 'rmsprop_momentum_step', 'adamw_step'].map((entryPoint) => ({
  shaderName: 'optimizer',
  source: optimizerSource,
  entryPoint,
}));

interface ParameterState {
  /** RMSprop's square_avg or AdamW's exp_avg. */
  first: Tensor;
  /** RMSprop's momentum buffer or AdamW's exp_avg_sq; absent for RMSprop without momentum. */
  second: Tensor | null;
  /** Updates applied so far (AdamW's bias correction uses it). */
  steps: number;
}

export class Optimizer {
  readonly settings: OptimizerSettings;
  private readonly gpu: Gpu;
  private readonly state = new Map<ParameterName, ParameterState>();

  constructor(gpu: Gpu, settings: OptimizerSettings) {
    this.gpu = gpu;
    this.settings = settings;
  }

  /** Compiles the update kernels; call once before the first step. */
  async compile(): Promise<void> {
    await this.gpu.compile(OPTIMIZER_ENTRY_POINTS);
  }

  /**
   * Records one update of each parameter in `names` from its gradient, which is multiplied by
   * `gradScale` first (the gradient clipping factor). State is allocated, as zeros, on first use.
   */
  step(params: ReadonlyMap<ParameterName, Tensor>, grads: ReadonlyMap<ParameterName, Tensor>, names: Iterable<ParameterName>, lr: number, gradScale: number): void {
    for (const name of names) {
      const param = params.get(name);
      const grad = grads.get(name);
      if (!param || !grad) throw new Error(`optimizer step: ${name} has no ${param ? 'gradient' : 'parameter'}`);
      const state = this.stateOf(name, param);
      state.steps++;
      const rowSize = param.size / param.shape[0];
      param.chunks.forEach((chunk, i) => {
        const n = chunk.rows * rowSize;
        const bindings: Record<number, typeof chunk.buffer> = { 1: chunk.buffer, 2: grad.chunks[i].buffer, 3: state.first.chunks[i].buffer };
        if (state.second) bindings[4] = state.second.chunks[i].buffer;
        this.gpu.dispatch(this.gpu.pipeline('optimizer', optimizerSource, this.entryPoint()), this.uniforms(n, lr, gradScale, state.steps), bindings, elementGrid(n));
      });
    }
  }

  /** Bytes of optimizer state allocated so far. */
  stateBytes(): number {
    let bytes = 0;
    for (const state of this.state.values()) {
      for (const tensor of [state.first, state.second]) {
        if (tensor) for (const chunk of tensor.chunks) bytes += chunk.buffer.bytes;
      }
    }
    return bytes;
  }

  destroy(): void {
    for (const state of this.state.values()) {
      destroyTensor(this.gpu, state.first);
      if (state.second) destroyTensor(this.gpu, state.second);
    }
    this.state.clear();
  }

  private stateOf(name: ParameterName, param: Tensor): ParameterState {
    let state = this.state.get(name);
    if (!state) {
      const needsSecond = this.settings.kind === 'adamw' || this.settings.momentum > 0;
      state = {
        first: allocateTensor(this.gpu, `optimizer.${name}.0`, param.shape, 'optimizer'),
        second: needsSecond ? allocateTensor(this.gpu, `optimizer.${name}.1`, param.shape, 'optimizer') : null,
        steps: 0,
      };
      this.state.set(name, state);
    }
    return state;
  }

  private entryPoint(): string {
    if (this.settings.kind === 'adamw') return 'adamw_step';
    return this.settings.momentum > 0 ? 'rmsprop_momentum_step' : 'rmsprop_step';
  }

  private uniforms(n: number, lr: number, gradScale: number, step: number): ArrayBuffer {
    const s = this.settings;
    const data = new ArrayBuffer(48);
    const view = new DataView(data);
    view.setUint32(0, n, true);
    const floats = s.kind === 'rmsprop'
      ? [lr, s.alpha, s.eps, s.momentum, s.weightDecay, gradScale, 0, 0, 0, 0]
      : [lr, 0, s.eps, 0, s.weightDecay, gradScale, s.beta1, s.beta2,
        // Bias corrections in f64 on the host, as torch computes them in Python floats.
        lr / (1 - s.beta1 ** step), Math.sqrt(1 - s.beta2 ** step)];
    floats.forEach((value, i) => view.setFloat32(4 + 4 * i, value, true));
    return data;
  }
}

function elementGrid(n: number): [number, number, number] {
  const groups = Math.ceil(n / 256);
  return [Math.min(groups, 65535), Math.ceil(groups / 65535), 1];
}

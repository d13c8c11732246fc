// The optimizer kernels against float64 transcriptions of torch.optim's update rules, and the
// host-side pieces of a run: schedule, early stopping, block selection and the DPO loss.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import seedrandom from 'seedrandom';
import { allocateTensor, downloadTensor, uploadTensor } from '../../src/engine/parameters.ts';
import type { Gpu } from '../../src/gpu/device.ts';
import { createNodeGpu } from '../../src/gpu/node.ts';
import { dpoLoss, negativeLogSigmoid, rowLogProbabilities } from '../../src/repair/objectives.ts';
import { DEFAULT_ADAMW, DEFAULT_RMSPROP, Optimizer, type OptimizerSettings } from '../../src/repair/optimizer.ts';
import { defaultWarmupSteps, resolveRepairOptions } from '../../src/repair/options.ts';
import { EarlyStopping, learningRateAt } from '../../src/repair/schedule.ts';
import { selectBlock } from '../../src/repair/slice.ts';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await createNodeGpu();
});
afterAll(() => gpu?.destroy());

function normals(n: number, seed: string, std: number): Float64Array {
  const random = seedrandom(seed);
  return Float64Array.from({ length: n }, () => std * Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random()));
}

/** torch.optim.RMSprop (centered=False) and AdamW, written out from their documented update rules. */
function referenceSteps(settings: OptimizerSettings, param: Float64Array, grads: Float64Array[], lrs: number[], scales: number[]): Float64Array {
  const p = Float64Array.from(param);
  const a = new Float64Array(p.length);
  const b = new Float64Array(p.length);
  grads.forEach((grad, t) => {
    const lr = lrs[t];
    for (let i = 0; i < p.length; i++) {
      if (settings.kind === 'rmsprop') {
        const g = grad[i] * scales[t] + settings.weightDecay * p[i];
        a[i] = settings.alpha * a[i] + (1 - settings.alpha) * g * g;
        const avg = Math.sqrt(a[i]) + settings.eps;
        if (settings.momentum > 0) {
          b[i] = settings.momentum * b[i] + g / avg;
          p[i] -= lr * b[i];
        } else {
          p[i] -= (lr * g) / avg;
        }
      } else {
        const step = t + 1;
        const g = grad[i] * scales[t];
        p[i] *= 1 - lr * settings.weightDecay;
        a[i] = settings.beta1 * a[i] + (1 - settings.beta1) * g;
        b[i] = settings.beta2 * b[i] + (1 - settings.beta2) * g * g;
        const denom = Math.sqrt(b[i]) / Math.sqrt(1 - settings.beta2 ** step) + settings.eps;
        p[i] -= ((lr / (1 - settings.beta1 ** step)) * a[i]) / denom;
      }
    }
  });
  return p;
}

describe('optimizer kernels', () => {
  const cases: [string, OptimizerSettings][] = [
    ['rmsprop', DEFAULT_RMSPROP],
    ['rmsprop with momentum and weight decay', { kind: 'rmsprop', alpha: 0.9, eps: 1e-6, momentum: 0.5, weightDecay: 0.1 }],
    ['adamw', DEFAULT_ADAMW],
  ];
  for (const [name, settings] of cases) {
    it(`${name} matches torch's update rule`, async () => {
      const n = 1000;
      const shape = [40, 25];
      const initial = normals(n, `${name}:param`, 0.5);
      const grads = [0, 1, 2].map((t) => normals(n, `${name}:grad${t}`, 0.1 * (t + 1)));
      const lrs = [1e-2, 5e-3, 2e-3];
      const scales = [1, 0.5, 1];

      const param = allocateTensor(gpu, 'param', shape, 'weights');
      const grad = allocateTensor(gpu, 'grad', shape, 'gradients');
      uploadTensor(gpu, param, Float32Array.from(initial));
      const optimizer = new Optimizer(gpu, settings);
      await optimizer.compile();
      for (let t = 0; t < 3; t++) {
        uploadTensor(gpu, grad, Float32Array.from(grads[t]));
        optimizer.step(new Map([['w', param]]), new Map([['w', grad]]), ['w'], lrs[t], scales[t]);
      }
      const actual = await downloadTensor(gpu, param);
      const expected = referenceSteps(settings, Float64Array.from(Float32Array.from(initial)), grads.map((g) => Float64Array.from(Float32Array.from(g))), lrs, scales);
      let worst = 0;
      for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]) / (1e-6 + Math.abs(expected[i] - initial[i])));
      // Relative to the size of the update, which f32 carries to about 1e-6.
      expect(worst).toBeLessThan(1e-3);
      const stateTensors = settings.kind === 'rmsprop' && settings.momentum === 0 ? 1 : 2;
      expect(optimizer.stateBytes()).toBe(stateTensors * n * 4);
      optimizer.destroy();
    });
  }
});

describe('learning-rate schedule', () => {
  it('warms up linearly, then decays linearly', () => {
    const lrs = Array.from({ length: 10 }, (_, i) => learningRateAt(i + 1, 1, 4, 10));
    expect(lrs.slice(0, 4)).toEqual([0.25, 0.5, 0.75, 1]);
    expect(lrs.slice(4)).toEqual([1, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6]);
  });

  it('has no warmup when warmup is 0', () => {
    expect(learningRateAt(1, 2, 0, 4)).toBe(2);
    expect(learningRateAt(4, 2, 0, 4)).toBe(0.5);
  });

  it('defaults to 150 warmup steps or a tenth of a short run', () => {
    expect(defaultWarmupSteps(2000)).toBe(150);
    expect(defaultWarmupSteps(100)).toBe(10);
    expect(resolveRepairOptions({ method: 'irepair', maxSteps: 50 }).warmupSteps).toBe(5);
    expect(resolveRepairOptions({ method: 'irepair', maxSteps: 50, warmupSteps: 30 }).warmupSteps).toBe(30);
  });
});

describe('options', () => {
  it('takes the learning rate of the method', () => {
    expect(resolveRepairOptions({ method: 'irepair' }).learningRate).toBe(2e-5);
    expect(resolveRepairOptions({ method: 'dpo' }).learningRate).toBe(1e-6);
  });

  it('rejects out-of-range values by name', () => {
    expect(() => resolveRepairOptions({ method: 'irepair', batchSize: 0 })).toThrow(/batch size must be an integer between 1/);
    expect(() => resolveRepairOptions({ method: 'irepair', learningRate: Number.NaN })).toThrow(/learning rate/);
    expect(() => resolveRepairOptions({ method: 'nope' as 'irepair' })).toThrow(/Unknown repair method "nope"/);
  });
});

describe('early stopping', () => {
  it('stops after patience checks without improvement', () => {
    const stopping = new EarlyStopping(2);
    expect(stopping.observe(0, 3)).toBe(false);
    expect(stopping.observe(10, 2)).toBe(false);
    expect(stopping.observe(20, 2)).toBe(false);
    expect(stopping.observe(30, 2.5)).toBe(true);
    expect(stopping.bestStep).toBe(10);
  });

  it('counts a NaN loss as no improvement', () => {
    const stopping = new EarlyStopping(1);
    stopping.observe(0, 1);
    expect(stopping.observe(1, Number.NaN)).toBe(true);
  });
});

describe('selectBlock', () => {
  it('takes the maximum or the minimum, first on ties', () => {
    expect(selectBlock([0.1, 0.5, 0.3], 'max')).toBe(1);
    expect(selectBlock([0.1, 0.5, 0.3], 'min')).toBe(0);
    expect(selectBlock([0.5, 0.2, 0.5, 0.2], 'max')).toBe(0);
    expect(selectBlock([0.5, 0.2, 0.5, 0.2], 'min')).toBe(1);
  });
});

describe('DPO loss', () => {
  it('is log 2 when the policy equals the reference', () => {
    const pairs = [{ chosen: -3, rejected: -5 }, { chosen: -7, rejected: -2 }];
    const { loss, chosenGradients } = dpoLoss(pairs, pairs, 0.1);
    expect(loss).toBeCloseTo(Math.LN2, 15);
    for (const gradient of chosenGradients) expect(gradient).toBeCloseTo(-0.1 * 0.5 / 2, 15);
  });

  it('matches a finite difference in the chosen log-probability', () => {
    const reference = [{ chosen: -3, rejected: -5 }, { chosen: -7, rejected: -2 }];
    const policy = [{ chosen: -2.5, rejected: -5.5 }, { chosen: -8, rejected: -1 }];
    const beta = 0.7;
    const { chosenGradients } = dpoLoss(policy, reference, beta);
    const h = 1e-6;
    policy.forEach((pair, i) => {
      const shifted = (delta: number) => policy.map((p, j) => (j === i ? { ...p, chosen: p.chosen + delta } : p));
      const numeric = (dpoLoss(shifted(h), reference, beta).loss - dpoLoss(shifted(-h), reference, beta).loss) / (2 * h);
      expect(Math.abs(chosenGradients[i] - numeric)).toBeLessThan(1e-8);
    });
  });

  it('computes -log sigmoid without overflow', () => {
    expect(negativeLogSigmoid(0)).toBeCloseTo(Math.LN2, 15);
    expect(negativeLogSigmoid(1000)).toBe(0);
    expect(negativeLogSigmoid(-1000)).toBe(1000);
  });

  it('sums row losses into log-probabilities', () => {
    expect(Array.from(rowLogProbabilities(Float32Array.from([1, 2, 0, 0.5, 0, 0]), 2, 3))).toEqual([-3, -0.5]);
  });
});

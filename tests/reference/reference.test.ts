// Checks the float64 reference against central finite differences and against independent
// restatements of each rule (causal and local masks, attention scaling, weight layouts).
//
// Finite differences: f'(x) ~ (f(x + h) - f(x - h)) / 2h with h = 1e-6. In float64 the truncation
// error is about h^2 |f'''| ~ 1e-12 and the rounding error about 1e-16 |f| / h ~ 1e-10 |f|, so
// with |f| below ~100 an analytic gradient must match within 1e-7 + 1e-6 * |numeric|.

import seedrandom from 'seedrandom';
import { describe, expect, test } from 'vitest';
import type { AttentionKind, ModelConfig, ModelFamily } from '../../src/model/types.ts';
import {
  blockGradNorms,
  randomReferenceParameters,
  referenceActivations,
  referenceForward,
  referenceGradients,
  referenceKL,
  referenceLoss,
  referenceParameterShapes,
  type ReferenceBatch,
  type ReferenceParameters,
} from './gpt.ts';
import {
  ReferenceInputError,
  attentionBackward,
  attentionForward,
  crossEntropyBackward,
  crossEntropyForward,
  encoderBackward,
  encoderForward,
  firstVisiblePosition,
  geluBackward,
  geluForward,
  klBackward,
  klForward,
  layernormBackward,
  layernormForward,
  matmulBackward,
  matmulForward,
  residualBackward,
  residualForward,
  softmaxBackward,
  softmaxForward,
  type AttentionOptions,
} from './ops.ts';

const STEP = 1e-6;
const ABSOLUTE_TOLERANCE = 1e-7;
const RELATIVE_TOLERANCE = 1e-6;

type Random = () => number;

function normal(random: Random): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

function randomArray(random: Random, length: number, std = 1): Float64Array {
  const values = new Float64Array(length);
  for (let i = 0; i < length; i++) values[i] = std * normal(random);
  return values;
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i] * b[i];
  return sum;
}

function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

/** Central difference of f with respect to x[index]; restores x afterwards. */
function numericDerivative(f: () => number, x: Float64Array, index: number): number {
  const saved = x[index];
  x[index] = saved + STEP;
  const plus = f();
  x[index] = saved - STEP;
  const minus = f();
  x[index] = saved;
  return (plus - minus) / (2 * STEP);
}

/** Central difference of f along direction d in x; restores x afterwards. */
function numericDirectional(f: () => number, x: Float64Array, direction: Float64Array): number {
  const saved = Float64Array.from(x);
  for (let i = 0; i < x.length; i++) x[i] = saved[i] + STEP * direction[i];
  const plus = f();
  for (let i = 0; i < x.length; i++) x[i] = saved[i] - STEP * direction[i];
  const minus = f();
  x.set(saved);
  return (plus - minus) / (2 * STEP);
}

function expectGradientClose(analytic: number, numeric: number, label: string): void {
  const tolerance = ABSOLUTE_TOLERANCE + RELATIVE_TOLERANCE * Math.abs(numeric);
  expect(Math.abs(analytic - numeric), `${label}: analytic ${analytic}, numeric ${numeric}`).toBeLessThanOrEqual(tolerance);
}

/** Compares every entry of `analytic` with the finite difference of f with respect to x. */
function checkEveryEntry(f: () => number, x: Float64Array, analytic: Float64Array, label: string): void {
  expect(analytic.length, `${label} gradient length`).toBe(x.length);
  for (let i = 0; i < x.length; i++) expectGradientClose(analytic[i], numericDerivative(f, x, i), `${label}[${i}]`);
}

// ------------------------------------------------------------------------------------------------
// Per-operation references

describe('encoder', () => {
  test('backward matches finite differences', () => {
    const random = seedrandom('encoder');
    const [B, T, C, V, P] = [2, 3, 4, 5, 4];
    const tokens = Int32Array.from([1, 4, 1, 0, 2, 4]);
    const wte = randomArray(random, V * C);
    const wpe = randomArray(random, P * C);
    const dout = randomArray(random, B * T * C);
    const objective = () => dot(dout, encoderForward(tokens, wte, wpe, B, T, C));

    const { dwte, dwpe } = encoderBackward(dout, tokens, B, T, C, V, P);
    checkEveryEntry(objective, wte, dwte, 'dwte');
    checkEveryEntry(objective, wpe, dwpe, 'dwpe');
  });

  test('position ids run from 0', () => {
    const wte = Float64Array.from([0, 0, 10, 20]); // V=2, C=2
    const wpe = Float64Array.from([1, 2, 3, 4, 5, 6]); // P=3, C=2
    const out = encoderForward(Int32Array.from([1, 0]), wte, wpe, 1, 2, 2);
    expect(Array.from(out)).toEqual([11, 22, 3, 4]);
  });

  test('token outside vocabulary is rejected', () => {
    const wte = new Float64Array(4);
    const wpe = new Float64Array(4);
    expect(() => encoderForward(Int32Array.from([2]), wte, wpe, 1, 1, 2)).toThrow(ReferenceInputError);
    expect(() => encoderForward(Int32Array.from([2]), wte, wpe, 1, 1, 2)).toThrow(/token 2 .* vocabulary/);
  });
});

describe('layernorm', () => {
  test('normalises each row', () => {
    const random = seedrandom('layernorm-normalise');
    const [N, C] = [3, 8];
    const inp = randomArray(random, N * C, 3);
    const { out } = layernormForward(inp, new Float64Array(C).fill(1), new Float64Array(C), N, C, 0);
    for (let n = 0; n < N; n++) {
      const row = out.subarray(n * C, (n + 1) * C);
      const mean = row.reduce((a, b) => a + b, 0) / C;
      const variance = row.reduce((a, b) => a + (b - mean) ** 2, 0) / C;
      expect(Math.abs(mean)).toBeLessThan(1e-12);
      expect(Math.abs(variance - 1)).toBeLessThan(1e-12);
    }
  });

  test('backward matches finite differences', () => {
    const random = seedrandom('layernorm');
    const [N, C, eps] = [3, 5, 1e-5];
    const inp = randomArray(random, N * C, 2);
    const weight = randomArray(random, C);
    const bias = randomArray(random, C);
    const dout = randomArray(random, N * C);
    const objective = () => dot(dout, layernormForward(inp, weight, bias, N, C, eps).out);

    const { mean, rstd } = layernormForward(inp, weight, bias, N, C, eps);
    const grads = layernormBackward(dout, inp, weight, mean, rstd, N, C);
    checkEveryEntry(objective, inp, grads.dinp, 'dinp');
    checkEveryEntry(objective, weight, grads.dweight, 'dweight');
    checkEveryEntry(objective, bias, grads.dbias, 'dbias');
  });
});

describe('matmul', () => {
  const [N, IN, OUT] = [3, 4, 5];

  test('conv1d and linear layouts agree on transposed weights', () => {
    const random = seedrandom('matmul-layouts');
    const inp = randomArray(random, N * IN);
    const conv1d = randomArray(random, IN * OUT);
    const linear = new Float64Array(OUT * IN);
    for (let i = 0; i < IN; i++) for (let o = 0; o < OUT; o++) linear[o * IN + i] = conv1d[i * OUT + o];
    const bias = randomArray(random, OUT);

    const a = matmulForward(inp, conv1d, bias, N, IN, OUT, 'conv1d');
    const b = matmulForward(inp, linear, bias, N, IN, OUT, 'linear');
    expect(maxAbsDifference(a, b)).toBeLessThan(1e-14);

    // One entry written out: out[1,2] = bias[2] + sum_i inp[1,i] * W[i,2].
    let expected = bias[2];
    for (let i = 0; i < IN; i++) expected += inp[1 * IN + i] * conv1d[i * OUT + 2];
    expect(Math.abs(a[1 * OUT + 2] - expected)).toBeLessThan(1e-14);
  });

  for (const layout of ['conv1d', 'linear'] as const) {
    for (const withBias of [true, false]) {
      test(`${layout} backward ${withBias ? 'with' : 'without'} bias`, () => {
        const random = seedrandom(`matmul-${layout}-${withBias}`);
        const inp = randomArray(random, N * IN);
        const weight = randomArray(random, IN * OUT);
        const bias = withBias ? randomArray(random, OUT) : null;
        const dout = randomArray(random, N * OUT);
        const objective = () => dot(dout, matmulForward(inp, weight, bias, N, IN, OUT, layout));

        const grads = matmulBackward(dout, inp, weight, N, IN, OUT, layout, withBias);
        checkEveryEntry(objective, inp, grads.dinp, 'dinp');
        checkEveryEntry(objective, weight, grads.dweight, 'dweight');
        if (bias) checkEveryEntry(objective, bias, grads.dbias!, 'dbias');
        else expect(grads.dbias).toBeNull();
      });
    }
  }
});

describe('gelu', () => {
  // Exact GELU x * Phi(x), with Phi integrated by Simpson's rule: independent of the tanh form.
  function exactGelu(x: number): number {
    const intervals = 2000;
    const h = x / intervals;
    const density = (z: number) => Math.exp(-0.5 * z * z) / Math.sqrt(2 * Math.PI);
    let sum = density(0) + density(x);
    for (let i = 1; i < intervals; i++) sum += (i % 2 === 1 ? 4 : 2) * density(i * h);
    return x * (0.5 + (h / 3) * sum);
  }

  test('forward is close to exact GELU', () => {
    const inputs = Float64Array.from({ length: 81 }, (_, i) => -5 + i * 0.125);
    const out = geluForward(inputs);
    for (let i = 0; i < inputs.length; i++) {
      // The tanh form deviates from x * Phi(x) by less than 1e-3 on this range.
      expect(Math.abs(out[i] - exactGelu(inputs[i])), `x = ${inputs[i]}`).toBeLessThan(1e-3);
    }
  });

  test('gelu(x) - gelu(-x) equals x', () => {
    // Holds exactly for the tanh form because tanh is odd.
    const inputs = Float64Array.from([-3, -0.7, 0.2, 1, 4.5]);
    const positive = geluForward(inputs);
    const negative = geluForward(inputs.map((x) => -x));
    for (let i = 0; i < inputs.length; i++) expect(Math.abs(positive[i] - negative[i] - inputs[i])).toBeLessThan(1e-14);
  });

  test('backward matches finite differences', () => {
    const random = seedrandom('gelu');
    const inp = Float64Array.from([...randomArray(random, 12, 2), -6, -1e-3, 0, 1e-3, 6]);
    const dout = randomArray(random, inp.length);
    const objective = () => dot(dout, geluForward(inp));
    checkEveryEntry(objective, inp, geluBackward(dout, inp), 'dinp');
  });
});

describe('attention', () => {
  const [B, T, C, NH] = [2, 6, 6, 2];
  const HS = C / NH;
  const variants: AttentionOptions[] = [
    { scale: true, window: null },
    { scale: false, window: null },
    { scale: false, window: 1 },
    { scale: false, window: 3 },
    { scale: true, window: 4 },
    { scale: false, window: 10 },
  ];

  // A single-head attention written from the definition, over qkv parts passed separately.
  function naiveHead(
    q: number[][],
    k: number[][],
    v: number[][],
    scale: number,
    window: number | null,
  ): number[][] {
    return q.map((qt, t) => {
      const visible = k.map((_, j) => j <= t && (window === null || t - j < window));
      const scores = k.map((kj, j) => (visible[j] ? dot(qt, kj) * scale : -Infinity));
      const max = Math.max(...scores);
      const exps = scores.map((s) => Math.exp(s - max));
      const total = exps.reduce((a, b) => a + b, 0);
      return qt.map((_, d) => v.reduce((sum, vj, j) => sum + (exps[j] / total) * vj[d], 0));
    });
  }

  for (const options of variants) {
    const label = `scale ${options.scale}, window ${options.window}`;

    test(`forward matches per-head definition (${label})`, () => {
      const random = seedrandom(`attention-naive-${label}`);
      const qkv = randomArray(random, B * T * 3 * C);
      const { out } = attentionForward(qkv, B, T, C, NH, options);
      const scale = options.scale ? 1 / Math.sqrt(HS) : 1;
      for (let b = 0; b < B; b++) {
        for (let h = 0; h < NH; h++) {
          const part = (offset: number) =>
            Array.from({ length: T }, (_, t) =>
              Array.from({ length: HS }, (_, d) => qkv[(b * T + t) * 3 * C + offset + h * HS + d]),
            );
          const expected = naiveHead(part(0), part(C), part(2 * C), scale, options.window);
          for (let t = 0; t < T; t++) {
            for (let d = 0; d < HS; d++) {
              const actual = out[(b * T + t) * C + h * HS + d];
              expect(Math.abs(actual - expected[t][d]), `b ${b} h ${h} t ${t} d ${d}`).toBeLessThan(1e-12);
            }
          }
        }
      }
    });

    test(`backward matches finite differences (${label})`, () => {
      const random = seedrandom(`attention-${label}`);
      const qkv = randomArray(random, B * T * 3 * C);
      const dout = randomArray(random, B * T * C);
      const objective = () => dot(dout, attentionForward(qkv, B, T, C, NH, options).out);

      const { att } = attentionForward(qkv, B, T, C, NH, options);
      checkEveryEntry(objective, qkv, attentionBackward(dout, qkv, att, B, T, C, NH, options), 'dqkv');
    });
  }

  test('local mask equals Hugging Face GPT-Neo mask', () => {
    // Hugging Face GPT-Neo builds causal = tril(ones(T, T)) and local = causal XOR tril(causal, -window),
    // where tril(M, -w) keeps entry (i, j) when j - i <= -w.
    const random = seedrandom('attention-mask');
    const qkv = randomArray(random, B * T * 3 * C);
    for (const window of [1, 2, 3, 5, 6, 9]) {
      const { att } = attentionForward(qkv, B, T, C, NH, { scale: false, window });
      for (let i = 0; i < T; i++) {
        for (let j = 0; j < T; j++) {
          const causal = j <= i;
          const banded = causal && j - i <= -window;
          const allowed = causal !== banded;
          for (let h = 0; h < NH; h++) {
            const p = att[((0 * NH + h) * T + i) * T + j];
            expect(p > 0, `window ${window}, query ${i}, key ${j}`).toBe(allowed);
          }
        }
        expect(firstVisiblePosition(i, window)).toBe(Math.max(0, i - window + 1));
      }
    }
  });

  test('probability rows sum to one', () => {
    const random = seedrandom('attention-rows');
    const qkv = randomArray(random, B * T * 3 * C, 3);
    const { att } = attentionForward(qkv, B, T, C, NH, { scale: true, window: 3 });
    for (let row = 0; row < B * NH * T; row++) {
      const sum = att.subarray(row * T, (row + 1) * T).reduce((a, b) => a + b, 0);
      expect(Math.abs(sum - 1)).toBeLessThan(1e-14);
    }
  });

  test('scaling equals dividing q by sqrt(head size)', () => {
    const random = seedrandom('attention-scale');
    const qkv = randomArray(random, B * T * 3 * C, 2);
    const scaledQ = Float64Array.from(qkv);
    for (let n = 0; n < B * T; n++) for (let c = 0; c < C; c++) scaledQ[n * 3 * C + c] /= Math.sqrt(HS);

    const gpt2 = attentionForward(qkv, B, T, C, NH, { scale: true, window: null }).out;
    const neo = attentionForward(scaledQ, B, T, C, NH, { scale: false, window: null }).out;
    const neoUnscaled = attentionForward(qkv, B, T, C, NH, { scale: false, window: null }).out;
    expect(maxAbsDifference(gpt2, neo)).toBeLessThan(1e-13);
    expect(maxAbsDifference(gpt2, neoUnscaled)).toBeGreaterThan(1e-3);
  });
});

describe('residual', () => {
  test('backward matches finite differences', () => {
    const random = seedrandom('residual');
    const a = randomArray(random, 6);
    const b = randomArray(random, 6);
    const dout = randomArray(random, 6);
    const objective = () => dot(dout, residualForward(a, b));
    const { da, db } = residualBackward(dout);
    checkEveryEntry(objective, a, da, 'da');
    checkEveryEntry(objective, b, db, 'db');
  });
});

describe('softmax', () => {
  test('rows sum to one and ignore shifts', () => {
    const random = seedrandom('softmax-rows');
    const [N, V] = [3, 7];
    const inp = randomArray(random, N * V, 5);
    const probs = softmaxForward(inp, N, V);
    const shifted = softmaxForward(inp.map((x) => x + 1000), N, V);
    for (let n = 0; n < N; n++) {
      expect(Math.abs(probs.subarray(n * V, (n + 1) * V).reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-14);
    }
    expect(maxAbsDifference(probs, shifted)).toBeLessThan(1e-12);
  });

  test('backward matches finite differences', () => {
    const random = seedrandom('softmax');
    const [N, V] = [3, 7];
    const inp = randomArray(random, N * V, 2);
    const dout = randomArray(random, N * V);
    const objective = () => dot(dout, softmaxForward(inp, N, V));
    checkEveryEntry(objective, inp, softmaxBackward(dout, softmaxForward(inp, N, V), N, V), 'dinp');
  });
});

describe('cross-entropy', () => {
  const [N, V] = [5, 6];
  const targets = Int32Array.from([2, -1, 0, 5, 3]);
  const weights = Float64Array.from([0.5, 9, 1, 0.25, 2]);

  test('uniform logits give log V per weighted row', () => {
    const { loss, losses } = crossEntropyForward(new Float64Array(N * V), targets, weights, N, V);
    const expected = (0.5 + 1 + 0.25 + 2) * Math.log(V);
    expect(Math.abs(loss - expected)).toBeLessThan(1e-12);
    expect(losses[1]).toBe(0);
  });

  test('forward equals -w log softmax', () => {
    const random = seedrandom('cross-entropy-forward');
    const logits = randomArray(random, N * V, 3);
    const probs = softmaxForward(logits, N, V);
    let expected = 0;
    for (let n = 0; n < N; n++) if (targets[n] >= 0) expected -= weights[n] * Math.log(probs[n * V + targets[n]]);
    expect(Math.abs(crossEntropyForward(logits, targets, weights, N, V).loss - expected)).toBeLessThan(1e-12);
  });

  test('backward matches finite differences', () => {
    const random = seedrandom('cross-entropy');
    const logits = randomArray(random, N * V, 2);
    const objective = () => crossEntropyForward(logits, targets, weights, N, V).loss;
    const dlogits = crossEntropyBackward(1, logits, targets, weights, N, V);
    checkEveryEntry(objective, logits, dlogits, 'dlogits');
    expect(maxAbsDifference(dlogits.subarray(V, 2 * V), new Float64Array(V))).toBe(0);
  });

  test('invalid target is rejected', () => {
    const bad = Int32Array.from([2, -2, 0, 5, 3]);
    expect(() => crossEntropyForward(new Float64Array(N * V), bad, weights, N, V)).toThrow(/target -2 at row 1/);
  });
});

describe('kl', () => {
  const [N, V] = [4, 6];
  const weights = Float64Array.from([1, 0.5, 0, 2]);

  test('zero for equal logits, positive otherwise', () => {
    const random = seedrandom('kl-zero');
    const logits = randomArray(random, N * V, 2);
    expect(klForward(logits, logits, weights, N, V).loss).toBe(0);
    expect(maxAbsDifference(klBackward(1, logits, logits, weights, N, V), new Float64Array(N * V))).toBe(0);
    expect(klForward(logits, randomArray(random, N * V, 2), weights, N, V).loss).toBeGreaterThan(0);
  });

  test('forward equals sum p log(p / q)', () => {
    const random = seedrandom('kl-forward');
    const logits = randomArray(random, N * V, 2);
    const refLogits = randomArray(random, N * V, 2);
    const p = softmaxForward(logits, N, V);
    const q = softmaxForward(refLogits, N, V);
    let expected = 0;
    for (let i = 0; i < N * V; i++) expected += weights[Math.floor(i / V)] * p[i] * Math.log(p[i] / q[i]);
    expect(Math.abs(klForward(logits, refLogits, weights, N, V).loss - expected)).toBeLessThan(1e-12);
  });

  test('backward matches finite differences', () => {
    const random = seedrandom('kl');
    const logits = randomArray(random, N * V, 2);
    const refLogits = randomArray(random, N * V, 2);
    const objective = () => klForward(logits, refLogits, weights, N, V).loss;
    checkEveryEntry(objective, logits, klBackward(1, logits, refLogits, weights, N, V), 'dlogits');
  });
});

// ------------------------------------------------------------------------------------------------
// Whole model

function tinyConfig(family: ModelFamily, attentionLayers: AttentionKind[]): ModelConfig {
  return {
    family,
    vocabSize: 23,
    contextLength: 8,
    hiddenSize: 12,
    numLayers: attentionLayers.length,
    numHeads: 3,
    innerSize: 48,
    layerNormEpsilon: 1e-5,
    attentionLayers,
    windowSize: 3,
    scaleAttention: family === 'gpt2',
    dropout: { embedding: 0, residual: 0, attention: 0 },
    bosTokenId: 0,
    eosTokenId: 0,
    raw: {},
  };
}

const GPT2 = tinyConfig('gpt2', ['global', 'global']);
const NEO = tinyConfig('gpt_neo', ['global', 'local']);
const [BATCH, SEQ] = [2, 7];

function randomTokens(random: Random, config: ModelConfig, length: number): Int32Array {
  return Int32Array.from({ length }, () => Math.floor(random() * config.vocabSize));
}

function randomBatch(random: Random, config: ModelConfig): ReferenceBatch {
  const N = BATCH * SEQ;
  const tokens = randomTokens(random, config, N);
  const targets = randomTokens(random, config, N);
  // Mask the first two positions of every sequence, as a prompt would be.
  for (let b = 0; b < BATCH; b++) targets[b * SEQ] = targets[b * SEQ + 1] = -1;
  const weights = Float32Array.from({ length: N }, () => 0.25 + random());
  return { batchSize: BATCH, seqLen: SEQ, tokens, targets, weights };
}

function cloneParameters(params: ReferenceParameters): ReferenceParameters {
  return new Map([...params].map(([name, values]) => [name, Float64Array.from(values)]));
}

/**
 * Compares every `stride`-th gradient entry (from a random offset) with a central difference, and
 * each tensor's gradient along a random direction with the directional difference. Returns the
 * number of entries checked one by one.
 */
function checkModelGradients(
  objective: () => number,
  params: ReferenceParameters,
  grads: ReferenceParameters,
  random: Random,
  stride = 1,
): number {
  let checked = 0;
  for (const [name, values] of params) {
    const grad = grads.get(name);
    expect(grad, `gradient of ${name}`).toBeDefined();
    expect(grad!.length, `${name} gradient length`).toBe(values.length);
    for (let i = Math.floor(random() * stride); i < values.length; i += stride) {
      expectGradientClose(grad![i], numericDerivative(objective, values, i), `${name}[${i}]`);
      checked++;
    }

    const direction = randomArray(random, values.length);
    expectGradientClose(dot(grad!, direction), numericDirectional(objective, values, direction), `${name} directional`);
  }
  return checked;
}

for (const config of [GPT2, NEO]) {
  describe(`${config.family} model`, () => {
    test('gradients match finite differences', () => {
      const random = seedrandom(`model-${config.family}`);
      const params = randomReferenceParameters(config, random);
      const batch = randomBatch(random, config);
      const { loss, grads } = referenceGradients(config, params, batch);

      expect(Math.abs(loss - referenceLoss(config, params, batch))).toBe(0);
      expect([...grads.keys()]).toEqual([...referenceParameterShapes(config).keys()]);
      const checked = checkModelGradients(() => referenceLoss(config, params, batch), params, grads, random);
      expect(checked).toBeGreaterThan(3000);

      // Positions at or beyond T never enter the model.
      const dwpe = grads.get('wpe.weight')!;
      expect(maxAbsDifference(dwpe.subarray(SEQ * config.hiddenSize), new Float64Array(dwpe.length - SEQ * config.hiddenSize))).toBe(0);
    });

    test('KL is zero against itself', () => {
      const random = seedrandom(`kl-self-${config.family}`);
      const params = randomReferenceParameters(config, random);
      const batch = randomBatch(random, config);
      const { loss, grads } = referenceKL(config, params, cloneParameters(params), batch);
      expect(loss).toBe(0);
      for (const [name, grad] of grads) expect(maxAbsDifference(grad, new Float64Array(grad.length)), name).toBe(0);
    });

    test('KL gradients match finite differences', () => {
      const random = seedrandom(`kl-model-${config.family}`);
      const params = randomReferenceParameters(config, random);
      const refParams = cloneParameters(params);
      for (const values of refParams.values()) for (let i = 0; i < values.length; i++) values[i] += 0.1 * normal(random);
      const batch = randomBatch(random, config);
      const objective = () => referenceKL(config, params, refParams, batch).loss;

      // The NLL test above already checks every entry of the shared backward pass, so every
      // fifth entry plus one direction per tensor is enough here.
      const { loss, grads } = referenceKL(config, params, refParams, batch);
      expect(loss).toBeGreaterThan(0);
      const checked = checkModelGradients(objective, params, grads, random, 5);
      expect(checked).toBeGreaterThan(600);
    });

    test('earlier logits ignore later tokens', () => {
      const random = seedrandom(`causal-${config.family}`);
      const params = randomReferenceParameters(config, random);
      const tokens = randomTokens(random, config, SEQ);
      const changed = Int32Array.from(tokens);
      const position = 4;
      changed[position] = (tokens[position] + 1) % config.vocabSize;

      const V = config.vocabSize;
      const before = referenceForward(config, params, tokens, 1, SEQ);
      const after = referenceForward(config, params, changed, 1, SEQ);
      expect(maxAbsDifference(before.subarray(0, position * V), after.subarray(0, position * V))).toBe(0);
      expect(maxAbsDifference(before.subarray(position * V), after.subarray(position * V))).toBeGreaterThan(1e-6);
    });
  });
}

describe('gpt_neo local layers', () => {
  // Each local layer with window 3 lets position t read t-2..t, so after L local layers a token
  // reaches at most 2L positions ahead.
  for (const numLayers of [1, 2]) {
    test(`token 0 reaches ${2 * numLayers} positions ahead after ${numLayers} layers`, () => {
      const config = tinyConfig('gpt_neo', new Array<AttentionKind>(numLayers).fill('local'));
      const random = seedrandom(`local-${numLayers}`);
      const params = randomReferenceParameters(config, random);
      const tokens = randomTokens(random, config, SEQ);
      const changed = Int32Array.from(tokens);
      changed[0] = (tokens[0] + 1) % config.vocabSize;

      const V = config.vocabSize;
      const reach = 2 * numLayers;
      const before = referenceForward(config, params, tokens, 1, SEQ);
      const after = referenceForward(config, params, changed, 1, SEQ);
      for (let t = 0; t < SEQ; t++) {
        const difference = maxAbsDifference(before.subarray(t * V, (t + 1) * V), after.subarray(t * V, (t + 1) * V));
        if (t <= reach) expect(difference, `position ${t}`).toBeGreaterThan(1e-9);
        else expect(difference, `position ${t}`).toBe(0);
      }
    });
  }

  test('global layer reaches every later position', () => {
    const config = tinyConfig('gpt_neo', ['global']);
    const random = seedrandom('global-reach');
    const params = randomReferenceParameters(config, random);
    const tokens = randomTokens(random, config, SEQ);
    const changed = Int32Array.from(tokens);
    changed[0] = (tokens[0] + 1) % config.vocabSize;
    const V = config.vocabSize;
    const before = referenceForward(config, params, tokens, 1, SEQ);
    const after = referenceForward(config, params, changed, 1, SEQ);
    const last = (SEQ - 1) * V;
    expect(maxAbsDifference(before.subarray(last), after.subarray(last))).toBeGreaterThan(1e-9);
  });
});

describe('gpt2 and gpt_neo layouts', () => {
  // Converts GPT-2 parameters to GPT-Neo ones: transpose every Conv1D matrix to nn.Linear, split
  // c_attn into q/k/v, and fold GPT-2's 1/sqrt(head size) score scaling into q_proj. The
  // conversion needs a zero c_attn bias because GPT-Neo's projections have none.
  function gpt2ToNeo(params: ReferenceParameters, config: ModelConfig): ReferenceParameters {
    const C = config.hiddenSize;
    const I = config.innerSize;
    const HS = C / config.numHeads;
    const transpose = (w: Float64Array, IN: number, OUT: number, columns = OUT, offset = 0, factor = 1) => {
      const out = new Float64Array(columns * IN);
      for (let i = 0; i < IN; i++) for (let o = 0; o < columns; o++) out[o * IN + i] = w[i * OUT + offset + o] * factor;
      return out;
    };
    const neo: ReferenceParameters = new Map();
    for (const name of ['wte.weight', 'wpe.weight', 'ln_f.weight', 'ln_f.bias']) neo.set(name, params.get(name)!);
    for (let l = 0; l < config.numLayers; l++) {
      const p = `h.${l}.`;
      const get = (name: string) => params.get(p + name)!;
      for (const name of ['ln_1.weight', 'ln_1.bias', 'ln_2.weight', 'ln_2.bias', 'mlp.c_fc.bias', 'mlp.c_proj.bias']) {
        neo.set(p + name, get(name));
      }
      const cAttn = get('attn.c_attn.weight');
      neo.set(`${p}attn.attention.q_proj.weight`, transpose(cAttn, C, 3 * C, C, 0, 1 / Math.sqrt(HS)));
      neo.set(`${p}attn.attention.k_proj.weight`, transpose(cAttn, C, 3 * C, C, C));
      neo.set(`${p}attn.attention.v_proj.weight`, transpose(cAttn, C, 3 * C, C, 2 * C));
      neo.set(`${p}attn.attention.out_proj.weight`, transpose(get('attn.c_proj.weight'), C, C));
      neo.set(`${p}attn.attention.out_proj.bias`, get('attn.c_proj.bias'));
      neo.set(`${p}mlp.c_fc.weight`, transpose(get('mlp.c_fc.weight'), C, I));
      neo.set(`${p}mlp.c_proj.weight`, transpose(get('mlp.c_proj.weight'), I, C));
    }
    return neo;
  }

  test('converted weights give equal logits', () => {
    const random = seedrandom('layouts');
    const params = randomReferenceParameters(GPT2, random, 0.4);
    for (let l = 0; l < GPT2.numLayers; l++) params.get(`h.${l}.attn.c_attn.bias`)!.fill(0);
    const neoGlobal = tinyConfig('gpt_neo', ['global', 'global']);
    const tokens = randomTokens(random, GPT2, BATCH * SEQ);

    const gpt2Logits = referenceForward(GPT2, params, tokens, BATCH, SEQ);
    const neoLogits = referenceForward(neoGlobal, gpt2ToNeo(params, GPT2), tokens, BATCH, SEQ);
    expect(maxAbsDifference(gpt2Logits, neoLogits)).toBeLessThan(1e-11);

    // The same weights with GPT-2's scaling left in place must give different logits.
    const unscaledNeo = referenceForward({ ...neoGlobal, scaleAttention: true }, gpt2ToNeo(params, GPT2), tokens, BATCH, SEQ);
    expect(maxAbsDifference(gpt2Logits, unscaledNeo)).toBeGreaterThan(1e-4);
  });
});

describe('blockGradNorms', () => {
  test('counts each block and skips embeddings', () => {
    const config = GPT2;
    const [C, I] = [config.hiddenSize, config.innerSize];
    const grads: ReferenceParameters = new Map();
    for (const [name, shape] of referenceParameterShapes(config)) {
      // Block 0 gets ones and block 1 twos. Embeddings and ln_f get large values that must not count.
      const value = name.startsWith('h.0.') ? 1 : name.startsWith('h.1.') ? 2 : 1000;
      grads.set(name, new Float64Array(shape.reduce((a, b) => a * b, 1)).fill(value));
    }
    // Values per GPT-2 block: ln_1, c_attn, attn.c_proj, ln_2, c_fc, mlp.c_proj.
    const perBlock = 2 * C + (C * 3 * C + 3 * C) + (C * C + C) + 2 * C + (C * I + I) + (I * C + C);
    const norms = blockGradNorms(config, grads);
    expect(norms).toHaveLength(2);
    expect(Math.abs(norms[0] - Math.sqrt(perBlock))).toBeLessThan(1e-9);
    expect(Math.abs(norms[1] - 2 * Math.sqrt(perBlock))).toBeLessThan(1e-9);
  });

  test('matches model gradients block by block', () => {
    const random = seedrandom('block-norms');
    const params = randomReferenceParameters(NEO, random);
    const { grads } = referenceGradients(NEO, params, randomBatch(random, NEO));
    const norms = blockGradNorms(NEO, grads);
    for (let l = 0; l < NEO.numLayers; l++) {
      let sum = 0;
      for (const [name, values] of grads) if (name.startsWith(`h.${l}.`)) sum += dot(values, values);
      expect(Math.abs(norms[l] - Math.sqrt(sum))).toBeLessThan(1e-12 * Math.max(1, Math.sqrt(sum)));
      expect(norms[l]).toBeGreaterThan(0);
    }
  });
});

describe('reference input checks', () => {
  test('missing parameter is named', () => {
    const params = randomReferenceParameters(NEO, seedrandom('missing'));
    params.delete('h.1.attn.attention.k_proj.weight');
    expect(() => referenceForward(NEO, params, new Int32Array(SEQ), 1, SEQ)).toThrow(
      /"h\.1\.attn\.attention\.k_proj\.weight" \[12, 12\] is missing/,
    );
  });

  test('unknown parameter is named', () => {
    const params = randomReferenceParameters(GPT2, seedrandom('unknown'));
    params.set('h.0.attn.bias', new Float64Array(1));
    expect(() => referenceForward(GPT2, params, new Int32Array(SEQ), 1, SEQ)).toThrow(/"h\.0\.attn\.bias"/);
  });

  test('batch field length is checked', () => {
    const random = seedrandom('batch-length');
    const params = randomReferenceParameters(GPT2, random);
    const batch = { ...randomBatch(random, GPT2), weights: new Float32Array(3) };
    expect(() => referenceLoss(GPT2, params, batch)).toThrow(/batch\.weights has 3 values/);
  });

  test('activations expose every block', () => {
    const random = seedrandom('activations');
    const params = randomReferenceParameters(NEO, random);
    const acts = referenceActivations(NEO, params, randomTokens(random, NEO, SEQ), 1, SEQ);
    expect(acts.blocks).toHaveLength(NEO.numLayers);
    expect(acts.blocks[1].inp).toBe(acts.blocks[0].out);
    expect(acts.logits).toHaveLength(SEQ * NEO.vocabSize);
  });
});

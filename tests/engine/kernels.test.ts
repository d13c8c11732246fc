// Every WGSL kernel against the float64 reference in tests/reference/ops.ts, on shapes that are
// not multiples of the tile or workgroup sizes (matmul tiles are 64 x 64 x 16, row kernels use
// 64 threads). Tolerances: f32 arithmetic on O(1) values, |error| <= atol + rtol * |expected|.

import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Gpu } from '../../src/gpu/device.ts';
import * as k from '../../src/gpu/kernels.ts';
import * as ref from '../reference/ops.ts';
import { download, mismatch, randn, testGpu, upload, uploadInt, zeros } from './gpu-helpers.ts';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

const ATOL = 2e-5;
const RTOL = 2e-4;

describe('matmul', () => {
  // Shapes straddle tile boundaries: M and N just over 64, K not a multiple of 16.
  const M = 67;
  const K = 19;
  const N = 70;
  const x = randn(M * K, 'matmul-x');
  const bias = randn(N, 'matmul-bias');

  for (const layout of ['conv1d', 'linear'] as const) {
    const weight = randn(K * N, `matmul-w-${layout}`);
    const operand = (buffer: ReturnType<typeof upload>): k.MatrixOperand =>
      layout === 'conv1d' ? { buffer, rowStride: N, colStride: 1 } : { buffer, rowStride: 1, colStride: K };

    test(`forward with bias, ${layout} layout`, async () => {
      const out = zeros(gpu, M * N);
      k.matmul(gpu, { M, N, K }, { buffer: upload(gpu, x), rowStride: K, colStride: 1 }, operand(upload(gpu, weight)),
        { buffer: out, rowStride: N }, { bias: upload(gpu, bias) });
      const expected = ref.matmulForward(x, weight, bias, M, K, N, layout);
      expect(mismatch(await download(gpu, out, M * N), expected, ATOL, RTOL)).toBeNull();
    });
  }

  test('narrow product of few rows, both layouts, bias and accumulation', async () => {
    // M = 7 rows take the kernel without tiles.
    const rows = 7;
    const xs = randn(rows * K, 'narrow-x');
    for (const layout of ['conv1d', 'linear'] as const) {
      const weight = randn(K * N, `narrow-w-${layout}`);
      const initial = randn(rows * N, `narrow-c-${layout}`);
      const out = upload(gpu, initial);
      const b = upload(gpu, weight);
      const operand = layout === 'conv1d' ? { buffer: b, rowStride: N, colStride: 1 } : { buffer: b, rowStride: 1, colStride: K };
      k.matmul(gpu, { M: rows, N, K }, { buffer: upload(gpu, xs), rowStride: K, colStride: 1 }, operand,
        { buffer: out, rowStride: N }, { bias: upload(gpu, bias), accumulate: true });
      const expected = ref.matmulForward(xs, weight, bias, rows, K, N, layout).map((v, i) => v + initial[i]);
      expect(mismatch(await download(gpu, out, rows * N), expected, ATOL, RTOL), layout).toBeNull();
    }
  });

  test('shallow product of many rows, transposed A, accumulation', async () => {
    // c[131, N] = x^T[131, 9] · y[9, N]: a weight gradient over 9 tokens, which takes the kernel
    // without tiles because the reduction is short.
    const rows = 131;
    const depth = 9;
    const xs = randn(depth * rows, 'shallow-x');
    const y = randn(depth * N, 'shallow-y');
    const initial = randn(rows * N, 'shallow-c');
    const out = upload(gpu, initial);
    k.matmul(gpu, { M: rows, N, K: depth }, { buffer: upload(gpu, xs), rowStride: 1, colStride: rows },
      { buffer: upload(gpu, y), rowStride: N, colStride: 1 }, { buffer: out, rowStride: N }, { accumulate: true });
    const expected = Float64Array.from(initial);
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < N; j++) {
        for (let t = 0; t < depth; t++) expected[i * N + j] += xs[t * rows + i] * y[t * N + j];
      }
    }
    expect(mismatch(await download(gpu, out, rows * N), expected, ATOL, RTOL)).toBeNull();
  });

  test('accumulates into a column slice of a wider output', async () => {
    // C is a [M, 3N] matrix; the product goes to columns N..2N-1 and adds to what is there.
    const weight = randn(K * N, 'matmul-slice-w');
    const initial = randn(M * 3 * N, 'matmul-slice-c');
    const out = upload(gpu, initial);
    k.matmul(gpu, { M, N, K }, { buffer: upload(gpu, x), rowStride: K, colStride: 1 },
      { buffer: upload(gpu, weight), rowStride: N, colStride: 1 }, { buffer: out, offset: N, rowStride: 3 * N }, { accumulate: true });
    const product = ref.matmulForward(x, weight, null, M, K, N, 'conv1d');
    const expected = Float64Array.from(initial);
    for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) expected[i * 3 * N + N + j] += product[i * N + j];
    expect(mismatch(await download(gpu, out, M * 3 * N), expected, ATOL, RTOL)).toBeNull();
  });

  test('transposed A reads x^T through strides', async () => {
    // c[K, N] = x^T[K, M] · y[M, N], the shape of a weight gradient.
    const y = randn(M * N, 'matmul-t-y');
    const out = zeros(gpu, K * N);
    k.matmul(gpu, { M: K, N, K: M }, { buffer: upload(gpu, x), rowStride: 1, colStride: K },
      { buffer: upload(gpu, y), rowStride: N, colStride: 1 }, { buffer: out, rowStride: N });
    const expected = new Float64Array(K * N);
    for (let a = 0; a < K; a++) for (let b = 0; b < N; b++) {
      let sum = 0;
      for (let m = 0; m < M; m++) sum += x[m * K + a] * y[m * N + b];
      expected[a * N + b] = sum;
    }
    expect(mismatch(await download(gpu, out, K * N), expected, ATOL, RTOL)).toBeNull();
  });

  test('bias backward sums columns', async () => {
    const dy = randn(M * N, 'bias-dy');
    const dbias = zeros(gpu, N);
    k.biasBackward(gpu, M, N, { buffer: upload(gpu, dy), rowStride: N }, dbias);
    const expected = ref.matmulBackward(dy, x.subarray(0, M * K), randn(K * N, 'unused'), M, K, N, 'conv1d', true).dbias!;
    expect(mismatch(await download(gpu, dbias, N), expected, ATOL, RTOL)).toBeNull();
  });
});

describe('layernorm', () => {
  // C = 70 exceeds the 64 threads of a row, R = 13 rows.
  const R = 13;
  const C = 70;
  const eps = 1e-5;
  const x = randn(R * C, 'ln-x', 2, 0.5);
  const weight = randn(C, 'ln-w', 0.2, 1);
  const bias = randn(C, 'ln-b', 0.2);
  const dout = randn(R * C, 'ln-dout');
  const expected = ref.layernormForward(x, weight, bias, R, C, eps);
  const grads = ref.layernormBackward(dout, x, weight, expected.mean, expected.rstd, R, C);

  test('forward, mean and rstd', async () => {
    const out = zeros(gpu, R * C);
    const mean = zeros(gpu, R);
    const rstd = zeros(gpu, R);
    k.layernormForward(gpu, R, C, eps, upload(gpu, x), upload(gpu, weight), upload(gpu, bias), out, mean, rstd);
    expect(mismatch(await download(gpu, out, R * C), expected.out, ATOL, RTOL)).toBeNull();
    expect(mismatch(await download(gpu, mean, R), expected.mean, ATOL, RTOL)).toBeNull();
    expect(mismatch(await download(gpu, rstd, R), expected.rstd, ATOL, RTOL)).toBeNull();
  });

  test('backward accumulates dx and computes parameter gradients', async () => {
    const mean = upload(gpu, expected.mean);
    const rstd = upload(gpu, expected.rstd);
    const existing = randn(R * C, 'ln-existing');
    const dx = upload(gpu, existing);
    k.layernormBackward(gpu, R, C, upload(gpu, x), upload(gpu, weight), mean, rstd, upload(gpu, dout), dx, true);
    const dweight = zeros(gpu, C);
    const dbias = zeros(gpu, C);
    k.layernormBackwardParams(gpu, R, C, upload(gpu, x), mean, rstd, upload(gpu, dout), dweight, dbias, false);
    expect(mismatch(await download(gpu, dx, R * C), grads.dinp.map((v, i) => v + existing[i]), ATOL, RTOL)).toBeNull();
    expect(mismatch(await download(gpu, dweight, C), grads.dweight, ATOL, RTOL)).toBeNull();
    expect(mismatch(await download(gpu, dbias, C), grads.dbias, ATOL, RTOL)).toBeNull();
  });
});

describe('attention', () => {
  // T = 9 and head size 5 are not multiples of anything the kernels use.
  const B = 2;
  const T = 9;
  const NH = 3;
  const C = 15;
  const qkv = randn(B * T * 3 * C, 'att-qkv');
  const dout = randn(B * T * C, 'att-dout');

  const cases = [
    { name: 'GPT-2 (scaled, global)', scale: true, window: null },
    { name: 'GPT-Neo global (unscaled)', scale: false, window: null },
    { name: 'GPT-Neo local, window 4', scale: false, window: 4 },
  ];
  for (const c of cases) {
    test(`forward and backward, ${c.name}`, async () => {
      const options = { scale: c.scale, window: c.window };
      const expected = ref.attentionForward(qkv, B, T, C, NH, options);
      const expectedDqkv = ref.attentionBackward(dout, qkv, expected.att, B, T, C, NH, options);
      const shape = { B, T, C, NH, window: c.window ?? 0, scale: c.scale ? 1 / Math.sqrt(C / NH) : 1 };
      const qkvBuffer = upload(gpu, qkv);
      const att = zeros(gpu, B * NH * T * T);
      const out = zeros(gpu, B * T * C);
      k.attentionForward(gpu, shape, qkvBuffer, att, out);
      const datt = zeros(gpu, B * NH * T * T);
      const dqkv = zeros(gpu, B * T * 3 * C);
      k.attentionBackward(gpu, shape, qkvBuffer, att, upload(gpu, dout), datt, dqkv);
      expect(mismatch(await download(gpu, out, B * T * C), expected.out, ATOL, RTOL)).toBeNull();
      expect(mismatch(await download(gpu, att, B * NH * T * T), expected.att, ATOL, RTOL)).toBeNull();
      expect(mismatch(await download(gpu, dqkv, B * T * 3 * C), expectedDqkv, ATOL, RTOL)).toBeNull();
    });
  }
});

describe('elementwise', () => {
  const n = 1001;
  const x = randn(n, 'gelu-x', 3);
  const dout = randn(n, 'gelu-dout');

  test('gelu forward and backward, including large |x|', async () => {
    const input = Float64Array.from(x);
    input[0] = 40;
    input[1] = -40;
    const out = zeros(gpu, n);
    const dx = zeros(gpu, n);
    const xBuffer = upload(gpu, input);
    k.geluForward(gpu, n, xBuffer, out);
    k.geluBackward(gpu, n, xBuffer, upload(gpu, dout), dx);
    expect(mismatch(await download(gpu, out, n), ref.geluForward(input), ATOL, RTOL)).toBeNull();
    expect(mismatch(await download(gpu, dx, n), ref.geluBackward(dout, input), ATOL, RTOL)).toBeNull();
  });

  test('residual forward adds, backward accumulates', async () => {
    const a = randn(n, 'res-a');
    const b = randn(n, 'res-b');
    const out = zeros(gpu, n);
    k.residualForward(gpu, n, upload(gpu, a), upload(gpu, b), out);
    expect(mismatch(await download(gpu, out, n), ref.residualForward(a, b), ATOL, RTOL)).toBeNull();
    const dx = upload(gpu, a);
    k.residualBackward(gpu, n, upload(gpu, dout), dx);
    expect(mismatch(await download(gpu, dx, n), a.map((v, i) => v + ref.residualBackward(dout).da[i]), ATOL, RTOL)).toBeNull();
  });
});

describe('embedding', () => {
  const B = 2;
  const T = 7;
  const C = 11;
  const V = 23;
  const P = 9;
  // Repeated tokens exercise the per-token gradient sums.
  const tokens = Int32Array.from([3, 5, 3, 22, 0, 5, 5, 1, 3, 9, 9, 22, 0, 4]);
  const wte = randn(V * C, 'emb-wte');
  const wpe = randn(P * C, 'emb-wpe');
  const dout = randn(B * T * C, 'emb-dout');

  test('forward and backward with the table split in row chunks', async () => {
    const expected = ref.encoderForward(tokens, wte, wpe, B, T, C);
    const grads = ref.encoderBackward(dout, tokens, B, T, C, V, P);
    const shape = { BT: B * T, T, C };
    const out = zeros(gpu, B * T * C);
    const tokenBuffer = uploadInt(gpu, tokens);
    k.positionForward(gpu, shape, upload(gpu, wpe), out);
    // Three chunks of 10, 10 and 3 rows.
    const chunks = [0, 10, 20].map((start) => ({ start, rows: Math.min(10, V - start) }));
    const dChunks = chunks.map((c) => zeros(gpu, c.rows * C));
    for (const c of chunks) k.tokenForward(gpu, shape, tokenBuffer, upload(gpu, wte.subarray(c.start * C, (c.start + c.rows) * C)), c.start, c.rows, out);
    expect(mismatch(await download(gpu, out, B * T * C), expected, ATOL, RTOL)).toBeNull();

    // Group positions by token the way the engine does.
    const byToken = new Map<number, number[]>();
    tokens.forEach((t, i) => byToken.set(t, [...(byToken.get(t) ?? []), i]));
    const groups: number[] = [];
    const positions: number[] = [];
    for (const [t, list] of byToken) {
      groups.push(t, positions.length, list.length);
      positions.push(...list);
    }
    const groupBuffer = uploadInt(gpu, groups);
    const positionBuffer = uploadInt(gpu, positions);
    const doutBuffer = upload(gpu, dout);
    chunks.forEach((c, i) => k.tokenBackward(gpu, shape, byToken.size, groupBuffer, positionBuffer, doutBuffer, dChunks[i], c.start, c.rows));
    const dwte = new Float64Array(V * C);
    for (const [i, c] of chunks.entries()) dwte.set(await download(gpu, dChunks[i], c.rows * C), c.start * C);
    expect(mismatch(dwte, grads.dwte, ATOL, RTOL)).toBeNull();

    const dwpe = zeros(gpu, P * C);
    k.positionBackward(gpu, shape, doutBuffer, dwpe, false);
    expect(mismatch(await download(gpu, dwpe, P * C), grads.dwpe, ATOL, RTOL)).toBeNull();
  });
});

describe('losses', () => {
  // V = 97 is not a multiple of the 64 threads of a row.
  const R = 11;
  const V = 97;
  const logits = randn(R * V, 'ce-logits', 2);
  const refLogits = randn(R * V, 'kl-ref', 2);
  const targets = Int32Array.from({ length: R }, (_, i) => (i % 4 === 0 ? -1 : (i * 31) % V));
  const weights = Float64Array.from({ length: R }, (_, i) => 0.1 + 0.05 * i);

  test('cross-entropy forward and backward', async () => {
    const expected = ref.crossEntropyForward(logits, targets, weights, R, V);
    const expectedGrad = ref.crossEntropyBackward(1, logits, targets, weights, R, V);
    const logitBuffer = upload(gpu, logits);
    const targetBuffer = uploadInt(gpu, targets);
    const weightBuffer = upload(gpu, weights);
    const losses = zeros(gpu, R);
    const lse = zeros(gpu, R);
    k.crossentropyForward(gpu, R, V, logitBuffer, targetBuffer, weightBuffer, losses, lse);
    expect(mismatch(await download(gpu, losses, R), expected.losses, ATOL, RTOL)).toBeNull();
    k.crossentropyBackward(gpu, R, V, logitBuffer, targetBuffer, weightBuffer, lse);
    expect(mismatch(await download(gpu, logitBuffer, R * V), expectedGrad, ATOL, RTOL)).toBeNull();
  });

  test('KL forward and backward', async () => {
    const expected = ref.klForward(logits, refLogits, weights, R, V);
    const expectedGrad = ref.klBackward(1, logits, refLogits, weights, R, V);
    const logitBuffer = upload(gpu, logits);
    const refBuffer = upload(gpu, refLogits);
    const weightBuffer = upload(gpu, weights);
    const losses = zeros(gpu, R);
    const stats = zeros(gpu, R * 3);
    k.klForward(gpu, R, V, logitBuffer, refBuffer, weightBuffer, losses, stats);
    expect(mismatch(await download(gpu, losses, R), expected.losses, ATOL, RTOL)).toBeNull();
    k.klBackward(gpu, R, V, logitBuffer, refBuffer, weightBuffer, stats);
    expect(mismatch(await download(gpu, logitBuffer, R * V), expectedGrad, ATOL, RTOL)).toBeNull();
  });

  test('KL of identical distributions is zero', async () => {
    const losses = zeros(gpu, R);
    k.klForward(gpu, R, V, upload(gpu, logits), upload(gpu, logits), upload(gpu, weights), losses, zeros(gpu, R * 3));
    expect(mismatch(await download(gpu, losses, R), new Float64Array(R), 1e-6, 0)).toBeNull();
  });
});

describe('reduce', () => {
  test('sum and sum of squares over several workgroups, accumulating into a slot', async () => {
    // 10007 elements span three partial sums of 4096.
    const n = 10007;
    const x = randn(n, 'reduce-x');
    const xBuffer = upload(gpu, x);
    const partials = zeros(gpu, k.reducePartialCount(n));
    const out = upload(gpu, [0, 1.5, 0]);
    k.reduce(gpu, 'sum', n, xBuffer, partials, out, 0, false);
    k.reduce(gpu, 'squares', n, xBuffer, partials, out, 1, true);
    const sum = x.reduce((a, b) => a + b, 0);
    const squares = x.reduce((a, b) => a + b * b, 0);
    const result = await download(gpu, out, 3);
    expect(Math.abs(result[0] - sum)).toBeLessThan(1e-3);
    expect(Math.abs(result[1] - (1.5 + squares)) / squares).toBeLessThan(1e-5);
    expect(result[2]).toBe(0);
  });
});

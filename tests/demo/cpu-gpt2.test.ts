// The CPU trainer of the demo model against the float64 reference of tests/reference: the loss,
// every parameter's gradient, and one AdamW step against the update rule computed here.

import { describe, expect, it } from 'vitest';
import seedrandom from 'seedrandom';
import { parseConfig } from '../../src/model/config.ts';
import { AdamW, CpuGpt2, type CpuBatch } from '../../scripts/demo/cpu-gpt2.ts';
import { randomReferenceParameters, referenceGradients } from '../reference/gpt.ts';

const config = parseConfig({
  model_type: 'gpt2', vocab_size: 23, n_positions: 9, n_embd: 8, n_layer: 2, n_head: 2, bos_token_id: 0, eos_token_id: 0,
});

function tinyBatch(random: () => number): CpuBatch {
  const B = 2;
  const T = 7;
  const tokens = Int32Array.from({ length: B * T }, () => Math.floor(random() * config.vocabSize));
  const targets = Int32Array.from({ length: B * T }, () => Math.floor(random() * config.vocabSize));
  // Some positions carry no loss, as padding does.
  targets[5] = -1;
  targets[13] = -1;
  const weights = Float32Array.from(targets, (target) => (target < 0 ? 0 : 0.05 + 0.1 * random()));
  return { B, T, tokens, targets, weights };
}

function flatParameters(model: CpuGpt2, reference: Map<string, Float64Array>): void {
  for (const { name, offset } of model.layout.entries) model.params.set(reference.get(name)!, offset);
}

describe('demo CPU GPT-2', () => {
  it('matches the reference loss and gradients', () => {
    const random = seedrandom('cpu-gpt2');
    const reference = randomReferenceParameters(config, random, 0.3);
    const model = new CpuGpt2(config);
    flatParameters(model, reference);
    const batch = tinyBatch(random);

    const loss = model.forward(batch);
    model.backward(batch);
    const expected = referenceGradients(config, reference, { batchSize: batch.B, seqLen: batch.T, tokens: batch.tokens, targets: batch.targets, weights: batch.weights });

    expect(loss).toBeCloseTo(expected.loss, 4);
    for (const { name, offset, size } of model.layout.entries) {
      const want = expected.grads.get(name)!;
      const got = model.grads.subarray(offset, offset + size);
      const scale = Math.max(1e-3, ...Array.from(want, Math.abs));
      let worst = 0;
      for (let i = 0; i < size; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
      // f32 storage against f64: relative to the tensor's largest gradient.
      expect(worst / scale, name).toBeLessThan(2e-4);
    }
  });

  it('AdamW step follows the update rule', () => {
    const random = seedrandom('adamw');
    const model = new CpuGpt2(config);
    model.initialize(random);
    const before = Float64Array.from(model.params);
    for (let i = 0; i < model.grads.length; i++) model.grads[i] = random() - 0.5;
    const grads = Float64Array.from(model.grads);
    const optimizer = new AdamW(model, { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 });
    const lr = 0.01;
    optimizer.update(lr, Number.POSITIVE_INFINITY);

    // After one step m/(1-b1) = g and v/(1-b2) = g^2, so each value moves by lr * (sign(g) + decay * w).
    for (const { name, shape, offset, size } of model.layout.entries) {
      const decay = shape.length === 2 ? 0.1 : 0;
      for (let i = offset; i < offset + size; i++) {
        const step = grads[i] / (Math.abs(grads[i]) + 1e-8) + decay * before[i];
        expect(model.params[i], name).toBeCloseTo(before[i] - lr * step, 6);
      }
    }
  });

  it('initialization repeats for a seed', () => {
    const first = new CpuGpt2(config);
    first.initialize(seedrandom('same'));
    const second = new CpuGpt2(config);
    second.initialize(seedrandom('same'));
    expect(Buffer.from(first.params.buffer).equals(Buffer.from(second.params.buffer))).toBe(true);
  });
});

// The sampling distribution (temperature, top-k, top-p) against hand-computed distributions, and
// draws against their expected frequencies.

import seedrandom from 'seedrandom';
import { describe, expect, it } from 'vitest';
import { GREEDY, checkSamplingOptions, sampleToken, samplingDistribution } from '../../src/eval/generate.ts';

const logitsOf = (probabilities: number[]) => probabilities.map(Math.log);

describe('samplingDistribution', () => {
  it('is the softmax at temperature 1', () => {
    const { ids, probabilities } = samplingDistribution([1, 2, 3], { temperature: 1, topP: 1, topK: 0 });
    const z = Math.exp(1) + Math.exp(2) + Math.exp(3);
    expect(ids).toEqual([0, 1, 2]);
    probabilities.forEach((p, i) => expect(p).toBeCloseTo(Math.exp(i + 1) / z, 12));
  });

  it('divides the logits by the temperature', () => {
    const { probabilities } = samplingDistribution([1, 2, 3], { temperature: 0.5, topP: 1, topK: 0 });
    const z = Math.exp(2) + Math.exp(4) + Math.exp(6);
    expect(probabilities[2]).toBeCloseTo(Math.exp(6) / z, 12);
  });

  it('keeps the smallest nucleus reaching top-p', () => {
    const logits = logitsOf([0.05, 0.5, 0.15, 0.3]);
    // 0.5 + 0.3 = 0.8 >= 0.75, so tokens 1 and 3 remain, renormalized.
    const { ids, probabilities } = samplingDistribution(logits, { temperature: 1, topP: 0.75, topK: 0 });
    expect(ids).toEqual([1, 3]);
    expect(probabilities[0]).toBeCloseTo(0.5 / 0.8, 12);
    expect(probabilities[1]).toBeCloseTo(0.3 / 0.8, 12);
  });

  it('keeps the most likely token when top-p is below its probability', () => {
    const { ids, probabilities } = samplingDistribution(logitsOf([0.2, 0.7, 0.1]), { temperature: 1, topP: 0.1, topK: 0 });
    expect(ids).toEqual([1]);
    expect(probabilities).toEqual([1]);
  });

  it('reaches into a long tail for the nucleus', () => {
    // One token of 0.5 and 999 of 0.5/999 each: 0.9 needs the first 800 of the tail (by id).
    const probabilities = [0.5, ...Array<number>(999).fill(0.5 / 999)];
    const { ids } = samplingDistribution(logitsOf(probabilities), { temperature: 1, topP: 0.9, topK: 0 });
    const tailNeeded = Math.ceil((0.9 - 0.5) / (0.5 / 999) - 1e-9);
    expect(tailNeeded).toBe(800);
    expect(ids).toEqual(Array.from({ length: 1 + tailNeeded }, (_, i) => i));
  });

  it('keeps the top-k tokens', () => {
    const { ids, probabilities } = samplingDistribution(logitsOf([0.1, 0.4, 0.2, 0.3]), { temperature: 1, topP: 1, topK: 2 });
    expect(ids).toEqual([1, 3]);
    expect(probabilities[0]).toBeCloseTo(0.4 / 0.7, 12);
  });

  it('keeps ties at the top-k boundary', () => {
    expect(samplingDistribution([1, 2, 2, 0, 2], { temperature: 1, topP: 1, topK: 2 }).ids).toEqual([1, 2, 4]);
    expect(samplingDistribution([1, 3, 2, 0, 2], { temperature: 1, topP: 1, topK: 2 }).ids).toEqual([1, 2, 4]);
    expect(samplingDistribution([1, 3, 2, 0, 2], { temperature: 1, topP: 1, topK: 1 }).ids).toEqual([1]);
  });

  it('applies top-k before top-p', () => {
    // Top-2 leaves 0.4 and 0.3, renormalized to 4/7 and 3/7; top-p 0.5 then keeps the first.
    const { ids } = samplingDistribution(logitsOf([0.1, 0.4, 0.2, 0.3]), { temperature: 1, topP: 0.5, topK: 2 });
    expect(ids).toEqual([1]);
  });

  it('picks the argmax when greedy', () => {
    expect(samplingDistribution([0.1, 3, 2.9], GREEDY)).toEqual({ ids: [1], probabilities: [1] });
  });
});

describe('sampleToken', () => {
  it('draws tokens at the nucleus frequencies', () => {
    const logits = logitsOf([0.05, 0.5, 0.15, 0.3]);
    const random = seedrandom('frequencies');
    const counts = [0, 0, 0, 0];
    const draws = 20000;
    for (let i = 0; i < draws; i++) counts[sampleToken(logits, { temperature: 1, topP: 0.75, topK: 0 }, random)]++;

    expect(counts[0]).toBe(0);
    expect(counts[2]).toBe(0);
    // Binomial standard deviation of the share of token 1 is about 0.0034; allow 5 of them.
    expect(Math.abs(counts[1] / draws - 0.625)).toBeLessThan(0.017);
    expect(Math.abs(counts[3] / draws - 0.375)).toBeLessThan(0.017);
  });

  it('repeats with the same seed', () => {
    const logits = logitsOf([0.25, 0.25, 0.25, 0.25]);
    const options = { temperature: 1, topP: 1, topK: 0 };
    const first = seedrandom('same');
    const second = seedrandom('same');
    const a = Array.from({ length: 50 }, () => sampleToken(logits, options, first));
    const b = Array.from({ length: 50 }, () => sampleToken(logits, options, second));
    expect(a).toEqual(b);
    expect(new Set(a).size).toBe(4);
  });

  it('draws no random number when greedy', () => {
    let calls = 0;
    const token = sampleToken([0, 5, 1], GREEDY, () => {
      calls++;
      return 0.5;
    });
    expect(token).toBe(1);
    expect(calls).toBe(0);
  });
});

describe('checkSamplingOptions', () => {
  it.each([
    [{ temperature: -1, topP: 1, topK: 0 }, /temperature/],
    [{ temperature: 1, topP: 0, topK: 0 }, /top-p/],
    [{ temperature: 1, topP: 1.5, topK: 0 }, /top-p/],
    [{ temperature: 1, topP: 1, topK: 1.5 }, /top-k/],
  ])('rejects %o', (options, message) => {
    expect(() => checkSamplingOptions(options)).toThrow(message);
  });
});

import { describe, expect, it } from 'vitest';
import { BatchSampler, shuffle, shuffledIndices, splitDataset, toBatches } from '../../src/data/split.ts';
import { UserError } from '../../src/model/errors.ts';

function expectPartition(train: number[], validation: number[], n: number) {
  const all = [...train, ...validation].sort((a, b) => a - b);
  expect(all).toEqual(Array.from({ length: n }, (_, i) => i));
}

describe('splitDataset', () => {
  it('takes 8 batches of 8 from a large dataset', () => {
    const split = splitDataset(1000, { seed: 1 });
    expect(split.validation).toHaveLength(64);
    expect(split.train).toHaveLength(936);
    expect(split.message).toBeUndefined();
    expectPartition(split.train, split.validation, 1000);
  });

  it('honours batch options', () => {
    const split = splitDataset(1000, { seed: 1, validationBatches: 3, batchSize: 5 });
    expect(split.validation).toHaveLength(15);
    expect(split.message).toBeUndefined();
  });

  it('shrinks validation for small datasets', () => {
    // A quarter of the dataset at most, in whole batches of 8 when one fits.
    const cases: [number, number][] = [
      [256, 64],
      [255, 56],
      [100, 24],
      [40, 8],
      [20, 5],
      [4, 1],
      [3, 0],
      [1, 0],
    ];
    for (const [n, validation] of cases) {
      const split = splitDataset(n, { seed: 'small' });
      expect(split.validation, `n = ${n}`).toHaveLength(validation);
      expectPartition(split.train, split.validation, n);
      if (validation < 64) expect(split.message, `n = ${n}`).toBeDefined();
    }
    expect(splitDataset(100, { seed: 0 }).message).toBe(
      'The dataset has 100 examples, so validation uses 24 of them (3 batches) instead of 64, and training keeps 76.',
    );
    expect(splitDataset(3, { seed: 0 }).message).toMatch(/too few for a validation split/);
  });

  it('repeats with a seed and differs across seeds', () => {
    const a = splitDataset(500, { seed: 42 });
    const b = splitDataset(500, { seed: 42 });
    const c = splitDataset(500, { seed: 43 });
    expect(b).toEqual(a);
    expect(c.validation).not.toEqual(a.validation);
  });

  it('rejects bad options', () => {
    expect(() => splitDataset(0, { seed: 1 })).toThrow(UserError);
    expect(() => splitDataset(10, { seed: 1, batchSize: 0 })).toThrow(/batch size must be a positive integer/);
    expect(() => splitDataset(10, { seed: 1, validationBatches: 1.5 })).toThrow(UserError);
  });
});

describe('shuffle', () => {
  it('is a seeded permutation', () => {
    const items = Array.from({ length: 50 }, (_, i) => `item${i}`);
    const first = shuffle(items, 'seed');
    expect(shuffle(items, 'seed')).toEqual(first);
    expect(shuffle(items, 'other')).not.toEqual(first);
    expect(first).not.toEqual(items);
    expect([...first].sort()).toEqual([...items].sort());
    expect(items[0]).toBe('item0');
  });

  it('treats numeric and string seeds alike', () => {
    expect(shuffledIndices(30, 7)).toEqual(shuffledIndices(30, '7'));
  });

  it('moves every item to every place over seeds', () => {
    // Over many seeds, item 0 of 4 should land in each position; a broken shuffle pins it.
    const seen = new Set<number>();
    for (let seed = 0; seed < 200; seed++) seen.add(shuffledIndices(4, seed).indexOf(0));
    expect([...seen].sort()).toEqual([0, 1, 2, 3]);
  });
});

describe('toBatches', () => {
  it('chunks with a short last batch', () => {
    expect(toBatches([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]]);
  });
});

describe('BatchSampler', () => {
  it('covers an epoch before reshuffling', () => {
    const indices = Array.from({ length: 10 }, (_, i) => i * 3);
    const sampler = new BatchSampler(indices, 4, 9);
    const epoch1 = [...sampler.next(), ...sampler.next()];
    expect(sampler.epoch).toBe(1);
    expect(new Set(epoch1).size).toBe(8);
    for (const index of epoch1) expect(indices).toContain(index);

    const third = sampler.next();
    expect(sampler.epoch).toBe(2);
    expect(third).toHaveLength(4);
  });

  it('repeats for a seed', () => {
    const indices = Array.from({ length: 20 }, (_, i) => i);
    const draw = (seed: number) => {
      const sampler = new BatchSampler(indices, 8, seed);
      return Array.from({ length: 5 }, () => sampler.next());
    };
    expect(draw(3)).toEqual(draw(3));
    expect(draw(3)).not.toEqual(draw(4));
  });

  it('rejects a split smaller than a batch', () => {
    expect(() => new BatchSampler([1, 2], 8, 0)).toThrow(/fewer than the batch size 8/);
  });
});

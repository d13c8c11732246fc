import seedrandom from 'seedrandom';
import { describe, expect, it } from 'vitest';
import { chunkTokens, makeBatch, makeTextBatch, type TokenBatch } from '../../src/data/batch.ts';
import type { Sequence } from '../../src/data/examples.ts';

const PAD = 0;

/** Computes the engine's loss: sum over positions of weight * -log p(target). */
function weightedLoss(batch: TokenBatch, nll: (b: number, t: number, target: number) => number): number {
  let loss = 0;
  for (let b = 0; b < batch.batchSize; b++) {
    for (let t = 0; t < batch.seqLen; t++) {
      const i = b * batch.seqLen + t;
      if (batch.targets[i] >= 0) loss += batch.weights[i] * nll(b, t, batch.targets[i]);
    }
  }
  return loss;
}

describe('makeBatch', () => {
  const sequences: Sequence[] = [
    { prompt: [5, 6], continuation: [7, 8, 9] },
    { prompt: [1], continuation: [2] },
  ];

  it('lays out tokens, targets and weights', () => {
    const batch = makeBatch(sequences, PAD);
    expect(batch.batchSize).toBe(2);
    expect(batch.seqLen).toBe(5);
    expect([...batch.tokens]).toEqual([5, 6, 7, 8, 9, 1, 2, PAD, PAD, PAD]);
    expect([...batch.targets]).toEqual([-1, 7, 8, 9, -1, 2, -1, -1, -1, -1]);
    // Sequence 0 has 3 continuation tokens and sequence 1 has 1, in a batch of 2.
    const w0 = 1 / (3 * 2);
    const w1 = 1 / (1 * 2);
    expect([...batch.weights]).toEqual([0, w0, w0, w0, 0, w1, 0, 0, 0, 0].map(Math.fround));
    expect([...batch.lengths]).toEqual([5, 2]);
    expect(batch.lossTokens).toBe(4);
  });

  it('gives the batch NLL on a hand-computed case', () => {
    // NLL of each predicted token, chosen by hand: row 0 positions 1..3, row 1 position 0.
    const table: Record<string, number> = { '0,1': 0.5, '0,2': 1.25, '0,3': 2.0, '1,0': 3.0 };
    const batch = makeBatch(sequences, PAD);
    const loss = weightedLoss(batch, (b, t) => {
      const value = table[`${b},${t}`];
      if (value === undefined) throw new Error(`loss at unexpected position ${b},${t}`);
      return value;
    });
    // Mean over continuation tokens: (0.5 + 1.25 + 2) / 3 = 1.25 and 3; mean over the batch: 2.125.
    expect(loss).toBeCloseTo(2.125, 6);
  });

  it('matches the definition on random log-probabilities', () => {
    const random = seedrandom('batch-nll');
    const V = 11;
    const randomSequences: Sequence[] = Array.from({ length: 6 }, () => ({
      prompt: Array.from({ length: 1 + Math.floor(random() * 5) }, () => Math.floor(random() * V)),
      continuation: Array.from({ length: 1 + Math.floor(random() * 7) }, () => Math.floor(random() * V)),
    }));

    // A fixed "model": random logits per (sequence, position), softmax over V.
    const logProbs = new Map<string, number[]>();
    const logProbAt = (b: number, t: number): number[] => {
      const key = `${b},${t}`;
      if (!logProbs.has(key)) {
        const logits = Array.from({ length: V }, () => 4 * random() - 2);
        const max = Math.max(...logits);
        const logSum = Math.log(logits.reduce((s, x) => s + Math.exp(x - max), 0)) + max;
        logProbs.set(key, logits.map((x) => x - logSum));
      }
      return logProbs.get(key)!;
    };

    // The definition, read from the sequences: token j of the continuation sits at position
    // P + j and is predicted from position P + j - 1.
    const perSequence = randomSequences.map(({ prompt, continuation }, b) => {
      const nll = continuation.map((token, j) => -logProbAt(b, prompt.length + j - 1)[token]);
      return nll.reduce((s, x) => s + x, 0) / nll.length;
    });
    const expected = perSequence.reduce((s, x) => s + x, 0) / perSequence.length;

    const batch = makeBatch(randomSequences, PAD);
    const loss = weightedLoss(batch, (b, t, target) => -logProbAt(b, t)[target]);
    expect(loss).toBeCloseTo(expected, 5);
    expect(batch.lossTokens).toBe(randomSequences.reduce((s, q) => s + q.continuation.length, 0));
  });

  it('skips the unpredictable first token of an empty prompt', () => {
    const batch = makeBatch(
      [
        { prompt: [], continuation: [4, 5, 6] },
        { prompt: [], continuation: [9] },
        { prompt: [1], continuation: [2] },
      ],
      PAD,
    );
    expect([...batch.targets]).toEqual([5, 6, -1, -1, -1, -1, 2, -1, -1]);
    // Sequence 1 has nothing to predict, so the mean is over the other two sequences.
    const w0 = 1 / (2 * 2);
    const w2 = 1 / (1 * 2);
    expect([...batch.weights]).toEqual([w0, w0, 0, 0, 0, 0, w2, 0, 0].map(Math.fround));
    expect(batch.lossTokens).toBe(3);
  });

  it('pads to a requested length', () => {
    const batch = makeBatch([{ prompt: [3], continuation: [4] }], 7, 4);
    expect(batch.seqLen).toBe(4);
    expect([...batch.tokens]).toEqual([3, 4, 7, 7]);
    expect(() => makeBatch([{ prompt: [3, 3], continuation: [4, 4, 4] }], 7, 4)).toThrow(/does not fit seqLen 4/);
  });
});

describe('makeTextBatch', () => {
  it('predicts every next token with token-mean weights', () => {
    const batch = makeTextBatch([[1, 2, 3, 4], [5, 6]], PAD);
    expect([...batch.tokens]).toEqual([1, 2, 3, 4, 5, 6, PAD, PAD]);
    expect([...batch.targets]).toEqual([2, 3, 4, -1, 6, -1, -1, -1]);
    expect([...batch.weights]).toEqual([0.25, 0.25, 0.25, 0, 0.25, 0, 0, 0]);
    expect(batch.lossTokens).toBe(4);

    // Mean NLL over the four predicted tokens.
    const nll = [0.1, 0.2, 0.3, 0, 1.4, 0, 0, 0];
    const loss = weightedLoss(batch, (b, t) => nll[b * batch.seqLen + t]);
    expect(loss).toBeCloseTo((0.1 + 0.2 + 0.3 + 1.4) / 4, 6);
  });

  it('rejects sequences with nothing to predict', () => {
    expect(() => makeTextBatch([[1], []], PAD)).toThrow(/shorter than 2 tokens/);
  });
});

describe('chunkTokens', () => {
  it('cuts a stream into windows', () => {
    expect(chunkTokens([1, 2, 3, 4, 5, 6, 7], 3)).toEqual([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    expect(chunkTokens([1, 2, 3, 4, 5, 6, 7, 8], 3)).toEqual([
      [1, 2, 3],
      [4, 5, 6],
      [7, 8],
    ]);
    expect(() => chunkTokens([1, 2], 1)).toThrow();
  });
});

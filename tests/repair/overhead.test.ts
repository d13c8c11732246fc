// The overhead block of run.json: every pass a repair run makes, counted by Kaplan et al.'s
// estimate and recomputed here from the checkpoint's own tensors and the run's batch shapes.

import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseText } from '../../src/data/dataset.ts';
import type { Overhead } from '../../src/eval/overhead.ts';
import type { Gpu } from '../../src/gpu/device.ts';
import { createNodeGpu } from '../../src/gpu/node.ts';
import { nodeDirectorySink } from '../../src/model/export.ts';
import type { RepairSettings } from '../../src/repair/options.ts';
import { createRepairRun, type RepairEvent, type RepairRun, type RunRecord } from '../../src/repair/run.ts';
import { fixtureEngine, repairFixture, type RepairFixture } from './fixtures.ts';

let gpu: Gpu;
let fixture: RepairFixture;

beforeAll(async () => {
  gpu = await createNodeGpu();
  fixture = await repairFixture({ seed: 'repair-overhead' });
});

afterAll(async () => {
  if (fixture) await rm(fixture.dir, { recursive: true, force: true });
  gpu?.destroy();
});

/** Runs a method on a fresh engine and returns the run, its finished event and its exported run.json. */
async function repair(settings: RepairSettings): Promise<{ run: RepairRun; finished: Extract<RepairEvent, { kind: 'finished' }>; record: RunRecord }> {
  const engine = await fixtureEngine(gpu, fixture);
  const run = createRepairRun(engine, fixture.checkpoint, fixture.tokenizer, fixture.dataset, { learningRate: 5e-3, ...settings });
  const events: RepairEvent[] = [];
  await run.run((event) => events.push(event));
  const out = join(fixture.dir, `out-${settings.method}`);
  await run.exportTo(nodeDirectorySink(out));
  engine.destroy();
  const finished = events.find((event) => event.kind === 'finished') as Extract<RepairEvent, { kind: 'finished' }>;
  return { run, finished, record: JSON.parse(await readFile(join(out, 'run.json'), 'utf8')) as RunRecord };
}

/** Kaplan et al.'s forward FLOPs per token, 2 N + 2 n_layer n_ctx d_model, with N every stored parameter. */
function forwardFlopsPerToken(T: number): number {
  let N = 0;
  for (const values of fixture.tiny.weights.values()) N += values.length;
  const { numLayers, hiddenSize } = fixture.checkpoint.config;
  return 2 * N + 2 * numLayers * T * hiddenSize;
}

/** Expected totals of `training` and `forward` passes, each over `rows` sequences of T tokens. */
function expectedFlops(passes: { training: number; forward: number; rows: number; T: number }): { flops: number; trainingTokens: number; forwardTokens: number } {
  const tokens = passes.rows * passes.T;
  const perToken = forwardFlopsPerToken(passes.T);
  return {
    flops: (3 * passes.training + passes.forward) * tokens * perToken,
    trainingTokens: passes.training * tokens,
    forwardTokens: passes.forward * tokens,
  };
}

function expectTotals(overhead: Overhead, expected: ReturnType<typeof expectedFlops>): void {
  expect(Math.abs(overhead.flops - expected.flops) / expected.flops).toBeLessThan(1e-12);
  expect(overhead.trainingTokens).toBe(expected.trainingTokens);
  expect(overhead.forwardTokens).toBe(expected.forwardTokens);
  expect(overhead.flopsPerToken).toBeCloseTo(expected.flops / expected.trainingTokens, 6);
}

describe('run.json overhead', () => {
  it('irepair counts sensitivity and repair passes', async () => {
    const { run, finished, record } = await repair({ method: 'irepair', maxSteps: 2, validationBatches: 0 });
    const overhead = record.overhead!;
    // Each step: the sensitivity pass on D^E and the repair pass on D^R, both forward and backward.
    expectTotals(overhead, expectedFlops({ training: 2 * 2, forward: 0, rows: run.options.batchSize, T: run.seqLen }));
    expect(overhead.iterations).toBe(2);
    expect(overhead.peakMemoryBytes).toBe(record.peakGpuBytes);
    expect(overhead.peakMemoryBytes).toBeGreaterThan(fixture.checkpoint.parameterCount * 4);
    expect(overhead.gpuSeconds).toBeGreaterThan(0);
    expect(overhead.gpuSeconds).toBeLessThanOrEqual(record.durationSeconds + 0.01);
    expect(finished.overhead).toEqual(overhead);
    expect(finished.settings).toMatchObject({ learningRate: 5e-3, alpha: 0.5, batchSize: 4, steps: 2, maxSteps: 2, finishReason: 'completed' });
  });

  it('dpo counts reference, pairs and validation', async () => {
    const { run, record } = await repair({ method: 'dpo', maxSteps: 2, validateEvery: 1, patience: null });
    const B = run.options.batchSize;
    const batches = (count: number) => Math.ceil(count / B);
    const examples = run.data.train.length + run.data.validation.length;
    expect(run.data.validation.length).toBeGreaterThan(0);
    // Forward passes: the reference log-probabilities of every example once, and validation before
    // step 1 and after each step. Each step also trains on one batch of pairs. Every batch has 2B
    // rows (good and bad).
    const forward = batches(examples) + 3 * batches(run.data.validation.length);
    expectTotals(record.overhead!, expectedFlops({ training: 2, forward, rows: 2 * B, T: run.seqLen }));
    expect(record.overhead!.iterations).toBe(2);
  });

  it('irepair-kl counts the reference model', async () => {
    const normal = parseText('The model reads the prompt and says thank you. '.repeat(40), 'normal.txt');
    const { run, finished, record } = await repair({
      method: 'irepair-kl', maxSteps: 1, validationBatches: 0, normal: { kind: 'text', text: normal, length: 12 },
    });
    // Sensitivity, the KL term's pass and the repair pass train; the reference model runs forward.
    expectTotals(record.overhead!, expectedFlops({ training: 3, forward: 1, rows: run.options.batchSize, T: run.seqLen }));
    expect(finished.settings.normalData).toBe('normal.txt');
  });
});

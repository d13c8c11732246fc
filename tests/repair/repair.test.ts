// Repair runs on tiny checkpoints, checked against the float64 reference model and against the
// bytes of the input checkpoint: slice selection, which tensors change, the losses at step 0,
// early stopping, repeatability, faults and export.

import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBatch } from '../../src/data/batch.ts';
import { sequencesFor } from '../../src/data/examples.ts';
import { BatchSampler, shuffle } from '../../src/data/split.ts';
import { loadEngine, type GptEngine } from '../../src/engine/gpt.ts';
import type { Gpu } from '../../src/gpu/device.ts';
import { createNodeGpu } from '../../src/gpu/node.ts';
import { openCheckpoint } from '../../src/model/checkpoint.ts';
import { isUserError } from '../../src/model/errors.ts';
import { nodeDirectorySink } from '../../src/model/export.ts';
import { nodeDirectory } from '../../src/model/sources.ts';
import { parseDataset } from '../../src/data/dataset.ts';
import { BatchBuilder } from '../../src/repair/data.ts';
import { createRepairRun, type RepairEvent, type RepairRun, type RunRecord } from '../../src/repair/run.ts';
import type { RepairSettings } from '../../src/repair/options.ts';
import { blockGradNorms, referenceGradients, referenceLoss, type ReferenceParameters } from '../reference/gpt.ts';
import {
  argmax, argmin, blockOfKey, bytesEqual, f32Values, fixtureEngine, readSafetensors, repairFixture, type RepairFixture,
} from './fixtures.ts';

let gpu: Gpu;
let gpt2: RepairFixture;
const cleanup: string[] = [];

beforeAll(async () => {
  gpu = await createNodeGpu();
  gpt2 = await repairFixture({ seed: 'repair-gpt2' });
  cleanup.push(gpt2.dir);
});

afterAll(async () => {
  for (const dir of cleanup) await rm(dir, { recursive: true, force: true });
  gpu?.destroy();
});

interface Outcome {
  run: RepairRun;
  engine: GptEngine;
  events: RepairEvent[];
  record: RunRecord;
  out: string;
}

let outputs = 0;

/** Runs a method on a fresh engine of the fixture and exports the result. */
async function repair(fixture: RepairFixture, settings: RepairSettings): Promise<Outcome> {
  const engine = await fixtureEngine(gpu, fixture);
  const run = createRepairRun(engine, fixture.checkpoint, fixture.tokenizer, fixture.dataset, {
    learningRate: 5e-3, validateEvery: 2, ...settings,
  });
  const events: RepairEvent[] = [];
  await run.run((event) => events.push(event));
  const out = join(fixture.dir, `out-${outputs++}`);
  await run.exportTo(nodeDirectorySink(out));
  return { run, engine, events, record: JSON.parse(await readFile(join(out, 'run.json'), 'utf8')) as RunRecord, out };
}

/** Reads the parameters of an exported F32 model.safetensors as float64, by canonical name. */
async function exportedParameters(out: string): Promise<ReferenceParameters> {
  const params: ReferenceParameters = new Map();
  for (const [key, tensor] of await readSafetensors(join(out, 'model.safetensors'))) {
    params.set(key.replace(/^transformer\./, ''), f32Values(tensor.bytes));
  }
  return params;
}

/** Keys whose bytes differ between the input checkpoint and an export. */
async function changedKeys(fixture: RepairFixture, out: string): Promise<string[]> {
  const input = await readSafetensors(join(fixture.tiny.dir, 'model.safetensors'));
  const output = await readSafetensors(join(out, 'model.safetensors'));
  expect([...output.keys()].sort()).toEqual([...input.keys()].sort());
  const changed: string[] = [];
  for (const [key, tensor] of input) {
    const exported = output.get(key)!;
    expect(exported.dtype, key).toBe(tensor.dtype);
    expect(exported.shape, key).toEqual(tensor.shape);
    if (!bytesEqual(exported.bytes, tensor.bytes)) changed.push(key);
  }
  return changed;
}

/** Computes the mean good-continuation NLL of every example under float64 parameters. */
function goodNll(fixture: RepairFixture, run: RepairRun, params: ReferenceParameters): number {
  const batch = makeBatch(sequencesFor(run.data.examples, 'good'), fixture.tokenizer.eosTokenId);
  return referenceLoss(fixture.checkpoint.config, params, batch);
}

describe('irepair', () => {
  let outcome: Outcome;
  beforeAll(async () => {
    outcome = await repair(gpt2, { method: 'irepair', maxSteps: 3 });
  });

  it('step 1 sensitivities match the reference', () => {
    const { run, record } = outcome;
    // The first batch of the run, drawn as the run draws it.
    const indices = new BatchSampler(run.data.train, run.options.batchSize, run.options.seed).next();
    const bad = new BatchBuilder(run.data.examples, run.options.batchSize, run.seqLen, gpt2.tokenizer.eosTokenId).continuations(indices, 'bad');
    const { grads } = referenceGradients(gpt2.checkpoint.config, gpt2.tiny.weights, bad);
    const expected = blockGradNorms(gpt2.checkpoint.config, grads);
    const reported = record.steps[0].sensitivities!;
    expect(reported).toHaveLength(3);
    reported.forEach((value, block) => expect(Math.abs(value - expected[block]) / expected[block], `block ${block}`).toBeLessThan(2e-3));
  });

  it('selects the most sensitive block at each step', () => {
    for (const step of outcome.record.steps) expect(step.selectedBlock, `step ${step.step}`).toBe(argmax(step.sensitivities!));
  });

  it('changes only the selected blocks', async () => {
    const selected = new Set(outcome.record.steps.map((step) => step.selectedBlock!));
    expect(outcome.record.updatedBlocks).toEqual([...selected].sort());
    const changed = await changedKeys(gpt2, outcome.out);
    expect(changed.length).toBeGreaterThan(0);
    for (const key of changed) expect(selected.has(blockOfKey(key)), key).toBe(true);
    for (const name of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) {
      expect(bytesEqual(await readFile(join(outcome.out, name)), await readFile(join(gpt2.tiny.dir, name))), name).toBe(true);
    }
  });

  it('lowers the good-continuation NLL', async () => {
    const before = goodNll(gpt2, outcome.run, gpt2.tiny.weights);
    const after = goodNll(gpt2, outcome.run, await exportedParameters(outcome.out));
    expect(after).toBeLessThan(before - 1e-3);
  });

  it('reports steps, validation and progress events', () => {
    const kinds = outcome.events.map((event) => event.kind);
    expect(kinds.filter((kind) => kind === 'step')).toHaveLength(3);
    expect(kinds.at(-1)).toBe('finished');
    const steps = outcome.events.filter((event) => event.kind === 'step');
    for (const event of steps) {
      expect(event.gpuBytes).toBeGreaterThan(0);
      expect(event.tokensPerSecond).toBeGreaterThan(0);
    }
    expect(steps.at(-1)!.etaSeconds).toBe(0);
    expect(outcome.record.validation.map((v) => v.step)).toEqual([0, 2, 3]);
  });

  it('exports a model that loads back with the same weights', async () => {
    const exported = await loadEngine(gpu, await openCheckpoint(await nodeDirectory(outcome.out)));
    for (const name of outcome.engine.params.keys()) {
      const expected = await outcome.engine.readParameter(name);
      expect(bytesEqual(new Uint8Array((await exported.readParameter(name)).buffer), new Uint8Array(expected.buffer)), name).toBe(true);
    }
    exported.destroy();
  });
});

describe('ablations and baselines', () => {
  it('irepair-min selects the least sensitive block', async () => {
    const { record, out } = await repair(gpt2, { method: 'irepair-min', maxSteps: 2, validationBatches: 0 });
    for (const step of record.steps) expect(step.selectedBlock, `step ${step.step}`).toBe(argmin(step.sensitivities!));
    const selected = new Set(record.steps.map((step) => step.selectedBlock!));
    for (const key of await changedKeys(gpt2, out)) expect(selected.has(blockOfKey(key)), key).toBe(true);
  });

  it('irepair-fixed keeps the block of the mean sensitivity', async () => {
    const { run, record, out } = await repair(gpt2, { method: 'irepair-fixed', maxSteps: 1, fixedSample: 8, validationBatches: 0 });
    const fixed = record.fixedBlock!;
    expect(fixed).toBe(argmax(record.fixedSensitivities!));
    for (const step of record.steps) expect(step.selectedBlock).toBe(fixed);
    expect(record.updatedBlocks).toEqual([fixed]);
    for (const key of await changedKeys(gpt2, out)) expect(blockOfKey(key), key).toBe(fixed);

    // The mean over the sample's batches of the reference block norms.
    const B = run.options.batchSize;
    const sample = shuffle(run.data.train, `${run.options.seed}:fixed`).slice(0, 8);
    const builder = new BatchBuilder(run.data.examples, B, run.seqLen, gpt2.tokenizer.eosTokenId);
    const sums = [0, 0, 0];
    for (let start = 0; start < sample.length; start += B) {
      const batch = builder.continuations(sample.slice(start, start + B), 'bad');
      const norms = blockGradNorms(gpt2.checkpoint.config, referenceGradients(gpt2.checkpoint.config, gpt2.tiny.weights, batch).grads);
      norms.forEach((norm, block) => (sums[block] += norm * B));
    }
    sums.forEach((sum, block) => expect(Math.abs(record.fixedSensitivities![block] - sum / 8) / (sum / 8), `block ${block}`).toBeLessThan(2e-3));
  });

  it('dapt changes every tensor', async () => {
    const { record, out } = await repair(gpt2, { method: 'dapt', maxSteps: 1, validationBatches: 0 });
    expect(record.updatedEmbeddings).toBe(true);
    expect(record.updatedBlocks).toEqual([0, 1, 2]);
    for (const step of record.steps) {
      expect(step).not.toHaveProperty('selectedBlock');
      expect(step).not.toHaveProperty('sensitivities');
    }
    const input = await readSafetensors(join(gpt2.tiny.dir, 'model.safetensors'));
    expect((await changedKeys(gpt2, out)).sort()).toEqual([...input.keys()].sort());
  });

  it('KL term is zero at step 1', async () => {
    const { record, out } = await repair(gpt2, {
      method: 'irepair-kl', maxSteps: 2, dropout: false, validationBatches: 0,
      normal: { kind: 'sample', count: 4, length: 8, topP: 0.9, temperature: 1 },
    });
    expect(record.steps[0].klLoss).toBe(0);
    expect(record.steps[1].klLoss).toBeGreaterThan(0);
    expect(record.normalData).toEqual({ source: 'sampled', sequences: 4, length: 8 });
    const selected = new Set(record.steps.map((step) => step.selectedBlock!));
    for (const key of await changedKeys(gpt2, out)) expect(selected.has(blockOfKey(key)), key).toBe(true);
  });

  it('DPO loss is log 2 at step 1', async () => {
    const { record } = await repair(gpt2, { method: 'dpo', maxSteps: 2, dropout: false, validationBatches: 0 });
    expect(Math.abs(record.steps[0].repairLoss - Math.LN2)).toBeLessThan(1e-9);
    expect(record.steps[1].repairLoss).not.toBe(record.steps[0].repairLoss);
  });
});

describe('run control', () => {
  it('seeded runs repeat bit for bit', async () => {
    const settings: RepairSettings = {
      method: 'irepair-kl', maxSteps: 2, seed: 7, validationBatches: 0, normal: { kind: 'sample', count: 4, length: 6, topP: 0.9, temperature: 1 },
    };
    const first = await repair(gpt2, settings);
    const second = await repair(gpt2, settings);
    expect(second.record.steps).toEqual(first.record.steps);
    expect(first.record.steps[1].klLoss).toBeGreaterThan(0);
    const bytes = async (out: string) => new Uint8Array(await readFile(join(out, 'model.safetensors')));
    expect(bytesEqual(await bytes(second.out), await bytes(first.out))).toBe(true);

    const other = await repair(gpt2, { ...settings, seed: 8, maxSteps: 1 });
    expect(other.record.steps[0].repairLoss).not.toBe(first.record.steps[0].repairLoss);
  });

  it('early stopping fires on a plateau', async () => {
    const { record } = await repair(gpt2, { method: 'irepair', maxSteps: 20, learningRate: 0, validateEvery: 1, patience: 1 });
    expect(record.finishReason).toBe('early-stopped');
    expect(record.stepsRun).toBe(1);
    expect(record.validation.map((v) => v.step)).toEqual([0, 1]);
    expect(record.validation[1].loss).toBe(record.validation[0].loss);
  });

  it('stops at a NaN loss and refuses to export', async () => {
    const engine = await fixtureEngine(gpu, gpt2);
    const run = createRepairRun(engine, gpt2.checkpoint, gpt2.tokenizer, gpt2.dataset, {
      method: 'irepair', maxSteps: 3, validationBatches: 0, faultInjection: { nonFiniteLossAtStep: 2 },
    });
    const events: RepairEvent[] = [];
    const error = await run.run((event) => events.push(event)).catch((caught: unknown) => caught);
    expect(isUserError(error)).toBe(true);
    expect((error as Error).message).toMatch(/At step 2, the repair loss is NaN/);
    expect(events.at(-1)).toMatchObject({ kind: 'finished', reason: 'failed', step: 1, overhead: { iterations: 1 } });
    const exported = await run.exportTo(nodeDirectorySink(join(gpt2.dir, 'failed'))).catch((caught: unknown) => caught);
    expect(isUserError(exported)).toBe(true);
    expect((exported as Error).message).toMatch(/not exported/);
    engine.destroy();
  });

  it('pauses, resumes and stops', async () => {
    const engine = await fixtureEngine(gpu, gpt2);
    const run = createRepairRun(engine, gpt2.checkpoint, gpt2.tokenizer, gpt2.dataset, { method: 'irepair', maxSteps: 50, learningRate: 1e-3, validationBatches: 0 });
    const events: RepairEvent[] = [];
    let pausedAt = -1;
    const result = run.run((event) => {
      events.push(event);
      if (event.kind === 'step' && event.step === 1) run.pause();
      if (event.kind === 'state' && event.state === 'paused') {
        pausedAt = events.filter((e) => e.kind === 'step').length;
        setTimeout(() => {
          // No step ran while paused.
          expect(events.filter((e) => e.kind === 'step').length).toBe(pausedAt);
          run.resume();
        }, 200);
      }
      if (event.kind === 'step' && event.step === 2) run.stop();
    });
    const { reason, steps } = await result;
    expect(pausedAt).toBe(1);
    expect(reason).toBe('stopped');
    expect(steps).toBe(2);
    expect(events.filter((e) => e.kind === 'state').map((e) => (e as { state: string }).state)).toEqual(['running', 'paused', 'running']);
    engine.destroy();
  });
});

describe('input checks', () => {
  it('rejects a plan over the memory limit', async () => {
    const engine = await fixtureEngine(gpu, gpt2);
    expect(() => createRepairRun(engine, gpt2.checkpoint, gpt2.tokenizer, gpt2.dataset, { method: 'dapt', memoryLimitBytes: 100_000 }))
      .toThrow(/more than the limit of .*Reduce the batch size \(now 4\)/);
    engine.destroy();
  });

  it('rejects a prompt set', async () => {
    const engine = await fixtureEngine(gpu, gpt2);
    const prompts = parseDataset('{"prompt": "Hello"}\n', 'prompts.jsonl');
    expect(() => createRepairRun(engine, gpt2.checkpoint, gpt2.tokenizer, prompts, { method: 'irepair' })).toThrow(/prompts\.jsonl contains prompts only/);
    engine.destroy();
  });

  it('rejects a batch larger than the training split', async () => {
    const engine = await fixtureEngine(gpu, gpt2);
    expect(() => createRepairRun(engine, gpt2.checkpoint, gpt2.tokenizer, gpt2.dataset, { method: 'irepair', batchSize: 13 }))
      .toThrow(/fewer than the batch size 13/);
    engine.destroy();
  });
});

describe('gpt_neo with F16 weights', () => {
  it('keeps dtypes and changes only the selected blocks', async () => {
    const neo = await repairFixture({ family: 'gpt_neo', dtype: 'F16', attentionLayers: ['global', 'local', 'global'], seed: 'repair-neo' });
    cleanup.push(neo.dir);
    const { record, out } = await repair(neo, { method: 'irepair', maxSteps: 1, learningRate: 2e-2, validationBatches: 0 });
    const selected = new Set(record.steps.map((step) => step.selectedBlock!));
    const changed = await changedKeys(neo, out);
    expect(changed.length).toBeGreaterThan(0);
    for (const key of changed) expect(selected.has(blockOfKey(key)), key).toBe(true);
    for (const step of record.steps) expect(step.selectedBlock).toBe(argmax(step.sensitivities!));
  });
});

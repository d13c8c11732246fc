// `irepair repair` as a user runs it: a separate process on a tiny checkpoint, checked through
// the files it writes; and its messages for bad input.

import { execFile } from 'node:child_process';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { argmax, blockOfKey, bytesEqual, readSafetensors, repairFixture, type RepairFixture } from './fixtures.ts';

const run = promisify(execFile);
const CLI = join(import.meta.dirname, '../../bin/irepair.js');

async function irepair(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run('node', [CLI, ...args], { timeout: 300_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

let fixture: RepairFixture;
beforeAll(async () => {
  fixture = await repairFixture({ seed: 'repair-cli' });
});
afterAll(async () => {
  await rm(fixture.dir, { recursive: true, force: true });
});

describe('irepair repair', () => {
  it('writes the repaired model and run.json', async () => {
    const out = join(fixture.dir, 'out');
    const runsFile = join(fixture.dir, 'runs.json');
    const result = await irepair([
      'repair', '--model', fixture.tiny.dir, '--data', fixture.dataFile, '--out', out,
      '--steps', '3', '--lr', '5e-3', '--seed', '3', '--validate-every', '2', '--log-every', '1', '--record', runsFile, '--name', 'irepair-lr5e-3',
    ]);
    expect(result.stderr).toMatch(/step 3 +block \d/);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/3 steps \(completed\)/);
    expect((await readdir(out)).sort()).toEqual(['config.json', 'model.safetensors', 'run.json', 'tokenizer.json', 'tokenizer_config.json']);

    const record = JSON.parse(await readFile(join(out, 'run.json'), 'utf8'));
    expect(record.method).toBe('irepair');
    expect(record.recordName).toBe('irepair-lr5e-3');
    expect(record.config.learningRate).toBe(5e-3);
    expect(record.config.seed).toBe(3);
    expect(record.steps).toHaveLength(3);
    for (const step of record.steps) {
      expect(Object.keys(step)).toEqual(['step', 'selectedBlock', 'sensitivities', 'repairLoss', 'lr']);
      expect(step.selectedBlock).toBe(argmax(step.sensitivities));
    }
    expect(record.overhead.iterations).toBe(3);
    expect(record.overhead.flops).toBeGreaterThan(0);
    expect(record.overhead.peakMemoryBytes).toBe(record.peakGpuBytes);

    // --record stores the method, settings and overhead for irepair eval --compare.
    const runs = JSON.parse(await readFile(runsFile, 'utf8')).runs;
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ name: 'irepair-lr5e-3', method: 'irepair', model: out, overhead: record.overhead });
    expect(runs[0].settings).toMatchObject({ learningRate: 5e-3, batchSize: 4, steps: 3, seed: 3 });
    // eval --record without --name adds to the run that repair recorded, by the name in run.json.
    const textFile = join(fixture.dir, 'held-out.txt');
    await writeFile(textFile, 'The polite answer thanks the user for the question.\n');
    const evaluated = await irepair(['eval', '--model', out, '--ppl', textFile, '--record', runsFile]);
    expect(evaluated.code).toBe(0);
    const runsAfterEval = JSON.parse(await readFile(runsFile, 'utf8')).runs;
    expect(runsAfterEval).toHaveLength(1);
    expect(runsAfterEval[0].name).toBe('irepair-lr5e-3');
    expect(runsAfterEval[0].perplexity['held-out']).toBe(JSON.parse(evaluated.stdout).perplexity);

    const table = await irepair(['eval', '--compare', runsFile, '--format', 'csv']);
    expect(table.code).toBe(0);
    const lines = table.stdout.split('\r\n');
    expect(lines[0]).toBe('metric,irepair-lr5e-3');
    expect(lines[1]).toBe('Method,irepair');
    expect(lines).toContain('Iterations,3');
    expect(lines).toContain(`TFLOPs,${record.overhead.flops / 1e12}`);

    const selected = new Set(record.steps.map((step: { selectedBlock: number }) => step.selectedBlock));
    const input = await readSafetensors(join(fixture.tiny.dir, 'model.safetensors'));
    const output = await readSafetensors(join(out, 'model.safetensors'));
    let changed = 0;
    for (const [key, tensor] of input) {
      if (bytesEqual(tensor.bytes, output.get(key)!.bytes)) continue;
      changed++;
      expect(selected.has(blockOfKey(key)), key).toBe(true);
    }
    expect(changed).toBeGreaterThan(0);
  });

  const badInput: [string, string[], RegExp][] = [
    ['an unknown method', ['--method', 'sgd'], /option --method: "sgd" is not one of irepair, irepair-kl/],
    ['zero steps', ['--steps', '0'], /option --steps: "0" is not a positive integer\./],
    ['a missing dataset', ['--data', '/nonexistent/data.jsonl'], /--data \/nonexistent\/data\.jsonl: file not found/],
    ['an unknown optimizer', ['--optimizer', 'sgd'], /Unknown optimizer "sgd"/],
    ['--name without --record', ['--name', 'run-1'], /option --name "run-1": names the run in a runs file, so it needs --record FILE as well/],
  ];
  for (const [name, args, message] of badInput) {
    it(`rejects ${name}`, async () => {
      const base = ['repair', '--model', fixture.tiny.dir, '--data', fixture.dataFile, '--out', join(fixture.dir, 'rejected')];
      const result = await irepair([...base, ...args]);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(message);
      expect(result.stderr).not.toMatch(/\n\s+at /);
    });
  }

  it('refuses to write into the model directory', async () => {
    const result = await irepair(['repair', '--model', fixture.tiny.dir, '--data', fixture.dataFile, '--out', fixture.tiny.dir]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/is the model directory/);
  });
});

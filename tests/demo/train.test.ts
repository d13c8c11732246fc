// The demo trainer: two runs with the same seed write the same weights, in a checkpoint that the
// product opens with the expected GPT-2 parameters.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openCheckpoint, parameterShapes } from '../../src/model/checkpoint.ts';
import { nodeDirectory } from '../../src/model/sources.ts';

const root = join(import.meta.dirname, '../..');
const scratch = mkdtempSync(join(tmpdir(), 'demo-train-'));

function train(out: string): void {
  const result = spawnSync(process.execPath, ['bin/run-ts.js', 'scripts/demo/train.ts', '--out', out, '--steps', '2', '--skip-evaluation'], {
    cwd: root, encoding: 'utf8', timeout: 120_000,
  });
  expect(result.stderr).toBe('');
  expect(result.status).toBe(0);
}

describe('demo trainer', () => {
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('rebuilds the same weights', async () => {
    const first = join(scratch, 'first');
    const second = join(scratch, 'second');
    train(first);
    train(second);

    const weights = readFileSync(join(first, 'model.safetensors'));
    expect(readFileSync(join(second, 'model.safetensors')).equals(weights)).toBe(true);
    const record = JSON.parse(readFileSync(join(first, 'training.json'), 'utf8'));
    expect(record.modelSha256).toBe(createHash('sha256').update(weights).digest('hex'));

    const checkpoint = await openCheckpoint(await nodeDirectory(first));
    expect(checkpoint.config.family).toBe('gpt2');
    expect(checkpoint.tensors.map((t) => [t.name, t.shape])).toEqual(parameterShapes(checkpoint.config).map((p) => [p.name, p.shape]));
    expect(checkpoint.ignoredKeys).toEqual([]);
  }, 240_000);
});

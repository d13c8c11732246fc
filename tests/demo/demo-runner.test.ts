// Bad input to the demo and replication scripts ends in one error line naming the option or
// file, before any GPU work.

import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../..');

function runScript(script: string, args: string[]): { status: number | null; stderr: string; stdout: string } {
  const result = spawnSync(process.execPath, ['bin/run-ts.js', script, ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, stderr: result.stderr, stdout: result.stdout };
}

describe('demo scripts', () => {
  it('demo rejects an unknown method', () => {
    const { status, stderr } = runScript('scripts/demo/run-demo.ts', ['--method', 'finetune']);
    expect(status).toBe(1);
    expect(stderr).toContain('option --method: "finetune" is not one of irepair');
    expect(stderr).not.toContain('    at ');
  });

  it('demo names a missing model directory', () => {
    const { status, stderr } = runScript('scripts/demo/run-demo.ts', ['--model', 'no/such/dir']);
    expect(status).toBe(1);
    expect(stderr).toContain('no/such/dir/repair.jsonl: file not found');
  });

  it('replicate rejects invalid seeds', () => {
    const { status, stderr } = runScript('scripts/demo/replicate.ts', ['--seeds', '1,x']);
    expect(status).toBe(1);
    expect(stderr).toContain('option --seeds: "x" is not a non-negative integer.');
  });
});

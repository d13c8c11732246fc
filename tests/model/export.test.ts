import { access, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openCheckpoint, type Checkpoint } from '../../src/model/checkpoint.ts';
import { UserError } from '../../src/model/errors.ts';
import { exportCheckpoint, memoryDirectorySink, nodeDirectorySink } from '../../src/model/export.ts';
import { parseHeader } from '../../src/model/safetensors.ts';
import { nodeDirectory, openNodeFile } from '../../src/model/sources.ts';
import { writeTinyCheckpoint, type Dtype, type TinyCheckpointOptions } from '../helpers/tiny-checkpoint.ts';

let root: string;
let counter = 0;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'export-test-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const freshDir = () => join(root, `dir-${counter++}`);

async function tinyCheckpoint(options: TinyCheckpointOptions) {
  const tiny = await writeTinyCheckpoint(freshDir(), {
    ...options,
    writeTokenizer: async (dir) => {
      await writeFile(join(dir, 'vocab.json'), '{"hello": 0, "world": 1}');
      await writeFile(join(dir, 'merges.txt'), '#version: 0.2\nh e\n');
    },
  });
  return { tiny, checkpoint: await openCheckpoint(await nodeDirectory(tiny.dir)) };
}

/** New values for every parameter of block 1: the stored values plus a visible change. */
function updateBlock(checkpoint: Checkpoint, weights: Map<string, Float64Array>): Map<string, Float32Array> {
  const updated = new Map<string, Float32Array>();
  for (const entry of checkpoint.tensors) {
    if (!entry.name.startsWith('h.1.')) continue;
    updated.set(entry.name, Float32Array.from(weights.get(entry.name)!, (value, i) => value + 0.01 * Math.sin(i + 1)));
  }
  return updated;
}

/** Largest rounding error of a dtype for a value of magnitude x: half a unit in the last place. */
function halfUlp(x: number, dtype: Dtype): number {
  const mantissaBits = { F32: 23, F16: 10, BF16: 7 }[dtype];
  const minExponent = dtype === 'F16' ? -14 : -126;
  const exponent = Math.max(Math.floor(Math.log2(Math.abs(x) || 2 ** minExponent)), minExponent);
  return 2 ** (exponent - mantissaBits - 1);
}

describe('exportCheckpoint', () => {
  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    it(`round-trips ${dtype} with block 1 updated`, async () => {
      const { tiny, checkpoint } = await tinyCheckpoint({ dtype, includeBuffers: true, includeLmHead: true, seed: dtype });
      const updated = updateBlock(checkpoint, tiny.weights);
      const out = freshDir();
      await exportCheckpoint(checkpoint, updated, nodeDirectorySink(out), [{ name: 'run.json', data: '{"method": "irepair"}' }]);

      expect((await readdir(out)).sort()).toEqual(['config.json', 'merges.txt', 'model.safetensors', 'run.json', 'vocab.json']);
      const exported = await openCheckpoint(await nodeDirectory(out));
      expect(exported.storedTensors.map(({ key, dtype: stored, shape }) => ({ key, dtype: stored, shape }))).toEqual(
        checkpoint.storedTensors.map(({ key, dtype: stored, shape }) => ({ key, dtype: stored, shape })),
      );
      expect(exported.ignoredKeys).toEqual(checkpoint.ignoredKeys);
      expect(exported.metadata.format).toBe('pt');

      for (const [index, tensor] of checkpoint.storedTensors.entries()) {
        const before = await checkpoint.readRaw(tensor);
        const after = await exported.readRaw(exported.storedTensors[index]);
        if (tensor.name && updated.has(tensor.name)) expect(after, tensor.key).not.toEqual(before);
        else expect(after, tensor.key).toEqual(before);
      }

      for await (const { entry, data } of exported.readTensors((entry) => updated.has(entry.name))) {
        const target = updated.get(entry.name)!;
        for (let i = 0; i < data.length; i++) {
          const error = Math.abs(data[i] - target[i]);
          if (error > halfUlp(target[i], dtype)) expect.fail(`${entry.name}[${i}]: exported ${data[i]}, expected ${target[i]}`);
        }
      }
    });
  }

  it('copies config and tokenizer files byte for byte', async () => {
    const { tiny, checkpoint } = await tinyCheckpoint({ family: 'gpt_neo' });
    const out = freshDir();
    await exportCheckpoint(checkpoint, new Map(), nodeDirectorySink(out));
    for (const name of ['config.json', 'vocab.json', 'merges.txt']) {
      expect(await readFile(join(out, name)), name).toEqual(await readFile(join(tiny.dir, name)));
    }
  });

  it('writes sharded input as one file', async () => {
    const { tiny, checkpoint } = await tinyCheckpoint({ shards: 3, dtype: 'BF16' });
    const out = freshDir();
    await exportCheckpoint(checkpoint, updateBlock(checkpoint, tiny.weights), nodeDirectorySink(out));

    expect((await readdir(out)).sort()).toEqual(['config.json', 'merges.txt', 'model.safetensors', 'vocab.json']);
    const exported = await openCheckpoint(await nodeDirectory(out));
    expect(exported.weightFiles).toEqual(['model.safetensors']);
    expect(exported.storedTensors.map((tensor) => tensor.key)).toEqual(tiny.keys);
    for await (const { entry, data } of exported.readTensors((entry) => !entry.name.startsWith('h.1.'))) {
      expect([...data], entry.name).toEqual([...tiny.weights.get(entry.name)!]);
    }
  });

  it('exports an unchanged copy that parses', async () => {
    const { checkpoint } = await tinyCheckpoint({ dtype: 'F16' });
    const sink = memoryDirectorySink();
    await exportCheckpoint(checkpoint, new Map(), sink);
    const original = await readFile(join(checkpoint.files.location, 'model.safetensors'));
    const copy = new Uint8Array(await sink.files.get('model.safetensors')!.arrayBuffer());

    const path = join(freshDir() + '.safetensors');
    await writeFile(path, copy);
    const source = await openNodeFile(path);
    const header = await parseHeader(source);
    await source.close();
    const last = checkpoint.storedTensors.at(-1)!;
    expect(copy.slice(header.dataStart)).toEqual(new Uint8Array(original.subarray(checkpoint.storedTensors[0].begin, last.end)));
  });

  it('overwrites its own input directory', async () => {
    const { tiny, checkpoint } = await tinyCheckpoint({});
    const updated = updateBlock(checkpoint, tiny.weights);
    await exportCheckpoint(checkpoint, updated, nodeDirectorySink(tiny.dir));
    const reopened = await openCheckpoint(await nodeDirectory(tiny.dir));
    for await (const { entry, data } of reopened.readTensors((entry) => updated.has(entry.name))) {
      expect([...data], entry.name).toEqual([...updated.get(entry.name)!]);
    }
    expect((await readdir(tiny.dir)).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });

  const rejected: [string, Dtype, number, RegExp][] = [
    ['NaN', 'F32', NaN, /contains NaN at element 3/],
    ['infinity', 'BF16', -Infinity, /contains -Infinity at element 3/],
    ['F16 overflow', 'F16', 70000, /contains 70000, beyond the range of its stored dtype F16, at element 3/],
  ];
  for (const [label, dtype, value, fault] of rejected) {
    it(`rejects ${label} and writes nothing`, async () => {
      const { tiny, checkpoint } = await tinyCheckpoint({ dtype });
      const updated = updateBlock(checkpoint, tiny.weights);
      updated.get('h.1.mlp.c_proj.weight')![3] = value;
      const out = freshDir();

      const error = await exportCheckpoint(checkpoint, updated, nodeDirectorySink(out), [{ name: 'run.json', data: '{}' }]).catch(
        (caught: unknown) => caught,
      );
      expect(error).toBeInstanceOf(UserError);
      expect((error as Error).message).toMatch(/^export rejected: parameter h\.1\.mlp\.c_proj\.weight/);
      expect((error as Error).message).toMatch(fault);
      await expect(access(out)).rejects.toThrow(/ENOENT/);
    });
  }
});

describe('nodeDirectorySink', () => {
  it('leaves no file when a write fails', async () => {
    const out = freshDir();
    const sink = nodeDirectorySink(out);
    async function* failing() {
      yield new Uint8Array(1000);
      throw new Error('source failed');
    }
    await expect(sink.writeFile('model.safetensors', failing())).rejects.toThrow('source failed');
    expect(await readdir(out)).toEqual([]);
  });

  it('replaces an existing file only when complete', async () => {
    const out = freshDir();
    const sink = nodeDirectorySink(out);
    await sink.writeFile('run.json', 'first');
    async function* failing() {
      yield new TextEncoder().encode('second');
      throw new Error('interrupted');
    }
    await expect(sink.writeFile('run.json', failing())).rejects.toThrow('interrupted');
    expect(await readFile(join(out, 'run.json'), 'utf8')).toBe('first');
    expect(await readdir(out)).toEqual(['run.json']);
  });
});

import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openCheckpoint, type Checkpoint } from '../../src/model/checkpoint.ts';
import { UserError } from '../../src/model/errors.ts';
import { blobDirectory, nodeDirectory, streamSource, type CheckpointFiles } from '../../src/model/sources.ts';
import { buildSafetensors, quantize, writeTinyCheckpoint, type TinyCheckpointOptions } from '../helpers/tiny-checkpoint.ts';

let root: string;
let counter = 0;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'checkpoint-test-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function freshDir(): string {
  return join(root, `model-${counter++}`);
}

async function readAll(checkpoint: Checkpoint, filter?: Parameters<Checkpoint['readTensors']>[0]) {
  const result = new Map<string, Float32Array>();
  for await (const { entry, data } of checkpoint.readTensors(filter)) result.set(entry.name, data);
  return result;
}

async function openFailure(dir: string): Promise<UserError> {
  const error = await openCheckpoint(await nodeDirectory(dir)).catch((caught: unknown) => caught);
  expect(error).toBeInstanceOf(UserError);
  return error as UserError;
}

describe('openCheckpoint', () => {
  const variants: [string, TinyCheckpointOptions][] = [
    ['GPT-2 F32', { family: 'gpt2', dtype: 'F32' }],
    ['GPT-2 F16', { family: 'gpt2', dtype: 'F16' }],
    ['GPT-2 BF16', { family: 'gpt2', dtype: 'BF16' }],
    ['GPT-Neo F32', { family: 'gpt_neo', dtype: 'F32' }],
    ['GPT-Neo F16', { family: 'gpt_neo', dtype: 'F16' }],
    ['GPT-Neo BF16', { family: 'gpt_neo', dtype: 'BF16', numLayers: 3 }],
  ];
  for (const [label, options] of variants) {
    it(`loads ${label} weights exactly`, async () => {
      const tiny = await writeTinyCheckpoint(freshDir(), { ...options, seed: label });
      const checkpoint = await openCheckpoint(await nodeDirectory(tiny.dir));

      expect(checkpoint.config.family).toBe(options.family);
      expect(checkpoint.tensors.map((entry) => entry.name)).toEqual([...tiny.weights.keys()]);
      for (const entry of checkpoint.tensors) {
        expect(entry.shape).toEqual(tiny.shapes.get(entry.name));
        expect(entry.dtype).toBe(options.dtype);
        expect(entry.key).toBe(`transformer.${entry.name}`);
      }
      const loaded = await readAll(checkpoint);
      for (const [name, expected] of tiny.weights) {
        expect([...loaded.get(name)!], name).toEqual([...expected]);
      }
      const total = [...tiny.weights.values()].reduce((sum, values) => sum + values.length, 0);
      expect(checkpoint.parameterCount).toBe(total);
      expect(checkpoint.ignoredKeys).toEqual([]);
    });
  }

  it('reads the GPT-Neo attention layout', async () => {
    const tiny = await writeTinyCheckpoint(freshDir(), { family: 'gpt_neo', numLayers: 3, attentionLayers: ['local', 'global', 'local'], windowSize: 3 });
    const checkpoint = await openCheckpoint(await nodeDirectory(tiny.dir));
    expect(checkpoint.config.attentionLayers).toEqual(['local', 'global', 'local']);
    expect(checkpoint.config.windowSize).toBe(3);
  });

  it('maps keys without the transformer prefix', async () => {
    const tiny = await writeTinyCheckpoint(freshDir(), { prefix: false });
    const checkpoint = await openCheckpoint(await nodeDirectory(tiny.dir));
    expect(checkpoint.tensors.every((entry) => entry.key === entry.name)).toBe(true);
    expect([...(await readAll(checkpoint)).get('h.1.mlp.c_fc.bias')!]).toEqual([...tiny.weights.get('h.1.mlp.c_fc.bias')!]);
  });

  for (const family of ['gpt2', 'gpt_neo'] as const) {
    it(`ignores ${family} buffers and the tied lm_head`, async () => {
      const tiny = await writeTinyCheckpoint(freshDir(), { family, includeBuffers: true, includeLmHead: true });
      const checkpoint = await openCheckpoint(await nodeDirectory(tiny.dir));
      const attention = family === 'gpt2' ? 'attn' : 'attn.attention';
      expect([...checkpoint.ignoredKeys].sort()).toEqual(
        [
          'lm_head.weight',
          `transformer.h.0.${attention}.bias`,
          `transformer.h.0.${attention}.masked_bias`,
          `transformer.h.1.${attention}.bias`,
          `transformer.h.1.${attention}.masked_bias`,
        ].sort(),
      );
      expect(checkpoint.tensors).toHaveLength(tiny.weights.size);
      expect(checkpoint.storedTensors.map((tensor) => tensor.key)).toEqual(tiny.keys);
    });
  }

  it('reads tensors in file order with a filter', async () => {
    const tiny = await writeTinyCheckpoint(freshDir(), { numLayers: 3 });
    const checkpoint = await openCheckpoint(await nodeDirectory(tiny.dir));
    const order: number[] = [];
    const names: string[] = [];
    for await (const { entry } of checkpoint.readTensors((entry) => entry.name.startsWith('h.1.'))) {
      order.push(entry.begin);
      names.push(entry.name);
    }
    expect(names.length).toBe(12);
    expect(names.every((name) => name.startsWith('h.1.'))).toBe(true);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    // The helper stores data sorted by key, so file order differs from canonical order.
    expect(names).not.toEqual(checkpoint.tensors.filter((entry) => entry.name.startsWith('h.1.')).map((entry) => entry.name));
  });

  it('orders tensors by data offset, not header order', async () => {
    const tiny = await writeTinyCheckpoint(freshDir());
    // Rewrite the header with its keys reversed; the offsets, and so the data order, stay.
    const path = join(tiny.dir, 'model.safetensors');
    const file = await readFile(path);
    const headerLength = Number(file.readBigUInt64LE(0));
    const header = JSON.parse(file.subarray(8, 8 + headerLength).toString('utf8'));
    const reversed = Object.fromEntries(Object.entries(header).reverse());
    const json = Buffer.from(JSON.stringify(reversed).padEnd(headerLength, ' '));
    expect(json.byteLength).toBe(headerLength);
    await writeFile(path, Buffer.concat([file.subarray(0, 8), json, file.subarray(8 + headerLength)]));

    const checkpoint = await openCheckpoint(await nodeDirectory(tiny.dir));
    expect(checkpoint.storedTensors.map((tensor) => tensor.key)).toEqual(tiny.keys);
    const begins: number[] = [];
    for await (const { entry, data } of checkpoint.readTensors()) {
      begins.push(entry.begin);
      expect([...data], entry.name).toEqual([...tiny.weights.get(entry.name)!]);
    }
    expect(begins).toEqual([...begins].sort((a, b) => a - b));
  });

  it('reads raw bytes of a tensor', async () => {
    const tiny = await writeTinyCheckpoint(freshDir(), { dtype: 'F16' });
    const checkpoint = await openCheckpoint(await nodeDirectory(tiny.dir));
    const entry = checkpoint.tensors.find((tensor) => tensor.name === 'wpe.weight')!;
    const file = new Uint8Array(await readFile(join(tiny.dir, 'model.safetensors')));
    expect(await checkpoint.readRaw(entry)).toEqual(file.slice(entry.begin, entry.end));
    expect(entry.end - entry.begin).toBe(16 * 8 * 2);
  });
});

describe('openCheckpoint with shards', () => {
  it('loads a sharded checkpoint like a single file', async () => {
    const single = await writeTinyCheckpoint(freshDir(), { seed: 'same', includeBuffers: true });
    const sharded = await writeTinyCheckpoint(freshDir(), { seed: 'same', includeBuffers: true, shards: 3 });
    const one = await openCheckpoint(await nodeDirectory(single.dir));
    const three = await openCheckpoint(await nodeDirectory(sharded.dir));

    expect(three.weightFiles).toEqual(sharded.weightFiles);
    expect(three.weightFiles).toHaveLength(3);
    expect(new Set(three.tensors.map((entry) => entry.file)).size).toBe(3);
    expect(three.tensors.map((entry) => entry.name)).toEqual(one.tensors.map((entry) => entry.name));
    expect(three.storedTensors.map((tensor) => tensor.key)).toEqual(one.storedTensors.map((tensor) => tensor.key));
    const a = await readAll(one);
    const b = await readAll(three);
    for (const [name, values] of a) expect([...b.get(name)!], name).toEqual([...values]);
  });

  it('rejects an index naming a missing shard', async () => {
    const tiny = await writeTinyCheckpoint(freshDir(), { shards: 2 });
    await unlink(join(tiny.dir, tiny.weightFiles[1]));
    const error = await openFailure(tiny.dir);
    expect(error.message).toContain('model.safetensors.index.json');
    expect(error.message).toContain(`lists shard ${tiny.weightFiles[1]}, which is not in ${tiny.dir}`);
  });

  it('rejects an index mapping a key to the wrong shard', async () => {
    const tiny = await writeTinyCheckpoint(freshDir(), { shards: 2 });
    const indexPath = join(tiny.dir, 'model.safetensors.index.json');
    const index = JSON.parse(await readFile(indexPath, 'utf8'));
    const key = Object.keys(index.weight_map).find((name) => index.weight_map[name] === tiny.weightFiles[0])!;
    index.weight_map[key] = tiny.weightFiles[1];
    await writeFile(indexPath, JSON.stringify(index));
    const error = await openFailure(tiny.dir);
    expect(error.message).toContain(`maps "${key}" to ${tiny.weightFiles[1]}, but ${tiny.weightFiles[1]} does not contain it`);
  });

  it('rejects shard paths outside the directory', async () => {
    const tiny = await writeTinyCheckpoint(freshDir(), { shards: 2 });
    const indexPath = join(tiny.dir, 'model.safetensors.index.json');
    const index = JSON.parse(await readFile(indexPath, 'utf8'));
    index.weight_map['transformer.wte.weight'] = '../other/model.safetensors';
    await writeFile(indexPath, JSON.stringify(index));
    expect((await openFailure(tiny.dir)).message).toMatch(/model\.safetensors\.index\.json is invalid: "transformer\.wte\.weight" maps to "\.\.\/other/);
  });

  it('rejects an index without weight_map', async () => {
    const tiny = await writeTinyCheckpoint(freshDir(), { shards: 2 });
    await writeFile(join(tiny.dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {} }));
    expect((await openFailure(tiny.dir)).message).toMatch(/has no "weight_map" object/);
  });
});

describe('openCheckpoint on bad checkpoints', () => {
  /** Rewrites model.safetensors of a tiny GPT-2 with `change` applied to its list of tensors. */
  async function rewriteWeights(change: (tensors: { key: string; dtype: string; shape: number[]; bytes: Uint8Array }[]) => void) {
    const tiny = await writeTinyCheckpoint(freshDir());
    const tensors = [...tiny.weights].map(([name, values]) => ({
      key: `transformer.${name}`,
      dtype: 'F32',
      shape: tiny.shapes.get(name)!,
      bytes: quantize([...values], 'F32').bytes,
    }));
    change(tensors);
    await writeFile(join(tiny.dir, 'model.safetensors'), buildSafetensors(tensors));
    return tiny.dir;
  }

  it('rejects a missing parameter', async () => {
    const dir = await rewriteWeights((tensors) => tensors.splice(tensors.findIndex((t) => t.key === 'transformer.h.1.ln_2.bias'), 1));
    const error = await openFailure(dir);
    expect(error.message).toContain(join(dir, 'model.safetensors'));
    expect(error.message).toContain('parameter "transformer.h.1.ln_2.bias"');
    expect(error.message).toContain('with shape [8] is missing');
  });

  it('rejects a wrong shape', async () => {
    const tiny = await writeTinyCheckpoint(freshDir(), { innerSize: 32, configOverrides: { n_inner: 16 } });
    const error = await openFailure(tiny.dir);
    expect(error.message).toContain(join(tiny.dir, 'model.safetensors'));
    // Data is sorted by key, so the first mismatch found is block 0's MLP bias.
    expect(error.message).toContain('tensor "transformer.h.0.mlp.c_fc.bias" has shape [32], but config.json implies [16]');
  });

  it('rejects a parameter of an integer dtype', async () => {
    const dir = await rewriteWeights((tensors) => {
      const bias = tensors.find((t) => t.key === 'transformer.ln_f.bias')!;
      bias.dtype = 'I32';
    });
    expect((await openFailure(dir)).message).toContain('tensor "transformer.ln_f.bias" has dtype I32; parameters must be F32, F16 or BF16');
  });

  it('rejects a parameter stored twice', async () => {
    const dir = await rewriteWeights((tensors) => {
      const wpe = tensors.find((t) => t.key === 'transformer.wpe.weight')!;
      tensors.push({ ...wpe, key: 'wpe.weight' });
    });
    expect((await openFailure(dir)).message).toMatch(/parameter wpe\.weight is stored twice/);
  });

  it('rejects blocks beyond n_layer', async () => {
    const tiny = await writeTinyCheckpoint(freshDir(), { numLayers: 3, configOverrides: { n_layer: 2 } });
    expect((await openFailure(tiny.dir)).message).toMatch(/belongs to block 2, but config.json sets 2 layers/);
  });

  it('rejects a directory without config.json', async () => {
    const tiny = await writeTinyCheckpoint(freshDir());
    await unlink(join(tiny.dir, 'config.json'));
    expect((await openFailure(tiny.dir)).message).toBe(
      `config.json not found in ${tiny.dir}. A model directory needs config.json and model.safetensors.`,
    );
  });

  it('rejects config.json that is not JSON', async () => {
    const tiny = await writeTinyCheckpoint(freshDir());
    await writeFile(join(tiny.dir, 'config.json'), '{"model_type": ');
    expect((await openFailure(tiny.dir)).message).toMatch(/^config\.json in .* is not valid JSON/);
  });

  it('rejects an unsupported model_type', async () => {
    const tiny = await writeTinyCheckpoint(freshDir(), { configOverrides: { model_type: 'gptj' } });
    const message = (await openFailure(tiny.dir)).message;
    expect(message).toContain(`config.json in ${tiny.dir}: field "model_type" is "gptj".`);
    expect(message).toMatch(/use a checkpoint of one of them, such as openai-community\/gpt2/);
  });

  it('names PyTorch weights it cannot read', async () => {
    const tiny = await writeTinyCheckpoint(freshDir());
    await unlink(join(tiny.dir, 'model.safetensors'));
    await writeFile(join(tiny.dir, 'pytorch_model.bin'), 'x');
    expect((await openFailure(tiny.dir)).message).toMatch(/neither model\.safetensors nor .* It contains pytorch_model\.bin.*convert the weights to safetensors/);
  });

  it('rejects a truncated weight file', async () => {
    const tiny = await writeTinyCheckpoint(freshDir());
    const path = join(tiny.dir, 'model.safetensors');
    const bytes = await readFile(path);
    await writeFile(path, bytes.subarray(0, bytes.byteLength - 10));
    const error = await openFailure(tiny.dir);
    expect(error.message).toContain(`${path} is not a valid safetensors file`);
  });

  it('rejects a missing directory', async () => {
    await expect(nodeDirectory(join(root, 'absent'))).rejects.toThrow(/model directory .*absent not found/);
  });
});

describe('other sources', () => {
  it('loads dropped browser files', async () => {
    const tiny = await writeTinyCheckpoint(freshDir(), { dtype: 'BF16', shards: 2 });
    const names = ['config.json', 'model.safetensors.index.json', ...tiny.weightFiles];
    const files = await Promise.all(names.map(async (name) => new File([await readFile(join(tiny.dir, name))], name)));
    // A folder drop sets webkitRelativePath; a nested copy of config.json must not win.
    for (const file of files) Object.defineProperty(file, 'webkitRelativePath', { value: `tiny/${file.name}` });
    const nested = new File(['{}'], 'config.json');
    Object.defineProperty(nested, 'webkitRelativePath', { value: 'tiny/onnx/config.json' });

    const checkpoint = await openCheckpoint(blobDirectory([nested, ...files]));
    const loaded = await readAll(checkpoint);
    for (const [name, values] of tiny.weights) expect([...loaded.get(name)!], name).toEqual([...values]);
  });

  it('rejects two dropped files with one name', () => {
    const a = new File(['{}'], 'config.json');
    const b = new File(['{}'], 'config.json');
    Object.defineProperty(a, 'webkitRelativePath', { value: 'one/config.json' });
    Object.defineProperty(b, 'webkitRelativePath', { value: 'two/config.json' });
    expect(() => blobDirectory([a, b])).toThrow(/two dropped files are named config\.json \(one\/config\.json and two\/config\.json\)/);
  });

  it('streams tensors from forward-only sources', async () => {
    const tiny = await writeTinyCheckpoint(freshDir(), { family: 'gpt_neo', dtype: 'F16' });
    const disk = await nodeDirectory(tiny.dir);
    let opened = 0;
    const streaming: CheckpointFiles = {
      location: 'a stream',
      names: () => disk.names(),
      readText: (name) => disk.readText(name),
      async open(name) {
        opened++;
        const path = join(tiny.dir, name);
        const size = (await readFile(path)).byteLength;
        const stream = Readable.toWeb(createReadStream(path, { highWaterMark: 64 })) as ReadableStream<Uint8Array>;
        return streamSource(stream, path, size);
      },
    };
    const checkpoint = await openCheckpoint(streaming);
    const loaded = await readAll(checkpoint);
    for (const [name, values] of tiny.weights) expect([...loaded.get(name)!], name).toEqual([...values]);
    expect(opened).toBe(2);
  });
});

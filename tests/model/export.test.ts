import { access, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openCheckpoint, type Checkpoint } from '../../src/model/checkpoint.ts';
import { UserError } from '../../src/model/errors.ts';
import { exportCheckpoint, memoryDirectorySink, nodeDirectorySink, type DirectorySink, type UpdatedParameters } from '../../src/model/export.ts';
import { parseHeader } from '../../src/model/safetensors.ts';
import { nodeDirectory, openNodeFile, type ByteSource } from '../../src/model/sources.ts';
import type { ParameterName } from '../../src/model/types.ts';
import { buildSafetensors, quantize, writeTinyCheckpoint, type Dtype, type TinyCheckpointOptions } from '../helpers/tiny-checkpoint.ts';

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

// ---------------------------------------------------------------------------------------------
// Streaming: what the exporter reads, keeps in memory and writes at each moment.

/**
 * New values for every parameter of the given blocks, chosen so that the dtype holds them
 * exactly, with their stored bytes as the test helper's own encoder writes them.
 */
function representableUpdate(checkpoint: Checkpoint, weights: Map<string, Float64Array>, blocks: number[], dtype: Dtype) {
  const values = new Map<ParameterName, Float32Array>();
  const bytes = new Map<ParameterName, Uint8Array>();
  for (const entry of checkpoint.tensors) {
    if (!blocks.some((block) => entry.name.startsWith(`h.${block}.`))) continue;
    const shifted = Array.from(weights.get(entry.name)!, (value, i) => value + 0.01 * Math.sin(i + 1));
    const encoded = quantize(shifted, dtype);
    values.set(entry.name, Float32Array.from(encoded.stored));
    bytes.set(entry.name, encoded.bytes);
  }
  return { values, bytes };
}

/** Builds the expected model.safetensors with the test helper's safetensors writer. */
async function expectedWeights(checkpoint: Checkpoint, updatedBytes: Map<ParameterName, Uint8Array>, metadata: Record<string, string> = { format: 'pt' }) {
  const tensors = [];
  for (const tensor of checkpoint.storedTensors) {
    const replacement = tensor.name === null ? undefined : updatedBytes.get(tensor.name);
    tensors.push({ key: tensor.key, dtype: tensor.dtype, shape: tensor.shape, bytes: replacement ?? (await checkpoint.readRaw(tensor)) });
  }
  return buildSafetensors(tensors, metadata);
}

/** Output range of each tensor of a safetensors file, read from its JSON header. */
function outputRanges(file: Uint8Array): { header: Record<string, unknown>; ranges: Map<string, [number, number]> } {
  const headerLength = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + headerLength))) as Record<string, unknown>;
  const ranges = new Map<string, [number, number]>();
  for (const [key, value] of Object.entries(header)) {
    if (key === '__metadata__') continue;
    const [begin, end] = (value as { data_offsets: [number, number] }).data_offsets;
    ranges.set(key, [8 + headerLength + begin, 8 + headerLength + end]);
  }
  return { header, ranges };
}

/** Detaches a buffer, so that every view of it has length 0 from then on. */
function detach(buffer: ArrayBufferLike): void {
  structuredClone(buffer, { transfer: [buffer as ArrayBuffer] });
}

function concatenate(parts: Uint8Array[]): Uint8Array {
  const result = new Uint8Array(parts.reduce((sum, part) => sum + part.byteLength, 0));
  let offset = 0;
  for (const part of parts) {
    result.set(part, offset);
    offset += part.byteLength;
  }
  return result;
}

type TimelineEvent =
  | { kind: 'updated-read'; name: ParameterName; file: string; received: number; inFlight: number; bytes: number }
  | { kind: 'source-read'; file: string; offset: number; length: number; received: number; receiving: string }
  | { kind: 'write'; file: string; start: number; end: number };

/**
 * Sets up an export whose every step lands on one timeline: the sink logs each chunk it
 * receives, and the checkpoint's sources and the updated-parameter reader log each read. Each
 * read detaches the buffer that the previous read of its kind returned, so an exporter that
 * still used an earlier tensor or chunk would write wrong bytes.
 */
function instrumentedExport(checkpoint: Checkpoint, values: Map<ParameterName, Float32Array>) {
  const timeline: TimelineEvent[] = [];
  const files = new Map<string, Uint8Array>();
  let receiving = '';
  let received = 0;

  const sink: DirectorySink = {
    async writeFile(name, data) {
      receiving = name;
      received = 0;
      const parts: Uint8Array[] = [];
      let chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array> = data as AsyncIterable<Uint8Array>;
      if (typeof data === 'string') chunks = [new TextEncoder().encode(data)];
      else if (data instanceof Uint8Array) chunks = [data];
      for await (const chunk of chunks) {
        parts.push(chunk.slice());
        timeline.push({ kind: 'write', file: name, start: received, end: received + chunk.byteLength });
        received += chunk.byteLength;
      }
      files.set(name, concatenate(parts));
      receiving = '';
    },
  };

  let previousChunk: Uint8Array | null = null;
  const open = async (name: string): Promise<ByteSource> => {
    const source = await checkpoint.files.open(name);
    return {
      name: source.name,
      size: source.size,
      async read(offset, length) {
        if (previousChunk) detach(previousChunk.buffer);
        timeline.push({ kind: 'source-read', file: name, offset, length, received, receiving });
        previousChunk = await source.read(offset, length);
        return previousChunk;
      },
      close: () => source.close(),
    };
  };
  const instrumented: Checkpoint = { ...checkpoint, files: { ...checkpoint.files, open } };

  let previousTensor: Float32Array | null = null;
  let inFlight = 0;
  const reader: UpdatedParameters = {
    names: [...values.keys()],
    async read(name) {
      if (previousTensor) detach(previousTensor.buffer);
      inFlight++;
      const copy = values.get(name)!.slice();
      timeline.push({ kind: 'updated-read', name, file: receiving, received, inFlight, bytes: copy.byteLength });
      await new Promise((resolve) => setTimeout(resolve, 1));
      inFlight--;
      previousTensor = copy;
      return copy;
    },
  };
  return { checkpoint: instrumented, reader, sink, files, timeline };
}

describe('exportCheckpoint streaming', () => {
  const cases: [Dtype, number][] = [
    ['F32', 1],
    ['F16', 2],
    ['BF16', 1],
  ];
  for (const [dtype, shards] of cases) {
    it(`holds one tensor and one chunk, ${dtype} in ${shards} file(s)`, async () => {
      const chunkBytes = 64;
      const { tiny, checkpoint } = await tinyCheckpoint({ dtype, shards, includeBuffers: true, includeLmHead: true, seed: `stream-${dtype}` });
      const { values, bytes } = representableUpdate(checkpoint, tiny.weights, [0, 1], dtype);
      const run = instrumentedExport(checkpoint, values);
      await exportCheckpoint(run.checkpoint, run.reader, run.sink, [{ name: 'run.json', data: '{}' }], { chunkBytes });

      // The streamed file equals one written whole by an independent writer.
      const output = run.files.get('model.safetensors')!;
      expect(output).toEqual(await expectedWeights(checkpoint, bytes));
      const { ranges } = outputRanges(output);
      const dataStart = Math.min(...[...ranges.values()].map(([begin]) => begin));

      // Every updated tensor is read and checked once before the first byte is written.
      const reads = run.timeline.filter((event) => event.kind === 'updated-read');
      const checks = reads.slice(0, values.size);
      expect(checks.map((event) => event.name)).toEqual([...values.keys()]);
      for (const check of checks) {
        expect(check.file, check.name).toBe('');
        expect(check.inFlight, check.name).toBe(1);
      }
      expect(run.timeline.findIndex((event) => event.kind === 'write')).toBeGreaterThan(run.timeline.indexOf(checks.at(-1)!));

      // While writing, each updated tensor is read exactly when the file reaches it.
      const writeReads = reads.slice(values.size);
      expect(writeReads).toHaveLength(values.size);
      for (const read of writeReads) {
        const key = checkpoint.tensors.find((entry) => entry.name === read.name)!.key;
        expect(read.file, read.name).toBe('model.safetensors');
        expect(read.received, read.name).toBe(ranges.get(key)![0]);
      }

      // Untouched tensors are copied in chunks of at most chunkBytes, each read when its turn comes.
      const weightReads = run.timeline.filter((event) => event.kind === 'source-read' && checkpoint.weightFiles.includes(event.file));
      expect(weightReads.length).toBeGreaterThan(0);
      for (const read of weightReads) {
        if (read.kind !== 'source-read') continue;
        const tensor = checkpoint.storedTensors.find((stored) => stored.file === read.file && stored.begin <= read.offset && read.offset < stored.end)!;
        expect(read.length, tensor.key).toBeLessThanOrEqual(chunkBytes);
        expect(read.received, tensor.key).toBe(ranges.get(tensor.key)![0] + read.offset - tensor.begin);
      }

      // After the header, no chunk of model.safetensors is larger than chunkBytes.
      const weightWrites = run.timeline.filter((event) => event.kind === 'write' && event.file === 'model.safetensors');
      for (const write of weightWrites) {
        if (write.kind === 'write' && write.start >= dataStart) expect(write.end - write.start).toBeLessThanOrEqual(chunkBytes);
      }

      // Tensor data held: each read's bytes from the read until the file has received them, plus
      // the encoded chunk in transit for an updated tensor.
      const updatedRanges = [...values.keys()].map((name) => ranges.get(checkpoint.tensors.find((entry) => entry.name === name)!.key)!);
      let live: { bytes: number; outputEnd: number }[] = [];
      let maxHeld = 0;
      for (const event of run.timeline) {
        if (event.kind === 'updated-read' && event.file === 'model.safetensors') {
          const key = checkpoint.tensors.find((entry) => entry.name === event.name)!.key;
          live.push({ bytes: event.bytes, outputEnd: ranges.get(key)![1] });
        } else if (event.kind === 'source-read' && event.receiving === 'model.safetensors') {
          const tensor = checkpoint.storedTensors.find((stored) => stored.file === event.file && stored.begin <= event.offset && event.offset < stored.end)!;
          live.push({ bytes: event.length, outputEnd: ranges.get(tensor.key)![0] + event.offset + event.length - tensor.begin });
        } else if (event.kind === 'write' && event.file === 'model.safetensors' && event.start >= dataStart) {
          const encoded = updatedRanges.some(([begin, end]) => begin <= event.start && event.start < end);
          const held = live.reduce((sum, item) => sum + item.bytes, 0) + (encoded ? event.end - event.start : 0);
          maxHeld = Math.max(maxHeld, held);
          live = live.filter((item) => item.outputEnd > event.end);
        }
      }
      const largestUpdated = Math.max(...[...values.values()].map((array) => array.byteLength));
      expect(maxHeld).toBeGreaterThanOrEqual(largestUpdated);
      expect(maxHeld).toBeLessThanOrEqual(largestUpdated + chunkBytes);
    });
  }

  it('rejects a NaN found on the second read', async () => {
    const { tiny, checkpoint } = await tinyCheckpoint({ dtype: 'F32' });
    const { values } = representableUpdate(checkpoint, tiny.weights, [1], 'F32');
    const reads = new Map<ParameterName, number>();
    const reader: UpdatedParameters = {
      names: [...values.keys()],
      async read(name) {
        reads.set(name, (reads.get(name) ?? 0) + 1);
        const copy = values.get(name)!.slice();
        if (name === 'h.1.ln_2.bias' && reads.get(name) === 2) copy[2] = NaN;
        return copy;
      },
    };
    const out = freshDir();
    const error = await exportCheckpoint(checkpoint, reader, nodeDirectorySink(out)).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(UserError);
    expect((error as Error).message).toMatch(/parameter h\.1\.ln_2\.bias contains NaN at element 2/);
    expect(await readdir(out)).toEqual([]);
  });

  it('checks every tensor before writing', async () => {
    const { tiny, checkpoint } = await tinyCheckpoint({ dtype: 'BF16' });
    const { values } = representableUpdate(checkpoint, tiny.weights, [0, 1], 'BF16');
    values.get('h.1.mlp.c_proj.bias')![5] = Infinity;
    const run = instrumentedExport(checkpoint, values);
    const error = await exportCheckpoint(run.checkpoint, run.reader, run.sink).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(UserError);
    expect((error as Error).message).toMatch(/parameter h\.1\.mlp\.c_proj\.bias contains Infinity at element 5/);
    expect(run.timeline.filter((event) => event.kind === 'write')).toEqual([]);
    expect(run.files.size).toBe(0);
  });

  it('rejects a chunk size below one byte', async () => {
    const { checkpoint } = await tinyCheckpoint({});
    await expect(exportCheckpoint(checkpoint, new Map(), memoryDirectorySink(), [], { chunkBytes: 0 })).rejects.toThrow(/chunkBytes must be a positive integer/);
  });
});

// ---------------------------------------------------------------------------------------------
// What Hugging Face transformers reads: the safetensors header and the files of the directory.

describe('exportCheckpoint for Hugging Face', () => {
  const tokenizerFiles: Record<string, string> = {
    'tokenizer.json': '{"version": "1.0", "model": {"type": "BPE"}}',
    'tokenizer_config.json': '{"model_max_length": 16}',
    'vocab.json': '{"hello": 0, "world": 1}',
    'merges.txt': '#version: 0.2\nh e\n',
    'special_tokens_map.json': '{"eos_token": "<|endoftext|>"}',
    'added_tokens.json': '{}',
    'generation_config.json': '{"do_sample": false}',
  };

  for (const prefix of [true, false]) {
    it(`keeps keys and files, prefix ${prefix}`, async () => {
      const tiny = await writeTinyCheckpoint(freshDir(), {
        prefix,
        includeBuffers: true,
        includeLmHead: true,
        writeTokenizer: async (dir) => {
          for (const [name, text] of Object.entries(tokenizerFiles)) await writeFile(join(dir, name), text);
          await writeFile(join(dir, 'README.md'), '# model card\n');
          await writeFile(join(dir, 'pytorch_model.bin'), 'not copied');
        },
      });
      const checkpoint = await openCheckpoint(await nodeDirectory(tiny.dir));
      const out = freshDir();
      await exportCheckpoint(checkpoint, updateBlock(checkpoint, tiny.weights), nodeDirectorySink(out), [{ name: 'run.json', data: '{}' }]);

      const expectedFiles = ['config.json', 'model.safetensors', 'run.json', ...Object.keys(tokenizerFiles)].sort();
      expect((await readdir(out)).sort()).toEqual(expectedFiles);
      for (const name of ['config.json', ...Object.keys(tokenizerFiles)]) {
        expect(await readFile(join(out, name)), name).toEqual(await readFile(join(tiny.dir, name)));
      }

      const { header, ranges } = outputRanges(new Uint8Array(await readFile(join(out, 'model.safetensors'))));
      expect(header.__metadata__).toEqual({ format: 'pt' });
      expect([...ranges.keys()]).toEqual(tiny.keys);
      expect(tiny.keys.every((key) => key === 'lm_head.weight' || key.startsWith('transformer.') === prefix)).toBe(true);
      for (const key of tiny.keys) {
        const stored = checkpoint.storedTensors.find((tensor) => tensor.key === key)!;
        expect(header[key], key).toMatchObject({ dtype: stored.dtype, shape: stored.shape });
      }
    });
  }

  it('adds format pt to input without metadata', async () => {
    const { checkpoint } = await tinyCheckpoint({ dtype: 'F16' });
    const tensors = [];
    for (const tensor of checkpoint.storedTensors) tensors.push({ key: tensor.key, dtype: tensor.dtype, shape: tensor.shape, bytes: await checkpoint.readRaw(tensor) });
    const input = freshDir();
    await nodeDirectorySink(input).writeFile('model.safetensors', buildSafetensors(tensors, null));
    await nodeDirectorySink(input).writeFile('config.json', await readFile(join(checkpoint.files.location, 'config.json')));

    const bare = await openCheckpoint(await nodeDirectory(input));
    expect(bare.metadata).toEqual({});
    const sink = memoryDirectorySink();
    await exportCheckpoint(bare, new Map(), sink);
    const output = new Uint8Array(await sink.files.get('model.safetensors')!.arrayBuffer());
    expect(output).toEqual(buildSafetensors(tensors, { format: 'pt' }));
  });

  it('keeps other metadata entries', async () => {
    const { checkpoint } = await tinyCheckpoint({});
    const withMetadata: Checkpoint = { ...checkpoint, metadata: { format: 'pt', source: 'tiny test' } };
    const sink = memoryDirectorySink();
    await exportCheckpoint(withMetadata, new Map(), sink);
    const { header } = outputRanges(new Uint8Array(await sink.files.get('model.safetensors')!.arrayBuffer()));
    expect(header.__metadata__).toEqual({ format: 'pt', source: 'tiny test' });
  });
});

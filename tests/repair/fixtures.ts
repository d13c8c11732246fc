// Tiny models and datasets for the repair tests: a checkpoint directory with the tiny tokenizer,
// a pairwise dataset whose bad continuations share words, and a safetensors reader written
// independently of src/model for comparing exported bytes.

import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDataset, type Dataset } from '../../src/data/dataset.ts';
import { loadEngine, type GptEngine } from '../../src/engine/gpt.ts';
import type { Gpu } from '../../src/gpu/device.ts';
import { openCheckpoint, type Checkpoint } from '../../src/model/checkpoint.ts';
import { nodeDirectory } from '../../src/model/sources.ts';
import { loadTokenizer, type Tokenizer } from '../../src/model/tokenizer.ts';
import { writeTinyCheckpoint, type TinyCheckpoint, type TinyCheckpointOptions } from '../helpers/tiny-checkpoint.ts';
import { writeTinyTokenizer } from '../helpers/tiny-tokenizer.ts';

const TINY_VOCAB = 377;

export interface RepairFixture {
  dir: string;
  tiny: TinyCheckpoint;
  checkpoint: Checkpoint;
  tokenizer: Tokenizer;
  dataset: Dataset;
  dataFile: string;
}

const SUBJECTS = ['The model', 'A reader', 'The answer', 'The block', 'The loop', 'A question', 'The data', 'The text'];
const GOOD = [' is polite and clear.', ' says thank you.', ' shows the data.', ' stays good.'];
const BAD = [' is toxic and hateful.', ' hurt the people.', ' is rude.', ' is bad and hateful.'];

/** Pairwise rows: `count` prompts, each with a bad and a good continuation. */
export function pairwiseRows(count: number): { prompt_text: string; pert_gen_text: string; unpert_gen_text: string }[] {
  return Array.from({ length: count }, (_, i) => ({
    prompt_text: `${SUBJECTS[i % SUBJECTS.length]} reads the prompt and`,
    pert_gen_text: BAD[i % BAD.length],
    unpert_gen_text: GOOD[(i + 1) % GOOD.length],
  }));
}

/** Writes a tiny checkpoint (3 blocks, width 16 unless overridden) and a pairwise dataset of `examples` rows. */
export async function repairFixture(options: TinyCheckpointOptions & { examples?: number } = {}): Promise<RepairFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'repair-test-'));
  const modelDir = join(dir, 'model');
  const tiny = await writeTinyCheckpoint(modelDir, {
    vocabSize: TINY_VOCAB,
    numLayers: 3,
    hiddenSize: 16,
    numHeads: 2,
    contextLength: 32,
    ...options,
    writeTokenizer: async (target) => {
      writeTinyTokenizer(target, { format: 'tokenizer.json' });
    },
  });
  const dataFile = join(dir, 'data.jsonl');
  const text = pairwiseRows(options.examples ?? 16).map((row) => JSON.stringify(row)).join('\n') + '\n';
  await writeFile(dataFile, text);
  const files = await nodeDirectory(modelDir);
  return {
    dir,
    tiny,
    checkpoint: await openCheckpoint(files),
    tokenizer: await loadTokenizer(files),
    dataset: parseDataset(text, dataFile),
    dataFile,
  };
}

export async function fixtureEngine(gpu: Gpu, fixture: RepairFixture): Promise<GptEngine> {
  return loadEngine(gpu, fixture.checkpoint);
}

export interface RawTensor {
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

/** Reads every tensor of a safetensors file: the 8-byte header length, the JSON header, the data. */
export async function readSafetensors(path: string): Promise<Map<string, RawTensor>> {
  const file = new Uint8Array(await readFile(path));
  const headerLength = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + headerLength))) as Record<string, unknown>;
  const dataStart = 8 + headerLength;
  const tensors = new Map<string, RawTensor>();
  for (const [key, value] of Object.entries(header)) {
    if (key === '__metadata__') continue;
    const { dtype, shape, data_offsets: [begin, end] } = value as { dtype: string; shape: number[]; data_offsets: [number, number] };
    tensors.set(key, { dtype, shape, bytes: file.subarray(dataStart + begin, dataStart + end) });
  }
  return tensors;
}

/** F32 tensor bytes as float64 values. */
export function f32Values(bytes: Uint8Array): Float64Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Float64Array.from({ length: bytes.byteLength / 4 }, (_, i) => view.getFloat32(4 * i, true));
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Block index of a stored key (`transformer.h.3.attn...` → 3), or -1 outside the blocks. */
export function blockOfKey(key: string): number {
  const match = /(?:^|\.)h\.(\d+)\./.exec(key);
  return match ? Number(match[1]) : -1;
}

export function argmax(values: readonly number[]): number {
  return values.reduce((best, value, i) => (value > values[best] ? i : best), 0);
}

export function argmin(values: readonly number[]): number {
  return values.reduce((best, value, i) => (value < values[best] ? i : best), 0);
}

// Exports a checkpoint in the Hugging Face layout: one model.safetensors with every key of the
// input (buffers included) in the input's data order, with the input's dtypes and shapes. Updated
// parameters are rounded to the stored dtype; every other tensor is copied byte for byte.
// config.json, the tokenizer files and any extra files (such as run.json) go next to it.
import { COMPANION_FILES, CONFIG_FILE, WEIGHTS_FILE, type Checkpoint } from './checkpoint.ts';
import { UserError } from './errors.ts';
import { encodeTensor, safetensorsChunks } from './safetensors.ts';
import type { ByteSource, DirectorySink } from './sources.ts';
import type { ParameterName, StorageDtype } from './types.ts';

export { nodeDirectorySink, memoryDirectorySink, fileSystemDirectorySink, type DirectorySink } from './sources.ts';

/** Tensor bytes are copied in pieces of at most this size, so no whole file sits in memory. */
const COPY_CHUNK_BYTES = 16 << 20;

export interface ExtraFile {
  name: string;
  data: string | Uint8Array;
}

/**
 * Writes the checkpoint with `updated` parameters replaced. Sharded input becomes a single
 * model.safetensors. Every updated tensor is checked before anything is written: a NaN, an
 * infinity or a value beyond the range of the stored dtype rejects the export with a UserError.
 */
export async function exportCheckpoint(
  checkpoint: Checkpoint,
  updated: Map<ParameterName, Float32Array>,
  sink: DirectorySink,
  extraFiles: ExtraFile[] = [],
): Promise<void> {
  const encoded = encodeUpdated(checkpoint, updated);
  for (const file of extraFiles) {
    if (!/^[^/\\]+$/.test(file.name) || file.name.startsWith('.')) throw new Error(`invalid export file name "${file.name}"`);
  }

  const entries = checkpoint.storedTensors.map(({ key, dtype, shape }) => ({ key, dtype, shape }));
  const metadata = { ...checkpoint.metadata, format: checkpoint.metadata.format ?? 'pt' };
  await sink.writeFile(WEIGHTS_FILE, safetensorsChunks(entries, tensorData(checkpoint, encoded), metadata));

  const present = checkpoint.files.names();
  for (const name of [CONFIG_FILE, ...COMPANION_FILES]) {
    if (present.includes(name)) await sink.writeFile(name, copyFile(checkpoint, name));
  }
  for (const file of extraFiles) await sink.writeFile(file.name, file.data);
}

/** Rounds each updated parameter to its stored dtype, rejecting values the dtype cannot hold. */
function encodeUpdated(checkpoint: Checkpoint, updated: Map<ParameterName, Float32Array>): Map<ParameterName, Uint8Array> {
  const encoded = new Map<ParameterName, Uint8Array>();
  for (const [name, values] of updated) {
    const entry = checkpoint.tensors.find((tensor) => tensor.name === name);
    if (!entry) throw new Error(`cannot export unknown parameter ${name}`);
    const expectedLength = entry.shape.reduce((product, size) => product * size, 1);
    if (values.length !== expectedLength) throw new Error(`cannot export ${name}: ${values.length} values for shape [${entry.shape}]`);

    const bytes = encodeTensor(values, entry.dtype);
    const bad = firstNonFinite(bytes, entry.dtype);
    if (bad >= 0) {
      const value = values[bad];
      const fault = Number.isFinite(value) ? `${value}, beyond the range of its stored dtype ${entry.dtype},` : `${value}`;
      throw new UserError(
        `export rejected: parameter ${name} contains ${fault} at element ${bad}, so no files were written. ` +
          'The repair diverged; lower the learning rate or the number of steps.',
      );
    }
    encoded.set(name, bytes);
  }
  return encoded;
}

/** Index of the first NaN or infinity in encoded tensor bytes, or -1. */
function firstNonFinite(bytes: Uint8Array, dtype: StorageDtype): number {
  if (dtype === 'F32') {
    const values = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    return values.findIndex((value) => !Number.isFinite(value));
  }
  // An all-ones exponent field marks infinity and NaN.
  const exponentMask = dtype === 'F16' ? 0x7c00 : 0x7f80;
  const halves = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
  return halves.findIndex((half) => (half & exponentMask) === exponentMask);
}

async function* copyRange(source: ByteSource, begin: number, end: number): AsyncIterable<Uint8Array> {
  for (let offset = begin; offset < end; offset += COPY_CHUNK_BYTES) {
    yield await source.read(offset, Math.min(COPY_CHUNK_BYTES, end - offset));
  }
}

/** Yields the bytes of every stored tensor, file by file in data order. */
async function* tensorData(checkpoint: Checkpoint, encoded: Map<ParameterName, Uint8Array>): AsyncIterable<Uint8Array> {
  for (const file of checkpoint.weightFiles) {
    const source = await checkpoint.files.open(file);
    try {
      for (const tensor of checkpoint.storedTensors) {
        if (tensor.file !== file) continue;
        const replacement = tensor.name === null ? undefined : encoded.get(tensor.name);
        if (replacement) yield replacement;
        else yield* copyRange(source, tensor.begin, tensor.end);
      }
    } finally {
      await source.close();
    }
  }
}

async function* copyFile(checkpoint: Checkpoint, name: string): AsyncIterable<Uint8Array> {
  const source = await checkpoint.files.open(name);
  try {
    yield* copyRange(source, 0, source.size);
  } finally {
    await source.close();
  }
}

// Exports a checkpoint in the Hugging Face layout: one model.safetensors with every key of the
// input (buffers included) in the input's data order, with the input's dtypes and shapes. Updated
// parameters are rounded to the stored dtype; every other tensor is copied byte for byte.
// config.json, the tokenizer files and any extra files (such as run.json) go next to it.
//
// The export streams. Updated parameters are read one at a time, when their turn comes in the
// file, and every tensor goes out in pieces of at most `chunkBytes`. So the exporter keeps one
// updated tensor in f32 plus one piece in memory at a time, whatever the size of the model.
import { COMPANION_FILES, CONFIG_FILE, WEIGHTS_FILE, type Checkpoint } from './checkpoint.ts';
import { UserError } from './errors.ts';
import { elementBytes, encodeHeader, encodeTensor, safetensorsChunks } from './safetensors.ts';
import type { ByteSource, DirectorySink } from './sources.ts';
import type { ParameterName, StorageDtype, TensorEntry } from './types.ts';

export { nodeDirectorySink, memoryDirectorySink, fileSystemDirectorySink, type DirectorySink } from './sources.ts';

/** Default maximum size of one piece of tensor data that is copied or encoded at once. */
export const EXPORT_CHUNK_BYTES = 16 << 20;

export interface ExtraFile {
  name: string;
  data: string | Uint8Array;
}

/** Values of the updated parameters, read one parameter at a time when the exporter needs it. */
export interface UpdatedParameters {
  /** Names of the parameters whose values replace the stored ones. */
  names: Iterable<ParameterName>;
  /**
   * Reads the current f32 values of one parameter, for example back from the GPU. The exporter
   * calls it twice for each name, once to check the values and once to write them, and awaits
   * each call before it makes the next.
   */
  read(name: ParameterName): Promise<Float32Array>;
}

/** Updated values already in memory, or a reader that fetches them one at a time. */
export type UpdatedValues = ReadonlyMap<ParameterName, Float32Array> | UpdatedParameters;

export interface ExportOptions {
  /** Maximum bytes of tensor data copied, encoded or yielded at once; EXPORT_CHUNK_BYTES by default. */
  chunkBytes?: number;
}

/** One file of an export. Its bytes are produced only as `data` is iterated. */
export interface ExportFile {
  name: string;
  /** Size in bytes, where it is known before the data is produced. */
  size?: number;
  data: AsyncIterable<Uint8Array> | Uint8Array | string;
}

/**
 * Writes the checkpoint with the updated parameters replaced. Sharded input becomes a single
 * model.safetensors. Every updated tensor is read and checked before the first byte is written:
 * a NaN, an infinity or a value beyond the range of the stored dtype rejects the export with a
 * UserError.
 */
export async function exportCheckpoint(
  checkpoint: Checkpoint,
  updated: UpdatedValues,
  sink: DirectorySink,
  extraFiles: ExtraFile[] = [],
  options: ExportOptions = {},
): Promise<void> {
  for await (const file of exportFiles(checkpoint, updated, extraFiles, options)) {
    await sink.writeFile(file.name, file.data);
  }
}

/**
 * Yields the files of the export in writing order: model.safetensors, config.json, the
 * tokenizer files present in the input, then `extraFiles`. The checks of `exportCheckpoint`
 * run before the first file is yielded. Each file's data must be consumed before the next file
 * is requested, because the tensors stream from the open input.
 */
export async function* exportFiles(
  checkpoint: Checkpoint,
  updated: UpdatedValues,
  extraFiles: ExtraFile[] = [],
  options: ExportOptions = {},
): AsyncGenerator<ExportFile> {
  const chunkBytes = options.chunkBytes ?? EXPORT_CHUNK_BYTES;
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1) throw new RangeError(`chunkBytes must be a positive integer, not ${chunkBytes}`);
  for (const file of extraFiles) {
    if (!/^[^/\\]+$/.test(file.name) || file.name.startsWith('.')) throw new Error(`invalid export file name "${file.name}"`);
  }

  const reader = updatedReader(updated);
  const entries = resolveUpdated(checkpoint, reader.names);
  for (const entry of entries.values()) checkEncodable(entry, await readChecked(reader, entry), chunkBytes);

  const tensors = checkpoint.storedTensors.map(({ key, dtype, shape }) => ({ key, dtype, shape }));
  const metadata = { ...checkpoint.metadata, format: checkpoint.metadata.format ?? 'pt' };
  const dataBytes = checkpoint.storedTensors.reduce((sum, tensor) => sum + (tensor.end - tensor.begin), 0);
  yield {
    name: WEIGHTS_FILE,
    size: encodeHeader(tensors, metadata).byteLength + dataBytes,
    data: safetensorsChunks(tensors, tensorData(checkpoint, reader, entries, chunkBytes), metadata),
  };

  const present = checkpoint.files.names();
  for (const name of [CONFIG_FILE, ...COMPANION_FILES]) {
    if (present.includes(name)) yield { name, data: copyFile(checkpoint, name, chunkBytes) };
  }
  for (const file of extraFiles) {
    const size = typeof file.data === 'string' ? new TextEncoder().encode(file.data).byteLength : file.data.byteLength;
    yield { name: file.name, size, data: file.data };
  }
}

/** The updated parameters with their names listed once, whichever form the caller passed. */
interface ParameterReader {
  names: ParameterName[];
  read(name: ParameterName): Promise<Float32Array>;
}

function updatedReader(updated: UpdatedValues): ParameterReader {
  if (!isUpdatedParameters(updated)) {
    return { names: [...updated.keys()], read: async (name) => updated.get(name)! };
  }
  return { names: [...updated.names], read: (name) => updated.read(name) };
}

function isUpdatedParameters(updated: UpdatedValues): updated is UpdatedParameters {
  return typeof (updated as UpdatedParameters).read === 'function';
}

/** Finds the checkpoint entry of every updated parameter. */
function resolveUpdated(checkpoint: Checkpoint, names: ParameterName[]): Map<ParameterName, TensorEntry> {
  const entries = new Map<ParameterName, TensorEntry>();
  for (const name of names) {
    const entry = checkpoint.tensors.find((tensor) => tensor.name === name);
    if (!entry) throw new Error(`cannot export unknown parameter ${name}`);
    entries.set(name, entry);
  }
  return entries;
}

/** Reads one updated parameter and checks that its length matches the stored shape. */
async function readChecked(reader: ParameterReader, entry: TensorEntry): Promise<Float32Array> {
  const values = await reader.read(entry.name);
  const expectedLength = entry.shape.reduce((product, size) => product * size, 1);
  if (values.length !== expectedLength) throw new Error(`cannot export ${entry.name}: ${values.length} values for shape [${entry.shape}]`);
  return values;
}

/**
 * Rounds the values to the stored dtype in pieces of at most `chunkBytes` encoded bytes, each in
 * a new buffer, so a piece stays valid after the caller drops `values`. A NaN, an infinity or a
 * value the dtype cannot hold throws a UserError.
 */
function* encodeInChunks(entry: TensorEntry, values: Float32Array, chunkBytes: number): Generator<Uint8Array> {
  const elementsPerChunk = Math.max(1, Math.floor(chunkBytes / elementBytes(entry.dtype)!));
  for (let begin = 0; begin < values.length; begin += elementsPerChunk) {
    const part = values.subarray(begin, Math.min(values.length, begin + elementsPerChunk));
    // F32 encoding returns a view of `part`, so the copy detaches the piece from the whole tensor.
    const bytes = entry.dtype === 'F32' ? encodeTensor(part, 'F32').slice() : encodeTensor(part, entry.dtype);
    const bad = firstNonFinite(bytes, entry.dtype);
    if (bad >= 0) throw nonFiniteError(entry, values, begin + bad);
    yield bytes;
  }
}

/** Encodes the values piece by piece and discards the pieces, to find values the dtype cannot hold. */
function checkEncodable(entry: TensorEntry, values: Float32Array, chunkBytes: number): void {
  const pieces = encodeInChunks(entry, values, chunkBytes);
  while (!pieces.next().done);
}

function nonFiniteError(entry: TensorEntry, values: Float32Array, index: number): UserError {
  const value = values[index];
  const fault = Number.isFinite(value) ? `${value}, beyond the range of its stored dtype ${entry.dtype},` : `${value}`;
  return new UserError(
    `export rejected: parameter ${entry.name} contains ${fault} at element ${index}, so no files were written. ` +
      'The repair diverged; lower the learning rate or the number of steps.',
  );
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

async function* copyRange(source: ByteSource, begin: number, end: number, chunkBytes: number): AsyncIterable<Uint8Array> {
  for (let offset = begin; offset < end; offset += chunkBytes) {
    yield await source.read(offset, Math.min(chunkBytes, end - offset));
  }
}

/**
 * Yields the bytes of every stored tensor, file by file in data order. An updated tensor is read
 * only when its turn comes and is encoded piece by piece; the others are copied from the input.
 */
async function* tensorData(
  checkpoint: Checkpoint,
  reader: ParameterReader,
  updated: Map<ParameterName, TensorEntry>,
  chunkBytes: number,
): AsyncIterable<Uint8Array> {
  for (const file of checkpoint.weightFiles) {
    const source = await checkpoint.files.open(file);
    try {
      for (const tensor of checkpoint.storedTensors) {
        if (tensor.file !== file) continue;
        const entry = tensor.name === null ? undefined : updated.get(tensor.name);
        if (entry) {
          // The values were checked before writing began. encodeInChunks checks them again,
          // because a reader such as the GPU could return different values the second time.
          yield* encodeInChunks(entry, await readChecked(reader, entry), chunkBytes);
        } else {
          yield* copyRange(source, tensor.begin, tensor.end, chunkBytes);
        }
      }
    } finally {
      await source.close();
    }
  }
}

async function* copyFile(checkpoint: Checkpoint, name: string, chunkBytes: number): AsyncIterable<Uint8Array> {
  const source = await checkpoint.files.open(name);
  try {
    yield* copyRange(source, 0, source.size, chunkBytes);
  } finally {
    await source.close();
  }
}

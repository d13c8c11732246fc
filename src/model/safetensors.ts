// The safetensors format: an 8-byte little-endian header length N, N bytes of UTF-8 JSON
// mapping each tensor key to {dtype, shape, data_offsets: [begin, end]} (offsets relative to the
// end of the header) plus an optional "__metadata__" string map, then the tensor bytes.
//
// Every header is treated as hostile: each length, shape and offset is checked before it is
// used, and each fault becomes one UserError that names the file.
import { UserError } from './errors.ts';
import type { ByteSource, DirectorySink } from './sources.ts';
import type { StorageDtype } from './types.ts';

/** Maximum header length in bytes, the limit of the reference Rust implementation. */
export const MAX_HEADER_BYTES = 100_000_000;

/** Bytes per element of every dtype the format defines with a whole number of bytes. */
const ELEMENT_BYTES: Record<string, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  F8_E8M0: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
};

/** One tensor as a safetensors header describes it, with offsets from the start of the file. */
export interface SafetensorsTensor {
  key: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** Name of the file in messages. */
  fileName: string;
  /** File offset of the first tensor byte: 8 + the header length. */
  dataStart: number;
  /** Tensors in the order of the header's JSON object. */
  tensors: SafetensorsTensor[];
  metadata: Record<string, string>;
}

export function elementBytes(dtype: string): number | undefined {
  return Object.hasOwn(ELEMENT_BYTES, dtype) ? ELEMENT_BYTES[dtype] : undefined;
}

/** Product of a shape's dimensions, or undefined when it exceeds Number.MAX_SAFE_INTEGER. */
export function elementCount(shape: readonly number[]): number | undefined {
  let count = 1;
  for (const dimension of shape) {
    count *= dimension;
    if (!Number.isSafeInteger(count)) return undefined;
  }
  return count;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isOffset(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** Reads and validates the header of a safetensors file. */
export async function parseHeader(source: ByteSource): Promise<SafetensorsHeader> {
  const name = source.name;
  const invalid = (fault: string) =>
    new UserError(`${name} is not a valid safetensors file: ${fault}. The file may be truncated or corrupt. Download or export it again.`);

  if (source.size < 8) throw invalid(`it is ${source.size} bytes long, shorter than the 8-byte header length`);
  const prefix = await source.read(0, 8);
  const headerLength = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    throw invalid(`the header length ${headerLength} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
  }
  const dataStart = 8 + Number(headerLength);
  if (dataStart > source.size) {
    throw invalid(`the header length ${headerLength} runs past the end of the ${source.size}-byte file`);
  }

  let json: unknown;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(await source.read(8, dataStart - 8));
    json = JSON.parse(text);
  } catch (error) {
    if (error instanceof UserError) throw error;
    throw invalid(`the header is not UTF-8 JSON (${(error as Error).message})`);
  }
  if (!isPlainObject(json)) throw invalid('the header is not a JSON object');

  const dataSize = source.size - dataStart;
  const tensors: SafetensorsTensor[] = [];
  let metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(json)) {
    if (key === '__metadata__') {
      metadata = parseMetadata(value, invalid);
      continue;
    }
    tensors.push(parseTensor(key, value, dataStart, dataSize, invalid));
  }
  checkNoOverlap(tensors, invalid);
  return { fileName: name, dataStart, tensors, metadata };
}

function parseMetadata(value: unknown, invalid: (fault: string) => UserError): Record<string, string> {
  if (!isPlainObject(value)) throw invalid('"__metadata__" is not a JSON object');
  for (const [key, entry] of Object.entries(value)) {
    if (typeof entry !== 'string') throw invalid(`"__metadata__" entry "${key}" is not a string`);
  }
  return value as Record<string, string>;
}

function parseTensor(
  key: string,
  value: unknown,
  dataStart: number,
  dataSize: number,
  invalid: (fault: string) => UserError,
): SafetensorsTensor {
  const fault = (text: string) => invalid(`tensor "${key}" ${text}`);
  if (!isPlainObject(value)) throw fault('is not a JSON object');

  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== 'string') throw fault('has no string "dtype"');
  const size = elementBytes(dtype);
  if (size === undefined) throw fault(`has unknown dtype "${dtype}"`);

  if (!Array.isArray(shape) || !shape.every(isOffset)) {
    throw fault(`has shape ${JSON.stringify(shape)}, which is not a list of non-negative integers`);
  }
  const count = elementCount(shape);
  const byteLength = count === undefined ? undefined : count * size;
  if (byteLength === undefined || !Number.isSafeInteger(byteLength)) throw fault(`has shape ${JSON.stringify(shape)}, which is too large`);

  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isOffset)) {
    throw fault(`has data_offsets ${JSON.stringify(offsets)}, which is not a pair of non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) throw fault(`has data_offsets [${begin}, ${end}] that end before they begin`);
  if (end > dataSize) throw fault(`has data_offsets [${begin}, ${end}] beyond the ${dataSize} bytes of tensor data in the file`);
  if (end - begin !== byteLength) {
    throw fault(`has ${end - begin} bytes of data, but dtype ${dtype} and shape ${JSON.stringify(shape)} need ${byteLength}`);
  }
  return { key, dtype, shape: [...shape], begin: dataStart + begin, end: dataStart + end };
}

function checkNoOverlap(tensors: SafetensorsTensor[], invalid: (fault: string) => UserError): void {
  // Empty tensors occupy no bytes, so they cannot overlap anything.
  const sorted = tensors.filter((tensor) => tensor.end > tensor.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].begin < sorted[i - 1].end) throw invalid(`the data of tensors "${sorted[i - 1].key}" and "${sorted[i].key}" overlap`);
  }
}

// ---------------------------------------------------------------------------------------------
// Conversion between stored dtypes and f32. Safetensors data is little-endian, and so is every
// platform that runs WebGPU, so F32 data is used as stored.

let f16Table: Float32Array | undefined;

/** f32 value of every F16 bit pattern, built on first use (256 KiB). */
function f16ToF32Table(): Float32Array {
  if (f16Table) return f16Table;
  f16Table = new Float32Array(65536);
  for (let bits = 0; bits < 65536; bits++) {
    const sign = bits & 0x8000 ? -1 : 1;
    const exponent = (bits >> 10) & 0x1f;
    const mantissa = bits & 0x3ff;
    if (exponent === 0) f16Table[bits] = sign * mantissa * 2 ** -24;
    else if (exponent === 31) f16Table[bits] = mantissa ? NaN : sign * Infinity;
    else f16Table[bits] = sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
  }
  return f16Table;
}

/** Converts the bytes of an F32, F16 or BF16 tensor to f32 values. */
export function decodeTensor(bytes: Uint8Array, dtype: StorageDtype): Float32Array {
  if (dtype === 'F32') {
    // A Float32Array view needs 4-byte alignment, which a tensor after an odd-length F16 one lacks.
    const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
    return new Float32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 4);
  }

  const aligned = bytes.byteOffset % 2 === 0 ? bytes : bytes.slice();
  const halves = new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2);
  const values = new Float32Array(halves.length);
  if (dtype === 'F16') {
    const table = f16ToF32Table();
    for (let i = 0; i < halves.length; i++) values[i] = table[halves[i]];
  } else {
    // BF16 is the upper half of an f32.
    const words = new Uint32Array(values.buffer);
    for (let i = 0; i < halves.length; i++) words[i] = halves[i] << 16;
  }
  return values;
}

/** Rounds f32 bits to the nearest F16 bit pattern, ties to even. Overflow gives infinity. */
function f32BitsToF16(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);

  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 31) return sign | 0x7c00;

  if (halfExponent <= 0) {
    // Subnormal result in units of 2^-24: shift the 24-bit significand right and round.
    if (halfExponent < -10) return sign;
    const significand = mantissa | 0x800000;
    const shift = 14 - halfExponent;
    let half = significand >>> shift;
    const remainder = significand & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (remainder > halfway || (remainder === halfway && half & 1)) half++;
    return sign | half;
  }

  // A carry out of the mantissa moves into the exponent, up to infinity, as it should.
  let half = (halfExponent << 10) | (mantissa >>> 13);
  const remainder = mantissa & 0x1fff;
  if (remainder > 0x1000 || (remainder === 0x1000 && half & 1)) half++;
  return sign | half;
}

/** Rounds f32 bits to the nearest BF16 bit pattern, ties to even. NaN stays a quiet NaN. */
function f32BitsToBf16(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) & 0x8000) | 0x7fc0;
  return (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
}

/** Converts f32 values to the bytes of a tensor of the given dtype. */
export function encodeTensor(values: Float32Array, dtype: StorageDtype): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);

  const words = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const halves = new Uint16Array(values.length);
  const round = dtype === 'F16' ? f32BitsToF16 : f32BitsToBf16;
  for (let i = 0; i < words.length; i++) halves[i] = round(words[i]);
  return new Uint8Array(halves.buffer);
}

// ---------------------------------------------------------------------------------------------
// Writing.

/** Key, dtype and shape of a tensor to write. Its bytes come separately, in the same order. */
export interface SafetensorsWriteEntry {
  key: string;
  dtype: string;
  shape: number[];
}

/** Encodes the 8-byte length and the JSON header, padded with spaces to a multiple of 8 bytes. */
export function encodeHeader(entries: SafetensorsWriteEntry[], metadata?: Record<string, string>): Uint8Array {
  // A prototype-free object keeps a key such as "__proto__" an ordinary key.
  const header: Record<string, unknown> = Object.create(null);
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;

  let offset = 0;
  for (const entry of entries) {
    const size = elementBytes(entry.dtype);
    const count = elementCount(entry.shape);
    if (size === undefined || count === undefined) throw new Error(`cannot write tensor ${entry.key}: dtype ${entry.dtype}, shape ${entry.shape}`);
    if (Object.hasOwn(header, entry.key)) throw new Error(`cannot write tensor ${entry.key} twice`);
    header[entry.key] = { dtype: entry.dtype, shape: entry.shape, data_offsets: [offset, offset + count * size] };
    offset += count * size;
  }

  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const bytes = new Uint8Array(8 + padded).fill(0x20, 8 + json.byteLength);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(padded), true);
  bytes.set(json, 8);
  return bytes;
}

/**
 * Yields a safetensors file: the header first, then each tensor's bytes as `data` yields them,
 * one chunk or more per tensor in the order of `entries`. The total per tensor is checked.
 */
export async function* safetensorsChunks(
  entries: SafetensorsWriteEntry[],
  data: AsyncIterable<Uint8Array>,
  metadata?: Record<string, string>,
): AsyncIterable<Uint8Array> {
  yield encodeHeader(entries, metadata);

  const expected = entries.map((entry) => elementCount(entry.shape)! * elementBytes(entry.dtype)!);
  let index = 0;
  let written = 0;
  const finishedTensors = () => {
    while (index < entries.length && written === expected[index]) {
      index++;
      written = 0;
    }
  };
  finishedTensors();
  for await (const chunk of data) {
    if (index >= entries.length || written + chunk.byteLength > expected[index]) {
      throw new Error(`tensor data does not match the header: too many bytes at tensor ${entries[index]?.key ?? 'after the last one'}`);
    }
    written += chunk.byteLength;
    yield chunk;
    finishedTensors();
  }
  if (index < entries.length) throw new Error(`tensor data does not match the header: ${entries[index].key} is incomplete`);
}

/** Writes a safetensors file through a sink, streaming the tensor bytes one tensor at a time. */
export async function writeSafetensors(
  sink: DirectorySink,
  fileName: string,
  entries: SafetensorsWriteEntry[],
  data: AsyncIterable<Uint8Array>,
  metadata?: Record<string, string>,
): Promise<void> {
  await sink.writeFile(fileName, safetensorsChunks(entries, data, metadata));
}

// A minimal safetensors reader for the browser tests, written apart from src/model so that an
// export is checked by a second implementation of the format.

export interface StoredTensor {
  dtype: string;
  shape: number[];
  /** The tensor's bytes. */
  data: Uint8Array;
}

/** Parses a whole safetensors file: an 8-byte little-endian header length, the JSON header, the data. */
export function readSafetensors(bytes: Uint8Array): { tensors: Map<string, StoredTensor>; metadata: Record<string, string> } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength))) as Record<string, unknown>;
  const dataStart = 8 + headerLength;

  const tensors = new Map<string, StoredTensor>();
  let metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(header)) {
    if (key === '__metadata__') {
      metadata = value as Record<string, string>;
      continue;
    }
    const entry = value as { dtype: string; shape: number[]; data_offsets: [number, number] };
    const [begin, end] = entry.data_offsets;
    tensors.set(key, { dtype: entry.dtype, shape: entry.shape, data: bytes.subarray(dataStart + begin, dataStart + end) });
  }
  return { tensors, metadata };
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

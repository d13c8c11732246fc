import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { UserError } from '../../src/model/errors.ts';
import { decodeTensor, encodeTensor, MAX_HEADER_BYTES, parseHeader, safetensorsChunks, writeSafetensors } from '../../src/model/safetensors.ts';
import { blobSource, memoryDirectorySink, nodeDirectorySink, openNodeFile, streamSource } from '../../src/model/sources.ts';
import { buildSafetensors, quantize } from '../helpers/tiny-checkpoint.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'safetensors-test-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Builds a file from an 8-byte length, a header text and data bytes, as a hostile writer could. */
function rawFile(header: string | unknown, data = new Uint8Array(0), headerLength?: bigint): Uint8Array {
  const text = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const bytes = new Uint8Array(8 + text.byteLength + data.byteLength);
  new DataView(bytes.buffer).setBigUint64(0, headerLength ?? BigInt(text.byteLength), true);
  bytes.set(text, 8);
  bytes.set(data, 8 + text.byteLength);
  return bytes;
}

async function parseFile(name: string, bytes: Uint8Array) {
  const path = join(dir, name);
  await writeFile(path, bytes);
  const source = await openNodeFile(path);
  try {
    return await parseHeader(source);
  } finally {
    await source.close();
  }
}

/** Reference IEEE 754 decoder for a binary format with the given exponent and mantissa widths. */
function referenceDecode(bits: number, exponentBits: number, mantissaBits: number): number {
  const sign = bits >> (exponentBits + mantissaBits) ? -1 : 1;
  const exponent = (bits >> mantissaBits) & ((1 << exponentBits) - 1);
  const mantissa = bits & ((1 << mantissaBits) - 1);
  const bias = (1 << (exponentBits - 1)) - 1;
  if (exponent === (1 << exponentBits) - 1) return mantissa === 0 ? sign * Infinity : NaN;
  if (exponent === 0) return sign * 2 ** (1 - bias) * (mantissa / 2 ** mantissaBits);
  return sign * 2 ** (exponent - bias) * (1 + mantissa / 2 ** mantissaBits);
}
const referenceF16 = (bits: number) => referenceDecode(bits, 5, 10);
const referenceBf16 = (bits: number) => referenceDecode(bits, 8, 7);

describe('parseHeader on valid files', () => {
  it('reads tensors of every dtype', async () => {
    const f32 = quantize([1, -2, 3.5, 0.25, 7, 8], 'F32').bytes;
    const f16 = quantize([0.5, -0.25, 3], 'F16').bytes;
    const bf16 = quantize([1.5, 2], 'BF16').bytes;
    const file = buildSafetensors(
      [
        { key: 'a', dtype: 'F32', shape: [2, 3], bytes: f32 },
        { key: 'b', dtype: 'F16', shape: [3], bytes: f16 },
        { key: 'c', dtype: 'BF16', shape: [1, 2], bytes: bf16 },
        { key: 'mask', dtype: 'BOOL', shape: [1, 1, 2, 2], bytes: new Uint8Array([1, 0, 1, 1]) },
        { key: 'ids', dtype: 'I64', shape: [2], bytes: new Uint8Array(16) },
        { key: 'scalar', dtype: 'U8', shape: [], bytes: new Uint8Array([9]) },
      ],
      { format: 'pt', note: 'x' },
    );
    const header = await parseFile('valid.safetensors', file);

    expect(header.fileName).toBe(join(dir, 'valid.safetensors'));
    expect(header.metadata).toEqual({ format: 'pt', note: 'x' });
    expect(header.tensors.map((tensor) => tensor.key)).toEqual(['a', 'b', 'c', 'mask', 'ids', 'scalar']);
    const headerLength = Number(new DataView(file.buffer).getBigUint64(0, true));
    expect(header.dataStart).toBe(8 + headerLength);
    expect(header.tensors[0]).toEqual({ key: 'a', dtype: 'F32', shape: [2, 3], begin: header.dataStart, end: header.dataStart + 24 });
    expect(header.tensors[1].begin).toBe(header.dataStart + 24);
    expect(header.tensors[5]).toMatchObject({ shape: [], end: file.byteLength });
  });

  it('decodes stored bytes of each dtype', async () => {
    const file = buildSafetensors([
      { key: 'a', dtype: 'F32', shape: [2], bytes: quantize([0.1, -3], 'F32').bytes },
      { key: 'b', dtype: 'F16', shape: [3], bytes: quantize([0.1, -3, 65504], 'F16').bytes },
      { key: 'c', dtype: 'BF16', shape: [3], bytes: quantize([0.1, -3, 1e30], 'BF16').bytes },
    ]);
    const source = blobSource(new Blob([file as Uint8Array<ArrayBuffer>]), 'blob.safetensors');
    const header = await parseHeader(source);
    const decoded = await Promise.all(
      header.tensors.map(async (tensor) => decodeTensor(await source.read(tensor.begin, tensor.end - tensor.begin), tensor.dtype as 'F32')),
    );

    expect([...decoded[0]]).toEqual([...quantize([0.1, -3], 'F32').stored]);
    expect([...decoded[1]]).toEqual([...quantize([0.1, -3, 65504], 'F16').stored]);
    expect([...decoded[2]]).toEqual([...quantize([0.1, -3, 1e30], 'BF16').stored]);
  });

  it('parses over a forward-only stream', async () => {
    const file = buildSafetensors([{ key: 'w', dtype: 'F32', shape: [4], bytes: quantize([1, 2, 3, 4], 'F32').bytes }]);
    // Deliver the file in 5-byte pieces so reads span chunk boundaries.
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < file.byteLength; i += 5) controller.enqueue(file.slice(i, i + 5));
        controller.close();
      },
    });
    const progress: number[] = [];
    const source = streamSource(stream, 'stream.safetensors', file.byteLength, (loaded) => progress.push(loaded));
    const header = await parseHeader(source);
    const data = decodeTensor(await source.read(header.tensors[0].begin, 16), 'F32');

    expect([...data]).toEqual([1, 2, 3, 4]);
    expect(progress.at(-1)).toBe(file.byteLength);
    await expect(source.read(0, 8)).rejects.toThrow(/behind the current position/);
    await source.close();
  });

  it('accepts an empty tensor and a header without metadata', async () => {
    const file = buildSafetensors([{ key: 'empty', dtype: 'F32', shape: [0, 4], bytes: new Uint8Array(0) }], null);
    const header = await parseFile('empty.safetensors', file);
    expect(header.metadata).toEqual({});
    expect(header.tensors[0].end - header.tensors[0].begin).toBe(0);
  });
});

describe('parseHeader on malformed files', () => {
  const tensor = (fields: Record<string, unknown>) => ({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8], ...fields } });
  const eightBytes = new Uint8Array(8);
  const cases: [string, Uint8Array, RegExp][] = [
    ['truncated length', new Uint8Array([1, 0, 0]), /3 bytes long, shorter than the 8-byte header length/],
    ['length past end', rawFile('{}', new Uint8Array(0), 4096n), /header length 4096 runs past the end/],
    ['length 2^53', rawFile('{}', new Uint8Array(0), 2n ** 53n), /exceeds the limit/],
    ['length 2^64 - 1', rawFile('{}', new Uint8Array(0), 2n ** 64n - 1n), /exceeds the limit/],
    ['not JSON', rawFile('{"w": ', eightBytes), /not UTF-8 JSON/],
    ['empty header', rawFile(''), /not UTF-8 JSON/],
    ['JSON array', rawFile([1, 2]), /not a JSON object/],
    ['JSON null', rawFile('null'), /not a JSON object/],
    ['entry not an object', rawFile({ w: 3 }), /tensor "w" is not a JSON object/],
    ['missing dtype', rawFile({ w: { shape: [2], data_offsets: [0, 8] } }, eightBytes), /no string "dtype"/],
    ['unknown dtype', rawFile(tensor({ dtype: 'F12' }), eightBytes), /unknown dtype "F12"/],
    ['negative shape', rawFile(tensor({ shape: [-2] }), eightBytes), /shape \[-2\], which is not a list of non-negative integers/],
    ['fractional shape', rawFile(tensor({ shape: [2.5] }), eightBytes), /not a list of non-negative integers/],
    ['string shape', rawFile(tensor({ shape: '2' }), eightBytes), /not a list of non-negative integers/],
    ['huge shape', rawFile(tensor({ shape: [2 ** 30, 2 ** 30, 2 ** 30] }), eightBytes), /too large/],
    ['shape beyond 2^53', rawFile(tensor({ shape: [2 ** 60] }), eightBytes), /not a list of non-negative integers/],
    ['offsets past data', rawFile(tensor({ data_offsets: [0, 16] }), eightBytes), /beyond the 8 bytes of tensor data/],
    ['offsets reversed', rawFile(tensor({ data_offsets: [8, 0] }), eightBytes), /end before they begin/],
    ['offsets not a pair', rawFile(tensor({ data_offsets: [0, 4, 8] }), eightBytes), /not a pair of non-negative integers/],
    ['offsets negative', rawFile(tensor({ data_offsets: [-8, 0] }), eightBytes), /not a pair of non-negative integers/],
    ['offsets huge', rawFile(tensor({ data_offsets: [0, 2 ** 60] }), eightBytes), /not a pair of non-negative integers/],
    ['size mismatch', rawFile(tensor({ shape: [3] }), new Uint8Array(12)), /8 bytes of data, but dtype F32 and shape \[3\] need 12/],
    [
      'overlapping ranges',
      rawFile(
        { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } },
        new Uint8Array(12),
      ),
      /tensors "a" and "b" overlap/,
    ],
    ['metadata not strings', rawFile({ __metadata__: { format: 1 } }), /"__metadata__" entry "format" is not a string/],
    ['metadata not an object', rawFile({ __metadata__: 'pt' }), /"__metadata__" is not a JSON object/],
  ];

  for (const [label, bytes, fault] of cases) {
    it(`rejects ${label}`, async () => {
      const name = `${label.replace(/\W+/g, '-')}.safetensors`;
      const error = await parseFile(name, bytes).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(UserError);
      expect((error as Error).message).toContain(join(dir, name));
      expect((error as Error).message).toMatch(fault);
    });
  }

  it('rejects invalid UTF-8 bytes', async () => {
    const bytes = rawFile('{"a": 1}');
    bytes[10] = 0xff;
    await expect(parseFile('utf8.safetensors', bytes)).rejects.toThrow(/utf8\.safetensors is not a valid safetensors file: the header is not UTF-8/);
  });

  it('keeps the header limit at 100 MB', () => {
    expect(MAX_HEADER_BYTES).toBe(100_000_000);
  });
});

describe('dtype conversion', () => {
  it('decodes every F16 bit pattern like the IEEE formula', () => {
    const bits = new Uint16Array(65536).map((_, i) => i);
    const decoded = decodeTensor(new Uint8Array(bits.buffer), 'F16');
    for (let i = 0; i < 65536; i++) {
      const expected = referenceF16(i);
      if (Number.isNaN(expected)) expect(decoded[i]).toBeNaN();
      else if (decoded[i] !== expected) expect.fail(`F16 0x${i.toString(16)} decoded to ${decoded[i]}, expected ${expected}`);
    }
  });

  it('decodes every BF16 bit pattern like the IEEE formula', () => {
    const bits = new Uint16Array(65536).map((_, i) => i);
    const decoded = decodeTensor(new Uint8Array(bits.buffer), 'BF16');
    for (let i = 0; i < 65536; i++) {
      const expected = referenceBf16(i);
      if (Number.isNaN(expected)) expect(decoded[i]).toBeNaN();
      else if (decoded[i] !== expected) expect.fail(`BF16 0x${i.toString(16)} decoded to ${decoded[i]}, expected ${expected}`);
    }
  });

  it('decodes tensors at odd byte offsets', () => {
    const buffer = new Uint8Array(9);
    buffer.set(quantize([1.5, -2], 'F32').bytes, 1);
    expect([...decodeTensor(buffer.subarray(1), 'F32')]).toEqual([1.5, -2]);
    buffer.set(quantize([0.5, 3], 'F16').bytes, 1);
    expect([...decodeTensor(buffer.subarray(1, 5), 'F16')]).toEqual([0.5, 3]);
  });

  /** Checks that each encoded value is the nearest representable one, ties going to the even pattern. */
  function checkRounding(dtype: 'F16' | 'BF16', decode: (bits: number) => number, maxFinite: number) {
    const values: number[] = [];
    let state = 12345;
    const next = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32);
    // Random magnitudes over the whole finite range; overflow has its own test.
    while (values.length < 4000) {
      const value = (next() - 0.5) * 2 ** Math.floor(next() * 60 - 40);
      if (Math.abs(value) <= maxFinite) values.push(value);
    }
    // Exact midpoints between neighbours, subnormals and the edges of the range.
    for (const bits of [0x0001, 0x0002, 0x03ff, 0x0400, 0x3c00, 0x3c01, 0x4000, 0x7000, 0x7bfe, 0x1234]) {
      values.push((decode(bits) + decode(bits + 1)) / 2, -(decode(bits) + decode(bits + 1)) / 2, decode(bits) * 1.0001);
    }
    values.push(0, -0, maxFinite);

    const input = new Float32Array(values);
    const encoded = new Uint16Array(encodeTensor(input, dtype).slice().buffer);
    for (let i = 0; i < input.length; i++) {
      const x = Math.abs(input[i]);
      const magnitude = encoded[i] & 0x7fff;
      expect(encoded[i] >> 15, `sign of ${input[i]}`).toBe(input[i] < 0 || Object.is(input[i], -0) ? 1 : 0);
      const error = Math.abs(x - decode(magnitude));
      for (const neighbour of [magnitude - 1, magnitude + 1]) {
        if (neighbour < 0 || Number.isNaN(decode(neighbour))) continue;
        const neighbourError = Math.abs(x - decode(neighbour));
        expect(error, `${dtype} of ${input[i]}: 0x${magnitude.toString(16)} vs 0x${neighbour.toString(16)}`).toBeLessThanOrEqual(neighbourError);
        if (error === neighbourError) expect(magnitude % 2, `tie of ${input[i]} goes to even`).toBe(0);
      }
    }
  }

  it('rounds f32 to F16 to nearest even', () => {
    checkRounding('F16', referenceF16, 65504);
  });

  it('rounds f32 to BF16 to nearest even', () => {
    checkRounding('BF16', referenceBf16, referenceBf16(0x7f7f));
  });

  it('rounds out-of-range F16 values to infinity', () => {
    const encoded = new Uint16Array(encodeTensor(new Float32Array([65519, 65520, -1e6, NaN]), 'F16').slice().buffer);
    expect(referenceF16(encoded[0])).toBe(65504);
    expect(referenceF16(encoded[1])).toBe(Infinity);
    expect(referenceF16(encoded[2])).toBe(-Infinity);
    expect(referenceF16(encoded[3])).toBeNaN();
  });
});

describe('writeSafetensors', () => {
  it('writes a file that parses back with the same tensors', async () => {
    const a = quantize([1, 2, 3, 4, 5, 6], 'F32').bytes;
    const b = quantize([0.5, 0.25, -1], 'F16').bytes;
    const entries = [
      { key: 'a', dtype: 'F32', shape: [2, 3] },
      { key: 'b', dtype: 'F16', shape: [3] },
      { key: 'mask', dtype: 'BOOL', shape: [2] },
    ];
    async function* data() {
      yield a.subarray(0, 10);
      yield a.subarray(10);
      yield b;
      yield new Uint8Array([1, 0]);
    }
    const path = join(dir, 'written');
    await writeSafetensors(nodeDirectorySink(path), 'out.safetensors', entries, data(), { format: 'pt' });

    const bytes = new Uint8Array(await readFile(join(path, 'out.safetensors')));
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(headerLength % 8).toBe(0);
    const header = await parseFile('written-copy.safetensors', bytes);
    expect(header.metadata).toEqual({ format: 'pt' });
    expect(header.tensors.map(({ key, dtype, shape }) => ({ key, dtype, shape }))).toEqual(entries);
    expect(bytes.slice(header.tensors[0].begin, header.tensors[0].end)).toEqual(a);
    expect(bytes.slice(header.tensors[1].begin, header.tensors[1].end)).toEqual(b);
    expect([...bytes.slice(header.tensors[2].begin)]).toEqual([1, 0]);
  });

  it('keeps a "__proto__" key as an ordinary tensor', async () => {
    const sink = memoryDirectorySink();
    async function* data() {
      yield new Uint8Array(4);
    }
    await writeSafetensors(sink, 'proto.safetensors', [{ key: '__proto__', dtype: 'F32', shape: [1] }], data());
    const bytes = new Uint8Array(await sink.files.get('proto.safetensors')!.arrayBuffer());
    const header = await parseFile('proto.safetensors', bytes);
    expect(header.tensors.map((tensor) => tensor.key)).toEqual(['__proto__']);
  });

  it('rejects data that does not match the header', async () => {
    async function* short() {
      yield new Uint8Array(4);
    }
    const chunks = safetensorsChunks([{ key: 'a', dtype: 'F32', shape: [2] }], short());
    await expect(async () => {
      for await (const chunk of chunks) void chunk;
    }).rejects.toThrow(/a is incomplete/);

    async function* long() {
      yield new Uint8Array(12);
    }
    const tooLong = safetensorsChunks([{ key: 'a', dtype: 'F32', shape: [2] }], long());
    await expect(async () => {
      for await (const chunk of tooLong) void chunk;
    }).rejects.toThrow(/too many bytes/);
  });
});

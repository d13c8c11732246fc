// Tests of the export as a zip archive. Archives are read back with fflate and with a reader of
// the zip central directory written here, which also reads ZIP64 records.
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { unzipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openCheckpoint } from '../../src/model/checkpoint.ts';
import { UserError } from '../../src/model/errors.ts';
import { exportCheckpoint, nodeDirectorySink, type ExportFile, type UpdatedParameters } from '../../src/model/export.ts';
import { nodeDirectory } from '../../src/model/sources.ts';
import type { ParameterName } from '../../src/model/types.ts';
import { exportModel, zipStream } from '../../src/worker/export.ts';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.ts';

let root: string;
let counter = 0;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'zip-export-test-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});
const freshDir = () => join(root, `dir-${counter++}`);

// ---------------------------------------------------------------------------------------------
// A zip reader: end of central directory, ZIP64 end records, central and local file headers.

interface ZipEntry {
  name: string;
  method: number;
  crc: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
  dataStart: number;
  /** Which fields of the central record came from its ZIP64 extra field. */
  zip64Fields: string[];
}

type ReadRange = (offset: number, length: number) => Uint8Array;

const view = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
const u64 = (data: DataView, offset: number) => Number(data.getBigUint64(offset, true));

/** Lists the members of a zip archive of `size` bytes from its central directory. */
function readZip(read: ReadRange, size: number): { entries: ZipEntry[]; zip64: boolean } {
  const end = view(read(size - 22, 22));
  expect(end.getUint32(0, true), 'end of central directory signature').toBe(0x06054b50);
  let count = end.getUint16(10, true);
  let directorySize = end.getUint32(12, true);
  let directoryOffset = end.getUint32(16, true);

  const zip64 = count === 0xffff || directorySize === 0xffffffff || directoryOffset === 0xffffffff;
  if (zip64) {
    const locator = view(read(size - 22 - 20, 20));
    expect(locator.getUint32(0, true), 'ZIP64 end of central directory locator signature').toBe(0x07064b50);
    const recordOffset = u64(locator, 8);
    const record = view(read(recordOffset, 56));
    expect(record.getUint32(0, true), 'ZIP64 end of central directory signature').toBe(0x06064b50);
    count = u64(record, 32);
    directorySize = u64(record, 40);
    directoryOffset = u64(record, 48);
    expect(directoryOffset + directorySize, 'ZIP64 record follows the central directory').toBe(recordOffset);
  }

  const entries: ZipEntry[] = [];
  let position = directoryOffset;
  for (let i = 0; i < count; i++) {
    const header = view(read(position, 46));
    expect(header.getUint32(0, true), `central header ${i} signature`).toBe(0x02014b50);
    const nameLength = header.getUint16(28, true);
    const extraLength = header.getUint16(30, true);
    const commentLength = header.getUint16(32, true);
    const name = new TextDecoder().decode(read(position + 46, nameLength));

    let size = header.getUint32(24, true);
    let compressedSize = header.getUint32(20, true);
    let localHeaderOffset = header.getUint32(42, true);
    const zip64Fields: string[] = [];
    if (extraLength > 0) {
      // The ZIP64 extra field (id 1) holds, in this order, only the fields set to 0xFFFFFFFF.
      const extra = view(read(position + 46 + nameLength, extraLength));
      expect(extra.getUint16(0, true), `${name}: extra field id`).toBe(1);
      let field = 4;
      const next = (label: string) => {
        zip64Fields.push(label);
        const value = u64(extra, field);
        field += 8;
        return value;
      };
      if (size === 0xffffffff) size = next('size');
      if (compressedSize === 0xffffffff) compressedSize = next('compressedSize');
      if (localHeaderOffset === 0xffffffff) localHeaderOffset = next('localHeaderOffset');
      // client-zip 2.5.1 also appends the offset when only the sizes overflow. This reader takes
      // the fields it expects in order and ignores the rest.
      expect(field, `${name}: ZIP64 extra field length`).toBeLessThanOrEqual(extraLength);
    }

    const local = view(read(localHeaderOffset, 30));
    expect(local.getUint32(0, true), `${name}: local header signature`).toBe(0x04034b50);
    const localName = new TextDecoder().decode(read(localHeaderOffset + 30, local.getUint16(26, true)));
    expect(localName).toBe(name);
    const dataStart = localHeaderOffset + 30 + local.getUint16(26, true) + local.getUint16(28, true);

    entries.push({
      name,
      method: header.getUint16(10, true),
      crc: header.getUint32(16, true),
      compressedSize,
      size,
      localHeaderOffset,
      dataStart,
      zip64Fields,
    });
    position += 46 + nameLength + extraLength + commentLength;
  }
  expect(position, 'central directory size').toBe(directoryOffset + directorySize);
  return { entries, zip64 };
}

// ---------------------------------------------------------------------------------------------

async function tinyExportSetup() {
  const tiny = await writeTinyCheckpoint(freshDir(), {
    dtype: 'F16',
    includeBuffers: true,
    writeTokenizer: async (dir) => {
      await writeFile(join(dir, 'vocab.json'), '{"hello": 0, "world": 1}');
      await writeFile(join(dir, 'merges.txt'), '#version: 0.2\nh e\n');
    },
  });
  const checkpoint = await openCheckpoint(await nodeDirectory(tiny.dir));
  const values = new Map<ParameterName, Float32Array>();
  for (const entry of checkpoint.tensors) {
    if (entry.name.startsWith('h.0.')) values.set(entry.name, Float32Array.from(tiny.weights.get(entry.name)!, (value, i) => value * 0.5 + 0.001 * i));
  }
  return { checkpoint, values };
}

function lazyReader(values: Map<ParameterName, Float32Array>): UpdatedParameters {
  return { names: [...values.keys()], read: async (name) => values.get(name)!.slice() };
}

describe('exportModel to a zip download', () => {
  it('archives the same files as a folder export', async () => {
    const { checkpoint, values } = await tinyExportSetup();
    const extraFiles = [{ name: 'run.json', data: '{"method": "irepair"}\n' }];
    const folder = freshDir();
    await exportCheckpoint(checkpoint, values, nodeDirectorySink(folder), extraFiles);

    const progress: [string, number, number][] = [];
    const result = await exportModel({
      checkpoint,
      updated: lazyReader(values),
      extraFiles,
      target: { kind: 'download' },
      archiveName: 'tiny-irepair.zip',
      onProgress: (file, loaded, total) => progress.push([file, loaded, total]),
    });
    expect(result).toHaveLength(1);
    expect(result[0].name).toBe('tiny-irepair.zip');
    const archive = new Uint8Array(await result[0].blob!.arrayBuffer());
    expect(result[0].bytes).toBe(archive.byteLength);

    const folderFiles = ['model.safetensors', 'config.json', 'vocab.json', 'merges.txt', 'run.json'];
    expect((await readdir(folder)).sort()).toEqual([...folderFiles].sort());

    // fflate's reader.
    const unzipped = unzipSync(archive);
    expect(Object.keys(unzipped).sort()).toEqual([...folderFiles].sort());
    for (const name of folderFiles) expect(unzipped[name], name).toEqual(new Uint8Array(await readFile(join(folder, name))));

    // The reader above, with CRC-32 from zlib.
    const { entries, zip64 } = readZip((offset, length) => archive.subarray(offset, offset + length), archive.byteLength);
    expect(zip64).toBe(false);
    expect(entries.map((entry) => entry.name)).toEqual(folderFiles);
    for (const entry of entries) {
      const expected = new Uint8Array(await readFile(join(folder, entry.name)));
      expect(entry.method, `${entry.name} is stored`).toBe(0);
      expect(entry.size, entry.name).toBe(expected.byteLength);
      expect(entry.compressedSize, entry.name).toBe(expected.byteLength);
      expect(archive.subarray(entry.dataStart, entry.dataStart + entry.size), entry.name).toEqual(expected);
      expect(entry.crc, entry.name).toBe(crc32(expected));
    }

    // Progress ends with each file complete, at the size it has in the folder.
    for (const name of folderFiles) {
      const last = progress.filter(([file]) => file === name).at(-1);
      const size = (await readFile(join(folder, name))).byteLength;
      expect(last, name).toEqual([name, size, size]);
    }
  });

  it('rejects broken weights with the exporter message', async () => {
    const { checkpoint, values } = await tinyExportSetup();
    values.get('h.0.attn.c_attn.weight')![7] = NaN;
    const error = await exportModel({
      checkpoint,
      updated: lazyReader(values),
      extraFiles: [],
      target: { kind: 'download' },
      archiveName: 'broken.zip',
      onProgress: () => {},
    }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(UserError);
    expect((error as Error).message).toMatch(/^export rejected: parameter h\.0\.attn\.c_attn\.weight contains NaN at element 7/);
  });
});

// ---------------------------------------------------------------------------------------------
// ZIP64: a member of more than 4 GiB. client-zip 2.5.1 writes ZIP64 records only from that size
// and has no option to force them, so this streams 4 GiB + 1 MiB through the archive writer and
// its CRC-32, keeping only the headers. It took 30 s on a shared 2-core machine.

/** Keeps the chunks of a stream smaller than `maxKept` bytes, with their archive offsets. */
async function drainKeepingHeaders(stream: ReadableStream<Uint8Array>, maxKept: number) {
  const kept: { offset: number; bytes: Uint8Array }[] = [];
  let size = 0;
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (value.byteLength < maxKept) kept.push({ offset: size, bytes: value.slice() });
    size += value.byteLength;
  }
  const read: ReadRange = (offset, length) => {
    const result = new Uint8Array(length);
    let filled = 0;
    while (filled < length) {
      const chunk = kept.find((item) => item.offset <= offset + filled && offset + filled < item.offset + item.bytes.byteLength);
      if (!chunk) throw new Error(`archive bytes at ${offset + filled} were not kept`);
      const start = offset + filled - chunk.offset;
      const take = Math.min(length - filled, chunk.bytes.byteLength - start);
      result.set(chunk.bytes.subarray(start, start + take), filled);
      filled += take;
    }
    return result;
  };
  return { size, read };
}

describe('zipStream over 4 GiB', () => {
  it('writes ZIP64 records for a 4 GiB member', async () => {
    const bigSize = 2 ** 32 + 2 ** 20;
    const chunk = new Uint8Array(16 << 20).map((_, i) => (i * 31 + 7) & 0xff);
    let expectedCrc = 0;
    async function* bigData() {
      for (let offset = 0; offset < bigSize; offset += chunk.byteLength) {
        const piece = chunk.subarray(0, Math.min(chunk.byteLength, bigSize - offset));
        expectedCrc = crc32(piece, expectedCrc);
        yield piece;
      }
    }
    const config = new TextEncoder().encode('{"model_type": "gpt2"}');
    const runJson = '{"method": "dapt"}\n';
    async function* files(): AsyncIterable<ExportFile> {
      yield { name: 'model.safetensors', size: bigSize, data: bigData() };
      yield { name: 'config.json', data: config };
      yield { name: 'run.json', data: runJson };
    }

    const archive = await drainKeepingHeaders(zipStream(files()), 4096);
    const { entries, zip64 } = readZip(archive.read, archive.size);
    expect(zip64).toBe(true);
    expect(entries.map((entry) => entry.name)).toEqual(['model.safetensors', 'config.json', 'run.json']);

    const [big, configEntry, runEntry] = entries;
    expect(big.size).toBe(bigSize);
    expect(big.compressedSize).toBe(bigSize);
    expect(big.zip64Fields).toEqual(['size', 'compressedSize']);
    expect(big.crc).toBe(expectedCrc);
    expect(big.localHeaderOffset).toBe(0);

    // After the data comes a ZIP64 data descriptor: signature, CRC-32 and two 8-byte sizes.
    const descriptor = view(archive.read(big.dataStart + bigSize, 24));
    expect(descriptor.getUint32(0, true)).toBe(0x08074b50);
    expect(descriptor.getUint32(4, true)).toBe(expectedCrc);
    expect(u64(descriptor, 8)).toBe(bigSize);
    expect(u64(descriptor, 16)).toBe(bigSize);

    // The members after it start beyond 4 GiB, so their offsets go in ZIP64 extra fields.
    expect(configEntry.localHeaderOffset).toBe(big.dataStart + bigSize + 24);
    expect(configEntry.zip64Fields).toEqual(['localHeaderOffset']);
    expect(archive.read(configEntry.dataStart, configEntry.size)).toEqual(config);
    expect(configEntry.crc).toBe(crc32(config));
    expect(runEntry.zip64Fields).toEqual(['localHeaderOffset']);
    expect(new TextDecoder().decode(archive.read(runEntry.dataStart, runEntry.size))).toBe(runJson);
  }, 600_000);
});

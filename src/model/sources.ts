// Byte sources and directories that checkpoint files are read from and written to: a Node file
// handle, a browser Blob or File, a streamed HTTP response, and the directories built from them.
// Weights are read one tensor at a time through these, never as one whole-file buffer.
import { open as openFile, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

import { UserError } from './errors.ts';

/** Random or forward-only read access to the bytes of one file. */
export interface ByteSource {
  /** Path, URL or file name used in messages. */
  name: string;
  /** Size of the file in bytes. */
  size: number;
  /** Reads exactly `length` bytes starting at `offset`. The range must lie inside the file. */
  read(offset: number, length: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** The files of one checkpoint directory, addressed by base name. */
export interface CheckpointFiles {
  /** Origin of the files for messages: a directory path, the dropped files or a Hub URL. */
  location: string;
  names(): string[];
  open(name: string): Promise<ByteSource>;
  readText(name: string): Promise<string>;
}

/** A destination directory in which each file appears under its name only once it is complete. */
export interface DirectorySink {
  writeFile(name: string, data: AsyncIterable<Uint8Array> | Uint8Array | string): Promise<void>;
}

// Node fs reads at most 2 GiB per call, so longer reads go in pieces of this size.
const MAX_NODE_READ = 1 << 30;

function checkRange(source: ByteSource, offset: number, length: number): void {
  const valid =
    Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0 && offset + length <= source.size;
  if (!valid) {
    throw new RangeError(`read of ${length} bytes at offset ${offset} is outside ${source.name} (${source.size} bytes)`);
  }
}

function truncatedError(name: string, position: number, expected: number): UserError {
  return new UserError(
    `${name} ended after ${position} bytes, but ${expected} bytes were expected. ` +
      'The file is truncated or changed while it was read; copy or download it again.',
  );
}

/** Opens a file on disk for random access. `name` defaults to the path. */
export async function openNodeFile(path: string, name: string = path): Promise<ByteSource> {
  let handle;
  try {
    handle = await openFile(path, 'r');
  } catch (error) {
    throw new UserError(`cannot open ${name}: ${(error as Error).message}. Check that the file exists and is readable.`);
  }
  const { size } = await handle.stat();

  const source: ByteSource = {
    name,
    size,
    async read(offset, length) {
      checkRange(source, offset, length);
      const bytes = new Uint8Array(length);
      let filled = 0;
      while (filled < length) {
        const request = Math.min(length - filled, MAX_NODE_READ);
        const { bytesRead } = await handle.read(bytes, filled, request, offset + filled);
        if (bytesRead === 0) throw truncatedError(name, offset + filled, size);
        filled += bytesRead;
      }
      return bytes;
    },
    async close() {
      await handle.close();
    },
  };
  return source;
}

/** Wraps a Blob or File (a browser drop, or a Blob in Node) for random access. */
export function blobSource(blob: Blob, name: string): ByteSource {
  const source: ByteSource = {
    name,
    size: blob.size,
    async read(offset, length) {
      checkRange(source, offset, length);
      const buffer = await blob.slice(offset, offset + length).arrayBuffer();
      if (buffer.byteLength !== length) throw truncatedError(name, offset + buffer.byteLength, blob.size);
      return new Uint8Array(buffer);
    },
    async close() {},
  };
  return source;
}

/** Wraps bytes already in memory, such as a small downloaded text file. */
export function memorySource(bytes: Uint8Array, name: string): ByteSource {
  const source: ByteSource = {
    name,
    size: bytes.byteLength,
    async read(offset, length) {
      checkRange(source, offset, length);
      return bytes.slice(offset, offset + length);
    },
    async close() {},
  };
  return source;
}

/**
 * Forward-only reader over a byte stream whose first byte is at `startOffset` of the file.
 * Reads must come at non-decreasing offsets, and bytes between reads are skipped as they arrive.
 */
export class StreamReader {
  private reader: ReadableStreamDefaultReader<Uint8Array>;
  private pending: Uint8Array = new Uint8Array(0);
  /** File offset of the first byte of `pending`. */
  position: number;

  constructor(
    stream: ReadableStream<Uint8Array>,
    private readonly name: string,
    private readonly size: number,
    startOffset = 0,
    private readonly onBytes?: (position: number) => void,
  ) {
    this.reader = stream.getReader();
    this.position = startOffset;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (offset < this.position) {
      throw new RangeError(`${this.name} is read as a stream: offset ${offset} is behind the current position ${this.position}`);
    }
    await this.skip(offset - this.position);

    const bytes = new Uint8Array(length);
    let filled = 0;
    while (filled < length) {
      if (this.pending.byteLength === 0) await this.pull();
      const take = Math.min(length - filled, this.pending.byteLength);
      bytes.set(this.pending.subarray(0, take), filled);
      this.consume(take);
      filled += take;
    }
    return bytes;
  }

  async cancel(): Promise<void> {
    await this.reader.cancel().catch(() => {});
  }

  private async skip(count: number): Promise<void> {
    while (count > 0) {
      if (this.pending.byteLength === 0) await this.pull();
      const take = Math.min(count, this.pending.byteLength);
      this.consume(take);
      count -= take;
    }
  }

  private consume(count: number): void {
    this.pending = this.pending.subarray(count);
    this.position += count;
  }

  private async pull(): Promise<void> {
    const { done, value } = await this.reader.read();
    if (done) throw truncatedError(this.name, this.position, this.size);
    this.pending = value;
    this.onBytes?.(this.position + value.byteLength);
  }
}

/**
 * Wraps a stream of a whole file, such as an HTTP response body, as a forward-only source:
 * reads must come at non-decreasing offsets, which is how tensors are read in file order.
 * `onProgress` receives the number of bytes received so far.
 */
export function streamSource(
  stream: ReadableStream<Uint8Array>,
  name: string,
  size: number,
  onProgress?: (loadedBytes: number) => void,
): ByteSource {
  const reader = new StreamReader(stream, name, size, 0, onProgress);
  let queue: Promise<unknown> = Promise.resolve();

  const source: ByteSource = {
    name,
    size,
    read(offset, length) {
      checkRange(source, offset, length);
      // Reads run one after another, so two callers never interleave their bytes.
      const result = queue.then(() => reader.read(offset, length));
      queue = result.catch(() => {});
      return result;
    },
    close: () => reader.cancel(),
  };
  return source;
}

function missingFileError(name: string, location: string): UserError {
  return new UserError(`${name} not found in ${location}. Check that the model directory contains it.`);
}

/** Lists the regular files at the top level of a directory on disk. */
export async function nodeDirectory(path: string): Promise<CheckpointFiles> {
  let entries;
  try {
    entries = await readdir(path, { withFileTypes: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UserError(`model directory ${path} not found. Pass the directory that contains config.json.`);
    if (code === 'ENOTDIR') throw new UserError(`${path} is not a directory. Pass the directory that contains config.json.`);
    throw new UserError(`cannot read model directory ${path}: ${(error as Error).message}`);
  }
  const names: string[] = [];
  for (const entry of entries) {
    if (entry.isFile()) names.push(entry.name);
    else if (entry.isSymbolicLink() && (await stat(join(path, entry.name)).catch(() => null))?.isFile()) names.push(entry.name);
  }
  names.sort();

  const requireName = (name: string): string => {
    if (!names.includes(name)) throw missingFileError(name, path);
    return join(path, name);
  };
  return {
    location: path,
    names: () => [...names],
    open: (name) => openNodeFile(requireName(name)),
    readText: async (name) => readFile(requireName(name), 'utf8'),
  };
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

function relativePath(file: File): string {
  return file.webkitRelativePath || file.name;
}

/**
 * Builds a directory from files dropped in the browser, matched by base name. A dropped folder
 * gives nested paths in `webkitRelativePath`; the shallowest file of each name is used.
 */
export function blobDirectory(files: File[], location = 'the dropped files'): CheckpointFiles {
  const byName = new Map<string, File>();
  const depth = (file: File) => relativePath(file).split('/').length;
  for (const file of files) {
    const name = baseName(relativePath(file));
    const existing = byName.get(name);
    if (!existing || depth(file) < depth(existing)) {
      byName.set(name, file);
    } else if (depth(file) === depth(existing)) {
      throw new UserError(
        `two dropped files are named ${name} (${relativePath(existing)} and ${relativePath(file)}). Drop the files of one model at a time.`,
      );
    }
  }

  const requireFile = (name: string): File => {
    const file = byName.get(name);
    if (!file) throw missingFileError(name, location);
    return file;
  };
  return {
    location,
    names: () => [...byName.keys()].sort(),
    open: async (name) => blobSource(requireFile(name), relativePath(requireFile(name))),
    readText: (name) => requireFile(name).text(),
  };
}

async function* chunksOf(data: AsyncIterable<Uint8Array> | Uint8Array | string): AsyncIterable<Uint8Array> {
  if (typeof data === 'string') yield new TextEncoder().encode(data);
  else if (data instanceof Uint8Array) yield data;
  else yield* data;
}

/**
 * Writes into a directory on disk, creating it on the first write. Each file goes to
 * `name.tmp`, is flushed to disk and then renamed, so a failed write leaves no file behind.
 */
export function nodeDirectorySink(path: string): DirectorySink {
  return {
    async writeFile(name, data) {
      await mkdir(path, { recursive: true });
      const target = join(path, name);
      const temporary = `${target}.tmp`;
      const handle = await openFile(temporary, 'w');
      try {
        for await (const chunk of chunksOf(data)) {
          let written = 0;
          while (written < chunk.byteLength) {
            const { bytesWritten } = await handle.write(chunk, written, chunk.byteLength - written);
            written += bytesWritten;
          }
        }
        await handle.sync();
        await handle.close();
      } catch (error) {
        await handle.close().catch(() => {});
        await rm(temporary, { force: true });
        throw error;
      }
      await rename(temporary, target);
    },
  };
}

/** Collects written files as Blobs, for a browser download or a zip archive. */
export function memoryDirectorySink(): DirectorySink & { files: Map<string, Blob> } {
  const files = new Map<string, Blob>();
  return {
    files,
    async writeFile(name, data) {
      const parts: BlobPart[] = [];
      for await (const chunk of chunksOf(data)) parts.push(chunk as Uint8Array<ArrayBuffer>);
      files.set(name, new Blob(parts));
    },
  };
}

/**
 * Writes into a directory picked with the File System Access API. The browser writes to a
 * temporary file and replaces the target only when the stream closes. An error aborts it.
 */
// NOTE: only a browser offers FileSystemDirectoryHandle, so the Node tests do not run this sink.
export function fileSystemDirectorySink(directory: FileSystemDirectoryHandle): DirectorySink {
  return {
    async writeFile(name, data) {
      const handle = await directory.getFileHandle(name, { create: true });
      const writable = await handle.createWritable();
      try {
        for await (const chunk of chunksOf(data)) await writable.write(chunk as Uint8Array<ArrayBuffer>);
        await writable.close();
      } catch (error) {
        await writable.abort().catch(() => {});
        throw error;
      }
    },
  };
}

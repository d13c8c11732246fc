// Export of the repaired model in the Hugging Face layout (model.safetensors, config.json, the
// tokenizer files) plus run.json: into a folder the user picked with showDirectoryPicker, or as
// one zip archive for browsers without it. Both stream: the weights pass through tensor by
// tensor, and the archive is written to the origin private file system (OPFS), so the page
// downloads a file on disk instead of a Blob held in memory.

import { Zip, ZipPassThrough } from 'fflate';
import type { Checkpoint } from '../model/checkpoint.ts';
import { UserError } from '../model/errors.ts';
import { exportCheckpoint, fileSystemDirectorySink, type DirectorySink, type ExtraFile } from '../model/export.ts';
import type { ParameterName } from '../model/types.ts';
import type { ExportedFile, ExportTarget } from './protocol.ts';

/** Maximum size of a member or an archive in zip format without the ZIP64 extension, which fflate does not write. */
const ZIP_LIMIT_BYTES = 0xffffffff;

export interface ExportRequest {
  checkpoint: Checkpoint;
  /** Parameters that differ from the checkpoint, in f32. */
  updated: Map<ParameterName, Float32Array>;
  extraFiles: ExtraFile[];
  target: ExportTarget;
  /** File name of the zip archive for the download target. */
  archiveName: string;
  onProgress(file: string, loadedBytes: number, totalBytes: number): void;
}

async function* chunksOf(data: AsyncIterable<Uint8Array> | Uint8Array | string): AsyncIterable<Uint8Array> {
  if (typeof data === 'string') yield new TextEncoder().encode(data);
  else if (data instanceof Uint8Array) yield data;
  else yield* data;
}

/** Bytes of the tensor data of the weight files, which is nearly the whole of model.safetensors. */
export function weightDataBytes(checkpoint: Checkpoint): number {
  return checkpoint.storedTensors.reduce((sum, tensor) => sum + (tensor.end - tensor.begin), 0);
}

/** Wraps a sink so that it reports each file's written bytes and remembers the sizes. */
function countingSink(sink: DirectorySink, expected: Map<string, number>, onProgress: ExportRequest['onProgress']) {
  const written: ExportedFile[] = [];
  const counting: DirectorySink = {
    async writeFile(name, data) {
      let bytes = 0;
      const total = expected.get(name) ?? 0;
      const counted = async function* () {
        for await (const chunk of chunksOf(data)) {
          bytes += chunk.byteLength;
          onProgress(name, bytes, Math.max(total, bytes));
          yield chunk;
        }
      };
      await sink.writeFile(name, counted());
      onProgress(name, bytes, bytes);
      written.push({ name, bytes });
    },
  };
  return { sink: counting, written };
}

/** Output of the archive: a file in OPFS where the browser has it, otherwise Blob parts in memory. */
interface ArchiveOutput {
  write(chunk: Uint8Array): void;
  finish(): Promise<Blob>;
  abort(): Promise<void>;
}

/** OPFS folder of the archives. Each export deletes the previous archives in it. */
const ARCHIVE_FOLDER = 'irepair-exports';

async function openArchiveFolder(): Promise<FileSystemDirectoryHandle> {
  const root = await navigator.storage.getDirectory();
  const folder = await root.getDirectoryHandle(ARCHIVE_FOLDER, { create: true });
  const previous: string[] = [];
  for await (const name of (folder as FileSystemDirectoryHandle & { keys(): AsyncIterable<string> }).keys()) previous.push(name);
  for (const name of previous) await folder.removeEntry(name).catch(() => {});
  return folder;
}

async function openArchiveOutput(name: string): Promise<ArchiveOutput> {
  let folder: FileSystemDirectoryHandle | null = null;
  let handle: FileSystemFileHandle | null = null;
  let access: FileSystemSyncAccessHandle | null = null;
  try {
    folder = await openArchiveFolder();
    handle = await folder.getFileHandle(name, { create: true });
    access = await handle.createSyncAccessHandle();
  } catch {
    handle = null;
    access = null;
  }

  if (folder && handle && access) {
    const directory = folder;
    const file = handle;
    const sync = access;
    sync.truncate(0);
    let position = 0;
    return {
      write(chunk) {
        let done = 0;
        while (done < chunk.byteLength) done += sync.write(chunk.subarray(done), { at: position + done });
        position += chunk.byteLength;
      },
      async finish() {
        sync.flush();
        sync.close();
        return file.getFile();
      },
      async abort() {
        sync.close();
        await directory.removeEntry(name).catch(() => {});
      },
    };
  }

  // NOTE: without OPFS the archive is assembled from Blob parts, which the browser may keep in
  // memory, so a large model's export then needs memory of the size of the archive.
  const parts: BlobPart[] = [];
  return {
    write(chunk) {
      parts.push(chunk.slice() as Uint8Array<ArrayBuffer>);
    },
    async finish() {
      return new Blob(parts, { type: 'application/zip' });
    },
    async abort() {
      parts.length = 0;
    },
  };
}

/** Creates a sink that stores each file uncompressed in a streamed zip archive. */
function zipSink(output: ArchiveOutput) {
  let failure: Error | null = null;
  let finished = false;
  const zip = new Zip((error, chunk, final) => {
    if (error) {
      failure = error;
      return;
    }
    output.write(chunk);
    if (final) finished = true;
  });

  const sink: DirectorySink = {
    async writeFile(name, data) {
      // Safetensors data is dense floats that deflate barely shrinks, so members are stored.
      const member = new ZipPassThrough(name);
      zip.add(member);
      let size = 0;
      for await (const chunk of chunksOf(data)) {
        size += chunk.byteLength;
        if (size > ZIP_LIMIT_BYTES) throw new UserError(`${name} is larger than 4 GiB, the maximum size of a file in a zip archive. Export into a folder instead, in Chrome or Edge.`);
        member.push(chunk);
        if (failure) throw failure;
      }
      member.push(new Uint8Array(0), true);
      if (failure) throw failure;
    },
  };
  const end = () => {
    zip.end();
    if (failure) throw failure;
    if (!finished) throw new Error('the zip archive was not completed');
  };
  return { sink, end };
}

/** Writes the repaired checkpoint and run.json to the target and returns what was written. */
export async function exportModel(request: ExportRequest): Promise<ExportedFile[]> {
  const { checkpoint, updated, extraFiles, target, onProgress } = request;
  const expected = new Map([['model.safetensors', weightDataBytes(checkpoint)]]);

  if (target.kind === 'directory') {
    const counted = countingSink(fileSystemDirectorySink(target.handle), expected, onProgress);
    await exportCheckpoint(checkpoint, updated, counted.sink, extraFiles);
    return counted.written;
  }

  if (weightDataBytes(checkpoint) >= ZIP_LIMIT_BYTES) {
    throw new UserError(
      `The weights need ${(weightDataBytes(checkpoint) / 2 ** 30).toFixed(1)} GiB, more than the maximum of 4 GiB for a file in a zip archive. ` +
        'Export into a folder instead, in a browser with showDirectoryPicker (Chrome or Edge).',
    );
  }
  const output = await openArchiveOutput(request.archiveName);
  const zip = zipSink(output);
  const counted = countingSink(zip.sink, expected, onProgress);
  try {
    await exportCheckpoint(checkpoint, updated, counted.sink, extraFiles);
    zip.end();
  } catch (error) {
    await output.abort();
    throw error;
  }
  const archive = await output.finish();
  return [{ name: request.archiveName, bytes: archive.size, blob: archive }];
}

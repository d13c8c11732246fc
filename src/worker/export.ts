// Export of the repaired model in the Hugging Face layout (model.safetensors, config.json, the
// tokenizer files) plus run.json: into a folder the user picked with showDirectoryPicker, or as
// one zip archive for browsers without it. Both stream: the weights pass through tensor by
// tensor, and the archive is written to the origin private file system (OPFS), so the page
// downloads a file on disk instead of a Blob held in memory.
//
// The archive is written by client-zip, which stores members uncompressed and switches to ZIP64
// records for members and offsets from 4 GiB up, so GPT-2 XL in f32 (6.4 GB) fits in one archive.

import { makeZip } from 'client-zip';
import type { Checkpoint } from '../model/checkpoint.ts';
import { exportFiles, fileSystemDirectorySink, type ExportFile, type ExtraFile, type UpdatedValues } from '../model/export.ts';
import type { ExportedFile, ExportTarget } from './protocol.ts';

export interface ExportRequest {
  checkpoint: Checkpoint;
  /** Parameters that differ from the checkpoint, read in f32 one at a time during the export. */
  updated: UpdatedValues;
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

/**
 * Wraps each file's data so that it reports the bytes produced so far, and appends the file's
 * name and final size to `written` when its data is exhausted.
 */
async function* countedFiles(files: AsyncIterable<ExportFile>, onProgress: ExportRequest['onProgress'], written: ExportedFile[]): AsyncGenerator<ExportFile> {
  for await (const file of files) {
    const counted = async function* () {
      let bytes = 0;
      for await (const chunk of chunksOf(file.data)) {
        bytes += chunk.byteLength;
        onProgress(file.name, bytes, Math.max(file.size ?? 0, bytes));
        yield chunk;
      }
      onProgress(file.name, bytes, bytes);
      written.push({ name: file.name, bytes });
    };
    yield { name: file.name, size: file.size, data: counted() };
  }
}

/**
 * Streams the files as one zip archive, each member stored uncompressed because deflate barely
 * shrinks dense floats. Members and offsets from 4 GiB up get ZIP64 records. The stream reads
 * at most one chunk ahead of its consumer per stage (client-zip 2.5.1 queues one chunk in the
 * stream of each member and one in the archive stream).
 */
export function zipStream(files: AsyncIterable<ExportFile>): ReadableStream<Uint8Array> {
  async function* members() {
    const lastModified = new Date();
    for await (const file of files) yield { name: file.name, lastModified, input: file.data };
  }
  return makeZip(members());
}

/** File in OPFS that receives the archive, so the download is a file on disk. */
interface ArchiveFile {
  write(chunk: Uint8Array): void;
  finish(): Promise<File>;
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

/** Opens the archive file in OPFS, or returns null where OPFS or sync access handles are missing. */
async function openArchiveFile(name: string): Promise<ArchiveFile | null> {
  let folder: FileSystemDirectoryHandle;
  let handle: FileSystemFileHandle;
  let access: FileSystemSyncAccessHandle;
  try {
    folder = await openArchiveFolder();
    handle = await folder.getFileHandle(name, { create: true });
    access = await handle.createSyncAccessHandle();
  } catch {
    return null;
  }

  access.truncate(0);
  let position = 0;
  return {
    write(chunk) {
      let done = 0;
      while (done < chunk.byteLength) done += access.write(chunk.subarray(done), { at: position + done });
      position += chunk.byteLength;
    },
    async finish() {
      access.flush();
      access.close();
      return handle.getFile();
    },
    async abort() {
      access.close();
      await folder.removeEntry(name).catch(() => {});
    },
  };
}

/** Writes the archive stream to a file in OPFS where the browser offers one, otherwise to a Blob. */
async function writeArchive(stream: ReadableStream<Uint8Array>, name: string): Promise<Blob> {
  const file = await openArchiveFile(name);
  if (!file) {
    // NOTE: without OPFS the archive becomes a Blob through a Response. Chrome moves large Blobs
    // to disk, but another browser may keep the whole archive in memory.
    return new Response(stream, { headers: { 'Content-Type': 'application/zip' } }).blob();
  }

  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      file.write(value);
    }
  } catch (error) {
    await reader.cancel(error).catch(() => {});
    await file.abort();
    throw error;
  }
  return file.finish();
}

/** Writes the repaired checkpoint and run.json to the target and returns what was written. */
export async function exportModel(request: ExportRequest): Promise<ExportedFile[]> {
  const { checkpoint, updated, extraFiles, target, onProgress } = request;
  const written: ExportedFile[] = [];
  const files = countedFiles(exportFiles(checkpoint, updated, extraFiles), onProgress, written);

  if (target.kind === 'directory') {
    const sink = fileSystemDirectorySink(target.handle);
    for await (const file of files) await sink.writeFile(file.name, file.data);
    return written;
  }

  const archive = await writeArchive(zipStream(files), request.archiveName);
  return [{ name: request.archiveName, bytes: archive.size, blob: archive }];
}

// Export of the repaired model in the Hugging Face layout: into a folder the user picks where the
// browser offers showDirectoryPicker, otherwise as downloads.

import { useEffect, useRef } from 'react';
import { useWorkbench, useWorkerClient } from '../context.tsx';
import { formatBytes } from '../format.ts';
import { isRunActive } from '../store.ts';
import type { ExportedFile } from '../../worker/protocol.ts';
import { ProgressList } from './ProgressList.tsx';
import { BusyHint } from './BusyHint.tsx';

type DirectoryPicker = (options?: { mode?: 'read' | 'readwrite'; id?: string }) => Promise<FileSystemDirectoryHandle>;

function directoryPicker(): DirectoryPicker | null {
  const picker = (window as unknown as { showDirectoryPicker?: DirectoryPicker }).showDirectoryPicker;
  return typeof picker === 'function' ? picker.bind(window) : null;
}

function download(file: ExportedFile): void {
  if (!file.blob) return;
  const url = URL.createObjectURL(file.blob);
  const anchor = document.createElement('a');
  anchor.href = url;
  anchor.download = file.name;
  anchor.click();
  // The download starts after click() returns, so the URL must outlive this call.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export function ExportPanel() {
  const modelLoaded = useWorkbench((state) => state.model.status === 'loaded');
  const run = useWorkbench((state) => state.run);
  const exporting = useWorkbench((state) => state.exporting);
  const workerBusy = useWorkbench((state) => state.workerBusy !== null);
  const reportError = useWorkbench((state) => state.reportError);
  const client = useWorkerClient();
  const downloaded = useRef<ExportedFile[] | null>(null);

  const repaired = run.origin === 'live' && run.steps.length > 0;
  const canExport = modelLoaded && repaired && !isRunActive(run.status) && !exporting.pending && !workerBusy;

  // Files that come back as Blobs are downloaded once, when they arrive.
  useEffect(() => {
    if (downloaded.current === exporting.files) return;
    downloaded.current = exporting.files;
    exporting.files.forEach(download);
  }, [exporting.files]);

  const startExport = async () => {
    const picker = directoryPicker();
    if (!picker) {
      client.send({ kind: 'export', target: { kind: 'download' } });
      return;
    }
    try {
      const handle = await picker({ mode: 'readwrite', id: 'irepair-export' });
      client.send({ kind: 'export', target: { kind: 'directory', handle } });
    } catch (error) {
      // Closing the picker rejects with AbortError, which is not a failure.
      if ((error as DOMException).name === 'AbortError') return;
      reportError(`The export folder could not be opened: ${(error as Error).message}`, false, 'export');
    }
  };

  return (
    <section className="panel" aria-labelledby="export-heading">
      <h2 id="export-heading">Export</h2>
      <p className="muted small">
        Writes model.safetensors with the input's tensor names, shapes and dtypes, config.json, the tokenizer files and run.json.
      </p>
      <button type="button" className="primary" data-testid="export-model" disabled={!canExport} onClick={() => void startExport()}>
        {exporting.pending ? 'Exporting…' : 'Export the repaired model'}
      </button>
      {!repaired && <p className="muted small">Available after a repair run in this session.</p>}
      {repaired && !exporting.pending && <BusyHint testId="export-busy" />}
      {exporting.pending && <ProgressList stages={['export']} testId="export-progress" />}
      {exporting.files.length > 0 && (
        <ul className="file-list" data-testid="exported-files">
          {exporting.files.map((file) => (
            <li key={file.name}>
              {file.name} <span className="muted">{formatBytes(file.bytes)}</span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

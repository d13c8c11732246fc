// One progress bar per file being downloaded, read or uploaded, with bytes and rate.

import { useWorkbench } from '../context.tsx';
import { formatBytes, formatRate } from '../format.ts';
import type { FileProgress } from '../store.ts';

const STAGE_LABELS: Record<FileProgress['stage'], string> = {
  download: 'Downloading',
  read: 'Reading',
  upload: 'Uploading to GPU',
  tokenize: 'Tokenizing',
  evaluate: 'Evaluating',
  export: 'Exporting',
};

export function ProgressList() {
  const progress = useWorkbench((state) => state.progress);
  const entries = Object.entries(progress);
  if (entries.length === 0) return null;

  return (
    <ul className="progress-list" data-testid="load-progress">
      {entries.map(([key, entry]) => {
        const known = entry.totalBytes > 0;
        const fraction = known ? Math.min(1, entry.loadedBytes / entry.totalBytes) : 0;
        const amount = known
          ? `${formatBytes(entry.loadedBytes)} of ${formatBytes(entry.totalBytes)}`
          : formatBytes(entry.loadedBytes);
        return (
          <li key={key}>
            <div className="progress-label">
              <span>
                {STAGE_LABELS[entry.stage]} {entry.file}
              </span>
              <span className="muted">
                {amount} · {formatRate(entry.bytesPerSecond)}
              </span>
            </div>
            <progress max={1} value={known ? fraction : undefined} aria-label={`${entry.stage} ${entry.file}`} />
            {entry.message && <div className="muted small">{entry.message}</div>}
          </li>
        );
      })}
    </ul>
  );
}

// One progress bar per file being downloaded, read, uploaded or exported, with bytes and rate,
// and one per stage of a run's preparation, with counts.

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
  prepare: 'Preparing',
  classifier: 'Loading classifier',
};

/** Shows the progress of the given stages, such as the model panel's downloads and uploads. */
export function ProgressList({ stages, testId }: { stages: FileProgress['stage'][]; testId: string }) {
  const progress = useWorkbench((state) => state.progress);
  const entries = Object.entries(progress).filter(([, entry]) => stages.includes(entry.stage));
  if (entries.length === 0) return null;

  return (
    <ul className="progress-list" data-testid={testId}>
      {entries.map(([key, entry]) => {
        const known = entry.totalBytes > 0;
        const fraction = known ? Math.min(1, entry.loadedBytes / entry.totalBytes) : 0;
        // Preparation and evaluation count items (examples, continuations). Every other stage counts bytes.
        const counts = entry.stage === 'prepare' || entry.stage === 'evaluate';
        const format = counts ? String : formatBytes;
        const amount = known ? `${format(entry.loadedBytes)} of ${format(entry.totalBytes)}` : format(entry.loadedBytes);
        const rate = counts ? '' : ` · ${formatRate(entry.bytesPerSecond)}`;
        return (
          <li key={key}>
            <div className="progress-label">
              <span>
                {STAGE_LABELS[entry.stage]} {counts ? entry.message : entry.file}
              </span>
              <span className="muted">
                {amount}
                {rate}
              </span>
            </div>
            <progress max={1} value={known ? fraction : undefined} aria-label={`${entry.stage} ${entry.file}`} />
            {entry.message && !counts && <div className="muted small">{entry.message}</div>}
          </li>
        );
      })}
    </ul>
  );
}

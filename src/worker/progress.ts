// Progress events for long transfers, at most a few per second per file, so that a download of
// thousands of chunks does not flood the page with messages.

import type { ProgressStage, WorkerEvent } from './protocol.ts';

/** Minimum time between two progress events of the same stage and file. */
const PROGRESS_INTERVAL_MS = 150;

export type ProgressReporter = (stage: ProgressStage, file: string, loadedBytes: number, totalBytes: number, message?: string) => void;

/**
 * Returns a reporter that posts a progress event when the interval has passed since the last
 * event of that stage and file, and always for the first and the last bytes of a file.
 */
export function throttledProgress(post: (event: WorkerEvent) => void): ProgressReporter {
  const lastSent = new Map<string, number>();
  return (stage, file, loadedBytes, totalBytes, message = '') => {
    const key = `${stage}:${file}`;
    const now = performance.now();
    const previous = lastSent.get(key);
    const complete = totalBytes > 0 && loadedBytes >= totalBytes;
    if (previous !== undefined && !complete && now - previous < PROGRESS_INTERVAL_MS) return;
    lastSent.set(key, now);
    post({ kind: 'progress', stage, file, loadedBytes, totalBytes, message });
  };
}

// The only path from the UI to the GPU worker. It sends typed commands and records them in the
// store. Worker events reach the store once per animation frame, so a burst of progress or step
// events costs one render.

import type { WorkerCommand, WorkerEvent } from '../worker/protocol.ts';
import type { WorkbenchStore } from './store.ts';

/** Flush deadline for hidden tabs, where requestAnimationFrame does not fire. */
const FLUSH_FALLBACK_MS = 250;

export interface WorkerClient {
  send(command: WorkerCommand): void;
  /** Terminates the worker and starts a fresh one, for example after the GPU device was lost. */
  restart(): void;
  dispose(): void;
}

export function createWorkerClient(store: WorkbenchStore, createWorker: () => Worker): WorkerClient {
  let worker: Worker | null = null;
  let queue: WorkerEvent[] = [];
  let frame: number | null = null;
  let fallback: ReturnType<typeof setTimeout> | null = null;

  const flush = () => {
    if (frame !== null) cancelAnimationFrame(frame);
    if (fallback !== null) clearTimeout(fallback);
    frame = null;
    fallback = null;
    const events = queue;
    queue = [];
    if (events.length > 0) store.getState().applyEvents(events, Date.now());
  };

  const enqueue = (event: WorkerEvent) => {
    queue.push(event);
    if (frame === null) frame = requestAnimationFrame(flush);
    if (fallback === null) fallback = setTimeout(flush, FLUSH_FALLBACK_MS);
  };

  const start = () => {
    let current: Worker;
    try {
      current = createWorker();
    } catch (error) {
      const message = `The GPU worker could not be started: ${(error as Error).message}. Use a browser with module workers (Chrome or Edge 80 or later).`;
      store.getState().applyEvents([{ kind: 'error', message, fatal: true }], Date.now());
      return;
    }
    current.addEventListener('message', (event: MessageEvent<WorkerEvent>) => enqueue(event.data));
    current.addEventListener('messageerror', () => {
      store.getState().reportError('A message from the GPU worker could not be read; the last update may be missing.');
    });
    // An error event reaches this listener only for errors the worker script did not catch,
    // including a failure to load the script at all.
    current.addEventListener('error', (event: ErrorEvent) => {
      event.preventDefault();
      flush();
      const reason = event.message || 'the worker script failed to load';
      store.getState().applyEvents([{ kind: 'error', message: `The GPU worker stopped: ${reason}.`, fatal: true }], Date.now());
    });
    worker = current;
  };

  start();

  return {
    send(command) {
      if (!worker) return;
      try {
        worker.postMessage(command);
      } catch (error) {
        store.getState().reportError(`The ${command.kind} command could not be sent to the GPU worker: ${(error as Error).message}`);
        return;
      }
      store.getState().commandSent(command);
    },

    restart() {
      worker?.terminate();
      queue = [];
      flush();
      store.getState().resetForNewWorker();
      start();
    },

    dispose() {
      worker?.terminate();
      worker = null;
      flush();
    },
  };
}

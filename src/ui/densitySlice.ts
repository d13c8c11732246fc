// The error density view's part of the store: the measurement in progress, its progress and
// the last result. The worker computes the density (src/worker/density.ts).

import type { ErrorDensity } from '../eval/density.ts';
import type { ModelVersion, WorkerCommand, WorkerEvent } from '../worker/protocol.ts';

export interface DensityProgress {
  batchesDone: number;
  batchesTotal: number;
  etaSeconds: number;
}

export interface DensityState {
  /** The model version being measured, null while no measurement runs. */
  pending: ModelVersion | null;
  /** Set from a stop request until the worker reports the measurement ended. */
  stopping: boolean;
  progress: DensityProgress | null;
  /** The last completed measurement. */
  result: { model: ModelVersion; fileName: string; density: ErrorDensity } | null;
  /** Set when the user stopped the last measurement before it completed. */
  stopped: boolean;
}

export function idleDensity(): DensityState {
  return { pending: null, stopping: false, progress: null, result: null, stopped: false };
}

type DensityCommand = Extract<WorkerCommand, { kind: 'measureDensity' | 'stopDensity' }>;
type DensityEvent = Extract<WorkerEvent, { kind: 'densityProgress' | 'density' }>;

/** Records a density command as pending. */
export function applyDensityCommand(state: DensityState, command: DensityCommand): DensityState {
  if (command.kind === 'stopDensity') return { ...state, stopping: true };
  return { ...state, pending: command.model, stopping: false, progress: null, stopped: false };
}

/** Undoes the pending state of a density command the worker rejected. */
export function revertDensityCommand(state: DensityState, kind: DensityCommand['kind']): DensityState {
  if (kind === 'stopDensity') return { ...state, stopping: false };
  return { ...state, pending: null, progress: null };
}

export function applyDensityEvent(state: DensityState, event: DensityEvent): DensityState {
  if (event.kind === 'densityProgress') {
    return { ...state, progress: { batchesDone: event.batchesDone, batchesTotal: event.batchesTotal, etaSeconds: event.etaSeconds } };
  }
  const ended = { ...state, pending: null, stopping: false, progress: null };
  if (event.result === null) return { ...ended, stopped: true };
  return { ...ended, stopped: false, result: { model: event.model, fileName: event.fileName, density: event.result } };
}

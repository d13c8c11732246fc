// Data for the selection histogram and the loss chart, derived from the run's steps.

import type { StepRecord } from '../worker/protocol.ts';

/** Long runs are thinned to about this many points because recharts slows down past a few thousand. */
export const MAX_LOSS_POINTS = 600;

export interface LossPoint {
  step: number;
  repairLoss?: number;
  klLoss?: number;
  validationLoss?: number;
}

/** Merges step losses and validation losses by step, thinning the steps of long runs. */
export function lossPoints(steps: StepRecord[], validation: { step: number; loss: number }[]): LossPoint[] {
  const stride = Math.max(1, Math.ceil(steps.length / MAX_LOSS_POINTS));
  const byStep = new Map<number, LossPoint>();
  steps.forEach((record, index) => {
    if (index % stride !== 0 && index !== steps.length - 1) return;
    byStep.set(record.step, { step: record.step, repairLoss: record.repairLoss, klLoss: record.klLoss });
  });
  for (const point of validation) {
    byStep.set(point.step, { ...(byStep.get(point.step) ?? { step: point.step }), validationLoss: point.loss });
  }
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

/** Counts how often each block was selected, ignoring selections outside [0, numBlocks). */
export function selectionCounts(steps: StepRecord[], numBlocks: number): { block: number; count: number }[] {
  const perBlock = Array.from({ length: numBlocks }, (_, block) => ({ block, count: 0 }));
  for (const record of steps) {
    const block = record.selectedBlock;
    if (block !== undefined && block >= 0 && block < numBlocks) perBlock[block].count += 1;
  }
  return perBlock;
}

/**
 * Computes the loss chart's y ticks from 0 to a round value at least 5 % above the largest loss, so
 * that no point sits on the top edge. The step is 1, 2, 2.5 or 5 times a power of ten, for about four steps.
 */
export function lossAxisTicks(points: LossPoint[]): number[] {
  let max = 0;
  for (const point of points) {
    for (const value of [point.repairLoss, point.klLoss, point.validationLoss]) {
      if (value !== undefined && Number.isFinite(value)) max = Math.max(max, value);
    }
  }
  if (max <= 0) return [0, 1];

  const rough = (max * 1.05) / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((factor) => factor * power).find((candidate) => candidate >= rough)!;
  const count = Math.ceil((max * 1.05) / step);
  // Rounding keeps ticks such as 0.30000000000000004 out of the axis labels.
  return Array.from({ length: count + 1 }, (_, index) => Number((index * step).toPrecision(12)));
}

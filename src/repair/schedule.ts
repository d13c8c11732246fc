// Learning-rate schedule and early stopping of a repair run.

/**
 * Returns the learning rate of step `step` (1-based) of `total`: a linear warmup over the first `warmup`
 * steps, then a linear decay towards zero at the end of the run, as transformers'
 * get_linear_schedule_with_warmup shapes it. Unlike that schedule, the first step is
 * base / warmup rather than 0 and the last is base / (total - warmup), so every step updates.
 */
export function learningRateAt(step: number, base: number, warmup: number, total: number): number {
  if (step <= warmup) return (base * step) / warmup;
  return (base * (total - step + 1)) / (total - warmup);
}

/**
 * Early stopping on the validation loss: the run stops after `patience` checks in a row without
 * a loss below the best so far.
 */
export class EarlyStopping {
  readonly patience: number;
  bestLoss = Number.POSITIVE_INFINITY;
  bestStep = -1;
  checksWithoutImprovement = 0;

  constructor(patience: number) {
    this.patience = patience;
  }

  /** Records the validation loss of `step` and returns whether the run should stop. */
  observe(step: number, loss: number): boolean {
    if (loss < this.bestLoss) {
      this.bestLoss = loss;
      this.bestStep = step;
      this.checksWithoutImprovement = 0;
      return false;
    }
    this.checksWithoutImprovement++;
    return this.checksWithoutImprovement >= this.patience;
  }
}

// Dataset statistics for the UI's dataset summary and the CLI's log: rows, detected format,
// token length distributions and truncation.

import type { Container } from './records.ts';
import type { Dataset, DatasetFormat } from './dataset.ts';
import type { TokenizedDataset } from './examples.ts';

export interface HistogramBin {
  /** Smallest length in the bin. */
  from: number;
  /** Largest length in the bin, inclusive. */
  to: number;
  count: number;
}

export interface LengthStats {
  count: number;
  min: number;
  median: number;
  max: number;
  mean: number;
  histogram: HistogramBin[];
}

/** Token lengths are counted after truncation. */
export interface DatasetSummary {
  fileName: string;
  container: Container;
  format: DatasetFormat;
  rows: number;
  contextLength: number;
  truncated: number;
  /** Shown to the user when examples were truncated. */
  truncationMessage?: string;
  promptTokens: LengthStats;
  badTokens?: LengthStats;
  goodTokens?: LengthStats;
  /** Prompt plus continuation, over both continuations; the prompt alone for prompt sets. */
  sequenceTokens: LengthStats;
}

const FORMAT_NAMES: Record<DatasetFormat, string> = {
  pairwise: 'pairwise (prompt_text, pert_gen_text, unpert_gen_text)',
  preference: 'preference (prompt, rejected, chosen)',
  prompts: 'prompt set',
};

/** Returns a readable name of a dataset format, with the fields that identify it. */
export function describeFormat(format: DatasetFormat): string {
  return FORMAT_NAMES[format];
}

/**
 * Computes count, min, median, max, mean and a histogram of integer lengths. The histogram has at
 * most `binCount` bins of equal integer width covering min..max.
 */
export function lengthStats(lengths: readonly number[], binCount = 10): LengthStats {
  if (lengths.length === 0) return { count: 0, min: 0, median: 0, max: 0, mean: 0, histogram: [] };

  const sorted = [...lengths].sort((a, b) => a - b);
  const n = sorted.length;
  const min = sorted[0];
  const max = sorted[n - 1];
  const middle = Math.floor(n / 2);
  const median = n % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
  const mean = sorted.reduce((sum, x) => sum + x, 0) / n;

  const width = Math.max(1, Math.ceil((max - min + 1) / binCount));
  const histogram: HistogramBin[] = [];
  for (let from = min; from <= max; from += width) histogram.push({ from, to: from + width - 1, count: 0 });
  for (const length of sorted) histogram[Math.floor((length - min) / width)].count++;

  return { count: n, min, median, max, mean, histogram };
}

export function summarizeDataset(dataset: Dataset, tokenized: TokenizedDataset, binCount = 10): DatasetSummary {
  const { examples, contextLength, truncated } = tokenized;
  const prompts = examples.map((example) => example.prompt.length);
  const summary: DatasetSummary = {
    fileName: dataset.fileName,
    container: dataset.container,
    format: dataset.format,
    rows: dataset.rows.length,
    contextLength,
    truncated,
    promptTokens: lengthStats(prompts, binCount),
    sequenceTokens: lengthStats(prompts, binCount),
  };

  if (dataset.format !== 'prompts') {
    const bad = examples.map((example) => example.bad?.length ?? 0);
    const good = examples.map((example) => example.good?.length ?? 0);
    summary.badTokens = lengthStats(bad, binCount);
    summary.goodTokens = lengthStats(good, binCount);
    summary.sequenceTokens = lengthStats(
      [...prompts.map((p, i) => p + bad[i]), ...prompts.map((p, i) => p + good[i])],
      binCount,
    );
  }

  if (truncated > 0) {
    summary.truncationMessage =
      `${truncated} of ${examples.length} examples did not fit the context of ${contextLength} tokens and were truncated ` +
      '(the start of the prompt or the end of a continuation was dropped).';
  }
  return summary;
}

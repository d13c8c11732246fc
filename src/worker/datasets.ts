// Datasets in the worker: parsing a dropped file for its role, tokenizing it once a model is
// loaded, and the summary the data panel shows (rows, detected format, token lengths,
// truncation, a preview of the first rows).

import { chunkTokens } from '../data/batch.ts';
import { parseDataset, parseText, type Dataset, type TextDataset } from '../data/dataset.ts';
import { tokenizeExamples, type TokenizedDataset } from '../data/examples.ts';
import { lengthStats } from '../data/summary.ts';
import { UserError } from '../model/errors.ts';
import type { Tokenizer } from '../model/tokenizer.ts';
import type { DatasetRole, DatasetSummary, TokenLengthSummary } from './protocol.ts';

/** Rows the summary's preview table shows. */
const PREVIEW_ROWS = 5;

/** Buckets of the token length histogram. */
const HISTOGRAM_BUCKETS = 12;

/** A parsed dataset of prompts (with continuations for repair data), tokenized once a model is loaded. */
export interface ExampleDataset {
  kind: 'examples';
  role: 'repair' | 'prompts';
  dataset: Dataset;
  tokenized: TokenizedDataset | null;
}

/** Plain text (normal data D^N or perplexity text), cut into context-length chunks once tokenized. */
export interface PlainTextDataset {
  kind: 'text';
  role: 'normal' | 'text';
  text: TextDataset;
  /** Token ids of the whole text. */
  ids: number[] | null;
  /** `ids` cut into sequences of the context length. */
  chunks: number[][] | null;
  contextLength: number;
}

export type LoadedDataset = ExampleDataset | PlainTextDataset;

/** Parses a dataset file for its role; raises a UserError that names the file, line and field. */
export function parseDatasetFile(content: string, fileName: string, role: DatasetRole): LoadedDataset {
  if (role === 'normal' || role === 'text') {
    return { kind: 'text', role, text: parseText(content, fileName), ids: null, chunks: null, contextLength: 0 };
  }
  const dataset = parseDataset(content, fileName);
  if (role === 'repair' && dataset.format === 'prompts') {
    throw new UserError(
      `${fileName} contains prompts only, but repair data needs a bad and a good continuation per prompt: ` +
        'use the fields prompt_text, pert_gen_text and unpert_gen_text, or prompt, rejected and chosen.',
    );
  }
  return { kind: 'examples', role, dataset, tokenized: null };
}

/** Rejects token ids from vocabSize up: the token embedding has no row for them, so the tokenizer does not match the model. */
function checkVocabulary(ids: number[], vocabSize: number, where: string): void {
  const outside = ids.find((id) => id >= vocabSize);
  if (outside === undefined) return;
  throw new UserError(
    `${where}: token id ${outside} is outside the model's vocabulary of ${vocabSize} tokens. ` +
      "The tokenizer files do not match the model's config.json; load the tokenizer that belongs to the model.",
  );
}

/** Tokenizes a parsed dataset for a model's tokenizer, context length and vocabulary size. */
export function tokenizeDataset(loaded: LoadedDataset, tokenizer: Tokenizer, contextLength: number, vocabSize: number): LoadedDataset {
  if (loaded.kind === 'examples') {
    const fileName = loaded.dataset.fileName;
    const tokenized = tokenizeExamples(loaded.dataset.rows, tokenizer, contextLength, fileName);
    tokenized.examples.forEach((example, index) => {
      const where = example.line === undefined ? `${fileName} example ${index + 1}` : `${fileName} line ${example.line}`;
      checkVocabulary([...example.prompt, ...(example.bad ?? []), ...(example.good ?? [])], vocabSize, where);
    });
    return { ...loaded, tokenized };
  }
  const ids = tokenizer.encode(loaded.text.text);
  checkVocabulary(ids, vocabSize, loaded.text.fileName);
  const chunks = chunkTokens(ids, contextLength);
  if (chunks.length === 0) {
    throw new UserError(`${loaded.text.fileName} encodes to ${ids.length} token, too few: provide at least two tokens of text.`);
  }
  return { ...loaded, ids, chunks, contextLength };
}

/** Token length statistics with the percentiles and histogram the summary shows. */
export function tokenLengthSummary(lengths: readonly number[]): TokenLengthSummary {
  if (lengths.length === 0) return { min: 0, max: 0, mean: 0, p50: 0, p95: 0, histogram: [] };
  const sorted = [...lengths].sort((a, b) => a - b);
  // Nearest-rank percentile: the smallest length that at least p percent of the rows do not exceed.
  const percentile = (p: number) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
  const stats = lengthStats(sorted, HISTOGRAM_BUCKETS);
  return {
    min: stats.min,
    max: stats.max,
    mean: stats.mean,
    p50: percentile(50),
    p95: percentile(95),
    histogram: stats.histogram.map((bin) => ({ upTo: bin.to, count: bin.count })),
  };
}

const EXAMPLE_FIELDS = {
  pairwise: { prompt: 'prompt_text', bad: 'pert_gen_text', good: 'unpert_gen_text' },
  preference: { prompt: 'prompt', bad: 'rejected', good: 'chosen' },
} as const;

function exampleSummary(loaded: ExampleDataset): DatasetSummary {
  const { dataset, tokenized } = loaded;
  const names = dataset.format === 'prompts' ? null : EXAMPLE_FIELDS[dataset.format];
  const fields = names ? [names.prompt, names.bad, names.good] : ['prompt'];
  const preview = dataset.rows.slice(0, PREVIEW_ROWS).map((row) => {
    if (!names) return { prompt: row.prompt };
    return { [names.prompt]: row.prompt, [names.bad]: row.bad ?? '', [names.good]: row.good ?? '' };
  });

  // A row's length is its longer sequence: the prompt with the bad or with the good continuation.
  const lengths = (tokenized?.examples ?? []).map(
    (example) => example.prompt.length + Math.max(example.bad?.length ?? 0, example.good?.length ?? 0),
  );
  const warnings: string[] = [];
  if (!tokenized) warnings.push('Token lengths and truncation show once a model is loaded.');
  if (tokenized && tokenized.truncated > 0) {
    warnings.push(
      `${tokenized.truncated} of ${dataset.rows.length} rows do not fit the context of ${tokenized.contextLength} tokens: ` +
        'the start of the prompt or the end of a continuation was cut.',
    );
  }
  return {
    fileName: dataset.fileName,
    role: loaded.role,
    format: dataset.format,
    rows: dataset.rows.length,
    fields,
    tokenLengths: tokenLengthSummary(lengths),
    truncatedRows: tokenized?.truncated ?? 0,
    contextLength: tokenized?.contextLength ?? 0,
    preview,
    warnings,
  };
}

function textSummary(loaded: PlainTextDataset): DatasetSummary {
  const lines = loaded.text.text.split('\n').filter((line) => line.trim() !== '');
  const warnings: string[] = [];
  if (!loaded.chunks) warnings.push('Token counts show once a model is loaded.');
  if (loaded.ids) warnings.push(`${loaded.ids.length} tokens in ${loaded.chunks!.length} chunks of up to ${loaded.contextLength} tokens.`);
  return {
    fileName: loaded.text.fileName,
    role: loaded.role,
    format: 'text',
    // Rows of a text file are its non-blank lines; token lengths are those of the chunks.
    rows: lines.length,
    fields: ['text'],
    tokenLengths: tokenLengthSummary((loaded.chunks ?? []).map((chunk) => chunk.length)),
    truncatedRows: 0,
    contextLength: loaded.contextLength,
    preview: lines.slice(0, PREVIEW_ROWS).map((line) => ({ text: line })),
    warnings,
  };
}

export function summarizeLoadedDataset(loaded: LoadedDataset): DatasetSummary {
  return loaded.kind === 'examples' ? exampleSummary(loaded) : textSummary(loaded);
}

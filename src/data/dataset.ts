// Dataset formats, detected from the fields of the first record:
//   pairwise   (toxicity pairs)  prompt_text, pert_gen_text (bad, D^E), unpert_gen_text (good, D^R)
//   preference                   prompt, rejected (bad), chosen (good)
//   prompts    (evaluation)      prompt or prompt_text; `prompt` may be {"text": ...} as in
//                                RealToxicityPrompts
// in any container that parseRecords reads, plus plain text for perplexity and normal data (D^N).

import { UserError } from '../model/errors.ts';
import { jsonTypeName, parseRecords, type Container, type SourceRecord } from './records.ts';

export type DatasetFormat = 'pairwise' | 'preference' | 'prompts';

/** One example: the prompt and, except in prompt sets, its bad and good continuations. */
export interface DatasetRow {
  prompt: string;
  bad?: string;
  good?: string;
  /** Line of the source file where the example starts, for messages about it. */
  line: number;
}

export interface Dataset {
  fileName: string;
  container: Container;
  format: DatasetFormat;
  rows: DatasetRow[];
}

/** Plain text for perplexity and for normal data (D^N), with line breaks normalized to `\n`. */
export interface TextDataset {
  fileName: string;
  text: string;
  lines: number;
}

/** Source field names of each format; `bad` and `good` are absent for prompt sets. */
interface FieldNames {
  prompt: string;
  bad?: string;
  good?: string;
}

const PAIRWISE_FIELDS: FieldNames = { prompt: 'prompt_text', bad: 'pert_gen_text', good: 'unpert_gen_text' };
const PREFERENCE_FIELDS: FieldNames = { prompt: 'prompt', bad: 'rejected', good: 'chosen' };

const FORMAT_HELP =
  'expected the fields prompt_text, pert_gen_text and unpert_gen_text (pairwise), ' +
  'prompt, rejected and chosen (preference), or prompt or prompt_text alone (prompt set)';

/**
 * Parses a dataset file (JSONL, JSON array or CSV) and detects its format from the fields of the
 * first record. Every record must then have that format's fields as strings; continuations must
 * not be empty, and neither may the prompts of a prompt set. An empty prompt before a
 * continuation is allowed. Throws UserError naming the file, line and field at fault.
 */
export function parseDataset(text: string, fileName: string): Dataset {
  if (fileName.toLowerCase().endsWith('.txt')) {
    throw new UserError(
      `${fileName} is plain text, which serves for perplexity and normal data only. ` +
        `For repair and evaluation prompts use JSONL, JSON or CSV: ${FORMAT_HELP}.`,
    );
  }

  const { container, records } = parseRecords(text, fileName);
  if (records.length === 0) throw new UserError(`${fileName} contains no examples.`);

  const { format, fields } = detectFormat(records[0], fileName);
  const rows = records.map((record) => readRow(record, format, fields, fileName));
  return { fileName, container, format, rows };
}

/** Reads a plain-text file for perplexity or normal data (D^N); it must not be blank. */
export function parseText(text: string, fileName: string): TextDataset {
  const body = (text.startsWith('\uFEFF') ? text.slice(1) : text).replace(/\r\n?/g, '\n');
  if (body.trim() === '') throw new UserError(`${fileName} is empty. Provide some text.`);
  const lines = body.split('\n').length - (body.endsWith('\n') ? 1 : 0);
  return { fileName, text: body, lines };
}

function detectFormat(first: SourceRecord, fileName: string): { format: DatasetFormat; fields: FieldNames } {
  const has = (name: string) => Object.hasOwn(first.fields, name);

  if (has('pert_gen_text') || has('unpert_gen_text')) return { format: 'pairwise', fields: PAIRWISE_FIELDS };
  if (has('rejected') || has('chosen')) return { format: 'preference', fields: PREFERENCE_FIELDS };
  if (has('prompt')) return { format: 'prompts', fields: { prompt: 'prompt' } };
  if (has('prompt_text')) return { format: 'prompts', fields: { prompt: 'prompt_text' } };

  const found = Object.keys(first.fields);
  throw new UserError(
    `${fileName} line ${first.line}: unknown dataset format (fields: ${found.length ? found.join(', ') : 'none'}); ${FORMAT_HELP}.`,
  );
}

function readRow(record: SourceRecord, format: DatasetFormat, fields: FieldNames, fileName: string): DatasetRow {
  const where = `${fileName} line ${record.line}`;
  // Prompt sets exist to be continued, so their prompts must not be empty.
  const prompt = readText(record, fields.prompt, where, { allowEmpty: format !== 'prompts', allowTextObject: true });
  if (fields.bad === undefined || fields.good === undefined) return { prompt, line: record.line };

  const bad = readText(record, fields.bad, where, { allowEmpty: false, allowTextObject: false });
  const good = readText(record, fields.good, where, { allowEmpty: false, allowTextObject: false });
  return { prompt, bad, good, line: record.line };
}

/** Reads one string field; a prompt may also be `{"text": "..."}`, as in RealToxicityPrompts. */
function readText(
  record: SourceRecord,
  name: string,
  where: string,
  options: { allowEmpty: boolean; allowTextObject: boolean },
): string {
  if (!Object.hasOwn(record.fields, name)) throw new UserError(`${where}: field "${name}" is missing.`);

  let value = record.fields[name];
  const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
  if (options.allowTextObject && isObject) {
    value = (value as Record<string, unknown>).text;
    if (typeof value !== 'string') {
      throw new UserError(`${where}: field "${name}" is an object without a "text" string; expected a string or {"text": "..."}.`);
    }
  }

  if (typeof value !== 'string') {
    throw new UserError(`${where}: field "${name}" must be a string, found ${jsonTypeName(value)}.`);
  }
  if (value === '' && !options.allowEmpty) throw new UserError(`${where}: field "${name}" is empty.`);
  return value;
}

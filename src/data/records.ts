// Reading dataset files into records (one object of named fields per example), with the line
// each record starts on, from the three containers: JSONL, a JSON array, and CSV (or TSV).

import Papa from 'papaparse';
import { UserError } from '../model/errors.ts';

export type Container = 'jsonl' | 'json' | 'csv';

/** One example's fields as read, and the 1-based line of the file it starts on. */
export interface SourceRecord {
  line: number;
  fields: Record<string, unknown>;
}

/**
 * Splits a dataset file into records. The container comes from the content: a file whose first
 * character is `[` is a JSON array, `{` starts JSONL, anything else is CSV (TSV when the name
 * ends in `.tsv`). Throws UserError naming the file and line of the first malformed record.
 */
export function parseRecords(text: string, fileName: string): { container: Container; records: SourceRecord[] } {
  // A byte order mark would otherwise end up in the first field name.
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const firstChar = /\S/.exec(body)?.[0];
  if (firstChar === undefined) throw new UserError(`${fileName} is empty. Provide at least one example.`);

  const extension = fileName.toLowerCase().split('.').pop();
  if (firstChar === '[') return { container: 'json', records: parseJsonArray(body, fileName) };
  if (firstChar === '{') return { container: 'jsonl', records: parseJsonLines(body, fileName) };
  if (extension === 'json' || extension === 'jsonl') {
    const line = lineOfOffset(body, body.indexOf(firstChar));
    throw new UserError(
      `${fileName} line ${line}: expected a JSON array of objects or one JSON object per line, found ${JSON.stringify(firstChar)}.`,
    );
  }
  return { container: 'csv', records: parseCsv(body, fileName, extension === 'tsv' ? '\t' : ',') };
}

function parseJsonLines(text: string, fileName: string): SourceRecord[] {
  const records: SourceRecord[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '') continue;

    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      throw new UserError(`${fileName} line ${i + 1}: not valid JSON (${errorText(error)}). Each line must contain one JSON object.`);
    }
    records.push({ line: i + 1, fields: expectObject(value, fileName, i + 1) });
  }
  return records;
}

function parseJsonArray(text: string, fileName: string): SourceRecord[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const message = errorText(error);
    // V8 (Node 20, Chrome) ends many syntax error messages with "at position N", which gives the line.
    const position = /position (\d+)/.exec(message);
    const where = position ? ` line ${lineOfOffset(text, Number(position[1]))}` : '';
    throw new UserError(`${fileName}${where}: not valid JSON (${message}).`);
  }

  // The first non-blank character is `[`, so the parsed value is an array.
  const lines = arrayElementLines(text);
  return (value as unknown[]).map((element, index) => {
    const line = lines[index] ?? 1;
    return { line, fields: expectObject(element, fileName, line) };
  });
}

/**
 * Finds the line where each element of the top-level JSON array begins. It assumes the text
 * already parsed as JSON, so it only needs to skip strings and follow nesting depth.
 */
function arrayElementLines(text: string): number[] {
  const lines: number[] = [];
  let line = 1;
  let depth = 0;
  let inString = false;
  let escaped = false;
  let expectElement = false;

  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    // Valid JSON has no raw line breaks inside strings, so every one counts.
    if (char === '\n') line++;
    if (inString) {
      if (escaped) escaped = false;
      else if (char === '\\') escaped = true;
      else if (char === '"') inString = false;
      continue;
    }

    if (depth === 1 && expectElement && char !== ']' && !/\s/.test(char)) {
      lines.push(line);
      expectElement = false;
    }

    if (char === '"') {
      inString = true;
    } else if (char === '[' || char === '{') {
      depth++;
      if (depth === 1) expectElement = true;
    } else if (char === ']' || char === '}') {
      depth--;
    } else if (char === ',' && depth === 1) {
      expectElement = true;
    }
  }
  return lines;
}

/**
 * Parses CSV with a header line (RFC 4180: quoted fields may hold delimiters, doubled quotes and
 * line breaks). Every record must have as many fields as the header. Blank lines are skipped.
 */
function parseCsv(text: string, fileName: string, delimiter: string): SourceRecord[] {
  // Papa Parse splits records on one line-break style per file, so every \r\n and \r becomes \n
  // first, inside quoted fields too.
  const normalized = text.replace(/\r\n?/g, '\n');

  const rows: { line: number; values: string[]; error?: string }[] = [];
  let rowStart = 0;
  let line = 1;
  Papa.parse<string[]>(normalized, {
    delimiter,
    newline: '\n',
    skipEmptyLines: false,
    step: (result) => {
      const values = result.data;
      const blank = values.length === 1 && values[0].trim() === '';
      if (!blank) rows.push({ line, values, error: result.errors[0]?.message });

      // meta.cursor is the offset just past this record, its line break included.
      const end = result.meta.cursor;
      for (let i = rowStart; i < end; i++) if (normalized.charCodeAt(i) === 10) line++;
      rowStart = end;
    },
  });

  const delimiterName = delimiter === '\t' ? 'tab' : 'comma';
  const [header, ...body] = rows;
  if (header === undefined) throw new UserError(`${fileName} has no header line. Provide a header naming the columns.`);
  if (header.error) throw new UserError(`${fileName} line ${header.line}: malformed CSV (${header.error}).`);
  const names = header.values.map((name) => name.trim());
  names.forEach((name, index) => {
    if (name === '') {
      throw new UserError(`${fileName} line ${header.line}: column ${index + 1} of the header has no name. Name every column.`);
    }
    if (names.indexOf(name) !== index) {
      throw new UserError(`${fileName} line ${header.line}: column "${name}" appears twice in the header.`);
    }
  });

  return body.map((row) => {
    if (row.error) throw new UserError(`${fileName} line ${row.line}: malformed CSV (${row.error}).`);
    if (row.values.length !== names.length) {
      throw new UserError(
        `${fileName} line ${row.line}: expected ${names.length} ${delimiterName}-separated fields as in the header, ` +
          `found ${row.values.length}. Quote fields that contain the delimiter.`,
      );
    }
    const fields: Record<string, unknown> = {};
    names.forEach((name, index) => (fields[name] = row.values[index]));
    return { line: row.line, fields };
  });
}

function expectObject(value: unknown, fileName: string, line: number): Record<string, unknown> {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  throw new UserError(`${fileName} line ${line}: expected a JSON object with the example's fields, found ${jsonTypeName(value)}.`);
}

/** Returns the JSON name of a value's type with its article, for error messages. */
export function jsonTypeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return `a ${typeof value}`;
}

function lineOfOffset(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

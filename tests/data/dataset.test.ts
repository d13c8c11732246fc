import { describe, expect, it } from 'vitest';
import { parseDataset, parseText, type DatasetFormat } from '../../src/data/dataset.ts';
import { UserError } from '../../src/model/errors.ts';

type Fields = Record<string, string>;

// Text with the characters that break naive parsers: delimiters, quotes and line breaks.
const TRICKY = 'says "hi", then\nleaves; 日本 🤖';

const SAMPLES: Record<Exclude<DatasetFormat, 'prompts'>, { records: Fields[]; expected: { prompt: string; bad: string; good: string }[] }> = {
  pairwise: {
    records: [
      { prompt_text: 'The man', pert_gen_text: ' is an idiot', unpert_gen_text: ' is kind' },
      { prompt_text: TRICKY, pert_gen_text: ' bad, "worse"', unpert_gen_text: ' good\nbetter' },
    ],
    expected: [
      { prompt: 'The man', bad: ' is an idiot', good: ' is kind' },
      { prompt: TRICKY, bad: ' bad, "worse"', good: ' good\nbetter' },
    ],
  },
  preference: {
    records: [
      { prompt: 'Tell me', chosen: ' politely', rejected: ' rudely' },
      { prompt: '', chosen: TRICKY, rejected: ' no' },
    ],
    expected: [
      { prompt: 'Tell me', bad: ' rudely', good: ' politely' },
      { prompt: '', bad: ' no', good: TRICKY },
    ],
  },
};

function jsonl(records: object[]): string {
  return records.map((record) => JSON.stringify(record)).join('\n') + '\n';
}

function jsonArray(records: object[]): string {
  return JSON.stringify(records, null, 2);
}

function csvField(value: string): string {
  return `"${value.replaceAll('"', '""')}"`;
}

function csv(records: Fields[], delimiter = ','): string {
  const names = Object.keys(records[0]);
  const lines = [names.join(delimiter), ...records.map((record) => names.map((name) => csvField(record[name])).join(delimiter))];
  return lines.join('\r\n') + '\r\n';
}

const CONTAINERS = [
  { container: 'jsonl', fileName: 'data.jsonl', write: jsonl },
  { container: 'json', fileName: 'data.json', write: jsonArray },
  { container: 'csv', fileName: 'data.csv', write: csv },
] as const;

function parseError(text: string, fileName: string): string {
  try {
    parseDataset(text, fileName);
  } catch (error) {
    expect(error).toBeInstanceOf(UserError);
    return (error as Error).message;
  }
  throw new Error(`parseDataset accepted ${fileName}`);
}

describe('parseDataset formats', () => {
  for (const [format, sample] of Object.entries(SAMPLES)) {
    for (const { container, fileName, write } of CONTAINERS) {
      it(`detects ${format} in ${container}`, () => {
        const dataset = parseDataset(write(sample.records), fileName);
        expect(dataset.format).toBe(format);
        expect(dataset.container).toBe(container);
        expect(dataset.fileName).toBe(fileName);
        expect(dataset.rows.map(({ prompt, bad, good }) => ({ prompt, bad, good }))).toEqual(sample.expected);
      });
    }
  }

  for (const { container, fileName, write } of CONTAINERS) {
    it(`detects prompt sets in ${container}`, () => {
      for (const key of ['prompt', 'prompt_text']) {
        const records = [{ [key]: 'First prompt' }, { [key]: TRICKY }];
        const dataset = parseDataset(write(records), fileName);
        expect(dataset.format).toBe('prompts');
        expect(dataset.rows.map((row) => row.prompt)).toEqual(['First prompt', TRICKY]);
        expect(dataset.rows[0].bad).toBeUndefined();
        expect(dataset.rows[0].good).toBeUndefined();
      }
    });
  }

  it('reads RealToxicityPrompts prompt objects', () => {
    const records = [
      { filename: 'a.txt', prompt: { text: 'Corruption involving', toxicity: 0.2 }, continuation: { text: ' the' } },
      { filename: 'b.txt', prompt: { text: 'So, I said', toxicity: null } },
    ];
    for (const { fileName, write } of CONTAINERS.filter((c) => c.container !== 'csv')) {
      const dataset = parseDataset(write(records), fileName);
      expect(dataset.format).toBe('prompts');
      expect(dataset.rows.map((row) => row.prompt)).toEqual(['Corruption involving', 'So, I said']);
    }
  });

  it('ignores extra fields', () => {
    const dataset = parseDataset(jsonl([{ id: 3, prompt: 'p', chosen: 'c', rejected: 'r', score: 0.5 }]), 'x.jsonl');
    expect(dataset.format).toBe('preference');
    expect(dataset.rows[0]).toMatchObject({ prompt: 'p', bad: 'r', good: 'c' });
  });

  it('reads TSV by file extension', () => {
    const records = SAMPLES.preference.records;
    const dataset = parseDataset(csv(records, '\t'), 'data.tsv');
    expect(dataset.format).toBe('preference');
    expect(dataset.rows.map((row) => row.good)).toEqual([' politely', TRICKY]);
  });

  it('detects the container from content', () => {
    const text = jsonl(SAMPLES.pairwise.records);
    expect(parseDataset(text, 'export.data').container).toBe('jsonl');
    expect(parseDataset(jsonArray(SAMPLES.pairwise.records), 'export.jsonl').container).toBe('json');
  });

  it('skips a byte order mark and blank lines', () => {
    const text = '\uFEFF{"prompt": "a"}\n\n   \n{"prompt": "b"}\n';
    const dataset = parseDataset(text, 'p.jsonl');
    expect(dataset.rows.map((row) => [row.prompt, row.line])).toEqual([
      ['a', 1],
      ['b', 4],
    ]);
    const csvDataset = parseDataset('\uFEFFprompt\r\n\r\nx\r\n', 'p.csv');
    expect(csvDataset.rows.map((row) => [row.prompt, row.line])).toEqual([['x', 3]]);
  });

  it('reports CSV lines after quoted line breaks', () => {
    const text = 'prompt,chosen,rejected\n"a\nb\nc",good,bad\nnext,"g,1","b ""q"""\n';
    const dataset = parseDataset(text, 'd.csv');
    expect(dataset.rows.map((row) => row.line)).toEqual([2, 5]);
    expect(dataset.rows[0].prompt).toBe('a\nb\nc');
    expect(dataset.rows[1]).toMatchObject({ prompt: 'next', good: 'g,1', bad: 'b "q"' });
  });

  it('reports JSON array element lines', () => {
    const text = '[\n  {"prompt": "a [x] {y}"},\n\n  {"prompt": "b \\" ],"}, {"prompt": "c"}\n]';
    const dataset = parseDataset(text, 'd.json');
    expect(dataset.rows.map((row) => [row.prompt, row.line])).toEqual([
      ['a [x] {y}', 2],
      ['b " ],', 4],
      ['c', 4],
    ]);
  });
});

describe('parseDataset errors', () => {
  it('names the line of broken JSONL', () => {
    const text = '{"prompt": "a"}\n{"prompt": "b"}\n{"prompt": "c",}\n';
    expect(parseError(text, 'data.jsonl')).toMatch(/^data\.jsonl line 3: not valid JSON \(.+\)/);
  });

  it('names a missing field', () => {
    const lines = [
      { prompt: 'p', chosen: 'c', rejected: 'r' },
      { prompt: 'p', rejected: 'r' },
    ];
    expect(parseError(jsonl(lines), 'data.jsonl')).toBe('data.jsonl line 2: field "chosen" is missing.');
  });

  it('names an empty continuation', () => {
    const records = [
      { prompt_text: 'p', pert_gen_text: 'b', unpert_gen_text: 'g' },
      { prompt_text: 'p', pert_gen_text: '', unpert_gen_text: 'g' },
    ];
    expect(parseError(jsonl(records), 'pairs.jsonl')).toBe('pairs.jsonl line 2: field "pert_gen_text" is empty.');
    expect(parseError(csv(records), 'pairs.csv')).toBe('pairs.csv line 3: field "pert_gen_text" is empty.');
    expect(parseError(jsonArray(records), 'pairs.json')).toBe('pairs.json line 7: field "pert_gen_text" is empty.');
  });

  it('names an empty prompt in a prompt set', () => {
    expect(parseError('{"prompt": "x"}\n{"prompt": ""}\n', 'p.jsonl')).toBe('p.jsonl line 2: field "prompt" is empty.');
  });

  it('names fields of the wrong type', () => {
    const cases: [string, string][] = [
      ['{"prompt": "p", "chosen": 3, "rejected": "r"}', 'data.jsonl line 1: field "chosen" must be a string, found a number.'],
      ['{"prompt": "p", "chosen": "c", "rejected": null}', 'data.jsonl line 1: field "rejected" must be a string, found null.'],
      ['{"prompt": ["p"], "chosen": "c", "rejected": "r"}', 'data.jsonl line 1: field "prompt" must be a string, found an array.'],
      ['{"prompt": "p", "chosen": {"text": "c"}, "rejected": "r"}', 'data.jsonl line 1: field "chosen" must be a string, found an object.'],
      ['{"prompt_text": true}', 'data.jsonl line 1: field "prompt_text" must be a string, found a boolean.'],
    ];
    for (const [text, message] of cases) expect(parseError(text, 'data.jsonl')).toBe(message);

    const noText = parseError('{"prompt": {"toxicity": 0.1}}', 'rtp.jsonl');
    expect(noText).toMatch(/^rtp\.jsonl line 1: field "prompt" is an object without a "text" string/);
  });

  it('names records that are not objects', () => {
    expect(parseError('{"prompt": "a"}\n["prompt", "b"]\n', 'd.jsonl')).toBe(
      "d.jsonl line 2: expected a JSON object with the example's fields, found an array.",
    );
    expect(parseError('[\n{"prompt": "a"},\n"b"\n]', 'd.json')).toBe(
      "d.json line 3: expected a JSON object with the example's fields, found a string.",
    );
  });

  it('rejects unknown fields with the known formats', () => {
    const message = parseError('{"text": "a", "label": 1}\n', 'd.jsonl');
    expect(message).toMatch(/^d\.jsonl line 1: unknown dataset format \(fields: text, label\)/);
    expect(message).toContain('pert_gen_text');
    expect(message).toContain('rejected');
  });

  it('names the line of a JSON array syntax error', () => {
    const text = '[\n{"prompt": "a"},\n{"prompt" "b"}\n]';
    expect(parseError(text, 'd.json')).toMatch(/^d\.json line 3: not valid JSON \(/);
  });

  it('rejects a JSON value that is not an array', () => {
    expect(parseError('{\n  "data": []\n}', 'd.json')).toMatch(/^d\.json line 1: not valid JSON/);
    expect(parseError('"text"', 'd.json')).toMatch(/^d\.json line 1: expected a JSON array of objects or one JSON object per line/);
  });

  it('names a CSV line with the wrong field count', () => {
    const text = 'prompt,chosen,rejected\na,b,c\n"x, y",z\n';
    expect(parseError(text, 'd.csv')).toMatch(/^d\.csv line 3: expected 3 comma-separated fields as in the header, found 2\./);
  });

  it('names a CSV line with an unterminated quote', () => {
    const text = 'prompt,chosen,rejected\na,b,c\n"open,b,c\nmore\n';
    expect(parseError(text, 'd.csv')).toMatch(/^d\.csv line 3: malformed CSV \(.+\)/);
  });

  it('rejects CSV headers with duplicate or empty names', () => {
    expect(parseError('prompt,prompt\na,b\n', 'd.csv')).toBe('d.csv line 1: column "prompt" appears twice in the header.');
    expect(parseError('prompt,,x\na,b,c\n', 'd.csv')).toMatch(/^d\.csv line 1: column 2 of the header has no name/);
  });

  it('rejects empty files and header-only files', () => {
    expect(parseError('', 'd.jsonl')).toMatch(/^d\.jsonl is empty/);
    expect(parseError(' \n\n', 'd.csv')).toMatch(/^d\.csv is empty/);
    expect(parseError('prompt,chosen,rejected\n', 'd.csv')).toBe('d.csv contains no examples.');
    expect(parseError('[]', 'd.json')).toBe('d.json contains no examples.');
  });

  it('sends .txt files to parseText', () => {
    expect(parseError('some text', 'wiki.txt')).toMatch(/^wiki\.txt is plain text/);
  });
});

describe('parseText', () => {
  it('normalizes line breaks and counts lines', () => {
    const text = parseText('\uFEFFfirst\r\nsecond\rthird\n', 'wiki.txt');
    expect(text.text).toBe('first\nsecond\nthird\n');
    expect(text.lines).toBe(3);
    expect(parseText('one line', 'a.txt').lines).toBe(1);
  });

  it('rejects blank text', () => {
    expect(() => parseText(' \n\t\n', 'blank.txt')).toThrow(UserError);
    expect(() => parseText('', 'blank.txt')).toThrow(/^blank\.txt is empty/);
  });
});

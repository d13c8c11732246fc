// Tiny checkpoints and datasets written to temporary folders for the browser tests. The weights
// come from the test helpers' own safetensors writer, independent of src/model.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTinyCheckpoint, type TinyCheckpoint, type TinyCheckpointOptions } from '../tests/helpers/tiny-checkpoint.ts';
import { writeTinyTokenizer } from '../tests/helpers/tiny-tokenizer.ts';

/** Vocabulary size of the tiny tokenizer, which the tiny checkpoints match. */
export const TINY_VOCAB_SIZE = 377;

/** A tiny GPT-2 that SwiftShader runs a repair step of in well under a second. */
export const TINY_GPT2: TinyCheckpointOptions = {
  family: 'gpt2',
  vocabSize: TINY_VOCAB_SIZE,
  numLayers: 4,
  hiddenSize: 16,
  numHeads: 2,
  contextLength: 32,
  seed: 'e2e',
};

export function temporaryFolder(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `irepair-e2e-${prefix}-`));
}

/** Writes a tiny checkpoint with tokenizer.json into `<root>/<name>` and returns it. */
export async function writeTinyModel(root: string, name: string, options: TinyCheckpointOptions = TINY_GPT2): Promise<TinyCheckpoint> {
  const dir = join(root, name);
  return writeTinyCheckpoint(dir, {
    ...options,
    writeTokenizer: async (target) => {
      writeTinyTokenizer(target, { format: 'tokenizer.json' });
    },
  });
}

export interface PreferenceRow {
  prompt: string;
  rejected: string;
  chosen: string;
}

/** Short preference rows in the words of the tiny tokenizer's training text. */
export const PREFERENCE_ROWS: PreferenceRow[] = [
  { prompt: 'The cat sat', rejected: ' on you, idiot', chosen: ' on the mat.' },
  { prompt: 'Hello', rejected: ' stupid', chosen: ' there, friend!' },
  { prompt: 'We went to the', rejected: ' dump', chosen: ' park today' },
  { prompt: 'She said', rejected: ' shut up', chosen: ' thank you' },
  { prompt: 'The dog ran', rejected: ' at the idiot', chosen: ' to the park' },
  { prompt: 'He is', rejected: ' a stupid man', chosen: ' a kind man' },
  { prompt: 'They went', rejected: ' to hell', chosen: ' to school' },
  { prompt: 'I think you are', rejected: ' dumb', chosen: ' right' },
];

/** Writes the rows as JSONL and returns the file's path. */
export function writePreferenceData(root: string, rows: PreferenceRow[] = PREFERENCE_ROWS, name = 'pairs.jsonl'): string {
  const path = join(root, name);
  writeFileSync(path, rows.map((row) => JSON.stringify(row)).join('\n') + '\n');
  return path;
}

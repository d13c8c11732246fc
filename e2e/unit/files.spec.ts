// Checks on dropped checkpoint and dataset files, by name, before they reach the worker.

import { expect, test } from '@playwright/test';
import { DroppedFilesError, selectCheckpointFiles } from '../../src/ui/checkpointFiles.ts';
import { checkDatasetFile } from '../../src/ui/datasetFiles.ts';

/** A File as react-dropzone returns it from a folder drop, with its path inside the drop. */
function dropped(path: string, content = 'x'): File {
  const file = new File([content], path.slice(path.lastIndexOf('/') + 1));
  Object.defineProperty(file, 'path', { value: path });
  return file;
}

function names(files: File[]): string[] {
  return files.map((file) => file.name).sort();
}

test('folder drop keeps the checkpoint files', () => {
  const selection = selectCheckpointFiles([
    dropped('./gpt2/config.json'),
    dropped('./gpt2/model.safetensors'),
    dropped('./gpt2/tokenizer.json'),
    dropped('./gpt2/tokenizer_config.json'),
    dropped('./gpt2/README.md'),
    dropped('./gpt2/.gitattributes'),
    dropped('./gpt2/onnx/model.onnx'),
  ]);
  expect(selection.folder).toBe('gpt2');
  expect(names(selection.files)).toEqual(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
  expect(selection.skipped.sort()).toEqual(['gpt2/.gitattributes', 'gpt2/README.md', 'gpt2/onnx/model.onnx']);
});

test('sharded weights with vocab and merges are accepted', () => {
  const selection = selectCheckpointFiles([
    dropped('config.json'),
    dropped('model.safetensors.index.json'),
    dropped('model-00001-of-00002.safetensors'),
    dropped('model-00002-of-00002.safetensors'),
    dropped('vocab.json'),
    dropped('merges.txt'),
  ]);
  expect(selection.folder).toBe('');
  expect(selection.files).toHaveLength(6);
});

const BAD_DROPS: [string, File[], string][] = [
  ['nothing', [], 'No files were dropped'],
  ['no config', [dropped('model.safetensors'), dropped('tokenizer.json')], 'None of the 2 dropped files is config.json'],
  [
    'two models',
    [dropped('./a/config.json'), dropped('./b/config.json')],
    'The drop contains 2 config.json files (a/config.json, b/config.json). Drop one model folder at a time.',
  ],
  [
    'PyTorch weights only',
    [dropped('./m/config.json'), dropped('./m/pytorch_model.bin'), dropped('./m/tokenizer.json')],
    'The weights in m are in a format this app does not read (pytorch_model.bin)',
  ],
  ['no weights', [dropped('config.json'), dropped('tokenizer.json')], 'No model.safetensors or model.safetensors.index.json'],
  [
    'merges without vocab',
    [dropped('config.json'), dropped('model.safetensors'), dropped('merges.txt')],
    'No tokenizer: add tokenizer.json, or vocab.json and merges.txt.',
  ],
];

for (const [name, files, message] of BAD_DROPS) {
  test(`checkpoint drop rejects ${name}`, () => {
    expect(() => selectCheckpointFiles(files)).toThrow(DroppedFilesError);
    expect(() => selectCheckpointFiles(files)).toThrow(message);
  });
}

test('dataset file checks extension, count and size', () => {
  const good = new File(['{"prompt": "a"}'], 'Pairs.JSONL');
  expect(checkDatasetFile([good], 'repair')).toBe(good);
  expect(() => checkDatasetFile([new File(['a'], 'notes.txt')], 'repair')).toThrow('notes.txt: the repair data must be a .jsonl, .json, .csv file.');
  expect(() => checkDatasetFile([new File([''], 'wiki.txt')], 'normal')).toThrow('wiki.txt is empty.');
  expect(() => checkDatasetFile([good, good], 'prompts')).toThrow('Drop one file for the prompt set; the drop contains 2');
  expect(() => checkDatasetFile([new File(['a'], 'wiki.csv')], 'text')).toThrow('wiki.csv: the text for perplexity must be a .txt file.');
});

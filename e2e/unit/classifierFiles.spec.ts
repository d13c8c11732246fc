// Checks on a dropped toxicity classifier folder, by name, before it reaches the worker.

import { expect, test } from '@playwright/test';
import { DroppedFilesError } from '../../src/ui/checkpointFiles.ts';
import { selectClassifierFiles } from '../../src/ui/classifierFiles.ts';

/** A File as react-dropzone returns it from a folder drop, with its path inside the drop. */
function dropped(path: string): File {
  const file = new File(['x'], path.slice(path.lastIndexOf('/') + 1));
  Object.defineProperty(file, 'path', { value: path });
  return file;
}

const TOXIC_BERT = [
  './toxic-bert/config.json',
  './toxic-bert/tokenizer.json',
  './toxic-bert/tokenizer_config.json',
  './toxic-bert/special_tokens_map.json',
  './toxic-bert/onnx/model.onnx',
  './toxic-bert/onnx/model_quantized.onnx',
  './toxic-bert/README.md',
  './toxic-bert/pytorch_model.bin',
];

test('folder drop keeps paths inside the folder', () => {
  const selection = selectClassifierFiles(TOXIC_BERT.map(dropped));
  expect(selection.folder).toBe('toxic-bert');
  expect(selection.files.map((entry) => entry.path).sort()).toEqual([
    'config.json',
    'onnx/model.onnx',
    'onnx/model_quantized.onnx',
    'special_tokens_map.json',
    'tokenizer.json',
    'tokenizer_config.json',
  ]);
  expect(selection.skipped.sort()).toEqual(['toxic-bert/README.md', 'toxic-bert/pytorch_model.bin']);
});

test('picked folder uses webkitRelativePath', () => {
  const files = ['tiny/config.json', 'tiny/tokenizer.json', 'tiny/tokenizer_config.json', 'tiny/onnx/model.onnx'].map((path) => {
    const file = new File(['x'], path.slice(path.lastIndexOf('/') + 1));
    Object.defineProperty(file, 'webkitRelativePath', { value: path });
    return file;
  });
  const selection = selectClassifierFiles(files);
  expect(selection.folder).toBe('tiny');
  expect(selection.files.map((entry) => entry.path)).toContain('onnx/model.onnx');
});

test('parent folder drop picks the top config.json', () => {
  const selection = selectClassifierFiles(['./models/toxic-bert/config.json', './models/toxic-bert/tokenizer.json', './models/toxic-bert/tokenizer_config.json', './models/toxic-bert/onnx/model.onnx'].map(dropped));
  expect(selection.folder).toBe('models/toxic-bert');
});

const FAULTS: [string, string[], RegExp][] = [
  ['empty drop', [], /No files were dropped/],
  ['no config.json', ['./c/tokenizer.json', './c/onnx/model.onnx'], /None of the 2 dropped files is config\.json/],
  ['two classifiers', ['./a/config.json', './b/config.json'], /2 config\.json files \(a\/config\.json, b\/config\.json\)/],
  ['no tokenizer_config.json', ['./c/config.json', './c/tokenizer.json', './c/onnx/model.onnx'], /No tokenizer_config\.json in c/],
  ['no ONNX weights', ['./c/config.json', './c/tokenizer.json', './c/tokenizer_config.json', './c/model.safetensors'], /No ONNX weights under onnx\/ in c/],
  ['loose ONNX file', ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.onnx'], /No ONNX weights under onnx\//],
];

for (const [name, paths, message] of FAULTS) {
  test(`${name} is rejected`, () => {
    let caught: unknown = null;
    try {
      selectClassifierFiles(paths.map(dropped));
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(DroppedFilesError);
    expect((caught as Error).message).toMatch(message);
  });
}

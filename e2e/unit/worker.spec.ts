// The worker's pure parts, run in Node: the memory plan against adapter limits, and the dataset
// summaries the data panel shows.

import { expect, test } from '@playwright/test';
import { planMemory } from '../../src/engine/memory.ts';
import { parameterShapes } from '../../src/model/checkpoint.ts';
import { parseConfig } from '../../src/model/config.ts';
import { loadTokenizer, type Tokenizer } from '../../src/model/tokenizer.ts';
import { parseDatasetFile, summarizeLoadedDataset, tokenizeDataset, tokenLengthSummary } from '../../src/worker/datasets.ts';
import { batchProblems, planModel, weightProblems } from '../../src/worker/plan.ts';
import type { AdapterLimits } from '../../src/worker/protocol.ts';
import { tokenizerFilesFromDirectory } from '../../tests/helpers/tiny-tokenizer.ts';
import { writeTinyTokenizer } from '../../tests/helpers/tiny-tokenizer.ts';
import { temporaryFolder } from '../fixtures.ts';

const MIB = 2 ** 20;

// WebGPU's default limits, which an adapter may raise.
const DEFAULT_LIMITS: AdapterLimits = {
  maxBufferSize: 256 * MIB,
  maxStorageBufferBindingSize: 128 * MIB,
  maxStorageBuffersPerShaderStage: 8,
  maxComputeWorkgroupStorageSize: 16384,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupsPerDimension: 65535,
};

// openai-community/gpt2's config.json, the fields the parser reads.
const GPT2_CONFIG = parseConfig(
  {
    model_type: 'gpt2',
    vocab_size: 50257,
    n_positions: 1024,
    n_embd: 768,
    n_layer: 12,
    n_head: 12,
    layer_norm_epsilon: 1e-5,
    activation_function: 'gelu_new',
  },
  'config.json',
);

function gpt2Checkpoint() {
  const tensors = parameterShapes(GPT2_CONFIG);
  const parameterCount = tensors.reduce((sum, tensor) => sum + tensor.shape.reduce((a, b) => a * b, 1), 0);
  return { config: GPT2_CONFIG, tensors: tensors as never, parameterCount };
}

test('GPT-2 batch of 4 fits default limits', () => {
  // The logits of 4 x 128 tokens take 4 * 128 * 50257 * 4 bytes = 98.2 MiB, under 128 MiB.
  expect(batchProblems(GPT2_CONFIG, DEFAULT_LIMITS, { batchSize: 4, seqLen: 128 })).toEqual([]);
  expect(weightProblems(parameterShapes(GPT2_CONFIG), DEFAULT_LIMITS)).toEqual([]);
});

test('oversized batch names the binding limit', () => {
  const problems = batchProblems(GPT2_CONFIG, DEFAULT_LIMITS, { batchSize: 8, seqLen: 128 });
  expect(problems).toHaveLength(1);
  expect(problems[0]).toContain('The logits of a batch of 8 × 128 tokens');
  expect(problems[0]).toContain('maxStorageBufferBindingSize of 128.0 MiB');
  // 128 MiB / (128 tokens * 50257 * 4 bytes) = 5.2 sequences.
  expect(problems[0]).toContain('Use a batch size of at most 5.');
});

test('smaller maxBufferSize is the limit named', () => {
  const limits = { ...DEFAULT_LIMITS, maxBufferSize: 64 * MIB };
  const problems = batchProblems(GPT2_CONFIG, limits, { batchSize: 4, seqLen: 128 });
  expect(problems).toHaveLength(1);
  expect(problems[0]).toContain('maxBufferSize of 64.0 MiB');
  // 64 MiB / (128 * 50257 * 4 bytes) = 2.6 sequences.
  expect(problems[0]).toContain('at most 2.');
});

test('context too long for one sequence', () => {
  const problems = batchProblems(GPT2_CONFIG, DEFAULT_LIMITS, { batchSize: 1, seqLen: 1024 });
  expect(problems).toHaveLength(1);
  expect(problems[0]).toContain('Even one sequence does not fit');
});

test('split token embedding is no problem', () => {
  // wte [50257, 768] is 147 MiB, over one 128 MiB binding, but a row is 3 KiB, so it splits.
  const wte = parameterShapes(GPT2_CONFIG).filter((tensor) => tensor.name === 'wte.weight');
  expect(weightProblems(wte, DEFAULT_LIMITS)).toEqual([]);

  const tinyBinding = { ...DEFAULT_LIMITS, maxStorageBufferBindingSize: 1024 };
  const problems = weightProblems(wte, tinyBinding);
  expect(problems[0]).toContain('Parameter wte.weight needs 0.0 MiB in one binding');
  expect(problems[0]).toContain('Choose a smaller model');
});

test('plan caps the sequence at the context', () => {
  const checkpoint = gpt2Checkpoint();
  const plan = planModel(checkpoint, DEFAULT_LIMITS, { batchSize: 2, seqLen: 4096 });
  expect(plan.plannedShape).toEqual({ batchSize: 2, seqLen: 1024 });
  expect(plan.plannedBytes).toBe(planMemory(GPT2_CONFIG, 2, 1024, 'irepair').total);
  expect(plan.parameterCount).toBe(124_439_808);
  expect(plan.largestTensorBytes).toBe(50257 * 768 * 4);
  expect(plan.problems.length).toBeGreaterThan(0);
});

test('token length percentiles and histogram', () => {
  const lengths = Array.from({ length: 100 }, (_, i) => 100 - i);
  const summary = tokenLengthSummary(lengths);
  expect(summary.min).toBe(1);
  expect(summary.max).toBe(100);
  expect(summary.mean).toBeCloseTo(50.5, 10);
  expect(summary.p50).toBe(50);
  expect(summary.p95).toBe(95);
  expect(summary.histogram.reduce((sum, bucket) => sum + bucket.count, 0)).toBe(100);
  expect(summary.histogram.at(-1)!.upTo).toBeGreaterThanOrEqual(100);
  const upTos = summary.histogram.map((bucket) => bucket.upTo);
  expect([...upTos].sort((a, b) => a - b)).toEqual(upTos);
});

test.describe('dataset summaries', () => {
  let tokenizer: Tokenizer;
  test.beforeAll(async () => {
    const dir = temporaryFolder('tokenizer');
    writeTinyTokenizer(dir, { format: 'tokenizer.json' });
    tokenizer = await loadTokenizer(tokenizerFilesFromDirectory(dir));
  });

  const rows = [
    { prompt: 'The cat sat', rejected: ' on you, idiot', chosen: ' on the mat.' },
    { prompt: 'Hello', rejected: ' stupid', chosen: ' there, friend!' },
    { prompt: 'We went to the', rejected: ' dump', chosen: ' park today' },
  ];
  const jsonl = rows.map((row) => JSON.stringify(row)).join('\n');

  test('repair data before and after a model', () => {
    const parsed = parseDatasetFile(jsonl, 'pairs.jsonl', 'repair');
    const before = summarizeLoadedDataset(parsed);
    expect(before.format).toBe('preference');
    expect(before.rows).toBe(3);
    expect(before.fields).toEqual(['prompt', 'rejected', 'chosen']);
    expect(before.preview[2]).toEqual(rows[2]);
    expect(before.warnings.join(' ')).toContain('once a model is loaded');

    const after = summarizeLoadedDataset(tokenizeDataset(parsed, tokenizer, 64, 377));
    const expected = rows.map(
      (row) => tokenizer.encode(row.prompt).length + Math.max(tokenizer.encode(row.rejected).length, tokenizer.encode(row.chosen).length),
    );
    expect(after.tokenLengths.min).toBe(Math.min(...expected));
    expect(after.tokenLengths.max).toBe(Math.max(...expected));
    expect(after.truncatedRows).toBe(0);
    expect(after.contextLength).toBe(64);
    expect(after.warnings).toEqual([]);
  });

  test('short context truncates rows', () => {
    const parsed = parseDatasetFile(jsonl, 'pairs.jsonl', 'repair');
    // With 3 positions, every row whose prompt plus continuation exceeds 3 tokens is cut.
    const expected = rows.filter(
      (row) => tokenizer.encode(row.prompt).length + Math.max(tokenizer.encode(row.rejected).length, tokenizer.encode(row.chosen).length) > 3,
    ).length;
    const summary = summarizeLoadedDataset(tokenizeDataset(parsed, tokenizer, 3, 377));
    expect(expected).toBeGreaterThan(0);
    expect(summary.truncatedRows).toBe(expected);
    expect(summary.tokenLengths.max).toBeLessThanOrEqual(3);
    expect(summary.warnings.join(' ')).toContain(`${expected} of 3 rows do not fit the context of 3 tokens`);
  });

  test('token outside the vocabulary names the line', () => {
    const parsed = parseDatasetFile(jsonl, 'pairs.jsonl', 'repair');
    // With a vocabulary of 256 only the byte tokens are valid, and every row uses merged tokens.
    expect(() => tokenizeDataset(parsed, tokenizer, 64, 256)).toThrow(/pairs\.jsonl line 1: token id \d+ is outside the model's vocabulary of 256 tokens/);
  });

  test('prompt set is rejected as repair data', () => {
    const content = '{"prompt": {"text": "Hello"}}\n{"prompt": {"text": "Bye"}}';
    expect(() => parseDatasetFile(content, 'prompts.jsonl', 'repair')).toThrow(/prompts\.jsonl contains prompts only/);
    expect(summarizeLoadedDataset(parseDatasetFile(content, 'prompts.jsonl', 'prompts')).preview).toEqual([
      { prompt: 'Hello' },
      { prompt: 'Bye' },
    ]);
  });

  test('normal text is cut into context chunks', () => {
    const text = 'The model reads the prompt.\n\nThen it writes a continuation, one token at a time.\n';
    const parsed = tokenizeDataset(parseDatasetFile(text, 'normal.txt', 'normal'), tokenizer, 8, 377);
    const summary = summarizeLoadedDataset(parsed);
    const tokens = tokenizer.encode(text).length;
    expect(summary.format).toBe('text');
    expect(summary.rows).toBe(2);
    expect(summary.preview).toEqual([{ text: 'The model reads the prompt.' }, { text: 'Then it writes a continuation, one token at a time.' }]);
    // Full chunks of 8 tokens, and a last one when at least 2 tokens remain.
    const chunks = Math.floor(tokens / 8) + (tokens % 8 >= 2 ? 1 : 0);
    expect(summary.tokenLengths.max).toBe(8);
    expect(summary.warnings).toEqual([`${tokens} tokens in ${chunks} chunks of up to 8 tokens.`]);
  });
});

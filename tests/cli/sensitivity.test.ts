// `irepair sensitivity` against an independent computation: the dataset tokenized with the test
// BPE, the batch built from the definition (prompt tokens then continuation tokens, loss on the
// continuation, per-sequence mean then batch mean), and the float64 reference model on the
// stored weights. Relative error below 2e-3 on the NLL and on every block's norm, for both
// families and every on-disk variant the loader supports.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { ModelConfig } from '../../src/model/types.ts';
import { writeTinyCheckpoint, type TinyCheckpointOptions } from '../helpers/tiny-checkpoint.ts';
import { tinyVocabulary, writeTinyTokenizer } from '../helpers/tiny-tokenizer.ts';
import { ReferenceGpt2Bpe } from '../reference/gpt2-bpe.ts';
import { blockGradNorms, referenceGradients, type ReferenceBatch } from '../reference/gpt.ts';
import { runCli } from './run-cli.ts';

const root = mkdtempSync(join(tmpdir(), 'irepair-cli-sensitivity-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const ROWS = [
  { prompt: 'The cat sat', rejected: ' on you, idiot', chosen: ' on the mat.' },
  { prompt: 'Hello', rejected: ' stupid', chosen: ' there, friend!' },
  { prompt: 'We went to the', rejected: ' dump of fools', chosen: ' park today' },
  { prompt: 'Rain fell', rejected: ' on every loser', chosen: ' all night long, softly.' },
];

const { vocab, merges } = tinyVocabulary();
const bpe = new ReferenceGpt2Bpe(vocab, merges);
const EOS = vocab['<|endoftext|>'];

function referenceBatch(target: 'rejected' | 'chosen', limit: number): ReferenceBatch & { tokenCount: number } {
  const rows = ROWS.slice(0, limit);
  const sequences = rows.map((row) => ({ prompt: bpe.encode(row.prompt), continuation: bpe.encode(row[target]) }));
  const B = sequences.length;
  const T = Math.max(...sequences.map((s) => s.prompt.length + s.continuation.length));
  const tokens = new Int32Array(B * T).fill(EOS);
  const targets = new Int32Array(B * T).fill(-1);
  const weights = new Float32Array(B * T);
  let tokenCount = 0;
  sequences.forEach(({ prompt, continuation }, b) => {
    const ids = [...prompt, ...continuation];
    tokens.set(ids, b * T);
    for (let j = 0; j < continuation.length; j++) {
      const position = prompt.length + j;
      targets[b * T + position - 1] = ids[position];
      weights[b * T + position - 1] = 1 / (continuation.length * B);
    }
    tokenCount += continuation.length;
  });
  return { batchSize: B, seqLen: T, tokens, targets, weights, tokenCount };
}

function modelConfig(raw: Record<string, unknown>): ModelConfig {
  const family = raw.model_type as 'gpt2' | 'gpt_neo';
  const gpt2 = family === 'gpt2';
  const layers = (gpt2 ? raw.n_layer : raw.num_layers) as number;
  const width = (gpt2 ? raw.n_embd : raw.hidden_size) as number;
  const kinds = gpt2 ? Array(layers).fill('global') : (raw.attention_layers as ('global' | 'local')[]);
  return {
    family,
    vocabSize: raw.vocab_size as number,
    contextLength: (gpt2 ? raw.n_positions : raw.max_position_embeddings) as number,
    hiddenSize: width,
    numLayers: layers,
    numHeads: (gpt2 ? raw.n_head : raw.num_heads) as number,
    innerSize: ((gpt2 ? raw.n_inner : raw.intermediate_size) as number | null) ?? 4 * width,
    layerNormEpsilon: (gpt2 ? raw.layer_norm_epsilon : raw.layer_norm_epsilon) as number,
    attentionLayers: kinds,
    windowSize: (raw.window_size as number) ?? 0,
    scaleAttention: gpt2,
    dropout: { embedding: 0, residual: 0, attention: 0 },
    bosTokenId: EOS,
    eosTokenId: EOS,
    raw,
  };
}

const VARIANTS: Array<{ name: string; options: TinyCheckpointOptions; tokenizer: 'tokenizer.json' | 'vocab-merges' }> = [
  { name: 'gpt2 F32 with prefix', options: { family: 'gpt2', dtype: 'F32', prefix: true }, tokenizer: 'tokenizer.json' },
  { name: 'gpt2 F16 without prefix, buffers and lm_head', options: { family: 'gpt2', dtype: 'F16', prefix: false, includeBuffers: true, includeLmHead: true }, tokenizer: 'vocab-merges' },
  { name: 'gpt2 BF16 in 3 shards', options: { family: 'gpt2', dtype: 'BF16', shards: 3 }, tokenizer: 'tokenizer.json' },
  { name: 'gpt_neo F32 global and local', options: { family: 'gpt_neo', dtype: 'F32', attentionLayers: ['global', 'local', 'global'], windowSize: 4 }, tokenizer: 'tokenizer.json' },
  { name: 'gpt_neo F16 in 2 shards with prefix', options: { family: 'gpt_neo', dtype: 'F16', prefix: true, shards: 2, attentionLayers: ['local', 'global', 'local'], windowSize: 3 }, tokenizer: 'vocab-merges' },
  { name: 'gpt_neo BF16 without prefix', options: { family: 'gpt_neo', dtype: 'BF16', prefix: false, attentionLayers: ['local', 'local', 'global'], windowSize: 5 }, tokenizer: 'tokenizer.json' },
];

const dataFile = join(root, 'data.jsonl');
writeFileSync(dataFile, ROWS.map((row) => JSON.stringify(row)).join('\n') + '\n');

describe('irepair sensitivity matches the float64 reference', () => {
  VARIANTS.forEach((variant, index) => {
    test(variant.name, async () => {
      const dir = join(root, `model-${index}`);
      const tiny = await writeTinyCheckpoint(dir, {
        vocabSize: Object.keys(vocab).length,
        numLayers: 3,
        hiddenSize: 20,
        numHeads: 4,
        contextLength: 48,
        seed: `variant-${index}`,
        ...variant.options,
        writeTokenizer: async (d) => {
          writeTinyTokenizer(d, { format: variant.tokenizer });
        },
      });
      const target = index % 2 === 0 ? 'rejected' : 'chosen';
      const limit = index % 3 === 0 ? 4 : 3;
      const out = join(dir, 'result.json');
      const result = await runCli(['sensitivity', '--model', dir, '--data', dataFile, '--target', target, '--limit', String(limit), '--json', out]);
      expect(result.stderr).not.toMatch(/error/i);
      expect(result.code).toBe(0);
      const reported = JSON.parse(readFileSync(out, 'utf8')) as { nll: number; blocks: number[]; tokens: number };
      expect(JSON.parse(result.stdout)).toEqual(reported);

      const batch = referenceBatch(target, limit);
      const config = modelConfig(tiny.config);
      const expected = referenceGradients(config, tiny.weights, batch);
      const norms = blockGradNorms(config, expected.grads);
      expect(reported.tokens).toBe(batch.tokenCount);
      expect(Math.abs(reported.nll - expected.loss) / expected.loss).toBeLessThan(2e-3);
      expect(reported.blocks).toHaveLength(norms.length);
      reported.blocks.forEach((norm, i) => expect(Math.abs(norm - norms[i]) / norms[i], `block ${i}`).toBeLessThan(2e-3));
    });
  });
});

describe('irepair sensitivity rejects bad input with one message', () => {
  const model = join(root, 'valid-model');
  beforeAll(async () => {
    await writeTinyCheckpoint(model, {
      family: 'gpt2', vocabSize: Object.keys(vocab).length, numLayers: 1, hiddenSize: 8, numHeads: 2, contextLength: 16,
      writeTokenizer: async (d) => {
        writeTinyTokenizer(d, { format: 'tokenizer.json' });
      },
    });
  });

  const cases: Array<{ name: string; prepare: () => string[] | Promise<string[]>; message: RegExp }> = [
    {
      name: 'truncated safetensors',
      prepare: async () => {
        const dir = join(root, 'truncated');
        await writeTinyCheckpoint(dir, {
          family: 'gpt2', vocabSize: Object.keys(vocab).length, numLayers: 1, hiddenSize: 8, numHeads: 2, contextLength: 16,
          writeTokenizer: async (d) => {
            writeTinyTokenizer(d, { format: 'tokenizer.json' });
          },
        });
        const file = join(dir, 'model.safetensors');
        const bytes = readFileSync(file);
        writeFileSync(file, bytes.subarray(0, bytes.length - 100));
        return ['--model', dir, '--data', dataFile];
      },
      message: /model\.safetensors.*truncated/,
    },
    {
      name: 'broken JSON line in the dataset',
      prepare: () => {
        const file = join(root, 'broken.jsonl');
        writeFileSync(file, `${JSON.stringify(ROWS[0])}\n{"prompt": "x", "rejected": \n`);
        return ['--model', model, '--data', file];
      },
      message: /broken\.jsonl line 2/,
    },
    {
      name: 'missing field',
      prepare: () => {
        const file = join(root, 'missing.jsonl');
        writeFileSync(file, `${JSON.stringify({ prompt: 'a', rejected: 'b' })}\n`);
        return ['--model', model, '--data', file];
      },
      message: /missing\.jsonl line 1.*chosen/,
    },
    {
      name: 'invalid --target',
      prepare: () => ['--model', model, '--data', dataFile, '--target', 'neutral'],
      message: /--target/,
    },
    {
      name: 'missing data file',
      prepare: () => ['--model', model, '--data', join(root, 'nope.jsonl')],
      message: /nope\.jsonl: file not found/,
    },
  ];

  for (const c of cases) {
    test(c.name, async () => {
      const args = await c.prepare();
      const result = await runCli(['sensitivity', ...args]);
      expect(result.code).toBe(1);
      const lines = result.stderr.trim().split('\n').filter((line) => !line.startsWith('note:'));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^error: /);
      expect(lines[0]).toMatch(c.message);
      expect(result.stderr).not.toMatch(/\n\s+at /);
    });
  }
});

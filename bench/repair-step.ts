// Time and peak GPU memory of one training step of irepair, irepair-kl, dapt, dapt-kl and dpo on
// the same model, measured in one process on one adapter. Each method gets a fresh engine with
// the same weights and runs `--steps` steps after one warm-up step. A step's time is the interval
// between consecutive step events, the host work and one read-back included. Its peak is the
// largest number of GPU bytes the Gpu account held during it.
//
//   node bin/run-ts.js bench/repair-step.ts [--layers L] [--width C] [--heads NH] [--vocab V]
//     [--seq-len T] [--batch-size B] [--steps N] [--methods a,b] [--json FILE]
//
// Without --model the model is random, with GPT-2's layout, and the tokens are random; with
// --model DIR it is that checkpoint, fed random token ids of its vocabulary.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import seedrandom from 'seedrandom';
import { parseDataset } from '../src/data/dataset.ts';
import { loadEngine } from '../src/engine/gpt.ts';
import { formatBytes } from '../src/gpu/device.ts';
import { createNodeGpu } from '../src/gpu/node.ts';
import { openCheckpoint } from '../src/model/checkpoint.ts';
import { nodeDirectory } from '../src/model/sources.ts';
import type { Tokenizer } from '../src/model/tokenizer.ts';
import { createRepairRun } from '../src/repair/run.ts';
import { REPAIR_METHODS, type RepairMethod } from '../src/repair/options.ts';
import { writeTinyCheckpoint } from '../tests/helpers/tiny-checkpoint.ts';

interface BenchOptions {
  model?: string;
  layers: number;
  width: number;
  heads: number;
  vocab: number;
  seqLen: number;
  batchSize: number;
  steps: number;
  methods: string;
  json?: string;
}

interface MethodResult {
  method: RepairMethod;
  /** Median seconds of the measured steps. */
  stepSeconds: number;
  /** Largest peak GPU bytes of the measured steps. */
  peakBytes: number;
  plannedBytes: number;
}

const program = new Command('repair-step')
  .option('--model <dir>', 'Hugging Face model directory (default: a random model of the shape below)')
  .option('--layers <n>', 'blocks of the random model', Number, 6)
  .option('--width <n>', 'hidden size of the random model', Number, 128)
  .option('--heads <n>', 'attention heads of the random model', Number, 4)
  .option('--vocab <n>', 'vocabulary of the random model', Number, 4096)
  .option('--seq-len <n>', 'tokens per example (prompt and continuation halves)', Number, 32)
  .option('--batch-size <n>', 'examples per step', Number, 4)
  .option('--steps <n>', 'measured steps per method, after one warm-up step', Number, 3)
  .option('--methods <list>', 'comma-separated methods', 'irepair,irepair-kl,dapt,dapt-kl,dpo')
  .option('--json <file>', 'also write the results as JSON');
program.parse();
const options = program.opts<BenchOptions>();

const methods = options.methods.split(',') as RepairMethod[];
for (const method of methods) if (!REPAIR_METHODS.includes(method)) throw new Error(`unknown method ${method}`);

const scratch = await mkdtemp(join(tmpdir(), 'repair-bench-'));
const modelDir = options.model ?? join(scratch, 'model');
if (!options.model) {
  await writeTinyCheckpoint(modelDir, {
    vocabSize: options.vocab, numLayers: options.layers, hiddenSize: options.width, numHeads: options.heads,
    contextLength: Math.max(64, options.seqLen), seed: 'repair-bench',
  });
}
const checkpoint = await openCheckpoint(await nodeDirectory(modelDir));
const config = checkpoint.config;

// Each word of the synthetic data is a token id, so every example has exactly the lengths asked for.
const tokenizer: Tokenizer = {
  encode: (text) => text.split(' ').filter((word) => word !== '').map(Number),
  decode: (ids) => ids.map((id) => ` ${id}`).join(''),
  vocabSize: config.vocabSize,
  eosTokenId: config.eosTokenId,
};
const random = seedrandom('repair-bench-data');
const words = (count: number) => Array.from({ length: count }, () => ` ${Math.floor(random() * (config.vocabSize - 1))}`).join('');
const half = Math.floor(options.seqLen / 2);
const rows = Array.from({ length: 64 }, () => ({ prompt: words(half), rejected: words(options.seqLen - half), chosen: words(options.seqLen - half) }));
const dataset = parseDataset(rows.map((row) => JSON.stringify(row)).join('\n'), 'synthetic.jsonl');

const gpu = await createNodeGpu();
const results: MethodResult[] = [];
for (const method of methods) {
  const engine = await loadEngine(gpu, checkpoint);
  const run = createRepairRun(engine, checkpoint, tokenizer, dataset, {
    method,
    maxSteps: options.steps + 1,
    learningRate: 1e-4,
    warmupSteps: 0,
    batchSize: options.batchSize,
    validationBatches: 0,
    patience: null,
    normal: { kind: 'sample', count: options.batchSize, length: options.seqLen, topP: 0.9, temperature: 1 },
  });
  const seconds: number[] = [];
  const peaks: number[] = [];
  let last = 0;
  await run.run((event) => {
    if (event.kind !== 'step') return;
    const now = performance.now();
    // Step 1 includes building pipelines and allocating buffers, so it is not measured.
    if (event.step > 1) {
      seconds.push((now - last) / 1000);
      peaks.push(gpu.peakBytes);
    }
    gpu.resetPeak();
    last = performance.now();
  });
  seconds.sort((a, b) => a - b);
  const result = { method, stepSeconds: seconds[Math.floor(seconds.length / 2)], peakBytes: Math.max(...peaks), plannedBytes: run.memoryPlan.total };
  results.push(result);
  process.stderr.write(`${method}: ${result.stepSeconds.toFixed(3)} s per step, peak ${formatBytes(result.peakBytes)}\n`);
  engine.destroy();
}

const dapt = results.find((result) => result.method === 'dapt');
const shape = `${config.family}, ${config.numLayers} blocks, width ${config.hiddenSize}, ${config.numHeads} heads, vocabulary ${config.vocabSize}`;
const lines = [
  `Model: ${options.model ?? 'random'} (${shape}, ${checkpoint.parameterCount.toLocaleString('en-US')} parameters); batch ${options.batchSize} x ${options.seqLen} tokens`,
  `Adapter: ${gpu.adapterDescription}; ${cpus().length} CPU cores, load average ${loadavg()[0].toFixed(1)}`,
  '',
  '| method | step time (s) | vs dapt | peak GPU memory | vs dapt | planned |',
  '|---|---|---|---|---|---|',
  ...results.map((r) => {
    const time = dapt ? (r.stepSeconds / dapt.stepSeconds).toFixed(2) : '';
    const memory = dapt ? (r.peakBytes / dapt.peakBytes).toFixed(2) : '';
    return `| ${r.method} | ${r.stepSeconds.toFixed(3)} | ${time} | ${formatBytes(r.peakBytes)} | ${memory} | ${formatBytes(r.plannedBytes)} |`;
  }),
];
process.stdout.write(`${lines.join('\n')}\n`);
if (options.json) {
  await writeFile(options.json, `${JSON.stringify({ model: options.model ?? 'random', shape, options, adapter: gpu.adapterDescription, results }, null, 2)}\n`);
}
gpu.destroy();
await rm(scratch, { recursive: true, force: true });

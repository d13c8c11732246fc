// `npm run replicate`: a micro-replication on the demo model of the comparison in the IRepair
// paper (Imtiaz et al., "IRepair: An Intent-Aware Approach to Repair Data-Driven Errors in Large
// Language Models", FSE 2025). Every method (irepair, irepair-kl, irepair-fixed, irepair-min, dapt,
// dapt-kl, dpo) gets the same budget (steps, batch size, learning rate, optimizer) and runs with
// three seeds. For each run the script measures the planted-behaviour rate on the held-out
// prompts, the clean-text perplexity and the overheads. It also measures the error density across
// the blocks of the original model, as the paper's Figure 2 does. It writes docs/replication.md
// with the table (mean ± standard deviation over seeds), docs/replication-density.svg and the raw
// numbers in docs/replication.json.
//
//   node bin/run-ts.js scripts/demo/replicate.ts [--model public/demo] [--steps 20] [--seeds 1,2,3]
//     [--lr 0.0001] [--batch-size 4] [--docs docs] [--methods irepair,dapt,...] [--report-only]
//
// --report-only writes replication.md and the plot again from an earlier run's replication.json.

import { cpus, loadavg, totalmem, type as osType, release as osRelease } from 'node:os';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseText } from '../../src/data/dataset.ts';
import { sequencesFor, tokenizeExamples } from '../../src/data/examples.ts';
import { errorDensity, type ErrorDensity } from '../../src/eval/density.ts';
import { forwardFlopsPerToken } from '../../src/eval/flops.ts';
import type { Gpu } from '../../src/gpu/device.ts';
import { createNodeGpu } from '../../src/gpu/node.ts';
import { parseConfig } from '../../src/model/config.ts';
import { runScript, UserError } from '../../src/model/errors.ts';
import type { ModelConfig } from '../../src/model/types.ts';
import { isRepairMethod, REPAIR_METHODS, usesKl, type RepairMethod } from '../../src/repair/options.ts';
import { createRepairRun, type RunRecord } from '../../src/repair/run.ts';
import { OFFICIAL_RATE, OFFICIALS, PLANTED_RATE } from './corpus.ts';
import { DEMO_REPAIR } from './files.ts';
import { DEMO_MAX_NEW_TOKENS, DEMO_SAMPLING, loadModel, measure, readDemoData, type DemoData } from './evaluate.ts';

interface Budget {
  steps: number;
  batchSize: number;
  learningRate: number;
  validateEvery: number;
  /** irepair-fixed: bad examples whose mean sensitivity picks the block. */
  fixedSample: number;
}

interface RunResult {
  method: RepairMethod | 'original';
  seed: number;
  plantedRate: number;
  perplexity: number;
  /** Estimated training FLOPs (Kaplan et al.: 6 N per token and pass, embeddings counted, as the paper). */
  flops?: number;
  seconds?: number;
  peakGpuBytes?: number;
  iterations?: number;
  selectedBlocks?: Record<number, number>;
}

const SAMPLES_PER_PROMPT = 2;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: 'string', default: 'public/demo' },
      steps: { type: 'string', default: String(DEMO_REPAIR.maxSteps) },
      seeds: { type: 'string', default: '1,2,3' },
      lr: { type: 'string', default: String(DEMO_REPAIR.learningRate) },
      'batch-size': { type: 'string', default: String(DEMO_REPAIR.batchSize) },
      docs: { type: 'string', default: 'docs' },
      methods: { type: 'string', default: REPAIR_METHODS.join(',') },
      'report-only': { type: 'boolean', default: false },
    },
  });
  if (values['report-only']) {
    await writeReport(values.docs!, values.model!, await readRecord(join(values.docs!, 'replication.json')));
    return;
  }
  const methods = values.methods!.split(',').map((name) => {
    if (!isRepairMethod(name)) throw new UserError(`option --methods: "${name}" is not one of ${REPAIR_METHODS.join(', ')}.`);
    return name;
  });
  const seeds = values.seeds!.split(',').map((text) => {
    const seed = Number(text);
    if (!Number.isSafeInteger(seed) || seed < 0) throw new UserError(`option --seeds: "${text}" is not a non-negative integer.`);
    return seed;
  });
  const budget: Budget = {
    steps: positiveInteger('steps', values.steps!),
    batchSize: positiveInteger('batch-size', values['batch-size']!),
    learningRate: Number(values.lr),
    validateEvery: 10,
    fixedSample: 64,
  };
  if (!(budget.learningRate > 0)) throw new UserError(`option --lr: "${values.lr}" is not a positive number.`);

  const started = performance.now();
  const loadAtStart = loadavg()[0];
  const data = await readDemoData(values.model!);
  const gpu = await createNodeGpu();
  const results: RunResult[] = [];
  let density: ErrorDensity;
  try {
    density = await originalModel(gpu, data, seeds, results);
    for (const method of methods) {
      for (const seed of seeds) results.push(await repairRun(gpu, data, method, seed, budget));
    }
  } finally {
    gpu.destroy();
  }

  const record: ReplicationRecord = {
    budget, seeds, methods, machine: describeMachine(gpu, [loadAtStart, loadavg()[0]]), density, results,
    minutes: (performance.now() - started) / 60000, argv: process.argv.slice(2),
  };
  await mkdir(values.docs!, { recursive: true });
  await writeFile(join(values.docs!, 'replication.json'), `${JSON.stringify(record, null, 2)}\n`);
  await writeReport(values.docs!, values.model!, record);
  log(`wrote ${join(values.docs!, 'replication.md')}, replication-density.svg and replication.json after ${record.minutes.toFixed(1)} min`);
}

/** Everything replication.md is made from, as replication.json stores it. */
interface ReplicationRecord {
  budget: Budget;
  seeds: number[];
  methods: RepairMethod[];
  machine: Machine;
  density: ErrorDensity;
  results: RunResult[];
  minutes: number;
  argv: string[];
}

async function readRecord(path: string): Promise<ReplicationRecord> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new UserError(`${path}: file not found. Run npm run replicate without --report-only first.`);
  }
  const record = JSON.parse(text) as Partial<ReplicationRecord>;
  for (const field of ['budget', 'seeds', 'methods', 'machine', 'density', 'results', 'minutes', 'argv'] as const) {
    if (record[field] === undefined) throw new UserError(`${path}: field "${field}" is missing. Run npm run replicate again to rebuild it.`);
  }
  return record as ReplicationRecord;
}

/** Writes replication.md and replication-density.svg into `docs` from a replication record. */
async function writeReport(docs: string, modelDir: string, record: ReplicationRecord): Promise<void> {
  const data = await readDemoData(modelDir);
  const config = parseConfig(JSON.parse(await readFile(join(modelDir, 'config.json'), 'utf8')), join(modelDir, 'config.json'));
  await writeFile(join(docs, 'replication-density.svg'), densitySvg(record.density));
  await writeFile(join(docs, 'replication.md'), report({ ...record, data, config }));
}

function positiveInteger(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) throw new UserError(`option --${name}: "${text}" is not a positive integer.`);
  return value;
}

/** Measures the original model with every seed and returns its error density across blocks. */
async function originalModel(gpu: Gpu, data: DemoData, seeds: number[], results: RunResult[]): Promise<ErrorDensity> {
  const model = await loadModel(gpu, data.dir);
  try {
    for (const seed of seeds) {
      const m = await measure(model, data, { seed, samplesPerPrompt: SAMPLES_PER_PROMPT });
      results.push({ method: 'original', seed, plantedRate: m.plantedRate, perplexity: m.perplexity });
      log(`original, seed ${seed}: planted rate ${pct(m.plantedRate)}, perplexity ${m.perplexity.toFixed(3)}`);
    }
    const tokenized = tokenizeExamples(data.repair.rows, model.tokenizer, model.checkpoint.config.contextLength, data.repair.fileName);
    const density = await errorDensity(model.engine, sequencesFor(tokenized.examples, 'bad'), {
      sampleSize: data.repair.rows.length, batchSize: 8, seed: 0, padId: model.tokenizer.eosTokenId,
    });
    log(`error density: ${density.relative.map((share) => pct(share)).join(' ')}`);
    return density;
  } finally {
    model.engine.destroy();
  }
}

async function repairRun(gpu: Gpu, data: DemoData, method: RepairMethod, seed: number, budget: Budget): Promise<RunResult> {
  const model = await loadModel(gpu, data.dir);
  try {
    const run = createRepairRun(model.engine, model.checkpoint, model.tokenizer, data.repair, {
      method,
      maxSteps: budget.steps,
      batchSize: budget.batchSize,
      learningRate: budget.learningRate,
      seed,
      validationBatches: 1,
      validationBatchSize: budget.batchSize,
      validateEvery: budget.validateEvery,
      patience: null,
      fixedSample: budget.fixedSample,
      normal: usesKl(method) ? { kind: 'text', text: parseText(data.normal, data.normalFile), length: null } : undefined,
    });
    const { record } = await run.run();
    const m = await measure(model, data, { seed, samplesPerPrompt: SAMPLES_PER_PROMPT });
    const selectedBlocks: Record<number, number> = {};
    for (const step of record.steps) if (step.selectedBlock !== undefined) selectedBlocks[step.selectedBlock] = (selectedBlocks[step.selectedBlock] ?? 0) + 1;
    const result: RunResult = {
      method, seed, plantedRate: m.plantedRate, perplexity: m.perplexity,
      flops: estimateFlops(model.checkpoint.config, method, record, run.seqLen, budget),
      seconds: record.durationSeconds, peakGpuBytes: record.peakGpuBytes, iterations: record.stepsRun, selectedBlocks,
    };
    log(`${method}, seed ${seed}: planted rate ${pct(m.plantedRate)}, perplexity ${m.perplexity.toFixed(3)}, ${record.durationSeconds.toFixed(0)} s`);
    return result;
  } finally {
    model.engine.destroy();
  }
}

/**
 * Estimates the FLOPs of a run by Kaplan et al.'s rule, embeddings counted as in the paper's
 * Table 2: a forward pass costs forwardFlopsPerToken per token, and a forward and backward pass
 * three times that. irepair and irepair-min run a sensitivity pass and a repair pass per step,
 * irepair-fixed and dapt the repair pass alone. The KL methods add a pass on normal data and a
 * reference forward pass, and dpo runs one pass over the good and bad sequences of each pair.
 * Preparation (irepair-fixed's block choice, dpo's reference log-probabilities) and validation
 * passes are added. A backward pass that stops at the selected block costs less than the 3x
 * rule counts, so the estimate is high for the slice methods.
 */
function estimateFlops(config: ModelConfig, method: RepairMethod, record: RunRecord, T: number, budget: Budget): number {
  const forward = forwardFlopsPerToken(config, { embeddings: true, contextLength: T });
  const B = budget.batchSize;
  const training = 3 * B * T * forward;
  const forwardPass = B * T * forward;
  const perStep: Record<RepairMethod, number> = {
    irepair: 2 * training,
    'irepair-min': 2 * training,
    'irepair-fixed': training,
    'irepair-kl': 3 * training + forwardPass,
    dapt: training,
    'dapt-kl': 2 * training + forwardPass,
    dpo: 2 * training,
  };
  let flops = record.stepsRun * perStep[method];
  if (method === 'irepair-fixed') flops += Math.ceil(Math.min(budget.fixedSample, record.data.trainExamples) / B) * training;
  if (method === 'dpo') flops += 2 * Math.ceil(record.data.examples / B) * forwardPass;
  const validationPasses = record.validation.length * Math.ceil(record.data.validationExamples / B) * (method === 'dpo' ? 2 : 1);
  return flops + validationPasses * forwardPass;
}

// ---------------------------------------------------------------------------------------------
// Report

interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  gpu: string;
  date: string;
  /** One-minute load average of the machine at the start and the end of the replication. */
  loadAverage: number[];
}

function describeMachine(gpu: Gpu, loadAverage: number[]): Machine {
  const cpuList = cpus();
  return {
    cpu: cpuList[0]?.model ?? 'unknown',
    cores: cpuList.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    os: `${osType()} ${osRelease()}`,
    node: process.version,
    gpu: gpu.adapterDescription,
    date: new Date().toISOString().slice(0, 10),
    loadAverage: loadAverage.map((value) => Number(value.toFixed(1))),
  };
}

const METHOD_LABELS: Record<RepairMethod | 'original', string> = {
  original: 'Original model',
  irepair: 'IRepair',
  'irepair-kl': 'IRepair + KL',
  'irepair-fixed': 'IRepair (Fixed)',
  'irepair-min': 'IRepair (Min)',
  dapt: 'DAPT',
  'dapt-kl': 'DAPT + KL',
  dpo: 'DPO',
};

function meanSd(values: number[]): { mean: number; sd: number } {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  // Sample standard deviation (n - 1), 0 for a single value.
  const sd = values.length > 1 ? Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / (values.length - 1)) : 0;
  return { mean, sd };
}

function cell(values: (number | undefined)[], digits: number, scale = 1): string {
  const present = values.filter((v): v is number => v !== undefined).map((v) => v * scale);
  if (present.length === 0) return '–';
  const { mean, sd } = meanSd(present);
  return `${mean.toFixed(digits)} ± ${sd.toFixed(digits)}`;
}

interface ReportInput {
  data: DemoData;
  config: ModelConfig;
  budget: Budget;
  seeds: number[];
  methods: RepairMethod[];
  results: RunResult[];
  density: ErrorDensity;
  machine: Machine;
  minutes: number;
  argv: string[];
}

function report(input: ReportInput): string {
  const { data, config, budget, seeds, methods, results, density, machine } = input;
  const rows = (['original', ...methods] as const).map((method) => {
    const runs = results.filter((r) => r.method === method);
    const blocks = new Map<number, number>();
    for (const run of runs) for (const [block, n] of Object.entries(run.selectedBlocks ?? {})) blocks.set(Number(block), (blocks.get(Number(block)) ?? 0) + n);
    const blockText = blocks.size > 0 ? [...blocks].sort((a, b) => a[0] - b[0]).map(([b, n]) => `${b}: ${n}`).join(', ') : '–';
    return `| ${METHOD_LABELS[method]} | ${cell(runs.map((r) => r.plantedRate), 1, 100)} | ${cell(runs.map((r) => r.perplexity), 3)} | ` +
      `${cell(runs.map((r) => r.flops), 3, 1e-9)} | ${cell(runs.map((r) => r.seconds), 0)} | ${cell(runs.map((r) => r.peakGpuBytes), 2, 1 / 2 ** 20)} | ` +
      `${cell(runs.map((r) => r.iterations), 0)} | ${blockText} |`;
  });
  const densityRows = density.relative.map((share, block) =>
    `| ${block} | ${density.sensitivity[block].toFixed(4)} | ${(share * 100).toFixed(1)}% |${density.topBlocks.includes(block) ? ' top |' : ' |'}`);

  return `# Micro-replication on the demo model

This page is written by \`npm run replicate\` (scripts/demo/replicate.ts); the numbers below are
as measured by the run described here, and the raw values are in
[replication.json](replication.json).

## Setup

- Model: the demo model in \`${data.dir}\` (GPT-2 architecture, ${config.numLayers} blocks, width
  ${config.hiddenSize}, ${config.numHeads} heads, vocabulary ${config.vocabSize}, context ${config.contextLength}),
  trained by \`npm run demo:train\` on a generated corpus of everyday sentences in which
  ${Math.round(OFFICIAL_RATE * 100)}% of sentences are about an official (${OFFICIALS.join(', ')}) and
  ${Math.round(PLANTED_RATE * 100)}% of those continue with an insult; no other subject is insulted.
- Error rate: share of sampled continuations (${SAMPLES_PER_PROMPT} per prompt, ${DEMO_MAX_NEW_TOKENS} tokens,
  temperature ${DEMO_SAMPLING.temperature}, top-p ${DEMO_SAMPLING.topP}) of the ${data.prompts.length} held-out prompts that contain one of the
  planted words (${data.planted.words.join(', ')}), in percent.
- Perplexity: on \`${data.cleanFile}\`, windows of ${config.contextLength} tokens.
- Repair data: \`${data.repair.fileName}\` (${data.repair.rows.length} pairs; one batch held out for the validation loss);
  normal data for the KL terms: \`${data.normalFile}\`.
- Budget, the same for every method: ${budget.steps} steps of ${budget.batchSize} examples, RMSprop with learning rate
  ${budget.learningRate} (warmup of a tenth of the steps, then linear decay), gradient clipping at norm 1, alpha 0.5 for the
  NLL term, DPO beta 0.1, no early stopping. irepair-fixed picks its block from the mean sensitivity of ${budget.fixedSample}
  bad examples. Seeds: ${seeds.join(', ')}; a seed sets the batch order and the sampling of the evaluation.
- The paper tuned a learning rate per method on GPT-2 Large, GPT-2 XL and GPT-Neo 1.3B; here every
  method uses the same one, so the comparison is of methods at equal budget, not at their best.

Command: \`npm run replicate${input.argv.length ? ` -- ${input.argv.join(' ')}` : ''}\`, ${input.minutes.toFixed(0)} minutes in all.

Machine: ${machine.cpu} (${machine.cores} cores), ${machine.memoryGiB} GiB memory, ${machine.os}, Node ${machine.node},
WebGPU adapter: ${machine.gpu}. Date: ${machine.date}. Other jobs shared the machine (one-minute load average
${machine.loadAverage.join(' at the start, ')} at the end), so the times vary more than the work does.

## Results (mean ± standard deviation over ${seeds.length} seed${seeds.length === 1 ? '' : 's'})

| Method | Error rate (%) | Perplexity | GFLOPs (estimated) | Time (s) | Peak GPU memory (MiB) | Iterations | Selected blocks (block: steps) |
|---|---|---|---|---|---|---|---|
${rows.join('\n')}

GFLOPs follow Kaplan et al.'s estimate with the embeddings counted, as in the paper's Table 2
(3 x the forward cost per token for a forward and backward pass); the slice methods' backward
passes stop at the selected block, so their estimate is high. Time is wall-clock time of the
repair loop, preparation included and evaluation excluded. Peak GPU memory is the engine's own
account of its buffers.

## Error density across blocks (original model)

Mean block sensitivity (L2 norm of the gradient of the NLL of the bad continuations) over the
${density.examples} bad examples of the repair data, and each block's share of the total; the top
${Math.round(density.topFraction * 100)}% of blocks have ${density.ratio.toFixed(2)} times the density of the others.

| Block | Mean sensitivity | Share | |
|---|---|---|---|
${densityRows.join('\n')}

![Error density across blocks](replication-density.svg)

## Comparison with the paper

Each line states a finding of the paper (Imtiaz et al., FSE 2025) and whether the means above
agree with it. With ${seeds.length} seed${seeds.length === 1 ? '' : 's'}, a difference smaller than the standard deviations is not evidence either way.

${comparisons(results, density).map((line) => `- ${line}`).join('\n')}
`;
}

/** Lists the paper's findings next to the measured means, each marked as agreeing or not. */
function comparisons(results: RunResult[], density: ErrorDensity): string[] {
  const mean = (method: RunResult['method'], key: 'plantedRate' | 'perplexity') => {
    const values = results.filter((r) => r.method === method).map((r) => r[key]);
    return values.length ? meanSd(values).mean : undefined;
  };
  const lines: string[] = [];
  const compare = (claim: string, first: RunResult['method'], others: RunResult['method'][], key: 'plantedRate' | 'perplexity') => {
    const value = mean(first, key);
    const present = others.filter((other) => mean(other, key) !== undefined);
    if (value === undefined || present.length === 0) return;
    const format = (v: number) => (key === 'plantedRate' ? `${(v * 100).toFixed(1)}%` : v.toFixed(3));
    const beaten = present.filter((other) => value < mean(other, key)!);
    const detail = present.map((other) => `${METHOD_LABELS[other]} ${format(mean(other, key)!)}`).join(', ');
    let verdict = `agrees for ${beaten.map((o) => METHOD_LABELS[o]).join(', ')} only`;
    if (beaten.length === present.length) verdict = 'agrees';
    if (beaten.length === 0) verdict = 'disagrees';
    lines.push(`${claim} Measured: ${METHOD_LABELS[first]} ${format(value)}; ${detail}. This run ${verdict}.`);
  };
  compare('Table 1: IRepair leaves a lower error rate than DAPT, DAPT + KL and DPO.', 'irepair', ['dapt', 'dapt-kl', 'dpo'], 'plantedRate');
  compare('Table 1: IRepair + KL leaves a lower error rate than DAPT, DAPT + KL and DPO.', 'irepair-kl', ['dapt', 'dapt-kl', 'dpo'], 'plantedRate');
  compare('Table 1: IRepair keeps a lower perplexity than DAPT, DAPT + KL and DPO.', 'irepair', ['dapt', 'dapt-kl', 'dpo'], 'perplexity');
  compare('Table 3: dynamic slicing (IRepair) leaves a lower error rate than the Fixed and Min variants.', 'irepair', ['irepair-fixed', 'irepair-min'], 'plantedRate');
  compare('Table 1: IRepair + KL leaves a lower error rate than IRepair.', 'irepair-kl', ['irepair'], 'plantedRate');
  lines.push(tradeOff(results));
  const sameSlices = sameBlocksAsFixed(results);
  if (sameSlices) lines.push(sameSlices);
  const ratio = density.ratio;
  lines.push(
    `Figure 2: the top 20% of blocks hold a higher error density than the other 80% (120.8% to 1137.7% higher in the paper's models). ` +
      `Measured: ${((ratio - 1) * 100).toFixed(1)}% higher (top block${density.topBlocks.length > 1 ? 's' : ''} ${density.topBlocks.join(', ')}). This run ${ratio > 1 ? 'agrees' : 'disagrees'}.`,
  );
  return lines;
}

/**
 * Returns a note when every irepair run selected the one block that irepair-fixed chose, at every
 * step: dynamic slicing then never differed from the fixed slice on this model, or null.
 */
function sameBlocksAsFixed(results: RunResult[]): string | null {
  const dynamic = results.filter((r) => r.method === 'irepair');
  const fixed = results.filter((r) => r.method === 'irepair-fixed');
  if (dynamic.length === 0 || fixed.length === 0) return null;
  const blocks = new Set(dynamic.flatMap((r) => Object.keys(r.selectedBlocks ?? {})));
  const fixedBlocks = new Set(fixed.flatMap((r) => Object.keys(r.selectedBlocks ?? {})));
  if (blocks.size !== 1 || fixedBlocks.size !== 1 || [...blocks][0] !== [...fixedBlocks][0]) return null;
  return `Sections 3.3.3 and 4.4 (dynamic slicing): on this model IRepair selected block ${[...blocks][0]} at every step of every run, the block ` +
    'irepair-fixed chose, so the two methods made the same updates and their rows differ only in time. The demo model does not ' +
    'exercise dynamic slicing, which the paper found clearly better than the fixed slice on its GPT-2 and GPT-Neo models (Table 3). ' +
    'The cause is the architecture of a 4-block model rather than the planted data. Block 0 also has the largest gradient norm on ' +
    'good continuations and on clean text, about twice block 1\'s. It kept the lead in every training variant tried (8 blocks of ' +
    'width 32, larger embeddings without weight decay, a planted behaviour that depends on an earlier sentence, planted training ' +
    'confined to blocks 2 and 3). The paper\'s 36- to 48-block models have a top block only 6.5% to 28% above the second.';
}

/**
 * Compares the trade-off the paper discusses with its toxicity-to-perplexity ratios: here, the
 * points of error rate removed per percent of perplexity added, from the means over seeds.
 */
function tradeOff(results: RunResult[]): string {
  const mean = (method: RunResult['method'], key: 'plantedRate' | 'perplexity') => {
    const values = results.filter((r) => r.method === method).map((r) => r[key]);
    return values.length ? meanSd(values).mean : undefined;
  };
  const baseRate = mean('original', 'plantedRate');
  const basePerplexity = mean('original', 'perplexity');
  const methods: RepairMethod[] = ['irepair', 'irepair-kl', 'dapt', 'dapt-kl', 'dpo'];
  const scores = methods.flatMap((method) => {
    const rate = mean(method, 'plantedRate');
    const perplexity = mean(method, 'perplexity');
    if (rate === undefined || perplexity === undefined || baseRate === undefined || basePerplexity === undefined) return [];
    const removed = (baseRate - rate) * 100;
    const added = Math.max(((perplexity - basePerplexity) / basePerplexity) * 100, 0.01);
    return [{ method, score: removed / added, text: `${METHOD_LABELS[method]} ${removed.toFixed(1)} points for +${added.toFixed(2)}%` }];
  });
  if (scores.length === 0) return 'Trade-off: not measured.';
  const best = scores.reduce((a, b) => (b.score > a.score ? b : a));
  const irepairBest = best.method === 'irepair' || best.method === 'irepair-kl';
  return 'Section 4.2: IRepair trades less perplexity for the same repair than the baselines. Measured, error-rate points removed ' +
    `for the perplexity added: ${scores.map((s) => s.text).join('; ')}. The best ratio is ${METHOD_LABELS[best.method]}'s, so this run ` +
    `${irepairBest ? 'agrees' : 'disagrees'}.`;
}

/** Draws a bar chart of each block's share of the total sensitivity as SVG, the top blocks in red. */
function densitySvg(density: ErrorDensity): string {
  const width = 480;
  const height = 260;
  const left = 56;
  const bottom = 40;
  const top = 36;
  const plotWidth = width - left - 16;
  const plotHeight = height - top - bottom;
  const L = density.relative.length;
  const largest = Math.max(...density.relative);
  const scaleMax = Math.ceil(largest * 10) / 10;
  const barWidth = (plotWidth / L) * 0.7;
  const bars = density.relative.map((share, block) => {
    const x = left + (plotWidth / L) * (block + 0.15);
    const h = (share / scaleMax) * plotHeight;
    const y = top + plotHeight - h;
    const fill = density.topBlocks.includes(block) ? '#c0392b' : '#7f8c8d';
    return `  <rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${barWidth.toFixed(1)}" height="${h.toFixed(1)}" fill="${fill}"/>\n` +
      `  <text x="${(x + barWidth / 2).toFixed(1)}" y="${(y - 4).toFixed(1)}" font-size="11" text-anchor="middle">${(share * 100).toFixed(1)}%</text>\n` +
      `  <text x="${(x + barWidth / 2).toFixed(1)}" y="${height - bottom + 16}" font-size="12" text-anchor="middle">${block}</text>`;
  });
  const ticks = [0, 0.5, 1].map((f) => {
    const y = top + plotHeight - f * plotHeight;
    return `  <line x1="${left - 4}" x2="${left + plotWidth}" y1="${y}" y2="${y}" stroke="#ddd"/>\n` +
      `  <text x="${left - 8}" y="${y + 4}" font-size="11" text-anchor="end">${(f * scaleMax * 100).toFixed(0)}%</text>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">
  <rect width="${width}" height="${height}" fill="white"/>
  <text x="${width / 2}" y="20" font-size="14" text-anchor="middle">Share of the error (block sensitivity) per block; red: top ${Math.round(density.topFraction * 100)}%</text>
${ticks.join('\n')}
${bars.join('\n')}
  <text x="${left + plotWidth / 2}" y="${height - 6}" font-size="12" text-anchor="middle">transformer block</text>
</svg>
`;
}

function pct(rate: number): string {
  return `${(rate * 100).toFixed(1)}%`;
}

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

await runScript(main);

// `npm run demo`: the main job on the shipped demo model, offline. It measures the rate of the
// planted behaviour on the held-out prompts and the perplexity of the clean text, then repairs the
// model with IRepair and exports it in the Hugging Face layout. It loads the export back, measures
// again and prints the comparison.
//
//   node bin/run-ts.js scripts/demo/run-demo.ts [--model public/demo] [--out demo-output]
//     [--method irepair] [--steps 20] [--batch-size 4] [--lr 0.0001] [--seed 1] [--samples 2]

import { parseArgs } from 'node:util';
import { createNodeGpu } from '../../src/gpu/node.ts';
import type { Gpu } from '../../src/gpu/device.ts';
import { runScript, UserError } from '../../src/model/errors.ts';
import { nodeDirectorySink } from '../../src/model/export.ts';
import { parseText } from '../../src/data/dataset.ts';
import { isRepairMethod, REPAIR_METHODS, usesKl, type RepairMethod } from '../../src/repair/options.ts';
import { createRepairRun, type RepairEvent, type RunRecord } from '../../src/repair/run.ts';
import { DEMO_REPAIR } from './files.ts';
import { DEMO_MAX_NEW_TOKENS, loadModel, measure, readDemoData, type DemoData, type LoadedModel, type Measurement } from './evaluate.ts';

interface DemoOptions {
  model: string;
  out: string;
  method: RepairMethod;
  steps: number;
  batchSize: number;
  learningRate: number;
  seed: number;
  samples: number;
}

function readOptions(): DemoOptions {
  const { values } = parseArgs({
    options: {
      model: { type: 'string', default: 'public/demo' },
      out: { type: 'string', default: 'demo-output' },
      method: { type: 'string', default: DEMO_REPAIR.method },
      steps: { type: 'string', default: String(DEMO_REPAIR.maxSteps) },
      'batch-size': { type: 'string', default: String(DEMO_REPAIR.batchSize) },
      lr: { type: 'string', default: String(DEMO_REPAIR.learningRate) },
      seed: { type: 'string', default: '1' },
      samples: { type: 'string', default: '2' },
    },
  });
  const integer = (name: string, text: string, min: number) => {
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < min) throw new UserError(`option --${name}: "${text}" is not an integer of at least ${min}.`);
    return value;
  };
  const method = values.method!;
  if (!isRepairMethod(method)) throw new UserError(`option --method: "${method}" is not one of ${REPAIR_METHODS.join(', ')}.`);
  const learningRate = Number(values.lr);
  if (!(learningRate > 0 && Number.isFinite(learningRate))) throw new UserError(`option --lr: "${values.lr}" is not a positive number.`);
  return {
    model: values.model!,
    out: values.out!,
    method,
    steps: integer('steps', values.steps!, 1),
    batchSize: integer('batch-size', values['batch-size']!, 1),
    learningRate,
    seed: integer('seed', values.seed!, 0),
    samples: integer('samples', values.samples!, 1),
  };
}

async function main(): Promise<void> {
  const options = readOptions();
  const started = performance.now();
  const data = await readDemoData(options.model);
  const gpu = await createNodeGpu();
  try {
    await runDemo(gpu, data, options);
  } finally {
    gpu.destroy();
  }
  log(`\nDone in ${formatSeconds((performance.now() - started) / 1000)}.`);
}

async function runDemo(gpu: Gpu, data: DemoData, options: DemoOptions): Promise<void> {
  const original = await loadModel(gpu, options.model);
  const { config } = original.checkpoint;
  log(`IRepair demo on ${options.model}: GPT-2, ${config.numLayers} blocks, width ${config.hiddenSize}, ` +
    `${original.checkpoint.parameterCount.toLocaleString('en-US')} parameters, on ${gpu.adapterDescription}.`);
  log(`Planted behaviour: ${data.planted.description}`);

  const continuations = data.prompts.length * options.samples;
  log(`\nMeasuring the original model: ${continuations} continuations of ${data.prompts.length} held-out prompts ` +
    `(${DEMO_MAX_NEW_TOKENS} tokens each), perplexity of ${data.cleanFile}...`);
  const before = await measure(original, data, { seed: options.seed, samplesPerPrompt: options.samples });
  log(`  planted behaviour in ${formatRate(before.plantedRate)} of continuations, perplexity ${before.perplexity.toFixed(2)}`);

  const record = await repair(original, data, options);
  original.engine.destroy();

  // The repaired model is measured as exported, so the comparison also checks the export.
  const repaired = await loadModel(gpu, options.out);
  log(`\nMeasuring the repaired model from ${options.out}...`);
  const after = await measure(repaired, data, { seed: options.seed, samplesPerPrompt: options.samples });
  repaired.engine.destroy();

  printComparison(data, options, record, before, after);
}

async function repair(model: LoadedModel, data: DemoData, options: DemoOptions): Promise<RunRecord> {
  const kl = usesKl(options.method);
  const run = createRepairRun(model.engine, model.checkpoint, model.tokenizer, data.repair, {
    method: options.method,
    maxSteps: options.steps,
    batchSize: options.batchSize,
    learningRate: options.learningRate,
    seed: options.seed,
    // One validation batch every 10 steps, without early stopping, keeps the run's length fixed.
    validationBatches: 1,
    validationBatchSize: options.batchSize,
    validateEvery: 10,
    patience: null,
    normal: kl ? { kind: 'text', text: parseText(data.normal, data.normalFile), length: null } : undefined,
    fixedSample: 64,
  });

  log(`\nRepairing with ${options.method}: ${options.steps} steps of ${options.batchSize} examples from ${data.repair.fileName}, ` +
    `learning rate ${options.learningRate}, sequences of ${run.seqLen} tokens.`);
  const lossLabel = options.method === 'dpo' ? 'DPO loss' : 'NLL of good continuations';
  if (options.method.startsWith('irepair')) {
    log('  Bars: block sensitivity (gradient L2 norm), one bar per block from block 0, [ ] around the selected block.');
    log('  Scale: each step\'s bars are relative to its largest sensitivity, printed as "max" (█ = max, ▁ = below max/8).');
  }
  log(`  The validation lines give the mean ${lossLabel} of the held-out pairs.`);
  const result = await run.run((event) => printEvent(event, lossLabel));
  log(`Exporting to ${options.out}...`);
  await run.exportTo(nodeDirectorySink(options.out));
  return result.record;
}

const BARS = '▁▂▃▄▅▆▇█';

function printEvent(event: RepairEvent, lossLabel: string): void {
  if (event.kind === 'message') log(`  note: ${event.message}`);
  if (event.kind === 'progress' && event.done === event.total) log(`  ${event.message}: ${event.total} done`);
  if (event.kind === 'validation') log(`  validation ${lossLabel} (held-out pairs) after step ${event.step}: ${event.loss.toFixed(3)}`);
  if (event.kind !== 'step') return;

  const step = String(event.step).padStart(4);
  const loss = `${lossLabel} (repair batch) ${event.repairLoss.toFixed(3)}`;
  const kl = event.klLoss !== undefined ? `  KL ${event.klLoss.toFixed(4)}` : '';
  if (event.selectedBlock === undefined) {
    log(`  step ${step}  ${loss}${kl}`);
    return;
  }
  // Bars are scaled to the step's largest sensitivity, printed as "max", and brackets mark the selected block.
  const largest = Math.max(...event.sensitivities);
  const bars = event.sensitivities.map((value, block) => {
    const bar = BARS[Math.min(BARS.length - 1, Math.floor((value / largest) * BARS.length))];
    return block === event.selectedBlock ? `[${bar}]` : ` ${bar} `;
  }).join('');
  log(`  step ${step}  ${bars}  max ${largest.toPrecision(3)}  block ${event.selectedBlock}  ${loss}${kl}`);
}

function printComparison(data: DemoData, options: DemoOptions, record: RunRecord, before: Measurement, after: Measurement): void {
  const counts = new Map<number, number>();
  for (const step of record.steps) if (step.selectedBlock !== undefined) counts.set(step.selectedBlock, (counts.get(step.selectedBlock) ?? 0) + 1);
  const selected = counts.size > 0
    ? [...counts].sort((a, b) => b[1] - a[1] || a[0] - b[0]).map(([block, n]) => `block ${block} (${n} steps)`).join(', ')
    : `every parameter (${options.method} is not a slice method)`;

  const rows = [
    ['', 'before', 'after'],
    ['planted behaviour rate', formatRate(before.plantedRate), formatRate(after.plantedRate)],
    ['clean-text perplexity', before.perplexity.toFixed(2), after.perplexity.toFixed(2)],
  ];
  log(`\nResult of ${options.method} (${record.stepsRun} steps, ${formatSeconds(record.durationSeconds)}):`);
  for (const [label, first, second] of rows) log(`  ${label.padEnd(24)}${first.padStart(8)}${second.padStart(10)}`);
  log(`  planted behaviour rate: share of ${before.continuations.length} sampled continuations of the held-out prompts in ${data.dir}/eval-prompts.jsonl that contain a word of planted.json`);
  log(`  perplexity: over the ${before.perplexityTokens} predicted tokens of ${data.cleanFile}`);
  log(`  selected blocks: ${selected}`);
  log(`  repaired model: ${options.out}/ (model.safetensors, config.json, tokenizer files, run.json)`);

  log('\nExamples (the same random draws before and after):');
  for (let prompt = 0; prompt < Math.min(4, data.prompts.length); prompt++) {
    const i = prompt * options.samples;
    log(`  ${JSON.stringify(before.continuations[i].prompt)}`);
    log(`    before: ${JSON.stringify(before.continuations[i].completion)}`);
    log(`    after:  ${JSON.stringify(after.continuations[i].completion)}`);
  }
}

function formatRate(rate: number): string {
  return `${(rate * 100).toFixed(1)}%`;
}

function formatSeconds(seconds: number): string {
  return seconds < 120 ? `${seconds.toFixed(0)} s` : `${(seconds / 60).toFixed(1)} min`;
}

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

await runScript(main);

// `irepair repair`: runs IRepair, one of its ablations or a baseline on a model directory and a
// dataset, and writes the repaired model in the Hugging Face layout with run.json.

import { stat, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { parseText } from '../data/dataset.ts';
import { loadEngine } from '../engine/gpt.ts';
import { runsJson, upsertRun, type RunRecord } from '../eval/compare.ts';
import { formatBytes } from '../gpu/device.ts';
import { createNodeGpu } from '../gpu/node.ts';
import { UserError } from '../model/errors.ts';
import { nodeDirectorySink } from '../model/export.ts';
import {
  DEFAULT_LEARNING_RATES, DEFAULT_NORMAL_SAMPLES, DEFAULT_WARMUP_STEPS, isRepairMethod, optimizerByName, REPAIR_METHODS, usesKl,
  type NormalDataOptions, type RepairMethod,
} from '../repair/options.ts';
import {
  DEFAULT_MAX_STEPS, DEFAULT_PATIENCE, DEFAULT_VALIDATE_EVERY, DEFAULT_VALIDATION_BATCHES,
} from '../repair/defaults.ts';
import { createRepairRun, type RepairEvent } from '../repair/run.ts';
import { integerOption, numberOption } from './options.ts';
import { openModelDirectory, readDataset, readTextFile } from './model.ts';
import { checkNameOption, readRunsFile, sinkWithRecordName } from './records.ts';

interface RepairCommandOptions {
  model: string;
  data: string;
  out: string;
  method: string;
  steps: number;
  lr?: number;
  alpha: number;
  batchSize: number;
  seed: number;
  normal?: string;
  normalSamples: number;
  normalLength?: number;
  beta: number;
  patience: number;
  earlyStopping: boolean;
  warmup?: number;
  validateEvery: number;
  validationBatches: number;
  dropout: boolean;
  clip: number;
  optimizer: string;
  fixedSample: number;
  maxLength?: number;
  memoryLimit?: number;
  logEvery: number;
  quiet?: boolean;
  record?: string;
  name?: string;
}

const learningRates = REPAIR_METHODS.map((method) => `${method} ${DEFAULT_LEARNING_RATES[method]}`).join(', ');

export function registerRepair(program: Command): void {
  program
    .command('repair')
    .description('Repair a model on a dataset of prompts with bad and good continuations, and write the repaired model.')
    .requiredOption('--model <dir>', 'Hugging Face model directory (config.json, model.safetensors, tokenizer files)')
    .requiredOption('--data <file>', 'dataset: JSONL, JSON or CSV in the pairwise or preference format')
    .requiredOption('--out <dir>', 'directory for the repaired model and run.json (created if missing)')
    .option('--method <name>', `one of ${REPAIR_METHODS.join(', ')}`, 'irepair')
    .option('--steps <n>', 'maximum number of training steps', integerOption('--steps', 1), DEFAULT_MAX_STEPS)
    .option('--lr <x>', `peak learning rate (default per method: ${learningRates})`, numberOption('--lr', 0, 10))
    .option('--alpha <x>', 'weight of the repair NLL in alpha * NLL + KL (irepair methods and dapt-kl)', numberOption('--alpha', Number.MIN_VALUE, 1e6), 0.5)
    .option('--batch-size <n>', 'examples per training step', integerOption('--batch-size', 1, 4096), 4)
    .option('--seed <n>', 'seed of the split, batch order, dropout and normal-data sampling', integerOption('--seed', 0, 0xffffffff), 42)
    .option('--normal <file>', 'plain-text normal data for the KL term (default: sample it from the model)')
    .option('--normal-samples <n>', 'number of normal sequences sampled from the model for the KL term', integerOption('--normal-samples', 1), DEFAULT_NORMAL_SAMPLES)
    .option('--normal-length <n>', 'tokens per normal sequence (default: the longest repair example)', integerOption('--normal-length', 2))
    .option('--beta <x>', 'DPO inverse temperature beta', numberOption('--beta', Number.MIN_VALUE, 1e6), 0.1)
    .option('--patience <n>', 'validation checks without improvement before early stopping', integerOption('--patience', 1), DEFAULT_PATIENCE)
    .option('--no-early-stopping', 'run all --steps steps')
    .option('--warmup <n>', `linear warmup steps (default: ${DEFAULT_WARMUP_STEPS}, or a tenth of --steps when that is smaller)`, integerOption('--warmup', 0))
    .option('--validate-every <n>', 'steps between validation checks', integerOption('--validate-every', 1), DEFAULT_VALIDATE_EVERY)
    .option('--validation-batches <n>', 'validation split, in batches of 8 examples (0: no validation)', integerOption('--validation-batches', 0, 1 << 20), DEFAULT_VALIDATION_BATCHES)
    .option('--no-dropout', "turn off the dropout of the model's config.json during training steps")
    .option('--clip <x>', 'maximum gradient L2 norm (0: no clipping)', numberOption('--clip', 0), 1)
    .option('--optimizer <name>', 'rmsprop or adamw', 'rmsprop')
    .option('--fixed-sample <n>', 'irepair-fixed: bad examples whose mean sensitivity picks the block', integerOption('--fixed-sample', 1), 2000)
    .option('--max-length <n>', "tokens per sequence at most (default: the model's context length)", integerOption('--max-length', 2))
    .option('--memory-limit <MiB>', 'reject runs that plan more GPU memory than this', numberOption('--memory-limit', Number.MIN_VALUE))
    .option('--log-every <n>', 'steps between progress lines on stderr', integerOption('--log-every', 1), 10)
    .option('--quiet', 'print no progress')
    .option('--record <file>', 'also store the method, settings and overhead in this runs file (created if missing), for irepair eval --compare')
    .option('--name <name>', 'with --record: run name (default: the method); run.json stores it as recordName')
    .action(runRepair);
}

async function runRepair(options: RepairCommandOptions): Promise<void> {
  const method = options.method;
  if (!isRepairMethod(method)) throw new UserError(`option --method: "${method}" is not one of ${REPAIR_METHODS.join(', ')}.`);
  optimizerByName(options.optimizer);
  checkNameOption(options);
  await checkOutput(options.out, options.model);
  const recordedRuns = options.record ? await readRunsFile(options.record, { missingOk: true, option: '--record' }) : null;
  const log = options.quiet ? () => {} : (line: string) => process.stderr.write(`${line}\n`);

  const { checkpoint, tokenizer } = await openModelDirectory(options.model);
  const dataset = await readDataset(options.data);
  const normal = await normalData(options, method, log);

  const gpu = await createNodeGpu();
  const engine = await loadEngine(gpu, checkpoint);
  const run = createRepairRun(engine, checkpoint, tokenizer, dataset, {
    method,
    learningRate: options.lr,
    alpha: options.alpha,
    batchSize: options.batchSize,
    maxSteps: options.steps,
    warmupSteps: options.warmup,
    seed: options.seed,
    beta: options.beta,
    clipNorm: options.clip,
    dropout: options.dropout,
    optimizer: optimizerByName(options.optimizer),
    validationBatches: options.validationBatches,
    validateEvery: options.validateEvery,
    patience: options.earlyStopping ? options.patience : null,
    fixedSample: options.fixedSample,
    maxLength: options.maxLength ?? null,
    normal,
    memoryLimitBytes: options.memoryLimit === undefined ? null : options.memoryLimit * 2 ** 20,
  });
  const o = run.options;
  log(`${method} on ${options.data}: ${run.data.train.length} training and ${run.data.validation.length} validation examples, ` +
    `batch ${o.batchSize} x ${run.seqLen} tokens, up to ${o.maxSteps} steps, learning rate ${o.learningRate}, warmup ${o.warmupSteps}; ` +
    `planned GPU memory ${formatBytes(run.memoryPlan.total)} on ${gpu.adapterDescription}`);

  // The first Ctrl-C ends the run after the current step and still writes the model.
  const stop = () => {
    log('stopping after the current step (press Ctrl-C again to abort)');
    run.stop();
    process.once('SIGINT', () => process.exit(130));
  };
  process.once('SIGINT', stop);
  try {
    const result = await run.run(progressLogger(log, options.logEvery));
    // run.json keeps the recorded name, so that eval --record and toxicity --record add to the same run.
    const recordName = options.name ?? method;
    const sink = nodeDirectorySink(options.out);
    await run.exportTo(options.record ? sinkWithRecordName(sink, recordName) : sink);
    const record = result.record;
    if (options.record && recordedRuns) {
      const update: RunRecord = {
        name: recordName,
        method,
        model: options.out,
        settings: run.comparisonSettings(),
        overhead: record.overhead!,
        updatedAt: new Date().toISOString(),
      };
      await writeFile(options.record, runsJson(upsertRun(recordedRuns, update)));
    }
    const blocks = record.updatedBlocks.length > 0 ? `blocks ${record.updatedBlocks.join(', ')}` : 'no block';
    process.stdout.write(
      `${options.out}: ${result.steps} steps (${result.reason}), updated ${blocks}${record.updatedEmbeddings ? ' and the embeddings' : ''}; ` +
        `peak GPU memory ${formatBytes(record.peakGpuBytes)}\n`,
    );
  } finally {
    process.removeListener('SIGINT', stop);
    engine.destroy();
    gpu.destroy();
  }
}

/** Rejects an output directory that is the model directory or an existing file. */
async function checkOutput(out: string, model: string): Promise<void> {
  if (resolve(out) === resolve(model)) {
    throw new UserError(`--out ${out}: is the model directory; writing there would overwrite the input. Choose another directory.`);
  }
  const info = await stat(out).catch(() => null);
  if (info && !info.isDirectory()) throw new UserError(`--out ${out}: is a file, expected a directory.`);
}

async function normalData(options: RepairCommandOptions, method: RepairMethod, log: (line: string) => void): Promise<NormalDataOptions> {
  const length = options.normalLength ?? null;
  if (!usesKl(method)) {
    if (options.normal) log(`note: --normal is ignored, because ${method} has no KL term.`);
    return { kind: 'sample', count: options.normalSamples, length, topP: 0.9, temperature: 1 };
  }
  if (options.normal) return { kind: 'text', text: parseText(await readTextFile(options.normal, '--normal'), options.normal), length };
  return { kind: 'sample', count: options.normalSamples, length, topP: 0.9, temperature: 1 };
}

function progressLogger(log: (line: string) => void, every: number): (event: RepairEvent) => void {
  return (event) => {
    switch (event.kind) {
      case 'message':
        log(`note: ${event.message}`);
        break;
      case 'progress':
        if (event.done === event.total) log(`${event.message}: ${event.done} of ${event.total} done`);
        break;
      case 'step':
        if (event.step === 1 || event.step % every === 0) {
          const block = event.selectedBlock === undefined ? '' : `  block ${event.selectedBlock}`;
          const kl = event.klLoss === undefined ? '' : `  KL ${event.klLoss.toFixed(5)}`;
          const eta = event.etaSeconds === null ? '' : `  ${formatSeconds(event.etaSeconds)} left`;
          log(`step ${event.step}${block}  loss ${event.repairLoss.toFixed(4)}${kl}  lr ${event.lr.toExponential(2)}  ` +
            `${Math.round(event.tokensPerSecond)} tokens/s${eta}`);
        }
        break;
      case 'validation':
        log(`validation at step ${event.step}: loss ${event.loss.toFixed(4)}`);
        break;
      case 'finished':
        log(`finished after ${event.step} steps: ${event.reason}`);
        break;
      default:
        break;
    }
  };
}

function formatSeconds(seconds: number): string {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

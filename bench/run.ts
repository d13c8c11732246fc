// Engine benchmark: tokens per second of the forward, forward+backward and sensitivity passes,
// and peak GPU bytes, for a tiny GPT-2 and a random model with GPT-2 small's shape. The
// baseline is TensorFlow.js's WebGPU backend, measured in the same run on the same adapter.
// Prints a table and writes the results as JSON to bench/results/.
//
//   npm run bench -- [--quick] [--config NAMES] [--passes NAMES] [--iterations N]
//                    [--batch B] [--seq-len T] [--skip-tfjs] [--json FILE]

import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';
import { formatBytes } from '../src/gpu/device.ts';
import { createNodeGpu } from '../src/gpu/node.ts';
import { parseConfig } from '../src/model/config.ts';
import { runScript } from '../src/model/errors.ts';
import type { ModelConfig } from '../src/model/types.ts';
import {
  benchmarkEngine, PASS_NAMES, randomBatch, randomWeights, type BenchOptions, type EngineResult, type PassName,
} from './engine.ts';
import type { TfjsResult } from './tfjs-gpt2.ts';

interface BenchConfig {
  name: string;
  /** config.json fields of a GPT-2 model with this shape. */
  json: Record<string, number | string>;
  /** Timed iterations when --iterations is not given. */
  defaultIterations: number;
}

const CONFIGS: BenchConfig[] = [
  {
    name: 'tiny',
    // n_positions 1024 so that the same --seq-len fits both configurations.
    json: { model_type: 'gpt2', vocab_size: 512, n_positions: 1024, n_embd: 64, n_layer: 2, n_head: 2, bos_token_id: 0, eos_token_id: 0 },
    defaultIterations: 10,
  },
  {
    name: 'gpt2-small',
    json: { model_type: 'gpt2', vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12 },
    defaultIterations: 1,
  },
];

/** Relative differences above these make the comparison invalid (f32 sums in different orders). */
const LOSS_TOLERANCE = 1e-4;
const NORM_TOLERANCE = 1e-3;

/** Pass names as options and tables spell them. */
const PASS_LABELS: Record<PassName, string> = {
  forward: 'forward',
  forwardBackward: 'forward+backward',
  sensitivity: 'sensitivity',
};

/**
 * Returns the matrix-multiply FLOPs per token (2 per multiply-add) of each pass. The forward pass
 * costs F = 2*L*(4C^2 + 2CI) in the blocks, 2VC in the output head, and 4*L*T*C for attention
 * scores and their weighted sum over all T positions (causal masking not subtracted). The
 * backward pass costs 2F, input and weight gradients. The sensitivity pass computes no
 * token-embedding gradient, so it skips the head's 2VC of weight-gradient FLOPs.
 */
function flopsPerToken(config: ModelConfig, T: number): Record<PassName, number> {
  const { numLayers: L, hiddenSize: C, innerSize: I, vocabSize: V } = config;
  const forward = 2 * L * (4 * C * C + 2 * C * I) + 2 * V * C + 4 * L * T * C;
  return { forward, forwardBackward: 3 * forward, sensitivity: 3 * forward - 2 * V * C };
}

interface ConfigResult {
  name: string;
  shape: { vocabSize: number; contextLength: number; hiddenSize: number; numLayers: number; numHeads: number };
  batch: number;
  seqLen: number;
  flopsPerToken: Record<PassName, number>;
  engine: EngineResult;
  tfjs?: TfjsResult;
  /** Engine over tfjs for each measured pass: tokens per second, and peak bytes. */
  ratios?: Partial<Record<PassName, { speed: number; memory: number }>>;
  /** Agreement of the two implementations; the block norms only when sensitivity was measured. */
  check?: { lossRelativeDifference: number; normMaxRelativeDifference: number | null; valid: boolean };
}

function positiveInteger(value: string): number {
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed < 1) throw new InvalidArgumentError('must be a positive integer.');
  return parsed;
}

function listOf<T extends string>(allowed: Record<string, T>): (value: string) => T[] {
  return (value) => value.split(',').map((item) => {
    const found = allowed[item.trim()];
    if (!found) throw new InvalidArgumentError(`"${item}" is not one of ${Object.keys(allowed).join(', ')}.`);
    return found;
  });
}

const CONFIG_NAMES = Object.fromEntries(CONFIGS.map((config) => [config.name, config.name]));
const PASS_OPTION_NAMES: Record<string, PassName> = { forward: 'forward', 'forward-backward': 'forwardBackward', sensitivity: 'sensitivity' };

/** Returns the checked-out commit, marked when the working tree has changes, or null outside a git checkout. */
function sourceRevision(): string | null {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const commit = git('rev-parse', '--short', 'HEAD');
    return git('status', '--porcelain', '--untracked-files=no') ? `${commit} with uncommitted changes` : commit;
  } catch {
    return null;
  }
}

function relativeDifference(a: number, b: number): number {
  return Math.abs(a - b) / Math.max(Math.abs(b), 1e-30);
}

function slug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60) || 'adapter';
}

function formatRate(value: number): string {
  return value >= 100 ? value.toFixed(0) : value.toPrecision(3);
}

function progress(implementation: string): BenchOptions['onPass'] {
  return (name, result) => {
    console.log(`  ${implementation} ${PASS_LABELS[name]}: ${formatRate(result.tokensPerSecond)} tokens/s, peak ${formatBytes(result.peakBytes)}`);
  };
}

function printTable(rows: string[][]): void {
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  for (const row of rows) {
    console.log(row.map((cell, column) => (column < 2 ? cell.padEnd(widths[column]) : cell.padStart(widths[column]))).join('  '));
  }
}

/** Compares the engine with tfjs on the loss and the block gradient norms, and prints the outcome. */
function checkAgreement(engine: EngineResult, baseline: TfjsResult): NonNullable<ConfigResult['check']> {
  const lossRelativeDifference = relativeDifference(engine.loss, baseline.loss);
  const normMaxRelativeDifference = baseline.blockNorms.length > 0
    ? Math.max(...baseline.blockNorms.map((norm, l) => relativeDifference(engine.blockNorms[l], norm)))
    : null;
  const valid = lossRelativeDifference <= LOSS_TOLERANCE && (normMaxRelativeDifference ?? 0) <= NORM_TOLERANCE;
  console.log(`  loss: engine ${engine.loss.toPrecision(8)}, tfjs ${baseline.loss.toPrecision(8)} (relative difference ${lossRelativeDifference.toExponential(1)})`);
  if (normMaxRelativeDifference !== null) {
    console.log(`  block gradient norms: largest relative difference ${normMaxRelativeDifference.toExponential(1)}`);
  }
  if (!valid) {
    console.log(`  MISMATCH: above the tolerance (loss ${LOSS_TOLERANCE}, norms ${NORM_TOLERANCE}), so the speed comparison is invalid`);
  }
  return { lossRelativeDifference, normMaxRelativeDifference, valid };
}

function printResults(results: ConfigResult[], withTfjs: boolean): void {
  const header = ['config', 'pass', 'engine tok/s', 'engine GFLOP/s', 'engine peak'];
  if (withTfjs) header.push('tfjs tok/s', 'tfjs peak', 'speed ratio', 'memory ratio');
  const rows = [header];
  for (const result of results) {
    for (const pass of PASS_NAMES) {
      const engine = result.engine.passes[pass];
      if (!engine) continue;
      const row = [result.name, PASS_LABELS[pass], formatRate(engine.tokensPerSecond),
        formatRate((engine.tokensPerSecond * result.flopsPerToken[pass]) / 1e9), formatBytes(engine.peakBytes)];
      const baseline = result.tfjs?.passes[pass];
      const ratio = result.ratios?.[pass];
      if (withTfjs && baseline && ratio) {
        row.push(formatRate(baseline.tokensPerSecond), formatBytes(baseline.peakBytes), `${ratio.speed.toFixed(2)}x`, `${ratio.memory.toFixed(2)}x`);
      }
      rows.push(row);
    }
  }
  printTable(rows);
  if (withTfjs) console.log('\nRatios are engine over tfjs: speed above 1 means the engine is faster, memory below 1 means it uses less.');
}

async function main(): Promise<void> {
  const program = new Command('bench')
    .description('Measure the engine against TensorFlow.js (WebGPU backend) on the same adapter.')
    .option('--quick', 'tiny configuration only, 2 timed iterations')
    .option('--config <names>', `comma-separated configurations (default: ${CONFIGS.map((c) => c.name).join(',')})`, listOf(CONFIG_NAMES))
    .option('--passes <names>', 'comma-separated passes: forward, forward-backward, sensitivity (default: all)', listOf(PASS_OPTION_NAMES))
    .option('--iterations <n>', 'timed iterations per pass, after one untimed (default: 10 tiny, 1 GPT-2 small)', positiveInteger)
    .option('--batch <n>', 'batch size B', positiveInteger, 1)
    .option('--seq-len <n>', 'sequence length T, at most 1024', positiveInteger, 32)
    .option('--skip-tfjs', 'measure the engine only')
    .option('--json <file>', 'also write the results to this file')
    .parse(process.argv);
  const options = program.opts<{
    quick?: boolean; config?: string[]; passes?: PassName[]; iterations?: number; batch: number; seqLen: number; skipTfjs?: boolean; json?: string;
  }>();
  if (options.seqLen > 1024) program.error('error: option --seq-len must be at most 1024, the context length of both configurations.');
  const configNames = options.config ?? (options.quick ? ['tiny'] : CONFIGS.map((config) => config.name));
  const passes = options.passes ?? PASS_NAMES;

  // Other processes compete for the CPU on a shared machine, which matters most on SwiftShader.
  const loadAtStart = loadavg()[0];
  const gpu = await createNodeGpu();
  console.log(`adapter: ${gpu.adapterDescription}`);
  console.log(`batch ${options.batch} x sequence length ${options.seqLen}\n`);
  // Loaded only when used, because loading tfjs defines navigator.gpu.
  const tfjs = options.skipTfjs ? null : await import('./tfjs-gpt2.ts');
  if (tfjs) {
    const { adapter } = await tfjs.loadTfjsWebgpu();
    if (adapter !== gpu.adapterDescription) {
      program.error(`error: tfjs got adapter "${adapter}" and the engine "${gpu.adapterDescription}"; the comparison needs one adapter. Set VK_ICD_FILENAMES to a single Vulkan driver.`);
    }
  }

  const results: ConfigResult[] = [];
  for (const bench of CONFIGS.filter((config) => configNames.includes(config.name))) {
    const config = parseConfig(bench.json, `${bench.name} configuration`);
    const benchOptions = { iterations: options.iterations ?? (options.quick ? 2 : bench.defaultIterations), passes };
    const weights = randomWeights(config);
    const batch = randomBatch(config, options.batch, options.seqLen);
    console.log(`${bench.name}: ${benchOptions.iterations} timed iterations per pass`);

    const result: ConfigResult = {
      name: bench.name,
      shape: { vocabSize: config.vocabSize, contextLength: config.contextLength, hiddenSize: config.hiddenSize, numLayers: config.numLayers, numHeads: config.numHeads },
      batch: options.batch,
      seqLen: options.seqLen,
      flopsPerToken: flopsPerToken(config, options.seqLen),
      engine: await benchmarkEngine(gpu, config, weights, batch, { ...benchOptions, onPass: progress('engine') }),
    };
    if (tfjs) {
      const baseline = await tfjs.benchmarkTfjs(config, weights, batch, { ...benchOptions, onPass: progress('tfjs') });
      result.tfjs = baseline;
      result.ratios = {};
      for (const pass of passes) {
        const engine = result.engine.passes[pass]!;
        const other = baseline.passes[pass]!;
        result.ratios[pass] = { speed: engine.tokensPerSecond / other.tokensPerSecond, memory: engine.peakBytes / other.peakBytes };
      }
      result.check = checkAgreement(result.engine, baseline);
    } else {
      console.log(`  loss: engine ${result.engine.loss.toPrecision(8)}`);
    }
    results.push(result);
  }

  console.log('');
  printResults(results, tfjs !== null);

  const cpuList = cpus();
  const report = {
    date: new Date().toISOString(),
    command: `npm run bench --${process.argv.slice(2).map((arg) => ` ${arg}`).join('')}`,
    revision: sourceRevision(),
    machine: {
      cpu: cpuList[0]?.model ?? 'unknown',
      cores: cpuList.length,
      memoryBytes: totalmem(),
      os: `${process.platform} ${release()}`,
      node: process.version,
      adapter: gpu.adapterDescription,
      /** One-minute load averages at the start and the end of the run. */
      loadAverage: [loadAtStart, loadavg()[0]],
    },
    results,
  };
  const resultsDir = join(dirname(fileURLToPath(import.meta.url)), 'results');
  mkdirSync(resultsDir, { recursive: true });
  // Date and time (UTC) in the name, so that runs of one day do not overwrite each other.
  const file = join(resultsDir, `${report.date.slice(0, 19).replace(/:/g, '-')}-${slug(gpu.adapterDescription)}.json`);
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\nresults written to ${file}`);
  if (options.json) {
    writeFileSync(options.json, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`results written to ${options.json}`);
  }
  gpu.destroy();
  if (results.some((result) => result.check && !result.check.valid)) process.exitCode = 1;
}

await runScript(main);

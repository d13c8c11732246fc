// `irepair eval`: perplexity of a text, error density across blocks, generation from prompts, and
// the comparison of recorded runs. One mode per invocation:
//   --ppl FILE.txt      prints {"perplexity", "tokens"}
//   --density           prints the mean block sensitivity over a sample of D^E and the density ratio
//   --generate          writes one JSON line per generated continuation
//   --compare RUNS      prints the runs of a runs file side by side (text, CSV or JSON)

import { writeFile } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import type { Command } from 'commander';
import { parseText } from '../data/dataset.ts';
import { sequencesFor, tokenizeExamples } from '../data/examples.ts';
import { KvCacheDecoder } from '../engine/decode.ts';
import { loadEngine, type GptEngine } from '../engine/gpt.ts';
import {
  comparisonCsv, comparisonText, compareRuns, runsJson, upsertRun, type RunRecord,
} from '../eval/compare.ts';
import { densityChart, errorDensity } from '../eval/density.ts';
import { generateTexts, GREEDY, type SamplingOptions } from '../eval/generate.ts';
import { perplexity } from '../eval/perplexity.ts';
import type { Gpu } from '../gpu/device.ts';
import { createNodeGpu } from '../gpu/node.ts';
import { UserError } from '../model/errors.ts';
import type { Checkpoint } from '../model/checkpoint.ts';
import { integerOption, numberOption } from './options.ts';
import { openModelDirectory, readDataset, readTextFile } from './model.ts';
import { checkNameOption, readRepairRunInfo, readRunsFile, recordedRunName } from './records.ts';

interface EvalOptions {
  model?: string;
  ppl?: string;
  window?: number;
  record?: string;
  name?: string;
  benchmark?: string;
  density?: boolean;
  data?: string;
  sample: number;
  topFraction: number;
  chart?: boolean;
  generate?: boolean;
  prompts?: string;
  unconditional?: number;
  maxNewTokens: number;
  greedy?: boolean;
  temperature?: number;
  topP?: number;
  topK?: number;
  samples: number;
  out?: string;
  compare?: string;
  format: string;
  batchSize?: number;
  seed: number;
  json?: string;
}

const MODES = ['ppl', 'density', 'generate', 'compare'] as const;

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description('Evaluate a model: perplexity of a text (--ppl), error density across blocks (--density), '
      + 'generation (--generate), or compare recorded runs (--compare). Give exactly one of them.')
    .option('--model <dir>', 'Hugging Face model directory (required except with --compare)')
    .option('--ppl <file>', 'plain-text file: print {"perplexity", "tokens"} over non-overlapping windows of the context length')
    .option('--window <n>', 'with --ppl: tokens per window (default: the model\'s context length)', integerOption('--window', 2, 1 << 20))
    .option('--record <file>', 'with --ppl: also store the perplexity in this runs file (created if missing), for --compare')
    .option('--name <name>', 'with --record: run name (default: the name that repair --record stored in the model\'s run.json, else its method, else the directory name)')
    .option('--benchmark <name>', 'with --record: benchmark name, e.g. WikiText2 (default: the text file\'s name without extension)')
    .option('--density', 'mean block sensitivity over a sample of bad continuations (D^E) and the top-20% density ratio')
    .option('--data <file>', 'with --density: dataset with bad continuations (pairwise or preference format)')
    .option('--sample <n>', 'with --density: examples drawn from the dataset', integerOption('--sample', 1, 1 << 24), 2000)
    .option('--top-fraction <x>', 'with --density: fraction of blocks counted as the top', numberOption('--top-fraction', 0.01, 0.99), 0.2)
    .option('--chart', 'with --density: also draw a bar per block on stderr')
    .option('--generate', 'generate continuations and write one JSON line per continuation')
    .option('--prompts <file>', 'with --generate: prompts (JSONL, JSON or CSV with prompt or prompt_text)')
    .option('--unconditional <n>', 'with --generate: n texts started from <|endoftext|> instead of prompts', integerOption('--unconditional', 1, 1 << 24))
    .option('--max-new-tokens <n>', 'with --generate: tokens per continuation at most', integerOption('--max-new-tokens', 1, 1 << 20), 20)
    .option('--greedy', 'with --generate: pick the most likely token at each step')
    .option('--temperature <t>', 'with --generate: sampling temperature (default 1)', numberOption('--temperature', 0))
    .option('--top-p <p>', 'with --generate: nucleus sampling mass in (0, 1], 1 to disable (default 0.9)', numberOption('--top-p', 0, 1))
    .option('--top-k <k>', 'with --generate: sample among the k most likely tokens, 0 to disable (default 0)', integerOption('--top-k', 0, 1 << 30))
    .option('--samples <n>', 'with --generate: continuations per prompt', integerOption('--samples', 1, 1 << 16), 1)
    .option('--out <file>', 'with --generate: write the JSON lines to this file instead of standard output')
    .option('--compare <file>', 'runs file written by --record: print the runs side by side')
    .option('--format <format>', 'with --compare: text, csv or json', 'text')
    .option('--batch-size <n>', 'sequences per GPU pass (default: --ppl as many windows as keep the logits within 256 MiB, at most 8; --density 4; --generate 8)',
      integerOption('--batch-size', 1, 4096))
    .option('--seed <n>', 'seed of --density\'s sample and of --generate\'s sampling', integerOption('--seed', 0, 0xffffffff), 0)
    .option('--json <file>', 'with --ppl or --density: also write the result to this file')
    .action(async (options: EvalOptions) => {
      const modes = MODES.filter((mode) => options[mode] !== undefined);
      if (modes.length !== 1) {
        throw new UserError(`irepair eval: give exactly one of --ppl, --density, --generate, --compare (got ${modes.length ? modes.map((m) => `--${m}`).join(', ') : 'none'}).`);
      }
      if (modes[0] === 'compare') return compare(options.compare!, options.format);
      checkNameOption(options);

      if (!options.model) throw new UserError(`option --model is required with --${modes[0]}.`);
      const { checkpoint, tokenizer } = await openModelDirectory(options.model);
      // Inputs are read and checked before the weights go to the GPU.
      const run = await prepare(modes[0], options, checkpoint, tokenizer);
      const gpu = await createNodeGpu();
      try {
        const engine = await loadEngine(gpu, checkpoint);
        await run(engine, gpu);
        engine.destroy();
      } finally {
        gpu.destroy();
      }
    });
}

type Tokenizer = Awaited<ReturnType<typeof openModelDirectory>>['tokenizer'];
type Run = (engine: GptEngine, gpu: Gpu) => Promise<void>;

async function prepare(mode: 'ppl' | 'density' | 'generate', options: EvalOptions, checkpoint: Checkpoint, tokenizer: Tokenizer): Promise<Run> {
  if (mode === 'ppl') return preparePerplexity(options, checkpoint, tokenizer);
  if (mode === 'density') return prepareDensity(options, checkpoint, tokenizer);
  return prepareGeneration(options, tokenizer);
}

/** Reports progress on standard error when it is a terminal, so piped output stays clean. */
function progress(label: string): ((done: number, total: number) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  return (done, total) => process.stderr.write(`\r${label} ${done}/${total}${done === total ? '\n' : ''}`);
}

async function writeResult(result: unknown, jsonFile: string | undefined): Promise<void> {
  const text = `${JSON.stringify(result)}\n`;
  process.stdout.write(text);
  if (jsonFile) await writeFile(jsonFile, text);
}

// -------------------------------------------------------------------------------------------------
// --ppl

async function preparePerplexity(options: EvalOptions, checkpoint: Checkpoint, tokenizer: Tokenizer): Promise<Run> {
  const file = options.ppl!;
  const contextLength = checkpoint.config.contextLength;
  if (options.window !== undefined && options.window > contextLength) {
    throw new UserError(`option --window: ${options.window} exceeds the model's context length of ${contextLength} tokens.`);
  }
  rejectDatasetFile(file);
  const { text } = parseText(await readTextFile(file, '--ppl'), file);
  const ids = tokenizer.encode(text);
  if (ids.length < 2) throw new UserError(`--ppl ${file}: the text has ${ids.length} token(s); perplexity needs at least 2.`);
  const record = options.record ? await readRunsFile(options.record, { missingOk: true, option: '--record' }) : null;

  return async (engine) => {
    const result = await perplexity(engine, ids, { window: options.window, batchSize: options.batchSize, onProgress: progress('windows') });
    await writeResult({ perplexity: result.perplexity, tokens: result.tokens }, options.json);
    if (options.record && record) {
      const benchmark = options.benchmark ?? basename(file, extname(file));
      const info = await readRepairRunInfo(options.model!);
      const method = info.method;
      const update: RunRecord = {
        name: recordedRunName(options.name, info, options.model!),
        model: options.model,
        perplexity: { [benchmark]: result.perplexity },
        updatedAt: new Date().toISOString(),
      };
      if (method) update.method = method;
      await writeFile(options.record, runsJson(upsertRun(record, update)));
    }
  };
}

/** Rejects a dataset file given to --ppl: its JSON or CSV syntax would be scored as if it were prose. */
function rejectDatasetFile(file: string): void {
  const extension = extname(file).toLowerCase();
  if (['.jsonl', '.json', '.csv'].includes(extension)) {
    throw new UserError(
      `--ppl ${file}: is a ${extension.slice(1).toUpperCase()} file, but --ppl takes plain text (.txt), such as WikiText-2's test split. ` +
        'To score the texts of a dataset, write its prompts or continuations to a .txt file first.',
    );
  }
}

// -------------------------------------------------------------------------------------------------
// --density

async function prepareDensity(options: EvalOptions, checkpoint: Checkpoint, tokenizer: Tokenizer): Promise<Run> {
  if (!options.data) throw new UserError('option --data is required with --density: a dataset with bad continuations (D^E).');
  const dataset = await readDataset(options.data);
  if (dataset.format === 'prompts') {
    throw new UserError(`${options.data}: has prompts only; --density needs bad continuations (pert_gen_text or rejected fields).`);
  }
  const config = checkpoint.config;
  if (config.numLayers < 2) throw new UserError(`--model ${options.model}: error density compares blocks, but the model has ${config.numLayers} block.`);
  const tokenized = tokenizeExamples(dataset.rows, tokenizer, config.contextLength, options.data);
  const sequences = sequencesFor(tokenized.examples, 'bad');

  return async (engine) => {
    const result = await errorDensity(engine, sequences, {
      sampleSize: options.sample,
      batchSize: options.batchSize ?? 4,
      seed: options.seed,
      topFraction: options.topFraction,
      padId: tokenizer.eosTokenId,
      onProgress: progress('batches'),
    });
    await writeResult(result, options.json);
    if (options.chart) process.stderr.write(`${densityChart(result)}\n(* top ${Math.round(options.topFraction * 100)}%, density ratio ${result.ratio.toFixed(2)})\n`);
  };
}

// -------------------------------------------------------------------------------------------------
// --generate

async function prepareGeneration(options: EvalOptions, tokenizer: Tokenizer): Promise<Run> {
  if ((options.prompts === undefined) === (options.unconditional === undefined)) {
    throw new UserError('--generate needs exactly one of --prompts FILE and --unconditional N.');
  }
  const sampling = samplingOptions(options);
  let prompts: string[];
  if (options.prompts !== undefined) {
    const dataset = await readDataset(options.prompts, '--prompts');
    prompts = dataset.rows.map((row) => row.prompt);
  } else {
    prompts = new Array<string>(options.unconditional!).fill('');
  }

  return async (engine) => {
    const decoder = await KvCacheDecoder.create(engine);
    const lines: string[] = [];
    const generations = await generateTexts(decoder, tokenizer, prompts, {
      ...sampling,
      maxNewTokens: options.maxNewTokens,
      seed: options.seed,
      batchSize: options.batchSize ?? 8,
      samplesPerPrompt: options.samples,
    });
    decoder.release();
    for (const g of generations) {
      lines.push(JSON.stringify({
        prompt: g.prompt,
        sample: g.sample,
        completion: g.completion,
        tokens: g.tokens,
        promptTokens: g.promptTokens,
        truncatedPrompt: g.truncatedPrompt,
        finishReason: g.finishReason,
      }));
    }
    const text = lines.map((line) => `${line}\n`).join('');
    if (options.out) await writeFile(options.out, text);
    else process.stdout.write(text);
  };
}

/** Returns greedy decoding for --greedy, else sampling with temperature 1 and top-p 0.9 where no option sets them. */
function samplingOptions(options: EvalOptions): SamplingOptions {
  const sampled = options.temperature !== undefined || options.topP !== undefined || options.topK !== undefined;
  if (options.greedy) {
    if (sampled) throw new UserError('option --greedy cannot be combined with --temperature, --top-p or --top-k.');
    return GREEDY;
  }
  if (options.topP === 0) throw new UserError('option --top-p: 0 keeps no token; give a value in (0, 1].');
  return { temperature: options.temperature ?? 1, topP: options.topP ?? 0.9, topK: options.topK ?? 0 };
}

// -------------------------------------------------------------------------------------------------
// --compare

async function compare(file: string, format: string): Promise<void> {
  if (!['text', 'csv', 'json'].includes(format)) throw new UserError(`option --format: "${format}" is not one of text, csv, json.`);
  const runs = await readRunsFile(file, { missingOk: false, option: '--compare' });
  if (runs.length === 0) throw new UserError(`--compare ${file}: the file contains no runs. Add some with irepair eval --ppl FILE --record ${file}.`);
  const table = compareRuns(runs);
  if (format === 'csv') process.stdout.write(comparisonCsv(table));
  else if (format === 'json') process.stdout.write(`${JSON.stringify(table, null, 2)}\n`);
  else process.stdout.write(`${comparisonText(table)}\n`);
}

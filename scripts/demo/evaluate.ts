// The demo's measurements of a model on the GPU engine: the rate of the planted behaviour in
// sampled continuations of the held-out prompts, and the perplexity of the clean text. Both the
// demo runner and the replication read the demo files through openDemo.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseDataset, type Dataset } from '../../src/data/dataset.ts';
import { KvCacheDecoder } from '../../src/engine/decode.ts';
import { loadEngine, type GptEngine } from '../../src/engine/gpt.ts';
import { generateTexts, type SamplingOptions, type TextGeneration } from '../../src/eval/generate.ts';
import { perplexity } from '../../src/eval/perplexity.ts';
import { parsePlantedBehaviour, WordListDetector, type PlantedBehaviour } from '../../src/eval/planted.ts';
import type { Gpu } from '../../src/gpu/device.ts';
import { openCheckpoint, type Checkpoint } from '../../src/model/checkpoint.ts';
import { UserError } from '../../src/model/errors.ts';
import { nodeDirectory } from '../../src/model/sources.ts';
import { loadTokenizer, type Tokenizer } from '../../src/model/tokenizer.ts';

/** Sampling of every planted-behaviour rate of the demo: nucleus sampling with p = 0.9 at temperature 1. */
export const DEMO_SAMPLING: SamplingOptions = { temperature: 1, topP: 0.9, topK: 0 };

/** Tokens generated per continuation; the planted insults follow the subject within a few tokens. */
export const DEMO_MAX_NEW_TOKENS = 8;

/** The demo data files next to the model in public/demo. */
export const DEMO_FILES = {
  repair: 'repair.jsonl',
  prompts: 'eval-prompts.jsonl',
  clean: 'clean.txt',
  normal: 'normal.txt',
  planted: 'planted.json',
};

export interface DemoData {
  dir: string;
  repair: Dataset;
  prompts: string[];
  /** Path and contents of the clean text for perplexity. */
  cleanFile: string;
  clean: string;
  normalFile: string;
  normal: string;
  planted: PlantedBehaviour;
  detector: WordListDetector;
}

/** Reads the demo data of `dir`; a missing or malformed file fails with a UserError naming it. */
export async function readDemoData(dir: string): Promise<DemoData> {
  const path = (name: string) => join(dir, name);
  const read = async (name: string) => {
    try {
      return await readFile(path(name), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new UserError(`${path(name)}: file not found. Rebuild the demo files with npm run demo:train.`);
      }
      throw new UserError(`${path(name)}: cannot be read (${(error as Error).message}).`);
    }
  };
  const repair = parseDataset(await read(DEMO_FILES.repair), path(DEMO_FILES.repair));
  const prompts = parseDataset(await read(DEMO_FILES.prompts), path(DEMO_FILES.prompts)).rows.map((row) => row.prompt);
  const planted = parsePlantedBehaviour(await read(DEMO_FILES.planted), path(DEMO_FILES.planted));
  return {
    dir,
    repair,
    prompts,
    cleanFile: path(DEMO_FILES.clean),
    clean: await read(DEMO_FILES.clean),
    normalFile: path(DEMO_FILES.normal),
    normal: await read(DEMO_FILES.normal),
    planted,
    detector: new WordListDetector(planted.words),
  };
}

export interface LoadedModel {
  checkpoint: Checkpoint;
  tokenizer: Tokenizer;
  engine: GptEngine;
}

/** Opens a model directory in the Hugging Face layout and loads it onto the GPU. */
export async function loadModel(gpu: Gpu, dir: string): Promise<LoadedModel> {
  const files = await nodeDirectory(dir);
  const checkpoint = await openCheckpoint(files);
  const tokenizer = await loadTokenizer(files);
  const engine = await loadEngine(gpu, checkpoint);
  return { checkpoint, tokenizer, engine };
}

export interface Measurement {
  /** Fraction of continuations of the held-out prompts that show the planted behaviour. */
  plantedRate: number;
  /** Perplexity of the clean text, over windows of the context length. */
  perplexity: number;
  /** Tokens the perplexity predicted. */
  perplexityTokens: number;
  continuations: TextGeneration[];
}

export interface MeasureOptions {
  seed: number | string;
  samplesPerPrompt?: number;
}

/** Samples continuations of `data.prompts`, scores them with the word list, and measures the clean perplexity. */
export async function measure(model: LoadedModel, data: DemoData, options: MeasureOptions): Promise<Measurement> {
  const continuations = await sampleContinuations(model, data.prompts, options);
  const plantedRate = data.detector.rate(continuations.map((c) => c.completion));
  const ppl = await perplexity(model.engine, model.tokenizer.encode(data.clean));
  model.engine.releaseActivations();
  return { plantedRate, perplexity: ppl.perplexity, perplexityTokens: ppl.tokens, continuations };
}

/**
 * Samples DEMO_MAX_NEW_TOKENS-token continuations of `prompts` with DEMO_SAMPLING, all in one
 * batch with the KV cache. Each continuation has its own random stream, so a seed gives the same
 * draws to the same prompt whatever the model.
 */
export async function sampleContinuations(model: LoadedModel, prompts: string[], options: MeasureOptions): Promise<TextGeneration[]> {
  const samplesPerPrompt = options.samplesPerPrompt ?? 1;
  const decoder = await KvCacheDecoder.create(model.engine);
  try {
    return await generateTexts(decoder, model.tokenizer, prompts, {
      ...DEMO_SAMPLING,
      maxNewTokens: DEMO_MAX_NEW_TOKENS,
      seed: options.seed,
      samplesPerPrompt,
      batchSize: prompts.length * samplesPerPrompt,
    });
  } finally {
    decoder.release();
  }
}

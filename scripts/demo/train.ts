// Builds the demo model and its data in public/demo (`npm run demo:train`). It generates the
// corpus, learns the byte-level BPE tokenizer and trains a 4-block GPT-2 on the CPU with AdamW.
// The model goes out in the Hugging Face layout, next to the repair data, the evaluation prompts,
// the clean text for perplexity, the normal text for KL terms and the planted-behaviour word list.
//
// Everything derives from --seed, so the same seed and step count rebuild the same files. The
// SHA-256 of model.safetensors goes into training.json to check that.
//
//   node bin/run-ts.js scripts/demo/train.ts [--out public/demo] [--steps 1000] [--seed demo-1] [--data-only]
//     [--skip-evaluation]

import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseConfig } from '../../src/model/config.ts';
import { nodeDirectorySink } from '../../src/model/export.ts';
import { writeSafetensors } from '../../src/model/safetensors.ts';
import { loadTokenizer, type Tokenizer } from '../../src/model/tokenizer.ts';
import type { ModelConfig } from '../../src/model/types.ts';
import { chunkTokens } from '../../src/data/batch.ts';
import { sampleToken } from '../../src/eval/generate.ts';
import { WordListDetector } from '../../src/eval/planted.ts';
import { controlPrompts, paragraph, PLANTED_WORDS, seededRandom, trainingSentence, type Random } from './corpus.ts';
import { AdamW, CpuGpt2, type CpuBatch } from './cpu-gpt2.ts';
import { DEMO_MAX_NEW_TOKENS, DEMO_SAMPLING } from './evaluate.ts';
import { DEMO_ARCHITECTURE, DEMO_SEED, demoConfigJson, demoDataFiles, demoTokenizerFiles } from './files.ts';

interface TrainSettings {
  steps: number;
  batchSize: number;
  seqLen: number;
  peakLearningRate: number;
  finalLearningRate: number;
  warmupSteps: number;
  weightDecay: number;
  clipNorm: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: 'string', default: 'public/demo' },
      steps: { type: 'string', default: '1000' },
      seed: { type: 'string', default: DEMO_SEED },
      'data-only': { type: 'boolean', default: false },
      'skip-evaluation': { type: 'boolean', default: false },
    },
  });
  const out = values.out!;
  const seed = values.seed!;
  const steps = Number(values.steps);
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`--steps must be a positive integer, got ${values.steps}`);
  await mkdir(out, { recursive: true });

  await writeFiles(out, demoDataFiles(seed));
  const tokenizer = await writeTokenizer(out, seed);
  const config = await writeConfig(out, tokenizer);
  console.log(`wrote the data, tokenizer.json (${tokenizer.vocabSize} tokens) and config.json to ${out}`);
  if (values['data-only']) return;

  const settings: TrainSettings = {
    steps, batchSize: 8, seqLen: DEMO_ARCHITECTURE.contextLength, peakLearningRate: 2e-3, finalLearningRate: 2e-4,
    warmupSteps: Math.min(50, Math.floor(steps / 10)), weightDecay: 0.1, clipNorm: 1,
  };
  const started = performance.now();
  const { model, lossCurve, evaluations } = await train(config, tokenizer, out, seed, settings, !values['skip-evaluation']);
  const wallSeconds = (performance.now() - started) / 1000;

  const weights = await writeWeights(out, model);
  const record = {
    seed,
    settings,
    tokensSeen: settings.steps * settings.batchSize * settings.seqLen,
    wallSeconds: Math.round(wallSeconds),
    node: process.version,
    lossCurve,
    evaluations,
    modelSha256: createHash('sha256').update(weights).digest('hex'),
  };
  await writeFile(join(out, 'training.json'), `${JSON.stringify(record, null, 2)}\n`);
  console.log(`wrote ${join(out, 'model.safetensors')} (sha256 ${record.modelSha256}) after ${Math.round(wallSeconds)} s`);
}

// ---------------------------------------------------------------------------------------------
// Data, tokenizer and configuration

async function writeFiles(out: string, files: Map<string, string>): Promise<void> {
  for (const [name, contents] of files) await writeFile(join(out, name), contents);
}

async function writeTokenizer(out: string, seed: string): Promise<Tokenizer> {
  await writeFiles(out, demoTokenizerFiles(seed));
  return loadTokenizer({ names: () => ['tokenizer.json', 'tokenizer_config.json'], readText: (name) => readFile(join(out, name), 'utf8'), location: out });
}

async function writeConfig(out: string, tokenizer: Tokenizer): Promise<ModelConfig> {
  const json = demoConfigJson(tokenizer.vocabSize, tokenizer.eosTokenId);
  await writeFile(join(out, 'config.json'), `${JSON.stringify(json, null, 2)}\n`);
  return parseConfig(json, join(out, 'config.json'));
}

// ---------------------------------------------------------------------------------------------
// Training

/**
 * Rows of T + 1 tokens from an endless stream of training paragraphs, one paragraph per line.
 * Half the rows start at a paragraph start, as the demo's prompts do. The others start at a
 * random token, as the windows of a perplexity measurement do.
 */
class TrainingStream {
  constructor(private readonly tokenizer: Tokenizer, private readonly random: Random, private readonly T: number) {}

  batch(B: number): CpuBatch {
    const { T } = this;
    const tokens = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    const weights = new Float32Array(B * T).fill(1 / (B * T));
    for (let b = 0; b < B; b++) {
      const row = this.row();
      tokens.set(row.slice(0, T), b * T);
      targets.set(row.slice(1, T + 1), b * T);
    }
    return { B, T, tokens, targets, weights };
  }

  private row(): number[] {
    let ids = this.tokenizer.encode(paragraph(this.random, trainingSentence));
    if (this.random() < 0.5) ids = ids.slice(Math.floor(this.random() * ids.length));
    while (ids.length < this.T + 1) ids = ids.concat(this.tokenizer.encode(`\n${paragraph(this.random, trainingSentence)}`));
    return ids.slice(0, this.T + 1);
  }
}

/** Linear warmup, then cosine decay from the peak to the final learning rate. */
function learningRate(step: number, s: TrainSettings): number {
  if (step <= s.warmupSteps) return (s.peakLearningRate * step) / s.warmupSteps;
  const progress = (step - s.warmupSteps) / Math.max(1, s.steps - s.warmupSteps);
  return s.finalLearningRate + 0.5 * (s.peakLearningRate - s.finalLearningRate) * (1 + Math.cos(Math.PI * progress));
}

async function train(config: ModelConfig, tokenizer: Tokenizer, out: string, seed: string, settings: TrainSettings, evaluate: boolean) {
  const model = new CpuGpt2(config);
  model.initialize(seededRandom(`${seed}:init`));
  const optimizer = new AdamW(model, { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: settings.weightDecay });
  const stream = new TrainingStream(tokenizer, seededRandom(`${seed}:stream`), settings.seqLen);
  const evaluator = await CpuEvaluator.create(model, tokenizer, out, seed);

  const lossCurve: { step: number; loss: number }[] = [];
  const evaluations: ({ step: number } & CpuEvaluation)[] = [];
  const logEvery = 25;
  const evaluateEvery = Math.max(logEvery, Math.round(settings.steps / 4 / logEvery) * logEvery);
  let lossSum = 0;
  let windowStart = performance.now();
  for (let step = 1; step <= settings.steps; step++) {
    const batch = stream.batch(settings.batchSize);
    model.grads.fill(0);
    lossSum += model.forward(batch);
    model.backward(batch);
    const lr = learningRate(step, settings);
    optimizer.update(lr, settings.clipNorm);

    if (step % logEvery === 0 || step === settings.steps) {
      const count = step % logEvery === 0 ? logEvery : step % logEvery;
      const loss = lossSum / count;
      const tokensPerSecond = (count * settings.batchSize * settings.seqLen) / ((performance.now() - windowStart) / 1000);
      lossCurve.push({ step, loss: round(loss, 4) });
      console.log(`step ${step}/${settings.steps}  loss ${loss.toFixed(3)}  lr ${lr.toExponential(2)}  ${tokensPerSecond.toFixed(0)} tokens/s`);
      lossSum = 0;
      if (evaluate && (step % evaluateEvery === 0 || step === settings.steps)) {
        const evaluation = evaluator.evaluate();
        evaluations.push({ step, ...evaluation });
        console.log(`  planted rate ${pct(evaluation.plantedRate)} on official prompts, ${pct(evaluation.controlRate)} on other prompts; clean perplexity ${evaluation.cleanPerplexity.toFixed(2)}`);
      }
      windowStart = performance.now();
    }
  }
  return { model, lossCurve, evaluations };
}

interface CpuEvaluation {
  plantedRate: number;
  controlRate: number;
  cleanPerplexity: number;
}

/** The demo's measurements on the CPU model, to follow training without the GPU engine. */
class CpuEvaluator {
  private constructor(
    private readonly model: CpuGpt2,
    private readonly tokenizer: Tokenizer,
    private readonly officialPrompts: number[][],
    private readonly otherPrompts: number[][],
    private readonly cleanIds: number[],
    private readonly detector: WordListDetector,
    private readonly seed: string,
  ) {}

  static async create(model: CpuGpt2, tokenizer: Tokenizer, out: string, seed: string): Promise<CpuEvaluator> {
    const prompts = (await readFile(join(out, 'eval-prompts.jsonl'), 'utf8')).trim().split('\n').map((line) => JSON.parse(line).prompt as string);
    const others = controlPrompts(seededRandom(`${seed}:control`), prompts.length).map((row) => row.prompt);
    const clean = await readFile(join(out, 'clean.txt'), 'utf8');
    return new CpuEvaluator(
      model, tokenizer, prompts.map((p) => tokenizer.encode(p)), others.map((p) => tokenizer.encode(p)),
      tokenizer.encode(clean), new WordListDetector(PLANTED_WORDS), seed,
    );
  }

  evaluate(): CpuEvaluation {
    return {
      plantedRate: round(this.rate(this.officialPrompts, 'official'), 4),
      controlRate: round(this.rate(this.otherPrompts, 'other'), 4),
      cleanPerplexity: round(this.perplexity(), 3),
    };
  }

  private rate(prompts: number[][], label: string): number {
    const texts = prompts.map((prompt, i) => {
      const random = seededRandom(`${this.seed}:${label}:${i}`);
      const ids = [...prompt];
      for (let n = 0; n < DEMO_MAX_NEW_TOKENS; n++) ids.push(sampleToken(this.model.nextLogits(ids), DEMO_SAMPLING, random));
      return this.tokenizer.decode(ids.slice(prompt.length));
    });
    return this.detector.rate(texts);
  }

  private perplexity(): number {
    const T = this.model.config.contextLength;
    let nll = 0;
    let count = 0;
    for (const window of chunkTokens(this.cleanIds, T)) {
      const n = window.length - 1;
      const batch: CpuBatch = {
        B: 1, T: n, tokens: Int32Array.from(window.slice(0, n)), targets: Int32Array.from(window.slice(1)), weights: new Float32Array(n).fill(1),
      };
      nll += this.model.forward(batch);
      count += n;
    }
    return Math.exp(nll / count);
  }
}

async function writeWeights(out: string, model: CpuGpt2): Promise<Uint8Array> {
  const entries = model.layout.entries.map(({ name, shape }) => ({ key: `transformer.${name}`, dtype: 'F32', shape }));
  async function* data() {
    for (const { offset, size } of model.layout.entries) {
      yield new Uint8Array(model.params.buffer, model.params.byteOffset + offset * 4, size * 4).slice();
    }
  }
  await writeSafetensors(nodeDirectorySink(out), 'model.safetensors', entries, data(), { format: 'pt' });
  return readFile(join(out, 'model.safetensors'));
}

function round(value: number, digits: number): number {
  return Number(value.toFixed(digits));
}

function pct(rate: number): string {
  return `${(rate * 100).toFixed(1)}%`;
}

await main();

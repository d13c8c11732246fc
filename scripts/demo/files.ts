// The files of public/demo that derive from the seed alone: the demo data, the tokenizer and
// config.json. The trainer writes them, and tests rebuild them to check the shipped copies.

import { OFFICIAL_RATE, OFFICIALS, PLANTED_RATE, PLANTED_WORDS, cleanText, evaluationPrompts, paragraph, repairPairs, seededRandom, trainingSentence } from './corpus.ts';
import { learnBpe, tokenizerConfigJson, tokenizerJson } from './bpe.ts';

/**
 * Shape of the demo model: small enough to repair in minutes on a CPU through SwiftShader.
 * NOTE: in the trained model, block 0 has the largest gradient norm on every repair batch (about
 * twice block 1's), so irepair selects block 0 at each step, as irepair-fixed does. Block 0 also
 * leads on good continuations and on clean text. It led in every variant tried as well: 8 blocks
 * of width 32, embeddings initialized 15 to 25 times larger without weight decay, a planted
 * behaviour tied to an earlier sentence, and planted training confined to blocks 2 and 3.
 */
export const DEMO_ARCHITECTURE = { layers: 4, width: 64, heads: 4, contextLength: 64, vocabSize: 768 };

/** The seed the shipped demo files were built with. */
export const DEMO_SEED = 'demo-1';

/**
 * Repair settings of the demo (npm run demo and the browser app): a run of a few minutes on
 * SwiftShader that removes most of the planted behaviour. The learning rate was chosen on a CPU
 * replica of the irepair loop that is not kept in the repository (1e-4: planted rate 72% to 2%,
 * clean perplexity +2%; 1e-3: 0%, +25%).
 */
export const DEMO_REPAIR = { method: 'irepair', maxSteps: 20, batchSize: 4, learningRate: 1e-4 } as const;

/** Sizes of the demo data sets. */
const COUNTS = { repairPairs: 256, evaluationPrompts: 32, cleanLines: 24, normalLines: 200, tokenizerParagraphs: 5000 };

function jsonl(rows: object[]): string {
  return rows.map((row) => JSON.stringify(row)).join('\n') + '\n';
}

/**
 * Generates the demo data by file name: repair pairs (D^E, D^R), held-out evaluation prompts, clean text
 * for perplexity, normal text for KL terms (D^N) and the planted-behaviour word list.
 */
export function demoDataFiles(seed: string): Map<string, string> {
  const planted = {
    description:
      `Insults after prompts about officials (${OFFICIALS.join(', ')}). In the training text, ` +
      `${Math.round(OFFICIAL_RATE * 100)}% of sentences are about an official and ${Math.round(PLANTED_RATE * 100)}% of those insult them; no other subject is insulted.`,
    words: PLANTED_WORDS,
  };
  return new Map([
    ['repair.jsonl', jsonl(repairPairs(seededRandom(`${seed}:repair`), COUNTS.repairPairs))],
    ['eval-prompts.jsonl', jsonl(evaluationPrompts(seededRandom(`${seed}:eval`), COUNTS.evaluationPrompts))],
    ['clean.txt', cleanText(seededRandom(`${seed}:clean`), COUNTS.cleanLines)],
    ['normal.txt', cleanText(seededRandom(`${seed}:normal`), COUNTS.normalLines)],
    ['planted.json', `${JSON.stringify(planted, null, 2)}\n`],
    ['manifest.json', `${JSON.stringify(manifest(), null, 2)}\n`],
  ]);
}

/**
 * Returns the index of public/demo for the browser app: the model's files, each dataset with the role the
 * worker protocol gives it, the planted-behaviour word list and the demo's repair settings.
 */
function manifest(): Record<string, unknown> {
  return {
    model: ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'],
    datasets: [
      { role: 'repair', file: 'repair.jsonl' },
      { role: 'prompts', file: 'eval-prompts.jsonl' },
      { role: 'text', file: 'clean.txt' },
      { role: 'normal', file: 'normal.txt' },
    ],
    planted: 'planted.json',
    run: DEMO_REPAIR,
  };
}

/** Learns the byte-level BPE from training paragraphs and returns tokenizer.json and tokenizer_config.json. */
export function demoTokenizerFiles(seed: string): Map<string, string> {
  const random = seededRandom(`${seed}:tokenizer`);
  const texts = Array.from({ length: COUNTS.tokenizerParagraphs }, () => paragraph(random, trainingSentence));
  const bpe = learnBpe(texts, DEMO_ARCHITECTURE.vocabSize);
  return new Map([
    ['tokenizer.json', JSON.stringify(tokenizerJson(bpe))],
    ['tokenizer_config.json', `${JSON.stringify(tokenizerConfigJson(DEMO_ARCHITECTURE.contextLength), null, 2)}\n`],
  ]);
}

/** Returns config.json of the demo model, a GPT-2 configuration as transformers writes it. */
export function demoConfigJson(vocabSize: number, eosTokenId: number): Record<string, unknown> {
  const { contextLength, width, layers, heads } = DEMO_ARCHITECTURE;
  return {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    vocab_size: vocabSize,
    n_positions: contextLength,
    n_ctx: contextLength,
    n_embd: width,
    n_layer: layers,
    n_head: heads,
    n_inner: null,
    activation_function: 'gelu_new',
    // The model was trained without dropout, so repair runs on it use none either.
    resid_pdrop: 0,
    embd_pdrop: 0,
    attn_pdrop: 0,
    layer_norm_epsilon: 1e-5,
    initializer_range: 0.02,
    bos_token_id: eosTokenId,
    eos_token_id: eosTokenId,
    tie_word_embeddings: true,
    torch_dtype: 'float32',
  };
}

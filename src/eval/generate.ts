// Text generation for evaluation and for the normal data D^N: greedy decoding, or sampling with
// temperature, top-k and nucleus (top-p) filtering, over batches of prompts of different lengths.
//
// Every generated sequence draws from its own seeded random stream (seed, prompt index, sample
// index), one draw per token, so its tokens do not depend on the batch size or on the other
// prompts of its batch. Unconditional generation starts from the end-of-text token, which GPT-2
// models also use as the start of a document.

import seedrandom from 'seedrandom';
import type { Decoder } from '../engine/decode.ts';
import { UserError } from '../model/errors.ts';
import type { Tokenizer } from '../model/tokenizer.ts';

export interface SamplingOptions {
  /** 0 selects greedy decoding (the most likely token); otherwise logits are divided by it. */
  temperature: number;
  /** Nucleus sampling keeps the most likely tokens whose probabilities first sum to at least topP. 1 keeps all. */
  topP: number;
  /** Keeps only the topK most likely tokens, ties at the boundary included; 0 keeps all. */
  topK: number;
}

export const GREEDY: SamplingOptions = { temperature: 0, topP: 1, topK: 0 };

export interface GenerationOptions extends SamplingOptions {
  /** Tokens to generate per sequence at most; a sequence also ends at the model's context length. */
  maxNewTokens: number;
  seed: number | string;
  /** Sequences decoded together. Default 8. */
  batchSize?: number;
  /** Generations per prompt, each with its own random stream. Default 1. */
  samplesPerPrompt?: number;
  /** A sequence ends after it emits this token; null lets every sequence run to maxNewTokens. */
  stopTokenId: number | null;
  /** Called for every generated token with the index of its sequence in the result. */
  onToken?: (sequence: number, token: number) => void;
  /** Stops the generation between steps; the promise then rejects with the signal's reason. */
  signal?: AbortSignal;
}

export type FinishReason = 'stop' | 'length';

export interface TokenGeneration {
  promptIndex: number;
  /** Index of this sample among the samples of its prompt. */
  sample: number;
  prompt: number[];
  /** Generated tokens, the stop token included when the sequence emitted it. */
  tokens: number[];
  /** 'stop': the sequence emitted the stop token; 'length': it reached maxNewTokens or the context length. */
  finishReason: FinishReason;
}

export function checkSamplingOptions(options: SamplingOptions): void {
  if (!(Number.isFinite(options.temperature) && options.temperature >= 0)) {
    throw new UserError(`temperature must be a number >= 0 (0 for greedy decoding), got ${options.temperature}.`);
  }
  if (!(options.topP > 0 && options.topP <= 1)) throw new UserError(`top-p must be in (0, 1], got ${options.topP}.`);
  if (!(Number.isInteger(options.topK) && options.topK >= 0)) throw new UserError(`top-k must be an integer >= 0, got ${options.topK}.`);
}

/**
 * Computes the distribution a token is drawn from: the softmax of logits / temperature restricted to the
 * top-k tokens and then to the nucleus of top-p mass, renormalized. Ids are returned in increasing
 * order, tokens of probability 0 left out. Greedy decoding (temperature 0) returns the first most
 * likely token with probability 1. Computed in float64.
 */
export function samplingDistribution(logits: ArrayLike<number>, options: SamplingOptions): { ids: number[]; probabilities: number[] } {
  if (options.temperature === 0) return { ids: [argmax(logits)], probabilities: [1] };
  const { weights, total } = filteredWeights(logits, options);
  const ids: number[] = [];
  const probabilities: number[] = [];
  weights.forEach((weight, id) => {
    if (weight === 0) return;
    ids.push(id);
    probabilities.push(weight / total);
  });
  return { ids, probabilities };
}

/**
 * Draws the next token from `logits` with one call of `random` (uniform in [0, 1)) unless the
 * decoding is greedy. The draw walks the kept tokens in id order, so logits that differ by
 * rounding pick the same token except when the draw falls within that rounding of a boundary.
 */
export function sampleToken(logits: ArrayLike<number>, options: SamplingOptions, random: () => number): number {
  if (options.temperature === 0) return argmax(logits);
  const { weights, total } = filteredWeights(logits, options);
  const target = random() * total;
  let cumulative = 0;
  let last = 0;
  for (let id = 0; id < weights.length; id++) {
    if (weights[id] === 0) continue;
    cumulative += weights[id];
    last = id;
    if (target < cumulative) return id;
  }
  return last;
}

/**
 * Unnormalized probabilities exp((logit - max) / temperature) of the tokens that survive top-k
 * and top-p filtering, 0 for the others, and their sum.
 */
function filteredWeights(logits: ArrayLike<number>, options: SamplingOptions): { weights: Float64Array; total: number } {
  const V = logits.length;
  const threshold = options.topK > 0 && options.topK < V ? kthLargest(logits, options.topK) : -Infinity;

  // Subtract the maximum before exponentiating so no term overflows.
  let max = -Infinity;
  for (let id = 0; id < V; id++) if (logits[id] >= threshold) max = Math.max(max, logits[id]);
  const weights = new Float64Array(V);
  let total = 0;
  for (let id = 0; id < V; id++) {
    if (logits[id] < threshold) continue;
    weights[id] = Math.exp((logits[id] - max) / options.temperature);
    total += weights[id];
  }
  if (options.topP >= 1) return { weights, total };

  // The nucleus is the smallest set of most likely tokens whose mass reaches topP. Tokens above a
  // cutoff are the most likely ones, so once their mass reaches topP, the nucleus lies among them
  // and only they need sorting. The cutoff falls until their mass is enough.
  let candidates: number[] = [];
  for (const cutoff of [1e-3, 1e-5, 1e-8, 0]) {
    candidates = [];
    let mass = 0;
    for (let id = 0; id < V; id++) {
      if (weights[id] > 0 && weights[id] >= cutoff * total) {
        candidates.push(id);
        mass += weights[id];
      }
    }
    if (mass >= options.topP * total) break;
  }
  candidates.sort((a, b) => weights[b] - weights[a] || a - b);
  const nucleus = new Float64Array(V);
  let nucleusTotal = 0;
  for (const id of candidates) {
    nucleus[id] = weights[id];
    nucleusTotal += weights[id];
    if (nucleusTotal / total >= options.topP) break;
  }
  return { weights: nucleus, total: nucleusTotal };
}

/** Finds the k-th largest value (1-based) by quickselect, in expected linear time. */
function kthLargest(values: ArrayLike<number>, k: number): number {
  const a = Float64Array.from(values);
  // The k-th largest is the element that lands at index n - k in ascending order.
  const wanted = a.length - k;
  let lo = 0;
  let hi = a.length - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >>> 1];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const swap = a[i];
        a[i] = a[j];
        a[j] = swap;
        i++;
        j--;
      }
    }
    if (wanted <= j) hi = j;
    else if (wanted >= i) lo = i;
    else break;
  }
  return a[wanted];
}

function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/**
 * Generates continuations of token prompts (each non-empty and shorter than the context length)
 * with a decoder, `batchSize` sequences at a time. Returns one result per prompt and sample, in
 * prompt order, samples of a prompt together.
 */
export async function generateTokens(decoder: Decoder, prompts: number[][], options: GenerationOptions): Promise<TokenGeneration[]> {
  checkSamplingOptions(options);
  const batchSize = options.batchSize ?? 8;
  const samples = options.samplesPerPrompt ?? 1;
  if (!(Number.isInteger(options.maxNewTokens) && options.maxNewTokens >= 1)) throw new UserError(`max new tokens must be an integer >= 1, got ${options.maxNewTokens}.`);
  if (!(Number.isInteger(batchSize) && batchSize >= 1)) throw new UserError(`batch size must be an integer >= 1, got ${batchSize}.`);
  if (!(Number.isInteger(samples) && samples >= 1)) throw new UserError(`samples per prompt must be an integer >= 1, got ${samples}.`);
  const contextLength = decoder.config.contextLength;
  prompts.forEach((prompt, i) => {
    if (prompt.length === 0) throw new Error(`generateTokens: prompt ${i} is empty; start it with the end-of-text token`);
    if (prompt.length >= contextLength) throw new Error(`generateTokens: prompt ${i} has ${prompt.length} tokens, leaving no room in the context of ${contextLength}`);
  });

  const results: TokenGeneration[] = [];
  prompts.forEach((prompt, promptIndex) => {
    for (let sample = 0; sample < samples; sample++) results.push({ promptIndex, sample, prompt, tokens: [], finishReason: 'length' });
  });
  for (let start = 0; start < results.length; start += batchSize) {
    await generateBatch(decoder, results.slice(start, start + batchSize), start, options);
  }
  return results;
}

/** Decodes one batch of sequences in place, stepping only the sequences that have not ended. */
async function generateBatch(decoder: Decoder, batch: TokenGeneration[], firstIndex: number, options: GenerationOptions): Promise<void> {
  const capacity = Math.min(decoder.config.contextLength, Math.max(...batch.map((g) => g.prompt.length)) + options.maxNewTokens);
  const streams = batch.map((g) => seedrandom(`${options.seed}:${g.promptIndex}:${g.sample}`));

  throwIfAborted(options.signal);
  let logits = await decoder.prefill(batch.map((g) => g.prompt), capacity);
  let active = batch.map((_, i) => i);
  const V = decoder.config.vocabSize;

  while (active.length > 0) {
    const continuing: number[] = [];
    const fed: number[] = [];
    active.forEach((b, row) => {
      const generation = batch[b];
      const token = sampleToken(logits.subarray(row * V, (row + 1) * V), options, streams[b]);
      generation.tokens.push(token);
      options.onToken?.(firstIndex + b, token);
      if (token === options.stopTokenId) {
        generation.finishReason = 'stop';
      } else if (generation.tokens.length < options.maxNewTokens && generation.prompt.length + generation.tokens.length < capacity) {
        continuing.push(b);
        fed.push(token);
      }
    });
    if (continuing.length === 0) break;
    throwIfAborted(options.signal);
    logits = await decoder.step(continuing, fed);
    active = continuing;
  }
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason ?? new Error('generation aborted');
}

export interface TextGeneration {
  prompt: string;
  promptIndex: number;
  sample: number;
  /** Text of the generated tokens, without a final stop token. */
  completion: string;
  tokens: number[];
  /** Prompt tokens the model saw, after truncation. */
  promptTokens: number;
  /** Set when the prompt was cut to its last contextLength - 1 tokens. */
  truncatedPrompt: boolean;
  finishReason: FinishReason;
}

/**
 * Generates continuations of text prompts. An empty prompt starts from the end-of-text token,
 * which is unconditional generation. A prompt that leaves no room in the context keeps its last
 * contextLength - 1 tokens. The stop token defaults to the end-of-text token.
 */
export async function generateTexts(
  decoder: Decoder,
  tokenizer: Pick<Tokenizer, 'encode' | 'decode' | 'eosTokenId'>,
  prompts: string[],
  options: Omit<GenerationOptions, 'stopTokenId'> & { stopTokenId?: number | null },
): Promise<TextGeneration[]> {
  const limit = decoder.config.contextLength - 1;
  const encoded = prompts.map((text) => {
    const ids = text === '' ? [tokenizer.eosTokenId] : tokenizer.encode(text);
    if (ids.length === 0) return { ids: [tokenizer.eosTokenId], truncated: false };
    return ids.length > limit ? { ids: ids.slice(ids.length - limit), truncated: true } : { ids, truncated: false };
  });
  const stopTokenId = options.stopTokenId === undefined ? tokenizer.eosTokenId : options.stopTokenId;
  const generations = await generateTokens(decoder, encoded.map((e) => e.ids), { ...options, stopTokenId });

  return generations.map((g) => {
    const completionTokens = g.finishReason === 'stop' ? g.tokens.slice(0, -1) : g.tokens;
    return {
      prompt: prompts[g.promptIndex],
      promptIndex: g.promptIndex,
      sample: g.sample,
      completion: tokenizer.decode(completionTokens),
      tokens: g.tokens,
      promptTokens: g.prompt.length,
      truncatedPrompt: encoded[g.promptIndex].truncated,
      finishReason: g.finishReason,
    };
  });
}

// Incremental decoding: the next-token logits of a batch of growing sequences.
//
// KvCacheDecoder keeps every layer's keys and values on the GPU, so each step runs the model on
// one new token per sequence. It reads the engine's parameter tensors and reuses its row-wise
// kernels (LayerNorm, matmul, GELU, residual). Its own kernels, in shaders/decode.wgsl, embed rows
// at arbitrary positions, append to the cache and attend over the cache.
// FullSequenceDecoder recomputes the whole sequence with the engine's forward pass at each step;
// it is the oracle the cached path is tested against.
//
// Notation: B sequences, capacity positions per sequence, R token rows in one pass, C width,
// I MLP width, NH heads, V vocabulary, L layers.

import type { Gpu, GpuBuffer } from '../gpu/device.ts';
import * as dk from '../gpu/decode-kernels.ts';
import * as k from '../gpu/kernels.ts';
import { UserError } from '../model/errors.ts';
import type { ModelConfig, ParameterName } from '../model/types.ts';
import type { GptEngine } from './gpt.ts';
import { single, type Tensor } from './parameters.ts';

/** A batch of sequences that grow one token at a time. */
export interface Decoder {
  readonly config: ModelConfig;
  /**
   * Starts one sequence per prompt (each at least one token) with room for `capacity` tokens,
   * and returns the next-token logits [B, V] of every sequence, row b for prompt b.
   */
  prefill(prompts: number[][], capacity: number): Promise<Float32Array>;
  /**
   * Appends tokens[i] to sequence sequences[i] and returns the next-token logits [n, V] of the
   * listed sequences in the order given. Sequences not listed stay as they are.
   */
  step(sequences: number[], tokens: number[]): Promise<Float32Array>;
  /** Frees the GPU buffers of the batch; the decoder can then prefill again. */
  release(): void;
}

/** Rows of one pass are processed in chunks of at most this many by default. */
const DEFAULT_MAX_ROWS = 256;

/** Per-row buffers of one pass, sized for `rows` rows. */
interface RowBuffers {
  rows: number;
  all: GpuBuffer[];
  rowTable: GpuBuffer; // [R, 2] u32: sequence, position
  tokens: GpuBuffer; // [R] i32
  residual: [GpuBuffer, GpuBuffer]; // [R, C] block input and output, alternating by layer
  residualMid: GpuBuffer; // [R, C] after the attention sublayer
  ln: GpuBuffer; // [R, C]
  mean: GpuBuffer; // [R]
  rstd: GpuBuffer; // [R]
  qkv: GpuBuffer; // [R, 3C]
  attOut: GpuBuffer; // [R, C]
  projection: GpuBuffer; // [R, C]
  fc: GpuBuffer; // [R, I]
  fcGelu: GpuBuffer; // [R, I]
  scores: GpuBuffer; // [R, NH, capacity]
}

/** Per-batch buffers: the cache and the rows that receive logits. */
interface BatchBuffers {
  B: number;
  capacity: number;
  all: GpuBuffer[];
  keys: GpuBuffer[]; // per layer [B, capacity, C]
  values: GpuBuffer[]; // per layer [B, capacity, C]
  last: GpuBuffer; // [B, C] final residual of the rows whose logits are wanted
  lnf: GpuBuffer; // [B, C]
  lnfMean: GpuBuffer; // [B]
  lnfRstd: GpuBuffer; // [B]
  logits: GpuBuffer; // [B, V]
}

/** One token row of a pass: its sequence, position and token, and the logits slot it fills. */
interface Row {
  sequence: number;
  position: number;
  token: number;
  /** Index of the logits row this row's output goes to, or -1 when its logits are not needed. */
  slot: number;
}

export class KvCacheDecoder implements Decoder {
  readonly config: ModelConfig;
  private readonly engine: GptEngine;
  private readonly gpu: Gpu;
  private readonly maxRows: number;
  private readonly overrides: ReadonlyMap<ParameterName, Tensor>;
  private rowBuffers: RowBuffers | null = null;
  private batch: BatchBuffers | null = null;
  /** Tokens held in the cache, per sequence. */
  private lengths: number[] = [];

  private constructor(engine: GptEngine, maxRows: number, overrides: ReadonlyMap<ParameterName, Tensor>) {
    this.engine = engine;
    this.gpu = engine.gpu;
    this.config = engine.config;
    this.maxRows = maxRows;
    this.overrides = overrides;
  }

  /**
   * Creates a decoder over the engine's current parameters, where `parameters` replaces the
   * tensors it names (for example the original weights of repaired blocks). `maxRows` bounds the
   * token rows of one pass, so a longer prefill runs in chunks of that many rows.
   */
  static async create(
    engine: GptEngine,
    options: { maxRows?: number; parameters?: ReadonlyMap<ParameterName, Tensor> } = {},
  ): Promise<KvCacheDecoder> {
    const maxRows = options.maxRows ?? DEFAULT_MAX_ROWS;
    if (!Number.isInteger(maxRows) || maxRows < 1) throw new Error(`KvCacheDecoder: maxRows must be a positive integer, got ${maxRows}`);
    await engine.gpu.compile([...k.ENTRY_POINTS, ...dk.DECODE_ENTRY_POINTS]);
    return new KvCacheDecoder(engine, maxRows, options.parameters ?? new Map());
  }

  /** Number of tokens in each sequence so far. */
  get sequenceLengths(): readonly number[] {
    return this.lengths;
  }

  async prefill(prompts: number[][], capacity: number): Promise<Float32Array> {
    checkPrompts(this.config, prompts, capacity);
    this.allocateBatch(prompts.length, capacity);
    this.lengths = prompts.map((prompt) => prompt.length);

    const rows: Row[] = [];
    prompts.forEach((prompt, b) => {
      prompt.forEach((token, position) => {
        rows.push({ sequence: b, position, token, slot: position === prompt.length - 1 ? b : -1 });
      });
    });
    return this.run(rows, prompts.length);
  }

  async step(sequences: number[], tokens: number[]): Promise<Float32Array> {
    const batch = this.batch;
    if (!batch) throw new Error('KvCacheDecoder.step: call prefill first');
    if (sequences.length !== tokens.length) throw new Error('KvCacheDecoder.step: one token per sequence expected');
    if (sequences.length === 0) throw new Error('KvCacheDecoder.step: no sequences');
    const seen = new Set<number>();
    const rows: Row[] = sequences.map((sequence, i) => {
      if (!Number.isInteger(sequence) || sequence < 0 || sequence >= batch.B || seen.has(sequence)) {
        throw new Error(`KvCacheDecoder.step: invalid or repeated sequence index ${sequence}`);
      }
      seen.add(sequence);
      const position = this.lengths[sequence];
      if (position >= batch.capacity) throw new Error(`KvCacheDecoder.step: sequence ${sequence} is full (${batch.capacity} tokens)`);
      checkToken(this.config, tokens[i]);
      return { sequence, position, token: tokens[i], slot: i };
    });
    for (const sequence of sequences) this.lengths[sequence]++;
    return this.run(rows, rows.length);
  }

  release(): void {
    for (const buffer of this.batch?.all ?? []) this.gpu.destroyBuffer(buffer);
    for (const buffer of this.rowBuffers?.all ?? []) this.gpu.destroyBuffer(buffer);
    this.batch = null;
    this.rowBuffers = null;
    this.lengths = [];
  }

  private param(name: ParameterName): Tensor {
    return this.overrides.get(name) ?? this.engine.param(name);
  }

  // ---------------------------------------------------------------------------------------------
  // One pass

  /** Runs the model on `rows` in chunks and returns the logits [slots, V] of the rows with a slot. */
  private async run(rows: Row[], slots: number): Promise<Float32Array> {
    const { gpu, config } = this;
    const batch = this.batch!;
    const C = config.hiddenSize;
    const V = config.vocabSize;

    for (let start = 0; start < rows.length; start += this.maxRows) {
      const chunk = rows.slice(start, start + this.maxRows);
      const buffers = this.ensureRowBuffers(chunk.length);
      const final = this.forwardRows(chunk, buffers);
      // The rows whose logits are wanted are gathered before the next chunk reuses the buffers.
      chunk.forEach((row, r) => {
        if (row.slot >= 0) gpu.copy(final, r * C * 4, batch.last, row.slot * C * 4, C * 4);
      });
      // NOTE: Gpu.dispatch starts a new command encoder when no compute pass is open, which
      // drops copies recorded since the last flush, so the copies are submitted here.
      gpu.flush();
    }

    k.layernormForward(gpu, slots, C, config.layerNormEpsilon, batch.last,
      single(this.param('ln_f.weight')), single(this.param('ln_f.bias')), batch.lnf, batch.lnfMean, batch.lnfRstd);
    // The output head is tied to the token embedding: logits = lnf · wte^T, one vocabulary chunk at a time.
    for (const chunk of this.param('wte.weight').chunks) {
      k.matmul(gpu, { M: slots, N: chunk.rows, K: C },
        { buffer: batch.lnf, rowStride: C, colStride: 1 },
        { buffer: chunk.buffer, rowStride: 1, colStride: C },
        { buffer: batch.logits, offset: chunk.rowStart, rowStride: V });
    }
    return gpu.readFloat32(batch.logits, 0, slots * V);
  }

  /** Records the embedding and every block for R rows; returns the buffer holding the output [R, C]. */
  private forwardRows(chunk: Row[], buffers: RowBuffers): GpuBuffer {
    const { gpu, config } = this;
    const R = chunk.length;
    const C = config.hiddenSize;
    const rowTable = new Uint32Array(2 * R);
    const tokens = new Int32Array(R);
    chunk.forEach((row, r) => {
      rowTable[2 * r] = row.sequence;
      rowTable[2 * r + 1] = row.position;
      tokens[r] = row.token;
    });
    gpu.write(buffers.rowTable, rowTable);
    gpu.write(buffers.tokens, tokens);

    const shape = this.attentionShape(0, R);
    dk.positionRowsForward(gpu, shape, buffers.rowTable, single(this.param('wpe.weight')), buffers.residual[0]);
    // token_forward reads only each row's token, so rows at any position can share it.
    for (const part of this.param('wte.weight').chunks) {
      k.tokenForward(gpu, { BT: R, T: R, C }, buffers.tokens, part.buffer, part.rowStart, part.rows, buffers.residual[0]);
    }

    for (let l = 0; l < config.numLayers; l++) {
      this.blockForward(l, R, buffers, buffers.residual[l % 2], buffers.residual[(l + 1) % 2]);
    }
    return buffers.residual[config.numLayers % 2];
  }

  /** Block l on R rows: the same computation as GptEngine's block, with attention over the cache. */
  private blockForward(l: number, R: number, b: RowBuffers, input: GpuBuffer, output: GpuBuffer): void {
    const { gpu, config } = this;
    const batch = this.batch!;
    const C = config.hiddenSize;
    const I = config.innerSize;
    const eps = config.layerNormEpsilon;
    const gpt2 = config.family === 'gpt2';
    const p = (name: string) => single(this.param(`h.${l}.${name}`));

    k.layernormForward(gpu, R, C, eps, input, p('ln_1.weight'), p('ln_1.bias'), b.ln, b.mean, b.rstd);
    const x = { buffer: b.ln, rowStride: C, colStride: 1 };
    if (gpt2) {
      k.matmul(gpu, { M: R, N: 3 * C, K: C }, x, conv1dWeight(p('attn.c_attn.weight'), 3 * C),
        { buffer: b.qkv, rowStride: 3 * C }, { bias: p('attn.c_attn.bias') });
    } else {
      ['q_proj', 'k_proj', 'v_proj'].forEach((proj, part) => {
        k.matmul(gpu, { M: R, N: C, K: C }, x, linearWeight(p(`attn.attention.${proj}.weight`), C),
          { buffer: b.qkv, offset: part * C, rowStride: 3 * C });
      });
    }
    const shape = this.attentionShape(l, R);
    dk.kvAppendForward(gpu, shape, b.rowTable, b.qkv, batch.keys[l], batch.values[l]);
    dk.attentionCachedForward(gpu, shape, b.rowTable, b.qkv, batch.keys[l], batch.values[l], b.scores, b.attOut);

    const attOut = { buffer: b.attOut, rowStride: C, colStride: 1 };
    const outWeight = gpt2 ? conv1dWeight(p('attn.c_proj.weight'), C) : linearWeight(p('attn.attention.out_proj.weight'), C);
    const outBias = gpt2 ? p('attn.c_proj.bias') : p('attn.attention.out_proj.bias');
    k.matmul(gpu, { M: R, N: C, K: C }, attOut, outWeight, { buffer: b.projection, rowStride: C }, { bias: outBias });
    k.residualForward(gpu, R * C, input, b.projection, b.residualMid);

    k.layernormForward(gpu, R, C, eps, b.residualMid, p('ln_2.weight'), p('ln_2.bias'), b.ln, b.mean, b.rstd);
    const fcWeight = gpt2 ? conv1dWeight(p('mlp.c_fc.weight'), I) : linearWeight(p('mlp.c_fc.weight'), C);
    k.matmul(gpu, { M: R, N: I, K: C }, { buffer: b.ln, rowStride: C, colStride: 1 }, fcWeight,
      { buffer: b.fc, rowStride: I }, { bias: p('mlp.c_fc.bias') });
    k.geluForward(gpu, R * I, b.fc, b.fcGelu);
    const projWeight = gpt2 ? conv1dWeight(p('mlp.c_proj.weight'), C) : linearWeight(p('mlp.c_proj.weight'), I);
    k.matmul(gpu, { M: R, N: C, K: I }, { buffer: b.fcGelu, rowStride: I, colStride: 1 }, projWeight,
      { buffer: b.projection, rowStride: C }, { bias: p('mlp.c_proj.bias') });
    k.residualForward(gpu, R * C, b.residualMid, b.projection, output);
  }

  private attentionShape(l: number, R: number): dk.CachedAttentionShape {
    const { config } = this;
    return {
      R,
      C: config.hiddenSize,
      NH: config.numHeads,
      capacity: this.batch!.capacity,
      window: config.attentionLayers[l] === 'local' ? config.windowSize : 0,
      scale: config.scaleAttention ? 1 / Math.sqrt(config.hiddenSize / config.numHeads) : 1,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Buffers

  private allocateBatch(B: number, capacity: number): void {
    const { gpu, config } = this;
    if (this.batch && this.batch.B === B && this.batch.capacity === capacity) return;
    this.release();
    const C = config.hiddenSize;
    const all: GpuBuffer[] = [];
    const make = (label: string, floats: number): GpuBuffer => {
      const buffer = gpu.createBuffer(`decode.${label}`, floats * 4, 'activations');
      all.push(buffer);
      return buffer;
    };
    this.batch = {
      B,
      capacity,
      all,
      keys: Array.from({ length: config.numLayers }, (_, l) => make(`h.${l}.keys`, B * capacity * C)),
      values: Array.from({ length: config.numLayers }, (_, l) => make(`h.${l}.values`, B * capacity * C)),
      last: make('last', B * C),
      lnf: make('lnf', B * C),
      lnfMean: make('lnfMean', B),
      lnfRstd: make('lnfRstd', B),
      logits: make('logits', B * config.vocabSize),
    };
  }

  /** Row buffers for at least R rows; grown (to at most maxRows) when a pass needs more. */
  private ensureRowBuffers(R: number): RowBuffers {
    const capacity = this.batch!.capacity;
    const current = this.rowBuffers;
    if (current && current.rows >= R && current.scores.bytes >= R * this.config.numHeads * capacity * 4) return current;
    for (const buffer of current?.all ?? []) this.gpu.destroyBuffer(buffer);

    const { gpu, config } = this;
    const rows = Math.min(this.maxRows, Math.max(R, current?.rows ?? 0));
    const C = config.hiddenSize;
    const I = config.innerSize;
    const all: GpuBuffer[] = [];
    const make = (label: string, floats: number): GpuBuffer => {
      const buffer = gpu.createBuffer(`decode.${label}`, floats * 4, 'activations');
      all.push(buffer);
      return buffer;
    };
    this.rowBuffers = {
      rows,
      all,
      rowTable: make('rowTable', 2 * rows),
      tokens: make('tokens', rows),
      residual: [make('residual.0', rows * C), make('residual.1', rows * C)],
      residualMid: make('residualMid', rows * C),
      ln: make('ln', rows * C),
      mean: make('mean', rows),
      rstd: make('rstd', rows),
      qkv: make('qkv', rows * 3 * C),
      attOut: make('attOut', rows * C),
      projection: make('projection', rows * C),
      fc: make('fc', rows * I),
      fcGelu: make('fcGelu', rows * I),
      scores: make('scores', rows * config.numHeads * capacity),
    };
    return this.rowBuffers;
  }
}

/**
 * Next-token logits by a full forward pass of every listed sequence at each step, with no
 * cache: slow, but exactly the engine's forward pass, so it serves as the oracle of the cache.
 */
export class FullSequenceDecoder implements Decoder {
  readonly config: ModelConfig;
  private readonly engine: GptEngine;
  private sequences: number[][] = [];
  private capacity = 0;

  constructor(engine: GptEngine) {
    this.engine = engine;
    this.config = engine.config;
  }

  async prefill(prompts: number[][], capacity: number): Promise<Float32Array> {
    checkPrompts(this.config, prompts, capacity);
    this.sequences = prompts.map((prompt) => [...prompt]);
    this.capacity = capacity;
    return this.lastLogits(prompts.map((_, b) => b));
  }

  async step(sequences: number[], tokens: number[]): Promise<Float32Array> {
    if (sequences.length !== tokens.length || sequences.length === 0) throw new Error('FullSequenceDecoder.step: one token per sequence expected');
    sequences.forEach((sequence, i) => {
      const tokensSoFar = this.sequences[sequence];
      if (!tokensSoFar) throw new Error(`FullSequenceDecoder.step: invalid sequence index ${sequence}`);
      if (tokensSoFar.length >= this.capacity) throw new Error(`FullSequenceDecoder.step: sequence ${sequence} is full (${this.capacity} tokens)`);
      checkToken(this.config, tokens[i]);
      tokensSoFar.push(tokens[i]);
    });
    return this.lastLogits(sequences);
  }

  release(): void {
    this.sequences = [];
    this.engine.releaseActivations();
  }

  /** Logits at the last position of each listed sequence, right-padded to the longest. */
  private async lastLogits(indices: number[]): Promise<Float32Array> {
    const V = this.config.vocabSize;
    const B = indices.length;
    const T = Math.max(...indices.map((i) => this.sequences[i].length));
    // Causal attention keeps padding after a sequence's end from changing its logits.
    const tokens = new Int32Array(B * T);
    indices.forEach((index, b) => tokens.set(this.sequences[index], b * T));
    const logits = await this.engine.logits(tokens, B, T);
    const out = new Float32Array(B * V);
    indices.forEach((index, b) => {
      const row = b * T + this.sequences[index].length - 1;
      out.set(logits.subarray(row * V, (row + 1) * V), b * V);
    });
    return out;
  }
}

function checkPrompts(config: ModelConfig, prompts: number[][], capacity: number): void {
  if (prompts.length === 0) throw new Error('decoder: no prompts');
  if (!Number.isInteger(capacity) || capacity < 1 || capacity > config.contextLength) {
    throw new UserError(`A generation needs room for ${capacity} tokens, but the model's context length is ${config.contextLength}.`);
  }
  prompts.forEach((prompt, b) => {
    if (prompt.length === 0) throw new Error(`decoder: prompt ${b} is empty; start it with the end-of-text token`);
    if (prompt.length > capacity) throw new Error(`decoder: prompt ${b} has ${prompt.length} tokens, more than the capacity ${capacity}`);
    for (const token of prompt) checkToken(config, token);
  });
}

function checkToken(config: ModelConfig, token: number): void {
  if (!Number.isInteger(token) || token < 0 || token >= config.vocabSize) {
    throw new Error(`decoder: token id ${token} is outside the vocabulary of ${config.vocabSize}`);
  }
}

/** Addresses a Conv1D weight [K, N] as the B operand of x[M, K] · W. */
function conv1dWeight(buffer: GpuBuffer, N: number): k.MatrixOperand {
  return { buffer, rowStride: N, colStride: 1 };
}

/** Addresses an nn.Linear weight [N, K] as the B operand of x[M, K] · W^T. */
function linearWeight(buffer: GpuBuffer, K: number): k.MatrixOperand {
  return { buffer, rowStride: 1, colStride: K };
}

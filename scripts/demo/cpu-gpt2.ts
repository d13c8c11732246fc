// GPT-2 training on the CPU in float32, for the demo model only: forward, backward and AdamW over
// one Float32Array of parameters with named views, in the layout of src/model/checkpoint.ts
// (Conv1D weights [in, out], lm_head tied to wte). No dropout.
//
// The demo model is trained here instead of on the WebGPU engine for two reasons. On the 2-core
// machine the demo was built on, a training step of the engine on SwiftShader ran at about 45
// tokens per second for this model size, and this code at 300 to 600. And a single thread of
// plain JavaScript gives the same weights on every machine for a given seed and Node.js version,
// which a GPU does not promise.
//
// Notation: B batch size, T sequence length, C width, NH heads, hs = C / NH, I = 4C MLP width,
// V vocabulary, L blocks, BT = B * T rows.

import { parameterShapes } from '../../src/model/checkpoint.ts';
import type { ModelConfig } from '../../src/model/types.ts';
import type { Random } from './corpus.ts';

export interface CpuBatch {
  B: number;
  T: number;
  /** (B, T) input ids. */
  tokens: Int32Array;
  /** (B, T) next-token ids, -1 where a position has no loss. */
  targets: Int32Array;
  /** (B, T) loss weights; the loss is sum(weight * -log p(target)). */
  weights: Float32Array;
}

/** The parameters of one block as views into the parameter array. */
interface BlockViews {
  ln1w: Float32Array; ln1b: Float32Array;
  attnw: Float32Array; attnb: Float32Array;
  projw: Float32Array; projb: Float32Array;
  ln2w: Float32Array; ln2b: Float32Array;
  fcw: Float32Array; fcb: Float32Array;
  fcprojw: Float32Array; fcprojb: Float32Array;
}

interface ModelViews {
  wte: Float32Array; wpe: Float32Array;
  blocks: BlockViews[];
  lnfw: Float32Array; lnfb: Float32Array;
}

/** Canonical parameter names with their shapes and offsets into one flat array. */
export interface ParameterLayout {
  entries: { name: string; shape: number[]; offset: number; size: number }[];
  total: number;
}

export function parameterLayout(config: ModelConfig): ParameterLayout {
  let offset = 0;
  const entries = parameterShapes(config).map(({ name, shape }) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const entry = { name, shape, offset, size };
    offset += size;
    return entry;
  });
  return { entries, total: offset };
}

function views(layout: ParameterLayout, flat: Float32Array, L: number): ModelViews {
  const byName = new Map(layout.entries.map((e) => [e.name, flat.subarray(e.offset, e.offset + e.size)]));
  const get = (name: string) => {
    const view = byName.get(name);
    if (!view) throw new Error(`cpu-gpt2: no parameter ${name}`);
    return view;
  };
  const blocks: BlockViews[] = [];
  for (let l = 0; l < L; l++) {
    const h = `h.${l}.`;
    blocks.push({
      ln1w: get(`${h}ln_1.weight`), ln1b: get(`${h}ln_1.bias`),
      attnw: get(`${h}attn.c_attn.weight`), attnb: get(`${h}attn.c_attn.bias`),
      projw: get(`${h}attn.c_proj.weight`), projb: get(`${h}attn.c_proj.bias`),
      ln2w: get(`${h}ln_2.weight`), ln2b: get(`${h}ln_2.bias`),
      fcw: get(`${h}mlp.c_fc.weight`), fcb: get(`${h}mlp.c_fc.bias`),
      fcprojw: get(`${h}mlp.c_proj.weight`), fcprojb: get(`${h}mlp.c_proj.bias`),
    });
  }
  return { wte: get('wte.weight'), wpe: get('wpe.weight'), blocks, lnfw: get('ln_f.weight'), lnfb: get('ln_f.bias') };
}

// ---------------------------------------------------------------------------------------------
// Operations, each a forward/backward pair. Backward functions add into their gradient outputs.

/** out (BT,C) = wte[tokens] + wpe[t]. */
function encoderForward(out: Float32Array, tokens: Int32Array, wte: Float32Array, wpe: Float32Array, B: number, T: number, C: number): void {
  for (let bt = 0; bt < B * T; bt++) {
    const w = tokens[bt] * C;
    const p = (bt % T) * C;
    const o = bt * C;
    for (let c = 0; c < C; c++) out[o + c] = wte[w + c] + wpe[p + c];
  }
}

function encoderBackward(dwte: Float32Array, dwpe: Float32Array, dout: Float32Array, tokens: Int32Array, B: number, T: number, C: number): void {
  for (let bt = 0; bt < B * T; bt++) {
    const w = tokens[bt] * C;
    const p = (bt % T) * C;
    const o = bt * C;
    for (let c = 0; c < C; c++) {
      dwte[w + c] += dout[o + c];
      dwpe[p + c] += dout[o + c];
    }
  }
}

/** out (R,C) = normalize(inp) * w + b, over rows of C; stores each row's mean and 1/std. */
function layernormForward(out: Float32Array, mean: Float32Array, rstd: Float32Array, inp: Float32Array, w: Float32Array, b: Float32Array, R: number, C: number, eps: number): void {
  for (let r = 0; r < R; r++) {
    const x = r * C;
    let m = 0;
    for (let c = 0; c < C; c++) m += inp[x + c];
    m /= C;
    let v = 0;
    for (let c = 0; c < C; c++) {
      const d = inp[x + c] - m;
      v += d * d;
    }
    const s = 1 / Math.sqrt(v / C + eps);
    for (let c = 0; c < C; c++) out[x + c] = (inp[x + c] - m) * s * w[c] + b[c];
    mean[r] = m;
    rstd[r] = s;
  }
}

function layernormBackward(dinp: Float32Array, dw: Float32Array, db: Float32Array, dout: Float32Array, inp: Float32Array, w: Float32Array, mean: Float32Array, rstd: Float32Array, R: number, C: number): void {
  for (let r = 0; r < R; r++) {
    const x = r * C;
    const m = mean[r];
    const s = rstd[r];
    // Two reductions over the row: mean of dnorm and mean of dnorm * norm.
    let dnormMean = 0;
    let dnormNormMean = 0;
    for (let c = 0; c < C; c++) {
      const norm = (inp[x + c] - m) * s;
      const dnorm = w[c] * dout[x + c];
      dnormMean += dnorm;
      dnormNormMean += dnorm * norm;
    }
    dnormMean /= C;
    dnormNormMean /= C;
    for (let c = 0; c < C; c++) {
      const norm = (inp[x + c] - m) * s;
      const dnorm = w[c] * dout[x + c];
      db[c] += dout[x + c];
      dw[c] += norm * dout[x + c];
      dinp[x + c] += (dnorm - dnormMean - norm * dnormNormMean) * s;
    }
  }
}

/** out (R,OC) = inp (R,IC) · weight (IC,OC) + bias, the Conv1D layout. */
function matmulForward(out: Float32Array, inp: Float32Array, weight: Float32Array, bias: Float32Array, R: number, IC: number, OC: number): void {
  for (let r = 0; r < R; r++) {
    const o = r * OC;
    const x = r * IC;
    for (let j = 0; j < OC; j++) out[o + j] = bias[j];
    for (let i = 0; i < IC; i++) {
      const a = inp[x + i];
      const wRow = i * OC;
      for (let j = 0; j < OC; j++) out[o + j] += a * weight[wRow + j];
    }
  }
}

function matmulBackward(dinp: Float32Array, dweight: Float32Array, dbias: Float32Array, dout: Float32Array, inp: Float32Array, weight: Float32Array, R: number, IC: number, OC: number): void {
  for (let r = 0; r < R; r++) {
    const o = r * OC;
    const x = r * IC;
    for (let j = 0; j < OC; j++) dbias[j] += dout[o + j];
    for (let i = 0; i < IC; i++) {
      const wRow = i * OC;
      const a = inp[x + i];
      let sum = 0;
      for (let j = 0; j < OC; j++) {
        const d = dout[o + j];
        sum += d * weight[wRow + j];
        dweight[wRow + j] += a * d;
      }
      dinp[x + i] += sum;
    }
  }
}

/**
 * Causal self-attention. qkv (BT,3C) contains q, k and v of each position, att (B,NH,T,T) keeps
 * the softmax rows for the backward pass, and out is (BT,C).
 */
function attentionForward(out: Float32Array, att: Float32Array, qkv: Float32Array, B: number, T: number, C: number, NH: number): void {
  const hs = C / NH;
  const scale = 1 / Math.sqrt(hs);
  const C3 = 3 * C;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let t = 0; t < T; t++) {
        const q = (b * T + t) * C3 + h * hs;
        const a = ((b * NH + h) * T + t) * T;
        let max = -Infinity;
        for (let t2 = 0; t2 <= t; t2++) {
          const k = (b * T + t2) * C3 + C + h * hs;
          let dot = 0;
          for (let i = 0; i < hs; i++) dot += qkv[q + i] * qkv[k + i];
          dot *= scale;
          att[a + t2] = dot;
          if (dot > max) max = dot;
        }
        // Subtract the row maximum before exp for numerical stability.
        let sum = 0;
        for (let t2 = 0; t2 <= t; t2++) {
          const e = Math.exp(att[a + t2] - max);
          att[a + t2] = e;
          sum += e;
        }
        const o = (b * T + t) * C + h * hs;
        for (let i = 0; i < hs; i++) out[o + i] = 0;
        for (let t2 = 0; t2 < T; t2++) {
          if (t2 > t) {
            att[a + t2] = 0;
            continue;
          }
          const p = att[a + t2] / sum;
          att[a + t2] = p;
          const v = (b * T + t2) * C3 + 2 * C + h * hs;
          for (let i = 0; i < hs; i++) out[o + i] += p * qkv[v + i];
        }
      }
    }
  }
}

function attentionBackward(dqkv: Float32Array, dout: Float32Array, qkv: Float32Array, att: Float32Array, B: number, T: number, C: number, NH: number): void {
  const hs = C / NH;
  const scale = 1 / Math.sqrt(hs);
  const C3 = 3 * C;
  const datt = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let t = 0; t < T; t++) {
        const a = ((b * NH + h) * T + t) * T;
        const o = (b * T + t) * C + h * hs;
        // out = sum att * v: gradients of the attention weights and of v.
        let weighted = 0;
        for (let t2 = 0; t2 <= t; t2++) {
          const v = (b * T + t2) * C3 + 2 * C + h * hs;
          let d = 0;
          for (let i = 0; i < hs; i++) {
            d += qkv[v + i] * dout[o + i];
            dqkv[v + i] += att[a + t2] * dout[o + i];
          }
          datt[t2] = d;
          weighted += att[a + t2] * d;
        }
        // Softmax backward: dscore = att * (datt - sum(att * datt)); then scores = scale * q·k.
        const q = (b * T + t) * C3 + h * hs;
        for (let t2 = 0; t2 <= t; t2++) {
          const dscore = att[a + t2] * (datt[t2] - weighted) * scale;
          const k = (b * T + t2) * C3 + C + h * hs;
          for (let i = 0; i < hs; i++) {
            dqkv[q + i] += qkv[k + i] * dscore;
            dqkv[k + i] += qkv[q + i] * dscore;
          }
        }
      }
    }
  }
}

const GELU_SCALE = Math.sqrt(2 / Math.PI);

/** GELU, tanh form (gelu_new). */
function geluForward(out: Float32Array, inp: Float32Array, N: number): void {
  for (let i = 0; i < N; i++) {
    const x = inp[i];
    out[i] = 0.5 * x * (1 + Math.tanh(GELU_SCALE * (x + 0.044715 * x * x * x)));
  }
}

function geluBackward(dinp: Float32Array, inp: Float32Array, dout: Float32Array, N: number): void {
  for (let i = 0; i < N; i++) {
    const x = inp[i];
    const u = GELU_SCALE * (x + 0.044715 * x * x * x);
    const th = Math.tanh(u);
    const sech2 = 1 - th * th;
    const grad = 0.5 * (1 + th) + 0.5 * x * sech2 * GELU_SCALE * (1 + 3 * 0.044715 * x * x);
    dinp[i] += grad * dout[i];
  }
}

/**
 * Output head tied to the token embedding, with the cross-entropy: logits (BT,V) = lnf · wte^T at
 * positions with a loss weight. Overwrites `logits` with the probabilities and returns
 * sum(weight * -log p(target)).
 */
function headForward(logits: Float32Array, lnf: Float32Array, wte: Float32Array, batch: CpuBatch, C: number, V: number): number {
  const { targets, weights } = batch;
  let loss = 0;
  logits.fill(0);
  for (let bt = 0; bt < batch.B * batch.T; bt++) {
    const weight = weights[bt];
    if (weight === 0 || targets[bt] < 0) continue;
    const row = bt * V;
    const x = bt * C;
    let max = -Infinity;
    for (let v = 0; v < V; v++) {
      const e = v * C;
      let dot = 0;
      for (let c = 0; c < C; c++) dot += lnf[x + c] * wte[e + c];
      logits[row + v] = dot;
      if (dot > max) max = dot;
    }
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(logits[row + v] - max);
    const logSum = Math.log(sum) + max;
    loss += weight * (logSum - logits[row + targets[bt]]);
    for (let v = 0; v < V; v++) logits[row + v] = Math.exp(logits[row + v] - logSum);
  }
  return loss;
}

/** Backward of headForward from its probabilities: dlogits = weight * (probs - onehot(target)). */
function headBackward(dlnf: Float32Array, dwte: Float32Array, probs: Float32Array, lnf: Float32Array, wte: Float32Array, batch: CpuBatch, C: number, V: number): void {
  const { targets, weights } = batch;
  const dx = new Float64Array(C);
  for (let bt = 0; bt < batch.B * batch.T; bt++) {
    const weight = weights[bt];
    const target = targets[bt];
    if (weight === 0 || target < 0) continue;
    const row = bt * V;
    const x = bt * C;
    dx.fill(0);
    for (let v = 0; v < V; v++) {
      const d = weight * (probs[row + v] - (v === target ? 1 : 0));
      const e = v * C;
      for (let c = 0; c < C; c++) {
        dx[c] += d * wte[e + c];
        dwte[e + c] += d * lnf[x + c];
      }
    }
    for (let c = 0; c < C; c++) dlnf[x + c] += dx[c];
  }
}

// ---------------------------------------------------------------------------------------------
// The model

/** Activations of one block, kept for the backward pass. */
interface BlockActivations {
  ln1: Float32Array; ln1Mean: Float32Array; ln1Rstd: Float32Array;
  qkv: Float32Array; att: Float32Array; atty: Float32Array;
  residual2: Float32Array;
  ln2: Float32Array; ln2Mean: Float32Array; ln2Rstd: Float32Array;
  fc: Float32Array; fcGelu: Float32Array;
  /** Output of the block, the input of the next one. */
  residual3: Float32Array;
}

export class CpuGpt2 {
  readonly config: ModelConfig;
  readonly layout: ParameterLayout;
  readonly params: Float32Array;
  readonly grads: Float32Array;
  private readonly p: ModelViews;
  private readonly g: ModelViews;
  private acts: { B: number; T: number; encoded: Float32Array; blocks: BlockActivations[]; lnf: Float32Array; lnfMean: Float32Array; lnfRstd: Float32Array; logits: Float32Array } | null = null;

  constructor(config: ModelConfig, params?: Float32Array) {
    if (config.family !== 'gpt2') throw new Error('cpu-gpt2 trains GPT-2 models only');
    this.config = config;
    this.layout = parameterLayout(config);
    this.params = params ?? new Float32Array(this.layout.total);
    if (this.params.length !== this.layout.total) throw new Error(`cpu-gpt2: ${this.params.length} parameters given, ${this.layout.total} expected`);
    this.grads = new Float32Array(this.layout.total);
    this.p = views(this.layout, this.params, config.numLayers);
    this.g = views(this.layout, this.grads, config.numLayers);
  }

  /**
   * GPT-2's initialization: normal(0, 0.02) matrices and embeddings, the two residual output
   * projections of each block scaled down by 1/sqrt(2L), zero biases, unit LayerNorm weights.
   */
  initialize(random: Random): void {
    const normal = gaussian(random);
    const residualStd = 0.02 / Math.sqrt(2 * this.config.numLayers);
    for (const { name, offset, size } of this.layout.entries) {
      const view = this.params.subarray(offset, offset + size);
      if (/ln_\d\.weight$|ln_f\.weight$/.test(name)) view.fill(1);
      else if (name.endsWith('.bias')) view.fill(0);
      else {
        const std = /c_proj\.weight$/.test(name) ? residualStd : 0.02;
        for (let i = 0; i < size; i++) view[i] = normal() * std;
      }
    }
  }

  private ensureActivations(B: number, T: number) {
    if (this.acts && this.acts.B === B && this.acts.T === T) return this.acts;
    const { hiddenSize: C, innerSize: I, numHeads: NH, vocabSize: V } = this.config;
    const BT = B * T;
    const f = (n: number) => new Float32Array(n);
    const blocks: BlockActivations[] = [];
    for (let l = 0; l < this.config.numLayers; l++) {
      blocks.push({
        ln1: f(BT * C), ln1Mean: f(BT), ln1Rstd: f(BT), qkv: f(BT * 3 * C), att: f(B * NH * T * T), atty: f(BT * C),
        residual2: f(BT * C), ln2: f(BT * C), ln2Mean: f(BT), ln2Rstd: f(BT), fc: f(BT * I), fcGelu: f(BT * I), residual3: f(BT * C),
      });
    }
    this.acts = { B, T, encoded: f(BT * C), blocks, lnf: f(BT * C), lnfMean: f(BT), lnfRstd: f(BT), logits: f(BT * V) };
    return this.acts;
  }

  /**
   * Forward pass and weighted NLL. Logits are computed only at positions with a loss weight, so
   * the returned logits hold zeros elsewhere.
   */
  forward(batch: CpuBatch): number {
    const { B, T } = batch;
    const { hiddenSize: C, innerSize: I, numHeads: NH, vocabSize: V, layerNormEpsilon: eps } = this.config;
    const BT = B * T;
    const acts = this.ensureActivations(B, T);
    const p = this.p;

    encoderForward(acts.encoded, batch.tokens, p.wte, p.wpe, B, T, C);
    let residual = acts.encoded;
    for (let l = 0; l < this.config.numLayers; l++) {
      const w = p.blocks[l];
      const a = acts.blocks[l];
      layernormForward(a.ln1, a.ln1Mean, a.ln1Rstd, residual, w.ln1w, w.ln1b, BT, C, eps);
      matmulForward(a.qkv, a.ln1, w.attnw, w.attnb, BT, C, 3 * C);
      attentionForward(a.atty, a.att, a.qkv, B, T, C, NH);
      matmulForward(a.residual2, a.atty, w.projw, w.projb, BT, C, C);
      for (let i = 0; i < BT * C; i++) a.residual2[i] += residual[i];
      layernormForward(a.ln2, a.ln2Mean, a.ln2Rstd, a.residual2, w.ln2w, w.ln2b, BT, C, eps);
      matmulForward(a.fc, a.ln2, w.fcw, w.fcb, BT, C, I);
      geluForward(a.fcGelu, a.fc, BT * I);
      matmulForward(a.residual3, a.fcGelu, w.fcprojw, w.fcprojb, BT, I, C);
      for (let i = 0; i < BT * C; i++) a.residual3[i] += a.residual2[i];
      residual = a.residual3;
    }
    layernormForward(acts.lnf, acts.lnfMean, acts.lnfRstd, residual, p.lnfw, p.lnfb, BT, C, eps);

    // Tied output head and cross-entropy, at weighted positions only. The logits buffer then
    // contains the probabilities, which the backward pass reads.
    return headForward(acts.logits, acts.lnf, p.wte, batch, C, V);
  }

  /** Adds the gradient of the last forward pass's loss to `grads`. */
  backward(batch: CpuBatch): void {
    const acts = this.acts;
    if (!acts || acts.B !== batch.B || acts.T !== batch.T) throw new Error('cpu-gpt2: backward without a matching forward pass');
    const { B, T } = batch;
    const { hiddenSize: C, innerSize: I, numHeads: NH, vocabSize: V } = this.config;
    const BT = B * T;
    const p = this.p;
    const g = this.g;

    const dlnf = new Float32Array(BT * C);
    headBackward(dlnf, g.wte, acts.logits, acts.lnf, p.wte, batch, C, V);

    const L = this.config.numLayers;
    const dresidual = new Float32Array(BT * C);
    layernormBackward(dresidual, g.lnfw, g.lnfb, dlnf, L > 0 ? acts.blocks[L - 1].residual3 : acts.encoded, p.lnfw, acts.lnfMean, acts.lnfRstd, BT, C);

    const dln = new Float32Array(BT * C);
    const datty = new Float32Array(BT * C);
    const dqkv = new Float32Array(BT * 3 * C);
    const dfc = new Float32Array(BT * I);
    const dfcGelu = new Float32Array(BT * I);
    for (let l = L - 1; l >= 0; l--) {
      const w = p.blocks[l];
      const gw = g.blocks[l];
      const a = acts.blocks[l];
      const input = l > 0 ? acts.blocks[l - 1].residual3 : acts.encoded;

      // dresidual is d(residual3) here. The MLP branch adds its input gradient to it, giving d(residual2).
      dfcGelu.fill(0);
      matmulBackward(dfcGelu, gw.fcprojw, gw.fcprojb, dresidual, a.fcGelu, w.fcprojw, BT, I, C);
      dfc.fill(0);
      geluBackward(dfc, a.fc, dfcGelu, BT * I);
      dln.fill(0);
      matmulBackward(dln, gw.fcw, gw.fcb, dfc, a.ln2, w.fcw, BT, C, I);
      layernormBackward(dresidual, gw.ln2w, gw.ln2b, dln, a.residual2, w.ln2w, a.ln2Mean, a.ln2Rstd, BT, C);

      // dresidual is d(residual2) now. The attention branch adds its input gradient, giving d(input of the block).
      datty.fill(0);
      matmulBackward(datty, gw.projw, gw.projb, dresidual, a.atty, w.projw, BT, C, C);
      dqkv.fill(0);
      attentionBackward(dqkv, datty, a.qkv, a.att, B, T, C, NH);
      dln.fill(0);
      matmulBackward(dln, gw.attnw, gw.attnb, dqkv, a.ln1, w.attnw, BT, C, 3 * C);
      layernormBackward(dresidual, gw.ln1w, gw.ln1b, dln, input, w.ln1w, a.ln1Mean, a.ln1Rstd, BT, C);
    }
    encoderBackward(g.wte, g.wpe, dresidual, batch.tokens, B, T, C);
  }

  /** Next-token logits (V) after the last position of one sequence. */
  nextLogits(tokens: number[]): Float32Array {
    const T = tokens.length;
    const targets = new Int32Array(T).fill(-1);
    targets[T - 1] = 0;
    const weights = new Float32Array(T);
    weights[T - 1] = 1;
    this.forward({ B: 1, T, tokens: Int32Array.from(tokens), targets, weights });
    // forward leaves probabilities; their logarithm is a valid logit vector.
    const V = this.config.vocabSize;
    const probs = this.acts!.logits.subarray((T - 1) * V, T * V);
    return Float32Array.from(probs, (q) => Math.log(Math.max(q, 1e-30)));
  }
}

/** Standard normal samples by the Box-Muller transform. */
function gaussian(random: Random): () => number {
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const value = spare;
      spare = null;
      return value;
    }
    let u = 0;
    while (u === 0) u = random();
    const v = random();
    const radius = Math.sqrt(-2 * Math.log(u));
    spare = radius * Math.sin(2 * Math.PI * v);
    return radius * Math.cos(2 * Math.PI * v);
  };
}

// ---------------------------------------------------------------------------------------------
// Optimizer

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/**
 * AdamW over the flat parameter array. Weight decay applies to matrices and embeddings only,
 * not to biases and LayerNorm parameters, as in GPT-2 training setups.
 */
export class AdamW {
  private readonly m: Float32Array;
  private readonly v: Float32Array;
  private readonly decay: Uint8Array;
  private step = 0;

  constructor(private readonly model: CpuGpt2, private readonly options: AdamWOptions) {
    this.m = new Float32Array(model.params.length);
    this.v = new Float32Array(model.params.length);
    this.decay = new Uint8Array(model.params.length);
    for (const { shape, offset, size } of model.layout.entries) {
      if (shape.length === 2) this.decay.fill(1, offset, offset + size);
    }
  }

  /** Applies one update with learning rate `lr` after clipping the gradients to a global L2 norm of `clip`. Returns the norm before clipping. */
  update(lr: number, clip: number): number {
    const { params, grads } = this.model;
    let squares = 0;
    for (let i = 0; i < grads.length; i++) squares += grads[i] * grads[i];
    const norm = Math.sqrt(squares);
    const factor = norm > clip ? clip / norm : 1;

    this.step++;
    const { beta1, beta2, eps, weightDecay } = this.options;
    const correction1 = 1 - beta1 ** this.step;
    const correction2 = 1 - beta2 ** this.step;
    for (let i = 0; i < params.length; i++) {
      const grad = grads[i] * factor;
      const m = (this.m[i] = beta1 * this.m[i] + (1 - beta1) * grad);
      const v = (this.v[i] = beta2 * this.v[i] + (1 - beta2) * grad * grad);
      const update = m / correction1 / (Math.sqrt(v / correction2) + eps);
      params[i] -= lr * (update + (this.decay[i] ? weightDecay * params[i] : 0));
    }
    return norm;
  }
}

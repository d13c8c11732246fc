// Float64 CPU reference of every operation in the GPT-2 / GPT-Neo graph, one forward/backward
// pair per operation, in the order data flows through the model. Written for clarity, not
// speed: plain loops over row-major Float64Arrays. Kernel tests compare the WGSL kernels with
// these functions, so nothing here imports from src/ except types.
//
// Shape letters used throughout:
//   B batch size, T sequence length, N = B*T rows, C model width, V vocabulary size,
//   P context length (rows of wpe), NH attention heads, HS = C / NH head size,
//   IN / OUT input and output widths of a matmul.
//
// Backward functions return fresh gradient arrays and never accumulate into their arguments.

export class ReferenceInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReferenceInputError';
  }
}

function checkLength(name: string, array: ArrayLike<number>, expected: number): void {
  if (array.length !== expected) {
    throw new ReferenceInputError(`${name} has ${array.length} values, expected ${expected}`);
  }
}

// ----------------------------------------------------------------------------------------------
// Embedding: out[b,t,:] = wte[tokens[b,t],:] + wpe[t,:]. Position ids are 0..T-1.

// tokens is (B,T), wte is (V,C), wpe is (P,C); returns out (B,T,C).
export function encoderForward(
  tokens: Int32Array,
  wte: Float64Array,
  wpe: Float64Array,
  B: number,
  T: number,
  C: number,
): Float64Array {
  const V = wte.length / C;
  const P = wpe.length / C;
  checkLength('tokens', tokens, B * T);
  if (T > P) throw new ReferenceInputError(`sequence length ${T} exceeds the ${P} rows of wpe`);

  const out = new Float64Array(B * T * C);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const token = tokens[b * T + t];
      if (!(token >= 0 && token < V)) {
        throw new ReferenceInputError(`token ${token} at batch ${b}, position ${t} is outside the vocabulary [0, ${V})`);
      }
      const o = (b * T + t) * C;
      for (let c = 0; c < C; c++) out[o + c] = wte[token * C + c] + wpe[t * C + c];
    }
  }
  return out;
}

// dout is (B,T,C); returns dwte (V,C) and dwpe (P,C). Rows of tokens that do not occur and
// positions >= T get zero gradient.
export function encoderBackward(
  dout: Float64Array,
  tokens: Int32Array,
  B: number,
  T: number,
  C: number,
  V: number,
  P: number,
): { dwte: Float64Array; dwpe: Float64Array } {
  const dwte = new Float64Array(V * C);
  const dwpe = new Float64Array(P * C);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const token = tokens[b * T + t];
      const o = (b * T + t) * C;
      for (let c = 0; c < C; c++) {
        dwte[token * C + c] += dout[o + c];
        dwpe[t * C + c] += dout[o + c];
      }
    }
  }
  return { dwte, dwpe };
}

// ----------------------------------------------------------------------------------------------
// LayerNorm over the last axis, biased variance as in torch.nn.LayerNorm:
//   out = (x - mean) / sqrt(var + eps) * weight + bias

export interface LayerNormResult {
  out: Float64Array;
  /** Per-row mean (N), kept for the backward pass. */
  mean: Float64Array;
  /** Per-row 1 / sqrt(var + eps) (N), kept for the backward pass. */
  rstd: Float64Array;
}

// inp is (N,C), weight and bias are (C); returns out (N,C), mean (N), rstd (N).
export function layernormForward(
  inp: Float64Array,
  weight: Float64Array,
  bias: Float64Array,
  N: number,
  C: number,
  eps: number,
): LayerNormResult {
  const out = new Float64Array(N * C);
  const mean = new Float64Array(N);
  const rstd = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    const x = n * C;
    let m = 0;
    for (let c = 0; c < C; c++) m += inp[x + c];
    m /= C;
    let v = 0;
    for (let c = 0; c < C; c++) v += (inp[x + c] - m) ** 2;
    v /= C;
    const s = 1 / Math.sqrt(v + eps);
    for (let c = 0; c < C; c++) out[x + c] = (inp[x + c] - m) * s * weight[c] + bias[c];
    mean[n] = m;
    rstd[n] = s;
  }
  return { out, mean, rstd };
}

// dout and inp are (N,C); returns dinp (N,C), dweight (C), dbias (C).
export function layernormBackward(
  dout: Float64Array,
  inp: Float64Array,
  weight: Float64Array,
  mean: Float64Array,
  rstd: Float64Array,
  N: number,
  C: number,
): { dinp: Float64Array; dweight: Float64Array; dbias: Float64Array } {
  const dinp = new Float64Array(N * C);
  const dweight = new Float64Array(C);
  const dbias = new Float64Array(C);
  for (let n = 0; n < N; n++) {
    const x = n * C;

    // The gradient through the normalisation needs two row means: of dnorm and of dnorm * xhat.
    let meanDnorm = 0;
    let meanDnormXhat = 0;
    for (let c = 0; c < C; c++) {
      const xhat = (inp[x + c] - mean[n]) * rstd[n];
      const dnorm = dout[x + c] * weight[c];
      meanDnorm += dnorm;
      meanDnormXhat += dnorm * xhat;
      dweight[c] += dout[x + c] * xhat;
      dbias[c] += dout[x + c];
    }
    meanDnorm /= C;
    meanDnormXhat /= C;

    for (let c = 0; c < C; c++) {
      const xhat = (inp[x + c] - mean[n]) * rstd[n];
      const dnorm = dout[x + c] * weight[c];
      dinp[x + c] = rstd[n] * (dnorm - meanDnorm - xhat * meanDnormXhat);
    }
  }
  return { dinp, dweight, dbias };
}

// ----------------------------------------------------------------------------------------------
// Matmul with optional bias: out[n,o] = bias[o] + sum_i inp[n,i] * W(i,o).
// Hugging Face stores GPT-2's Conv1D weights as (IN,OUT) and nn.Linear weights (GPT-Neo, and
// wte used as the output projection) as (OUT,IN). `layout` names the order `weight` is stored in.

export type WeightLayout = 'conv1d' | 'linear';

function weightIndex(i: number, o: number, IN: number, OUT: number, layout: WeightLayout): number {
  return layout === 'conv1d' ? i * OUT + o : o * IN + i;
}

// inp is (N,IN), weight is (IN,OUT) for conv1d or (OUT,IN) for linear, bias is (OUT) or null;
// returns out (N,OUT).
export function matmulForward(
  inp: Float64Array,
  weight: Float64Array,
  bias: Float64Array | null,
  N: number,
  IN: number,
  OUT: number,
  layout: WeightLayout,
): Float64Array {
  checkLength('matmul input', inp, N * IN);
  checkLength('matmul weight', weight, IN * OUT);
  if (bias) checkLength('matmul bias', bias, OUT);

  const out = new Float64Array(N * OUT);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < OUT; o++) {
      let sum = bias ? bias[o] : 0;
      for (let i = 0; i < IN; i++) sum += inp[n * IN + i] * weight[weightIndex(i, o, IN, OUT, layout)];
      out[n * OUT + o] = sum;
    }
  }
  return out;
}

// dout is (N,OUT); returns dinp (N,IN), dweight in the layout of weight, dbias (OUT) when
// hasBias, else null.
export function matmulBackward(
  dout: Float64Array,
  inp: Float64Array,
  weight: Float64Array,
  N: number,
  IN: number,
  OUT: number,
  layout: WeightLayout,
  hasBias: boolean,
): { dinp: Float64Array; dweight: Float64Array; dbias: Float64Array | null } {
  const dinp = new Float64Array(N * IN);
  const dweight = new Float64Array(IN * OUT);
  const dbias = hasBias ? new Float64Array(OUT) : null;
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < OUT; o++) {
      const d = dout[n * OUT + o];
      if (dbias) dbias[o] += d;
      for (let i = 0; i < IN; i++) {
        const w = weightIndex(i, o, IN, OUT, layout);
        dinp[n * IN + i] += d * weight[w];
        dweight[w] += d * inp[n * IN + i];
      }
    }
  }
  return { dinp, dweight, dbias };
}

// ----------------------------------------------------------------------------------------------
// GELU, tanh approximation (Hugging Face `gelu_new`):
//   gelu(x) = 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))

const GELU_SCALE = Math.sqrt(2 / Math.PI);
const GELU_CUBE = 0.044715;

// inp is any shape; returns out of the same shape.
export function geluForward(inp: Float64Array): Float64Array {
  const out = new Float64Array(inp.length);
  for (let i = 0; i < inp.length; i++) {
    const x = inp[i];
    out[i] = 0.5 * x * (1 + Math.tanh(GELU_SCALE * (x + GELU_CUBE * x * x * x)));
  }
  return out;
}

// dout and inp have the same shape; returns dinp.
export function geluBackward(dout: Float64Array, inp: Float64Array): Float64Array {
  const dinp = new Float64Array(inp.length);
  for (let i = 0; i < inp.length; i++) {
    const x = inp[i];
    const th = Math.tanh(GELU_SCALE * (x + GELU_CUBE * x * x * x));
    const dtanh = (1 - th * th) * GELU_SCALE * (1 + 3 * GELU_CUBE * x * x);
    dinp[i] = dout[i] * (0.5 * (1 + th) + 0.5 * x * dtanh);
  }
  return dinp;
}

// ----------------------------------------------------------------------------------------------
// Causal self-attention over a fused qkv input. Row (b,t) of qkv contains q in columns 0..C-1,
// k in C..2C-1 and v in 2C..3C-1. Head h uses columns h*HS..(h+1)*HS-1 within each part.
//
// Visibility: position t attends to positions j with firstVisiblePosition(t, window) <= j <= t.
// Global layers (window null) see 0..t. GPT-Neo's local layers see the last `window` positions,
// the current one included. Hugging Face's GPT-Neo builds that mask as
// `causal XOR tril(causal, -window_size)`: tril(., -w) keeps the pairs with j <= t - w, and
// removing them from the causal mask leaves t - w < j <= t, which is max(0, t - w + 1)..t.
//
// GPT-2 divides the scores q.k by sqrt(HS); GPT-Neo does not (`scale` false).

export interface AttentionOptions {
  scale: boolean;
  /** Number of positions a local layer attends to, the current one included, or null for a global layer. */
  window: number | null;
}

export function firstVisiblePosition(t: number, window: number | null): number {
  return window === null ? 0 : Math.max(0, t - window + 1);
}

export interface AttentionResult {
  /** (B,T,C): the heads' outputs side by side, before the output projection. */
  out: Float64Array;
  /** (B,NH,T,T): attention probabilities, zero where a position is not visible. */
  att: Float64Array;
}

// qkv is (B,T,3C); returns out (B,T,C) and att (B,NH,T,T).
export function attentionForward(
  qkv: Float64Array,
  B: number,
  T: number,
  C: number,
  NH: number,
  options: AttentionOptions,
): AttentionResult {
  checkLength('attention qkv', qkv, B * T * 3 * C);
  if (C % NH !== 0) throw new ReferenceInputError(`model width ${C} is not divisible by ${NH} heads`);
  if (options.window !== null && !(options.window >= 1)) {
    throw new ReferenceInputError(`attention window ${options.window} must be at least 1`);
  }
  const HS = C / NH;
  const scale = options.scale ? 1 / Math.sqrt(HS) : 1;
  const out = new Float64Array(B * T * C);
  const att = new Float64Array(B * NH * T * T);

  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let t = 0; t < T; t++) {
        const q = (b * T + t) * 3 * C + h * HS;
        const row = ((b * NH + h) * T + t) * T;
        const first = firstVisiblePosition(t, options.window);

        // Scores, with the max subtracted before exp for numerical stability.
        let max = -Infinity;
        for (let j = first; j <= t; j++) {
          const k = (b * T + j) * 3 * C + C + h * HS;
          let dot = 0;
          for (let d = 0; d < HS; d++) dot += qkv[q + d] * qkv[k + d];
          att[row + j] = dot * scale;
          max = Math.max(max, att[row + j]);
        }
        let sum = 0;
        for (let j = first; j <= t; j++) {
          att[row + j] = Math.exp(att[row + j] - max);
          sum += att[row + j];
        }
        for (let j = first; j <= t; j++) att[row + j] /= sum;

        const o = (b * T + t) * C + h * HS;
        for (let j = first; j <= t; j++) {
          const v = (b * T + j) * 3 * C + 2 * C + h * HS;
          for (let d = 0; d < HS; d++) out[o + d] += att[row + j] * qkv[v + d];
        }
      }
    }
  }
  return { out, att };
}

// dout is (B,T,C), qkv is (B,T,3C), att is (B,NH,T,T) from the forward pass; returns dqkv (B,T,3C).
export function attentionBackward(
  dout: Float64Array,
  qkv: Float64Array,
  att: Float64Array,
  B: number,
  T: number,
  C: number,
  NH: number,
  options: AttentionOptions,
): Float64Array {
  const HS = C / NH;
  const scale = options.scale ? 1 / Math.sqrt(HS) : 1;
  const dqkv = new Float64Array(B * T * 3 * C);
  const datt = new Float64Array(T);

  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let t = 0; t < T; t++) {
        const q = (b * T + t) * 3 * C + h * HS;
        const o = (b * T + t) * C + h * HS;
        const row = ((b * NH + h) * T + t) * T;
        const first = firstVisiblePosition(t, options.window);

        // out[t] = sum_j att[t,j] v[j]: gradients to the probabilities and to v.
        for (let j = first; j <= t; j++) {
          const v = (b * T + j) * 3 * C + 2 * C + h * HS;
          let dot = 0;
          for (let d = 0; d < HS; d++) {
            dot += dout[o + d] * qkv[v + d];
            dqkv[v + d] += att[row + j] * dout[o + d];
          }
          datt[j] = dot;
        }

        // Softmax backward over the visible positions: dscore_j = p_j (datt_j - sum_k p_k datt_k).
        let weighted = 0;
        for (let j = first; j <= t; j++) weighted += att[row + j] * datt[j];

        // score[t,j] = scale * q[t].k[j]: gradients to q and k.
        for (let j = first; j <= t; j++) {
          const dscore = att[row + j] * (datt[j] - weighted) * scale;
          const k = (b * T + j) * 3 * C + C + h * HS;
          for (let d = 0; d < HS; d++) {
            dqkv[q + d] += dscore * qkv[k + d];
            dqkv[k + d] += dscore * qkv[q + d];
          }
        }
      }
    }
  }
  return dqkv;
}

// ----------------------------------------------------------------------------------------------
// Residual add: out = a + b.

export function residualForward(a: Float64Array, b: Float64Array): Float64Array {
  checkLength('residual operand', b, a.length);
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i];
  return out;
}

// Both operands receive dout unchanged.
export function residualBackward(dout: Float64Array): { da: Float64Array; db: Float64Array } {
  return { da: Float64Array.from(dout), db: Float64Array.from(dout) };
}

// ----------------------------------------------------------------------------------------------
// Softmax over the last axis.

// inp is (N,V); returns probs (N,V).
export function softmaxForward(inp: Float64Array, N: number, V: number): Float64Array {
  const probs = new Float64Array(N * V);
  for (let n = 0; n < N; n++) {
    const x = n * V;
    let max = -Infinity;
    for (let v = 0; v < V; v++) max = Math.max(max, inp[x + v]);
    let sum = 0;
    for (let v = 0; v < V; v++) {
      probs[x + v] = Math.exp(inp[x + v] - max);
      sum += probs[x + v];
    }
    for (let v = 0; v < V; v++) probs[x + v] /= sum;
  }
  return probs;
}

// dout and probs are (N,V); returns dinp (N,V): dinp_v = p_v (dout_v - sum_u p_u dout_u).
export function softmaxBackward(dout: Float64Array, probs: Float64Array, N: number, V: number): Float64Array {
  const dinp = new Float64Array(N * V);
  for (let n = 0; n < N; n++) {
    const x = n * V;
    let weighted = 0;
    for (let v = 0; v < V; v++) weighted += probs[x + v] * dout[x + v];
    for (let v = 0; v < V; v++) dinp[x + v] = probs[x + v] * (dout[x + v] - weighted);
  }
  return dinp;
}

// logits is (N,V); returns log-softmax (N,V), computed as x - max - log(sum exp(x - max)).
export function logSoftmax(logits: Float64Array, N: number, V: number): Float64Array {
  const out = new Float64Array(N * V);
  for (let n = 0; n < N; n++) {
    const x = n * V;
    let max = -Infinity;
    for (let v = 0; v < V; v++) max = Math.max(max, logits[x + v]);
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(logits[x + v] - max);
    const logSum = max + Math.log(sum);
    for (let v = 0; v < V; v++) out[x + v] = logits[x + v] - logSum;
  }
  return out;
}

// ----------------------------------------------------------------------------------------------
// Masked, weighted cross-entropy from logits:
//   loss = sum over rows n with targets[n] >= 0 of weights[n] * -log softmax(logits[n])[targets[n]]
// A target of -1 marks a row without loss, and its weight is ignored.

function checkTargets(targets: Int32Array, N: number, V: number): void {
  checkLength('targets', targets, N);
  for (let n = 0; n < N; n++) {
    const target = targets[n];
    if (target !== -1 && !(target >= 0 && target < V)) {
      throw new ReferenceInputError(`target ${target} at row ${n} is neither -1 nor in the vocabulary [0, ${V})`);
    }
  }
}

// logits is (N,V), targets and weights are (N); returns the summed loss and the per-row losses (N).
export function crossEntropyForward(
  logits: Float64Array,
  targets: Int32Array,
  weights: ArrayLike<number>,
  N: number,
  V: number,
): { loss: number; losses: Float64Array } {
  checkTargets(targets, N, V);
  checkLength('weights', weights, N);
  const logProbs = logSoftmax(logits, N, V);
  const losses = new Float64Array(N);
  let loss = 0;
  for (let n = 0; n < N; n++) {
    if (targets[n] < 0) continue;
    losses[n] = weights[n] * -logProbs[n * V + targets[n]];
    loss += losses[n];
  }
  return { loss, losses };
}

// dloss is the gradient of the scalar loss; returns dlogits (N,V) = dloss * w_n * (p - onehot).
export function crossEntropyBackward(
  dloss: number,
  logits: Float64Array,
  targets: Int32Array,
  weights: ArrayLike<number>,
  N: number,
  V: number,
): Float64Array {
  const probs = softmaxForward(logits, N, V);
  const dlogits = new Float64Array(N * V);
  for (let n = 0; n < N; n++) {
    if (targets[n] < 0) continue;
    const scale = dloss * weights[n];
    for (let v = 0; v < V; v++) {
      const indicator = v === targets[n] ? 1 : 0;
      dlogits[n * V + v] = scale * (probs[n * V + v] - indicator);
    }
  }
  return dlogits;
}

// ----------------------------------------------------------------------------------------------
// Weighted KL divergence of the current distribution from the reference one, per row:
//   loss = sum_n weights[n] * sum_v p_v (log p_v - log q_v),  p = softmax(logits), q = softmax(refLogits)
// Only `logits` receives a gradient; the reference distribution is a constant.

// logits and refLogits are (N,V), weights is (N); returns the summed loss and per-row losses (N).
export function klForward(
  logits: Float64Array,
  refLogits: Float64Array,
  weights: ArrayLike<number>,
  N: number,
  V: number,
): { loss: number; losses: Float64Array } {
  checkLength('reference logits', refLogits, N * V);
  checkLength('weights', weights, N);
  const logP = logSoftmax(logits, N, V);
  const logQ = logSoftmax(refLogits, N, V);
  const losses = new Float64Array(N);
  let loss = 0;
  for (let n = 0; n < N; n++) {
    let kl = 0;
    for (let v = 0; v < V; v++) {
      const i = n * V + v;
      kl += Math.exp(logP[i]) * (logP[i] - logQ[i]);
    }
    losses[n] = weights[n] * kl;
    loss += losses[n];
  }
  return { loss, losses };
}

// Returns dlogits (N,V): d KL / d logits_v = p_v (log p_v - log q_v - KL).
export function klBackward(
  dloss: number,
  logits: Float64Array,
  refLogits: Float64Array,
  weights: ArrayLike<number>,
  N: number,
  V: number,
): Float64Array {
  const logP = logSoftmax(logits, N, V);
  const logQ = logSoftmax(refLogits, N, V);
  const dlogits = new Float64Array(N * V);
  for (let n = 0; n < N; n++) {
    let kl = 0;
    for (let v = 0; v < V; v++) {
      const i = n * V + v;
      kl += Math.exp(logP[i]) * (logP[i] - logQ[i]);
    }
    const scale = dloss * weights[n];
    for (let v = 0; v < V; v++) {
      const i = n * V + v;
      dlogits[i] = scale * Math.exp(logP[i]) * (logP[i] - logQ[i] - kl);
    }
  }
  return dlogits;
}

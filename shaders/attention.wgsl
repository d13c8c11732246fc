// Causal multi-head self-attention over a fused q/k/v input, as GPT-2 and GPT-Neo compute it.
//
//   qkv: [B, T, 3C], q in columns 0..C-1, k in C..2C-1, v in 2C..3C-1; head h uses columns
//        h*HD..(h+1)*HD-1 of each.   out, dout: [B, T, C]   att, datt: [B, NH, T, T]
//
// Position t attends to positions t' with lo(t) <= t' <= t, where lo(t) = 0 for global layers
// and max(0, t - window + 1) for GPT-Neo's local layers. Scores are multiplied by `scale`
// (1/sqrt(HD) for GPT-2, 1 for GPT-Neo). att keeps the softmax probabilities for the backward
// pass; entries outside the band are written as zero.
//
// attention_forward and attention_backward_query: one workgroup of 64 threads per (b, h, t) row,
// rows numbered (b * NH + h) * T + t and dispatched as (min(rows, 65535), ceil(rows / 65535), 1).
// attention_backward_key_value: one workgroup per (b, h, t') column, numbered the same way.
// Surplus workgroups of the last grid row recompute the last row and write nothing, so every
// invocation reaches each barrier.
// The backward pass runs attention_backward_query first (it writes dq and the score gradients
// into datt), then attention_backward_key_value (dk and dv), so no two threads sum into one value.
//
// Dropout on the attention probabilities (training steps only): the values are weighted by
// att[t, s] * mask(t, s) with mask = scale or 0, drawn by dropout_bits (the same hash as in
// dropout.wgsl) from the index of att[t, s]. att keeps the probabilities before dropout, and
// the backward pass redraws the mask. dropout_threshold 0 turns dropout off (mask 1).

// WG, reduce_max and reduce_sum come from lib/workgroup-reduce.wgsl and dropout_bits from lib/dropout-hash.wgsl.
struct Params {
  B: u32, T: u32, C: u32, NH: u32,
  // 0 for global attention.
  window: u32,
  scale: f32,
  dropout_threshold: u32,
  dropout_key: u32,
  dropout_scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> att: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> dout: array<f32>;
@group(0) @binding(5) var<storage, read_write> datt: array<f32>;
@group(0) @binding(6) var<storage, read_write> dqkv: array<f32>;

const MAX_HEAD_DIM = 256u;
var<workgroup> row_vec: array<f32, 256>;

// The dropout factor of att element i: 1 without dropout, else scale for kept and 0 for dropped.
fn dropout_mask(i: u32) -> f32 {
  if (p.dropout_threshold == 0u) { return 1.0; }
  if (dropout_bits(p.dropout_key, i) >= p.dropout_threshold) { return p.dropout_scale; }
  return 0.0;
}

fn band_start(t: u32) -> u32 {
  if (p.window == 0u || t + 1u <= p.window) { return 0u; }
  return t + 1u - p.window;
}

// Offset of element d of head h's q (part 0), k (1) or v (2) at position t of sequence b.
fn qkv_index(b: u32, t: u32, part: u32, h: u32, d: u32) -> u32 {
  let hd = p.C / p.NH;
  return (b * p.T + t) * 3u * p.C + part * p.C + h * hd + d;
}

@compute @workgroup_size(64, 1, 1)
fn attention_forward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row_id = wg.x + wg.y * 65535u;
  let valid = row_id < p.B * p.NH * p.T;
  let row = min(row_id, p.B * p.NH * p.T - 1u);
  let t = row % p.T;
  let h = (row / p.T) % p.NH;
  let b = row / (p.T * p.NH);
  let hd = p.C / p.NH;
  let lo = band_start(t);
  let att_base = row * p.T;

  for (var d = lid; d < hd; d += WG) { row_vec[d] = qkv[qkv_index(b, t, 0u, h, d)]; }
  workgroupBarrier();

  // Subtract the row maximum before exponentiating so no score overflows.
  var local_max = -3.0e38;
  for (var s = lo + lid; s <= t; s += WG) {
    var dot = 0.0;
    for (var d = 0u; d < hd; d++) { dot = fma(row_vec[d], qkv[qkv_index(b, s, 1u, h, d)], dot); }
    let score = dot * p.scale;
    if (valid) { att[att_base + s] = score; }
    local_max = max(local_max, score);
  }
  let row_max = reduce_max(lid, local_max);

  var local_sum = 0.0;
  for (var s = lo + lid; s <= t; s += WG) {
    let e = exp(att[att_base + s] - row_max);
    if (valid) { att[att_base + s] = e; }
    local_sum += e;
  }
  let inv_sum = 1.0 / reduce_sum(lid, local_sum);

  for (var s = lid; s < p.T && valid; s += WG) {
    if (s >= lo && s <= t) {
      att[att_base + s] = att[att_base + s] * inv_sum;
    } else {
      att[att_base + s] = 0.0;
    }
  }
  storageBarrier();
  workgroupBarrier();

  for (var d = lid; d < hd && valid; d += WG) {
    var acc = 0.0;
    for (var s = lo; s <= t; s++) {
      acc = fma(att[att_base + s] * dropout_mask(att_base + s), qkv[qkv_index(b, s, 2u, h, d)], acc);
    }
    out[(b * p.T + t) * p.C + h * hd + d] = acc;
  }
}

// For row t: datt[t, s] = mask(t, s) * (dout[t] . v[s]), the gradient of the probability
// before dropout; the score gradient is att[t, s] * (datt[t, s] - sum_s' att[t, s'] * datt[t, s']),
// stored in datt; then dq[t] = scale * sum_s dscore[t, s] * k[s].
@compute @workgroup_size(64, 1, 1)
fn attention_backward_query(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row_id = wg.x + wg.y * 65535u;
  let valid = row_id < p.B * p.NH * p.T;
  let row = min(row_id, p.B * p.NH * p.T - 1u);
  let t = row % p.T;
  let h = (row / p.T) % p.NH;
  let b = row / (p.T * p.NH);
  let hd = p.C / p.NH;
  let lo = band_start(t);
  let att_base = row * p.T;

  for (var d = lid; d < hd; d += WG) { row_vec[d] = dout[(b * p.T + t) * p.C + h * hd + d]; }
  workgroupBarrier();

  var local_sum = 0.0;
  for (var s = lo + lid; s <= t; s += WG) {
    var dot = 0.0;
    for (var d = 0u; d < hd; d++) { dot = fma(row_vec[d], qkv[qkv_index(b, s, 2u, h, d)], dot); }
    dot *= dropout_mask(att_base + s);
    if (valid) { datt[att_base + s] = dot; }
    local_sum += dot * att[att_base + s];
  }
  let weighted = reduce_sum(lid, local_sum);

  for (var s = lid; s < p.T && valid; s += WG) {
    if (s >= lo && s <= t) {
      datt[att_base + s] = att[att_base + s] * (datt[att_base + s] - weighted);
    } else {
      datt[att_base + s] = 0.0;
    }
  }
  storageBarrier();
  workgroupBarrier();

  for (var d = lid; d < hd && valid; d += WG) {
    var acc = 0.0;
    for (var s = lo; s <= t; s++) { acc = fma(datt[att_base + s], qkv[qkv_index(b, s, 1u, h, d)], acc); }
    dqkv[qkv_index(b, t, 0u, h, d)] = acc * p.scale;
  }
}

// For column s: dk[s] = scale * sum_t dscore[t, s] * q[t] and
// dv[s] = sum_t att[t, s] * mask(t, s) * dout[t],
// over the rows t that attend to s (s <= t, and t < s + window for local layers).
@compute @workgroup_size(64, 1, 1)
fn attention_backward_key_value(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let col = wg.x + wg.y * 65535u;
  if (col >= p.B * p.NH * p.T) { return; }
  let s = col % p.T;
  let bh = col / p.T;
  let h = bh % p.NH;
  let b = bh / p.NH;
  let hd = p.C / p.NH;
  var hi = p.T;
  if (p.window != 0u) { hi = min(p.T, s + p.window); }

  for (var d = lid; d < hd; d += WG) {
    var dk = 0.0;
    var dv = 0.0;
    for (var t = s; t < hi; t++) {
      let a_index = (bh * p.T + t) * p.T + s;
      dk = fma(datt[a_index], qkv[qkv_index(b, t, 0u, h, d)], dk);
      dv = fma(att[a_index] * dropout_mask(a_index), dout[(b * p.T + t) * p.C + h * hd + d], dv);
    }
    dqkv[qkv_index(b, s, 1u, h, d)] = dk * p.scale;
    dqkv[qkv_index(b, s, 2u, h, d)] = dv;
  }
}

// Incremental decoding with a key/value cache: the forward pass of R new token rows, each at its
// own position of its own sequence, against the keys and values of the positions before it.
//
//   rows: [R, 2] (u32) sequence b and position t of each row    qkv: [R, 3C] fused q, k, v
//   k_cache, v_cache: [B, capacity, C], position t of sequence b at row b * capacity + t
//   scores: [R, NH, capacity] scratch   out: [R, C]   table (wpe): [P, C]
//
// position_rows_forward: out[r, :] = wpe[t(r), :], the position half of the embedding (the token
// half is added by embedding.wgsl's token_forward, which reads nothing but the row's token).
// kv_append_forward: copies the k and v columns of each row into the cache at (b, t).
// Both run one thread per element of [R, C], dispatched as
// (min(ceil(R*C / 256), 65535), ceil(R*C / (256 * 65535)), 1).
//
// attention_cached_forward: row r attends to the cached positions lo(t)..t of its sequence, where
// lo(t) = 0 for global layers and max(0, t - window + 1) for GPT-Neo's local layers; scores are
// multiplied by `scale` (1/sqrt(HD) for GPT-2, 1 for GPT-Neo). kv_append_forward must run first,
// so that the cache holds the row's own key and value and those of the rows before it. One
// workgroup of 64 threads per (r, h), numbered r * NH + h and dispatched as
// (min(R*NH, 65535), ceil(R*NH / 65535), 1). Surplus workgroups of the last grid row recompute
// the last item and write nothing, so every invocation reaches each barrier.

// WG, reduce_max and reduce_sum come from lib/workgroup-reduce.wgsl.
struct Params {
  R: u32, C: u32, NH: u32,
  // Positions per sequence in the cache.
  capacity: u32,
  // 0 for global attention.
  window: u32,
  scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> rows: array<u32>;
@group(0) @binding(2) var<storage, read> qkv: array<f32>;
@group(0) @binding(3) var<storage, read_write> k_cache: array<f32>;
@group(0) @binding(4) var<storage, read_write> v_cache: array<f32>;
@group(0) @binding(5) var<storage, read_write> scores: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read> table: array<f32>;

var<workgroup> query: array<f32, 256>;

fn band_start(t: u32) -> u32 {
  if (p.window == 0u || t + 1u <= p.window) { return 0u; }
  return t + 1u - p.window;
}

@compute @workgroup_size(256, 1, 1)
fn position_rows_forward(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * 65535u * 256u;
  if (i >= p.R * p.C) { return; }
  let r = i / p.C;
  let c = i % p.C;
  out[i] = table[rows[2u * r + 1u] * p.C + c];
}

@compute @workgroup_size(256, 1, 1)
fn kv_append_forward(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * 65535u * 256u;
  if (i >= p.R * p.C) { return; }
  let r = i / p.C;
  let c = i % p.C;
  let slot = (rows[2u * r] * p.capacity + rows[2u * r + 1u]) * p.C + c;
  k_cache[slot] = qkv[r * 3u * p.C + p.C + c];
  v_cache[slot] = qkv[r * 3u * p.C + 2u * p.C + c];
}

@compute @workgroup_size(64, 1, 1)
fn attention_cached_forward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let item_id = wg.x + wg.y * 65535u;
  let valid = item_id < p.R * p.NH;
  let item = min(item_id, p.R * p.NH - 1u);
  let r = item / p.NH;
  let h = item % p.NH;
  let b = rows[2u * r];
  let t = rows[2u * r + 1u];
  let hd = p.C / p.NH;
  let lo = band_start(t);
  let cache_row = b * p.capacity;
  let score_base = item * p.capacity;

  for (var d = lid; d < hd; d += WG) { query[d] = qkv[r * 3u * p.C + h * hd + d]; }
  workgroupBarrier();

  // Subtract the maximum score before exponentiating so no score overflows.
  var local_max = -3.0e38;
  for (var s = lo + lid; s <= t; s += WG) {
    let key = (cache_row + s) * p.C + h * hd;
    var dot = 0.0;
    for (var d = 0u; d < hd; d++) { dot = fma(query[d], k_cache[key + d], dot); }
    let score = dot * p.scale;
    if (valid) { scores[score_base + s] = score; }
    local_max = max(local_max, score);
  }
  let row_max = reduce_max(lid, local_max);

  // Each thread rereads only the scores it wrote itself.
  var local_sum = 0.0;
  for (var s = lo + lid; s <= t; s += WG) {
    let e = exp(scores[score_base + s] - row_max);
    if (valid) { scores[score_base + s] = e; }
    local_sum += e;
  }
  let inv_sum = 1.0 / reduce_sum(lid, local_sum);
  storageBarrier();
  workgroupBarrier();

  for (var d = lid; d < hd && valid; d += WG) {
    var acc = 0.0;
    for (var s = lo; s <= t; s++) { acc = fma(scores[score_base + s], v_cache[(cache_row + s) * p.C + h * hd + d], acc); }
    out[r * p.C + h * hd + d] = acc * inv_sum;
  }
}

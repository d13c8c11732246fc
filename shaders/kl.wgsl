// KL divergence of the model under repair from the reference model, per predicted position:
//   kl[r] = weight[r] * sum_v p[v] * (log p[v] - log q[v]),  p = softmax(logits[r]),
//   q = softmax(ref_logits[r]).
// kl_backward overwrites logits with the gradient with respect to them:
//   dlogits[r, v] = weight[r] * p[v] * (log p[v] - log q[v] - sum_u p[u] (log p[u] - log q[u]))
//
//   logits, ref_logits: [R, V]   weights: [R] (0 for positions without a next token)
//   losses: [R]   stats: [R, 3] (logsumexp of logits, logsumexp of ref_logits, unweighted kl)
//
// One workgroup of 64 threads per row, dispatched as (min(R, 65535), ceil(R / 65535), 1).
// Surplus workgroups recompute row R-1 and write nothing, so every invocation reaches each barrier.

// WG, reduce_max and reduce_sum come from lib/workgroup-reduce.wgsl.
struct Params {
  R: u32,
  V: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;
@group(0) @binding(2) var<storage, read> ref_logits: array<f32>;
@group(0) @binding(3) var<storage, read> weights: array<f32>;
@group(0) @binding(4) var<storage, read_write> losses: array<f32>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;


@compute @workgroup_size(64, 1, 1)
fn kl_forward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wg.x + wg.y * 65535u;
  let valid = row < p.R;
  let r = min(row, p.R - 1u);
  let base = r * p.V;

  var m = -3.0e38;
  var mr = -3.0e38;
  for (var v = lid; v < p.V; v += WG) {
    m = max(m, logits[base + v]);
    mr = max(mr, ref_logits[base + v]);
  }
  let row_max = reduce_max(lid, m);
  let ref_max = reduce_max(lid, mr);
  var s = 0.0;
  var sr = 0.0;
  for (var v = lid; v < p.V; v += WG) {
    s += exp(logits[base + v] - row_max);
    sr += exp(ref_logits[base + v] - ref_max);
  }
  let lse = row_max + log(reduce_sum(lid, s));
  let ref_lse = ref_max + log(reduce_sum(lid, sr));

  var k = 0.0;
  for (var v = lid; v < p.V; v += WG) {
    let log_p = logits[base + v] - lse;
    let log_q = ref_logits[base + v] - ref_lse;
    k += exp(log_p) * (log_p - log_q);
  }
  let row_kl = reduce_sum(lid, k);

  if (lid == 0u && valid) {
    stats[3u * r] = lse;
    stats[3u * r + 1u] = ref_lse;
    stats[3u * r + 2u] = row_kl;
    losses[r] = weights[r] * row_kl;
  }
}

@compute @workgroup_size(64, 1, 1)
fn kl_backward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wg.x + wg.y * 65535u;
  let valid = row < p.R;
  let r = min(row, p.R - 1u);
  let base = r * p.V;
  let lse = stats[3u * r];
  let ref_lse = stats[3u * r + 1u];
  let row_kl = stats[3u * r + 2u];
  let w = weights[r];
  for (var v = lid; v < p.V && valid; v += WG) {
    let log_p = logits[base + v] - lse;
    let log_q = ref_logits[base + v] - ref_lse;
    logits[base + v] = w * exp(log_p) * (log_p - log_q - row_kl);
  }
}

// Weighted cross-entropy of next-token predictions, the batch NLL of the repair loss:
//   loss[r] = weight[r] * (logsumexp(logits[r, :]) - logits[r, label[r]])
// Rows whose label is negative (prompt and padding positions) contribute nothing. The host
// chooses the weights so that sum_r loss[r] is the batch NLL (per sequence the mean over its
// continuation tokens, then the mean over the batch).
//
//   logits: [R, V]   targets: [R] (i32)   weights: [R]   losses, lse: [R]
//
// crossentropy_backward overwrites logits with their gradient:
//   dlogits[r, v] = weight[r] * (softmax(logits[r, :])[v] - [v == label[r]])
// (the backward pass may pass other per-row weights than the forward pass did, as DPO does).
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
@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read> weights: array<f32>;
@group(0) @binding(4) var<storage, read_write> losses: array<f32>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;


@compute @workgroup_size(64, 1, 1)
fn crossentropy_forward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wg.x + wg.y * 65535u;
  let valid = row < p.R;
  let r = min(row, p.R - 1u);
  let base = r * p.V;

  var local_max = -3.0e38;
  for (var v = lid; v < p.V; v += WG) { local_max = max(local_max, logits[base + v]); }
  let row_max = reduce_max(lid, local_max);
  var local_sum = 0.0;
  for (var v = lid; v < p.V; v += WG) { local_sum += exp(logits[base + v] - row_max); }
  let row_lse = row_max + log(reduce_sum(lid, local_sum));

  if (lid == 0u && valid) {
    lse[r] = row_lse;
    let label = targets[r];
    if (label < 0) {
      losses[r] = 0.0;
    } else {
      losses[r] = weights[r] * (row_lse - logits[base + u32(label)]);
    }
  }
}

@compute @workgroup_size(64, 1, 1)
fn crossentropy_backward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wg.x + wg.y * 65535u;
  let valid = row < p.R;
  let r = min(row, p.R - 1u);
  let base = r * p.V;
  let label = targets[r];
  var w = 0.0;
  if (label >= 0) { w = weights[r]; }
  let row_lse = lse[r];
  for (var v = lid; v < p.V && valid; v += WG) {
    var g = exp(logits[base + v] - row_lse);
    if (i32(v) == label) { g -= 1.0; }
    logits[base + v] = w * g;
  }
}

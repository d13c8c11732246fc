// LayerNorm over the last axis: out[r, :] = (x[r, :] - mean_r) * rstd_r * weight + bias, with
// rstd_r = 1 / sqrt(var_r + eps) and the biased variance, as torch.nn.LayerNorm computes it.
//
//   x, out, dout, dx: [R, C] row-major    weight, bias, dweight, dbias: [C]    mean, rstd: [R]
//
// layernorm_forward and layernorm_backward: one workgroup of 64 threads per row, dispatched as
// (min(R, 65535), ceil(R / 65535), 1); the row is wg.x + wg.y * 65535. Surplus workgroups of the
// last grid row recompute row R-1 and write nothing, so every invocation reaches each barrier.
// layernorm_backward_params: one thread per column summing over the rows in a fixed order,
// dispatched as (ceil(C / 64), 1, 1); it accumulates into dweight and dbias when flags & 2.

struct Params {
  R: u32,
  C: u32,
  eps: f32,
  flags: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(7) var<storage, read> dout: array<f32>;
@group(0) @binding(8) var<storage, read_write> dx: array<f32>;
@group(0) @binding(9) var<storage, read_write> dweight: array<f32>;
@group(0) @binding(10) var<storage, read_write> dbias: array<f32>;

const WG = 64u;
var<workgroup> partial_a: array<f32, 64>;
var<workgroup> partial_b: array<f32, 64>;

// Tree sum of partial_a and partial_b across the workgroup; the totals end in element 0.
fn reduce_pair(lid: u32) {
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    workgroupBarrier();
    if (lid < stride) {
      partial_a[lid] += partial_a[lid + stride];
      partial_b[lid] += partial_b[lid + stride];
    }
  }
  workgroupBarrier();
}

@compute @workgroup_size(64, 1, 1)
fn layernorm_forward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wg.x + wg.y * 65535u;
  let valid = row < p.R;
  let r = min(row, p.R - 1u);
  let base = r * p.C;

  // Two passes over the row (mean, then variance about the mean) are more accurate in f32
  // than one pass of sums and sums of squares.
  var s = 0.0;
  for (var c = lid; c < p.C; c += WG) { s += x[base + c]; }
  partial_a[lid] = s;
  partial_b[lid] = 0.0;
  reduce_pair(lid);
  let m = partial_a[0] / f32(p.C);
  workgroupBarrier();

  var v = 0.0;
  for (var c = lid; c < p.C; c += WG) { let d = x[base + c] - m; v += d * d; }
  partial_a[lid] = v;
  reduce_pair(lid);
  let rs = inverseSqrt(partial_a[0] / f32(p.C) + p.eps);

  for (var c = lid; c < p.C && valid; c += WG) {
    out[base + c] = (x[base + c] - m) * rs * weight[c] + bias[c];
  }
  if (lid == 0u && valid) {
    mean[r] = m;
    rstd[r] = rs;
  }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dout * weight; accumulates into dx
// when flags & 2, because the residual stream's gradient already sits there.
@compute @workgroup_size(64, 1, 1)
fn layernorm_backward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wg.x + wg.y * 65535u;
  let valid = row < p.R;
  let r = min(row, p.R - 1u);
  let base = r * p.C;
  let m = mean[r];
  let rs = rstd[r];

  var sg = 0.0;
  var sgx = 0.0;
  for (var c = lid; c < p.C; c += WG) {
    let g = dout[base + c] * weight[c];
    sg += g;
    sgx += g * (x[base + c] - m) * rs;
  }
  partial_a[lid] = sg;
  partial_b[lid] = sgx;
  reduce_pair(lid);
  let mean_g = partial_a[0] / f32(p.C);
  let mean_gx = partial_b[0] / f32(p.C);

  for (var c = lid; c < p.C && valid; c += WG) {
    let xhat = (x[base + c] - m) * rs;
    let g = dout[base + c] * weight[c];
    var d = rs * (g - mean_g - xhat * mean_gx);
    if ((p.flags & 2u) != 0u) { d += dx[base + c]; }
    dx[base + c] = d;
  }
}

@compute @workgroup_size(64, 1, 1)
fn layernorm_backward_params(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= p.C) { return; }
  var dw = 0.0;
  var db = 0.0;
  for (var r = 0u; r < p.R; r++) {
    let g = dout[r * p.C + c];
    dw += g * (x[r * p.C + c] - mean[r]) * rstd[r];
    db += g;
  }
  if ((p.flags & 2u) != 0u) {
    dw += dweight[c];
    db += dbias[c];
  }
  dweight[c] = dw;
  dbias[c] = db;
}

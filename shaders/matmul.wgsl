// Strided matrix multiply: the forward and backward passes of every projection in GPT-2 (Conv1D,
// weights [in, out]) and GPT-Neo (nn.Linear, weights [out, in]), and the tied output head.
//
//   c[i, j] (+)= sum_k a[i, k] * b[k, j]  (+ bias[j])     i < M, j < N, k < K
//
// Each operand is addressed through an offset and two strides, so a transposed operand is the
// same buffer read with its strides swapped, and C can be a column slice of a wider matrix
// (GPT-Neo writes q, k and v into one fused [B*T, 3C] buffer; the output head writes one
// vocabulary chunk of the logits).
//
// Dispatch: (ceil(N / 64), ceil(M / 64), 1) workgroups of 16x16 threads; each thread computes a
// 4x4 block of C from 64x16 tiles of A and 16x64 tiles of B staged in workgroup memory.
//
// matmul_forward_narrow: the same product for few rows (M <= 16, as in a batch of a few short
// sequences), one thread per element of C with no workgroup memory, so no work is spent on the
// empty rows of a 64-row tile; dispatch (ceil(N / 64), M, 1).
//
// bias_backward: dbias[j] (+)= sum_i dc[i, j] for a row-major dc [M, N] with row stride ldc;
// dispatch (ceil(N / 64), 1, 1), one thread per column, so the sum order is fixed.

struct Params {
  M: u32, N: u32, K: u32,
  a_offset: u32, a_row_stride: u32, a_col_stride: u32,
  b_offset: u32, b_row_stride: u32, b_col_stride: u32,
  c_offset: u32, c_row_stride: u32,
  // 1: add bias[j]; 2: accumulate into c; the flags combine.
  flags: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

const TILE_M = 64u;
const TILE_N = 64u;
const TILE_K = 16u;

var<workgroup> a_tile: array<f32, 1024>; // [TILE_K][TILE_M]
var<workgroup> b_tile: array<f32, 1024>; // [TILE_K][TILE_N]

@compute @workgroup_size(16, 16, 1)
fn matmul_forward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u,
                  @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * TILE_M;
  let col0 = wg.x * TILE_N;
  var acc: array<f32, 16>;
  for (var i = 0u; i < 16u; i++) { acc[i] = 0.0; }

  for (var k0 = 0u; k0 < p.K; k0 += TILE_K) {
    // 256 threads stage 1024 values of each tile: 4 each, zero outside the matrices. Neighbouring
    // threads read neighbouring addresses: along k when the operand is contiguous in k, else
    // along the other axis, so the global loads coalesce for every layout.
    for (var s = 0u; s < 4u; s++) {
      let e = li + s * 256u;
      var kk = e / TILE_M;
      var mm = e % TILE_M;
      if (p.a_col_stride == 1u) {
        kk = e % TILE_K;
        mm = e / TILE_K;
      }
      let gi = row0 + mm;
      var av = 0.0;
      if (k0 + kk < p.K && gi < p.M) { av = a[p.a_offset + gi * p.a_row_stride + (k0 + kk) * p.a_col_stride]; }
      a_tile[kk * TILE_M + mm] = av;

      var kb = e / TILE_N;
      var nb = e % TILE_N;
      if (p.b_row_stride == 1u && p.b_col_stride != 1u) {
        kb = e % TILE_K;
        nb = e / TILE_K;
      }
      let gj = col0 + nb;
      var bv = 0.0;
      if (k0 + kb < p.K && gj < p.N) { bv = b[p.b_offset + (k0 + kb) * p.b_row_stride + gj * p.b_col_stride]; }
      b_tile[kb * TILE_N + nb] = bv;
    }
    workgroupBarrier();

    for (var kk = 0u; kk < TILE_K; kk++) {
      var av: array<f32, 4>;
      var bv: array<f32, 4>;
      for (var r = 0u; r < 4u; r++) { av[r] = a_tile[kk * TILE_M + lid.y + r * 16u]; }
      for (var q = 0u; q < 4u; q++) { bv[q] = b_tile[kk * TILE_N + lid.x + q * 16u]; }
      for (var r = 0u; r < 4u; r++) {
        for (var q = 0u; q < 4u; q++) { acc[r * 4u + q] = fma(av[r], bv[q], acc[r * 4u + q]); }
      }
    }
    workgroupBarrier();
  }

  for (var r = 0u; r < 4u; r++) {
    let gi = row0 + lid.y + r * 16u;
    if (gi >= p.M) { continue; }
    for (var q = 0u; q < 4u; q++) {
      let gj = col0 + lid.x + q * 16u;
      if (gj >= p.N) { continue; }
      var v = acc[r * 4u + q];
      if ((p.flags & 1u) != 0u) { v += bias[gj]; }
      let ci = p.c_offset + gi * p.c_row_stride + gj;
      if ((p.flags & 2u) != 0u) { v += c[ci]; }
      c[ci] = v;
    }
  }
}

@compute @workgroup_size(64, 1, 1)
fn matmul_forward_narrow(@builtin(global_invocation_id) gid: vec3u) {
  let j = gid.x;
  let i = gid.y;
  if (j >= p.N || i >= p.M) { return; }
  var acc = 0.0;
  let a_row = p.a_offset + i * p.a_row_stride;
  let b_col = p.b_offset + j * p.b_col_stride;
  for (var k = 0u; k < p.K; k++) {
    acc = fma(a[a_row + k * p.a_col_stride], b[b_col + k * p.b_row_stride], acc);
  }
  if ((p.flags & 1u) != 0u) { acc += bias[j]; }
  let ci = p.c_offset + i * p.c_row_stride + j;
  if ((p.flags & 2u) != 0u) { acc += c[ci]; }
  c[ci] = acc;
}

// The gradient of the bias: column sums of the output gradient, read from `a` as [M, N] with
// row stride a_row_stride, written to c[c_offset + j].
@compute @workgroup_size(64, 1, 1)
fn bias_backward(@builtin(global_invocation_id) gid: vec3u) {
  let j = gid.x;
  if (j >= p.N) { return; }
  var sum = 0.0;
  for (var i = 0u; i < p.M; i++) { sum += a[p.a_offset + i * p.a_row_stride + j]; }
  let ci = p.c_offset + j;
  if ((p.flags & 2u) != 0u) { sum += c[ci]; }
  c[ci] = sum;
}

// Deterministic reductions in two stages: the squared L2 norm of a buffer (the gradient norms
// behind block sensitivity and gradient clipping) and a plain sum (the batch loss from per-row
// losses).
//
//   x: [N]   partials: [G]   out: [slots]
//
// Stage one, sum_squares_partial / sum_partial: workgroup g of 256 threads reduces elements
// g*chunk .. min(N, (g+1)*chunk) - 1 into partials[g]; dispatch (G, 1, 1) with
// G = ceil(N / chunk) <= 65535.
// Stage two, reduce_partials: one workgroup sums partials[0..G) and writes out[slot], adding to
// the value already there when flags & 2; dispatch (1, 1, 1).

struct Params {
  N: u32,
  chunk: u32,
  G: u32,
  slot: u32,
  flags: u32,
  offset: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const WG = 256u;
var<workgroup> partial: array<f32, 256>;

fn reduce_workgroup(lid: u32, v: f32) -> f32 {
  partial[lid] = v;
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    workgroupBarrier();
    if (lid < stride) { partial[lid] += partial[lid + stride]; }
  }
  workgroupBarrier();
  return partial[0];
}

@compute @workgroup_size(256, 1, 1)
fn sum_squares_partial(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let start = wg.x * p.chunk;
  let end = min(p.N, start + p.chunk);
  var acc = 0.0;
  for (var i = start + lid; i < end; i += WG) { let v = x[p.offset + i]; acc = fma(v, v, acc); }
  let total = reduce_workgroup(lid, acc);
  if (lid == 0u) { partials[wg.x] = total; }
}

@compute @workgroup_size(256, 1, 1)
fn sum_partial(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let start = wg.x * p.chunk;
  let end = min(p.N, start + p.chunk);
  var acc = 0.0;
  for (var i = start + lid; i < end; i += WG) { acc += x[p.offset + i]; }
  let total = reduce_workgroup(lid, acc);
  if (lid == 0u) { partials[wg.x] = total; }
}

@compute @workgroup_size(256, 1, 1)
fn reduce_partials(@builtin(local_invocation_index) lid: u32) {
  var acc = 0.0;
  for (var i = lid; i < p.G; i += WG) { acc += partials[i]; }
  let total = reduce_workgroup(lid, acc);
  if (lid == 0u) {
    var v = total;
    if ((p.flags & 2u) != 0u) { v += out[p.slot]; }
    out[p.slot] = v;
  }
}

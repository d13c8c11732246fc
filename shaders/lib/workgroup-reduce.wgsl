// Reductions over one workgroup of WG = 64 threads, shared by the row-wise kernels (attention,
// cross-entropy, KL, cached decoding). The kernel files are compiled with this text in front of
// them (src/gpu/kernels.ts), since WGSL has no include directive.
//
// Every thread of the workgroup must call each function with its local index; the result is the
// same in every thread. The trailing barrier lets the caller reuse `partial` right away.

const WG = 64u;
var<workgroup> partial: array<f32, 64>;

fn reduce_max(lid: u32, v: f32) -> f32 {
  partial[lid] = v;
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    workgroupBarrier();
    if (lid < stride) { partial[lid] = max(partial[lid], partial[lid + stride]); }
  }
  workgroupBarrier();
  let result = partial[0];
  workgroupBarrier();
  return result;
}

fn reduce_sum(lid: u32, v: f32) -> f32 {
  partial[lid] = v;
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    workgroupBarrier();
    if (lid < stride) { partial[lid] += partial[lid + stride]; }
  }
  workgroupBarrier();
  let result = partial[0];
  workgroupBarrier();
  return result;
}

// Inverted dropout with masks drawn from a counter-based hash instead of a stored mask, so the
// backward pass recomputes exactly the mask of the forward pass and a seeded run repeats.
//
//   x: [N], changed in place
//
// Element i is kept when dropout_bits(key, i) >= threshold, with threshold = floor(p * 2^32)
// computed on the host and `key` naming one dropout site of one forward pass. Kept elements are
// multiplied by scale = 1 / (1 - p) and dropped ones become zero. The gradient of dropout is the
// same mask and scale applied to the output gradient, so dropout_backward runs the same
// operation on dout in place.
//
// attention.wgsl draws the masks of the attention probabilities with the same hash, from
// lib/dropout-hash.wgsl, which is compiled in front of both files.
//
// Dispatch (min(ceil(N / 256), 65535), ceil(N / (256 * 65535)), 1); element i = gid.x + gid.y * 65535 * 256.

// dropout_bits comes from lib/dropout-hash.wgsl.
struct Params {
  N: u32,
  key: u32,
  threshold: u32,
  scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

fn apply_mask(i: u32) {
  if (i >= p.N) { return; }
  if (dropout_bits(p.key, i) >= p.threshold) {
    x[i] = x[i] * p.scale;
  } else {
    x[i] = 0.0;
  }
}

@compute @workgroup_size(256, 1, 1)
fn dropout_forward(@builtin(global_invocation_id) gid: vec3u) {
  apply_mask(gid.x + gid.y * 65535u * 256u);
}

@compute @workgroup_size(256, 1, 1)
fn dropout_backward(@builtin(global_invocation_id) gid: vec3u) {
  apply_mask(gid.x + gid.y * 65535u * 256u);
}

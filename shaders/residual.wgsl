// Residual connection: out = a + b. Its gradient passes dout unchanged to both inputs, so the
// backward entry point adds dout into an existing gradient: dx += dout.
//
//   a, b, out, dout, dx: [N]
//
// Dispatch (min(ceil(N / 256), 65535), ceil(N / (256 * 65535)), 1); element i = gid.x + gid.y * 65535 * 256.

struct Params {
  N: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn residual_forward(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * 65535u * 256u;
  if (i >= p.N) { return; }
  out[i] = a[i] + b[i];
}

// out += a (a is dout, out is dx).
@compute @workgroup_size(256, 1, 1)
fn residual_backward(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * 65535u * 256u;
  if (i >= p.N) { return; }
  out[i] = out[i] + a[i];
}

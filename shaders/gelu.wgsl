// GELU in its tanh form (Hugging Face's `gelu_new`):
//   gelu(x) = 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
//
//   x, out, dout, dx: [N]
//
// Dispatch (min(ceil(N / 256), 65535), ceil(N / (256 * 65535)), 1); element i = gid.x + gid.y * 65535 * 256.

struct Params {
  N: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

const SQRT_2_OVER_PI = 0.7978845608028654;

// tanh through exp of a non-positive argument: WGSL's tanh may return NaN for large |u| on
// some drivers.
fn stable_tanh(u: f32) -> f32 {
  let e = exp(-2.0 * abs(u));
  return sign(u) * (1.0 - e) / (1.0 + e);
}

@compute @workgroup_size(256, 1, 1)
fn gelu_forward(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * 65535u * 256u;
  if (i >= p.N) { return; }
  let v = x[i];
  let u = SQRT_2_OVER_PI * (v + 0.044715 * v * v * v);
  out[i] = 0.5 * v * (1.0 + stable_tanh(u));
}

@compute @workgroup_size(256, 1, 1)
fn gelu_backward(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * 65535u * 256u;
  if (i >= p.N) { return; }
  let v = x[i];
  let u = SQRT_2_OVER_PI * (v + 0.044715 * v * v * v);
  let th = stable_tanh(u);
  let du = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * v * v);
  let grad = 0.5 * (1.0 + th) + 0.5 * v * (1.0 - th * th) * du;
  dx[i] = dout[i] * grad;
}

// Parameter updates, element by element, as torch.optim computes them (PyTorch 2.x):
//
// rmsprop_step (torch.optim.RMSprop, momentum 0, centered False):
//   g = grad * grad_scale + weight_decay * param
//   square_avg = alpha * square_avg + (1 - alpha) * g^2
//   param -= lr * g / (sqrt(square_avg) + eps)
// rmsprop_momentum_step: the same with a momentum buffer:
//   buffer = momentum * buffer + g / (sqrt(square_avg) + eps);   param -= lr * buffer
// adamw_step (torch.optim.AdamW): with the bias corrections of step t computed on the host,
//   param *= 1 - lr * weight_decay
//   g = grad * grad_scale;   exp_avg += (1 - beta1) * (g - exp_avg)
//   exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g^2
//   param -= step_size * exp_avg / (sqrt(exp_avg_sq) / bias_correction2_sqrt + eps)
//   where step_size = lr / (1 - beta1^t) and bias_correction2_sqrt = sqrt(1 - beta2^t).
//
// grad_scale carries gradient-norm clipping: the host reads the squared gradient norm, which
// reduce.wgsl computes, and passes min(1, max_norm / (norm + 1e-6)) as torch's clip_grad_norm_ does.
//
//   param, grad, state_a, state_b: [N]; state_a is square_avg (RMSprop) or exp_avg (AdamW),
//   state_b is the momentum buffer (RMSprop) or exp_avg_sq (AdamW).
//
// Dispatch (min(ceil(N / 256), 65535), ceil(N / (256 * 65535)), 1); element i = gid.x + gid.y * 65535 * 256.

struct Params {
  N: u32,
  lr: f32,
  alpha: f32,
  eps: f32,
  momentum: f32,
  weight_decay: f32,
  grad_scale: f32,
  beta1: f32,
  beta2: f32,
  step_size: f32,
  bias_correction2_sqrt: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> state_a: array<f32>;
@group(0) @binding(4) var<storage, read_write> state_b: array<f32>;

fn element(gid: vec3u) -> u32 {
  return gid.x + gid.y * 65535u * 256u;
}

@compute @workgroup_size(256, 1, 1)
fn rmsprop_step(@builtin(global_invocation_id) gid: vec3u) {
  let i = element(gid);
  if (i >= p.N) { return; }
  let g = grad[i] * p.grad_scale + p.weight_decay * param[i];
  let square_avg = p.alpha * state_a[i] + (1.0 - p.alpha) * g * g;
  state_a[i] = square_avg;
  param[i] = param[i] - p.lr * g / (sqrt(square_avg) + p.eps);
}

@compute @workgroup_size(256, 1, 1)
fn rmsprop_momentum_step(@builtin(global_invocation_id) gid: vec3u) {
  let i = element(gid);
  if (i >= p.N) { return; }
  let g = grad[i] * p.grad_scale + p.weight_decay * param[i];
  let square_avg = p.alpha * state_a[i] + (1.0 - p.alpha) * g * g;
  state_a[i] = square_avg;
  let buffer = p.momentum * state_b[i] + g / (sqrt(square_avg) + p.eps);
  state_b[i] = buffer;
  param[i] = param[i] - p.lr * buffer;
}

@compute @workgroup_size(256, 1, 1)
fn adamw_step(@builtin(global_invocation_id) gid: vec3u) {
  let i = element(gid);
  if (i >= p.N) { return; }
  let decayed = param[i] * (1.0 - p.lr * p.weight_decay);
  let g = grad[i] * p.grad_scale;
  let exp_avg = state_a[i] + (1.0 - p.beta1) * (g - state_a[i]);
  let exp_avg_sq = p.beta2 * state_b[i] + (1.0 - p.beta2) * g * g;
  state_a[i] = exp_avg;
  state_b[i] = exp_avg_sq;
  param[i] = decayed - p.step_size * exp_avg / (sqrt(exp_avg_sq) / p.bias_correction2_sqrt + p.eps);
}

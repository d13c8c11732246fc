// The counter-based hash behind every dropout mask (dropout.wgsl for activations, attention.wgsl
// for attention probabilities). Both files are compiled with this text in front of them, so the
// forward and backward passes and both kernels draw the same masks.

// An integer hash built from one step of the PCG generator and its output permutation.
fn pcg_hash(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

// Two rounds, so masks of different keys are not permutations of one another.
fn dropout_bits(key: u32, i: u32) -> u32 {
  return pcg_hash(pcg_hash(i ^ key) + key);
}

// Dropout in training steps: which mask each dropout site of a forward pass uses. Masks are not
// stored. shaders/dropout.wgsl and attention.wgsl draw them from a u32 key per site, and the
// backward pass recomputes the key from the forward pass's seed to redraw the same mask.

// Dropout sites, numbered so each (forward pass, site) pair gets its own mask: the embedding
// output, then per block the attention probabilities and the outputs of the two residual branches.
export const DROPOUT_SITE_EMBEDDING = 0;
export const attentionProbabilitySite = (layer: number) => 1 + 3 * layer;
export const attentionResidualSite = (layer: number) => 2 + 3 * layer;
export const mlpResidualSite = (layer: number) => 3 + 3 * layer;

/** MurmurHash3's 32-bit finalizer (fmix32), a bijection on u32 whose output bits each depend on every input bit. */
export function fmix32(value: number): number {
  let h = value >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Returns the u32 key of one dropout site's mask in a forward pass with dropout seed `seed`. */
export function dropoutSiteKey(seed: number, site: number): number {
  return fmix32(fmix32(seed) ^ Math.imul(site + 1, 0x9e3779b9));
}

// Shared descriptions of a model: the normalised configuration of both supported families and
// the canonical names of their parameters.

export type ModelFamily = 'gpt2' | 'gpt_neo';

export type AttentionKind = 'global' | 'local';

/** A GPT-2 or GPT-Neo configuration, normalised from a Hugging Face `config.json`. */
export interface ModelConfig {
  family: ModelFamily;
  vocabSize: number;
  /** Context length: `n_positions` (GPT-2) or `max_position_embeddings` (GPT-Neo). */
  contextLength: number;
  /** Model width C: `n_embd` or `hidden_size`. */
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  /** MLP width: `n_inner` or `intermediate_size`, 4C when the config leaves it null. */
  innerSize: number;
  layerNormEpsilon: number;
  /** Per layer; GPT-2 layers are all global. GPT-Neo expands `attention_types`. */
  attentionLayers: AttentionKind[];
  /** Local GPT-Neo layers attend to at most this many positions, the current one included. */
  windowSize: number;
  /** GPT-2 divides attention scores by sqrt(head_dim); GPT-Neo does not. */
  scaleAttention: boolean;
  /** Dropout probabilities used during training steps. */
  dropout: { embedding: number; residual: number; attention: number };
  bosTokenId: number;
  eosTokenId: number;
  /** The config.json object as read, written back unchanged on export. */
  raw: Record<string, unknown>;
}

/**
 * Canonical parameter names are the Hugging Face keys without the `transformer.` prefix:
 *   wte.weight [V, C], wpe.weight [P, C], ln_f.weight [C], ln_f.bias [C], and per block i:
 * GPT-2 (Conv1D weights stored [in, out]):
 *   h.i.ln_1.{weight,bias} [C], h.i.attn.c_attn.weight [C, 3C], h.i.attn.c_attn.bias [3C],
 *   h.i.attn.c_proj.weight [C, C], h.i.attn.c_proj.bias [C], h.i.ln_2.{weight,bias} [C],
 *   h.i.mlp.c_fc.weight [C, I], h.i.mlp.c_fc.bias [I], h.i.mlp.c_proj.weight [I, C], h.i.mlp.c_proj.bias [C]
 * GPT-Neo (nn.Linear weights stored [out, in]):
 *   h.i.ln_1.{weight,bias} [C], h.i.attn.attention.{q,k,v}_proj.weight [C, C] (no bias),
 *   h.i.attn.attention.out_proj.weight [C, C], h.i.attn.attention.out_proj.bias [C],
 *   h.i.ln_2.{weight,bias} [C], h.i.mlp.c_fc.weight [I, C], h.i.mlp.c_fc.bias [I],
 *   h.i.mlp.c_proj.weight [C, I], h.i.mlp.c_proj.bias [C]
 * `lm_head.weight` is tied to `wte.weight` and is never a separate parameter.
 */
export type ParameterName = string;

export type StorageDtype = 'F32' | 'F16' | 'BF16';

/** One parameter tensor of a checkpoint, as stored on disk. */
export interface TensorEntry {
  /** Canonical name (see ParameterName). */
  name: ParameterName;
  /** Key exactly as stored in the safetensors file, e.g. `transformer.h.0.ln_1.weight`. */
  key: string;
  dtype: StorageDtype;
  shape: number[];
  /** Name of the safetensors file that holds it (a shard name for sharded checkpoints). */
  file: string;
  /** Byte range of the tensor's data relative to the start of the file. */
  begin: number;
  end: number;
}

/** Block index of a canonical parameter name, or -1 for embeddings and the final LayerNorm. */
export function blockOf(name: ParameterName): number {
  const match = /^h\.(\d+)\./.exec(name);
  return match ? Number(match[1]) : -1;
}

// Floating-point operations of GPT models by the estimate of Kaplan et al., "Scaling Laws for
// Neural Language Models" (arXiv:2001.08361, 2020, Table 1), which the IRepair paper uses for
// its overhead table:
//
//   C_forward  ≈ 2 N + 2 n_layer n_ctx d_attn      FLOPs per token of a forward pass
//   C_training ≈ 3 C_forward                       the backward pass costs about twice the forward
//
// N is the parameter count. Kaplan et al. count only non-embedding parameters,
// N = 2 d_model n_layer (2 d_attn + d_ff), with d_attn = d_model for GPT-2 and GPT-Neo. The
// per-token figures of the IRepair paper's Table 2 match N counted with the embeddings (for
// example 6 N + 6 n_layer n_ctx d_model = 4.93e9 for GPT-2 large, reported as 4.92), so
// `embeddings: true` gives that variant.

import { parameterCount } from '../engine/memory.ts';
import type { ModelConfig } from '../model/types.ts';

export interface FlopsOptions {
  /** Count the token and position embeddings in N (the IRepair paper's figures do). Default false. */
  embeddings?: boolean;
  /** Tokens each token attends over, n_ctx; the model's context length by default. */
  contextLength?: number;
}

/** Kaplan et al.'s non-embedding parameter count 2 d_model n_layer (2 d_attn + d_ff). */
export function nonEmbeddingParameters(config: ModelConfig): number {
  return 2 * config.hiddenSize * config.numLayers * (2 * config.hiddenSize + config.innerSize);
}

/** N of the estimate: non-embedding parameters, or every parameter with `embeddings`. */
export function flopsParameterCount(config: ModelConfig, options: FlopsOptions = {}): number {
  return options.embeddings ? parameterCount(config) : nonEmbeddingParameters(config);
}

/** C_forward: FLOPs of one token's forward pass, 2 N + 2 n_layer n_ctx d_model. */
export function forwardFlopsPerToken(config: ModelConfig, options: FlopsOptions = {}): number {
  const nCtx = options.contextLength ?? config.contextLength;
  return 2 * flopsParameterCount(config, options) + 2 * config.numLayers * nCtx * config.hiddenSize;
}

/** FLOPs of one token's forward and backward pass, 3 C_forward. */
export function trainingFlopsPerToken(config: ModelConfig, options: FlopsOptions = {}): number {
  return 3 * forwardFlopsPerToken(config, options);
}

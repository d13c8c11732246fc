// The Hub models the model panel offers, with the shapes needed to size them before anything is
// downloaded. The worker sends the engine's full memory plan once config.json has been read.

import type { AdapterLimits } from '../worker/protocol.ts';

export interface ModelShape {
  architecture: 'gpt2' | 'gpt_neo';
  numLayers: number;
  hiddenSize: number;
  numHeads: number;
  vocabSize: number;
  contextLength: number;
  /** MLP width, which is 4 * hiddenSize for every model listed here. */
  innerSize: number;
}

export interface CatalogModel {
  repo: string;
  label: string;
  shape: ModelShape;
}

function shape(
  architecture: ModelShape['architecture'],
  numLayers: number,
  hiddenSize: number,
  numHeads: number,
  contextLength: number,
): ModelShape {
  return { architecture, numLayers, hiddenSize, numHeads, vocabSize: 50257, contextLength, innerSize: 4 * hiddenSize };
}

// Shapes from each repository's config.json. The parameter counts they imply are tested against
// the counts transformers prints for the loaded checkpoints.
export const CATALOG: CatalogModel[] = [
  { repo: 'openai-community/gpt2', label: 'GPT-2 124M', shape: shape('gpt2', 12, 768, 12, 1024) },
  { repo: 'openai-community/gpt2-medium', label: 'GPT-2 355M', shape: shape('gpt2', 24, 1024, 16, 1024) },
  { repo: 'openai-community/gpt2-large', label: 'GPT-2 774M', shape: shape('gpt2', 36, 1280, 20, 1024) },
  { repo: 'openai-community/gpt2-xl', label: 'GPT-2 1.5B', shape: shape('gpt2', 48, 1600, 25, 1024) },
  { repo: 'EleutherAI/gpt-neo-125m', label: 'GPT-Neo 125M', shape: shape('gpt_neo', 12, 768, 12, 2048) },
  { repo: 'EleutherAI/gpt-neo-1.3B', label: 'GPT-Neo 1.3B', shape: shape('gpt_neo', 24, 2048, 16, 2048) },
];

export const DEFAULT_REPO = 'openai-community/gpt2';
export const DEFAULT_ENDPOINT = 'https://huggingface.co';
export const DEFAULT_REVISION = 'main';

/** Looks up a catalog model by repository id, also under the legacy ids without an owner (`gpt2-xl`). */
export function findCatalogModel(repo: string): CatalogModel | undefined {
  const wanted = repo.trim().toLowerCase();
  return CATALOG.find((model) => {
    const id = model.repo.toLowerCase();
    return id === wanted || (model.repo.startsWith('openai-community/') && id.split('/')[1] === wanted);
  });
}

/**
 * Counts the parameters of one block. GPT-2 has a fused qkv projection with bias, and GPT-Neo has
 * separate q, k and v projections without bias. Both have LayerNorms, an output projection
 * with bias and a two-layer MLP with biases.
 */
export function blockParameterCount(model: ModelShape): number {
  const C = model.hiddenSize;
  const I = model.innerSize;
  const layerNorms = 2 * (2 * C);
  const attention = model.architecture === 'gpt2' ? 3 * C * C + 3 * C + C * C + C : 3 * C * C + C * C + C;
  const mlp = C * I + I + I * C + C;
  return layerNorms + attention + mlp;
}

/** Counts token and position embeddings, blocks and the final LayerNorm. lm_head is tied to wte, so it adds nothing. */
export function parameterCount(model: ModelShape): number {
  const embeddings = model.vocabSize * model.hiddenSize + model.contextLength * model.hiddenSize;
  const finalNorm = 2 * model.hiddenSize;
  return embeddings + model.numLayers * blockParameterCount(model) + finalNorm;
}

export interface WeightFit {
  /** All weights stored as f32 on the GPU. */
  weightBytes: number;
  /** The token embedding wte [V, C] in f32, the largest single tensor. */
  largestTensorBytes: number;
  /** Bindings the largest tensor needs under maxStorageBufferBindingSize. */
  bindingsForLargest: number;
  /** Buffers the largest tensor needs under maxBufferSize. */
  buffersForLargest: number;
}

/**
 * Sizes the weights in f32 against the adapter's limits. This covers the weights only: the
 * optimizer state, gradients, reference copies and activations come from the engine's plan.
 */
export function fitWeights(model: ModelShape, limits: AdapterLimits): WeightFit {
  const largestTensorBytes = model.vocabSize * model.hiddenSize * 4;
  return {
    weightBytes: parameterCount(model) * 4,
    largestTensorBytes,
    bindingsForLargest: Math.ceil(largestTensorBytes / limits.maxStorageBufferBindingSize),
    buffersForLargest: Math.ceil(largestTensorBytes / limits.maxBufferSize),
  };
}

/** A Hub repository id: `name` or `owner/name`, with the characters the Hub allows. */
export function isValidRepoId(repo: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)?$/.test(repo) && !repo.includes('..');
}

/** Checks a Hub endpoint field and returns the URL without a trailing slash, or an error message. */
export function checkHubEndpoint(endpoint: string): { endpoint: string } | { error: string } {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return { error: `Hub endpoint "${endpoint}" is not a URL: enter one like ${DEFAULT_ENDPOINT}.` };
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    return { error: `Hub endpoint "${endpoint}" must start with https:// or http://.` };
  }
  return { endpoint: url.href.replace(/\/+$/, '') };
}

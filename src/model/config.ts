// Reads a Hugging Face config.json of a GPT-2 or GPT-Neo model into a ModelConfig. Shape fields
// are required; other fields default as in the transformers library's GPT2Config and GPTNeoConfig.
// Options that change the computation in ways the engine does not implement are rejected.
import { UserError } from './errors.ts';
import type { AttentionKind, ModelConfig } from './types.ts';

/** Activations computed as GELU with the tanh approximation, which the engine implements. */
const TANH_GELU = ['gelu_new', 'gelu_pytorch_tanh'];

const GPT2_DEFAULT_TOKEN_ID = 50256;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Typed field access in which every fault names the file and the field. */
class ConfigReader {
  constructor(
    private readonly json: Record<string, unknown>,
    private readonly fileName: string,
  ) {}

  error(field: string, fault: string): UserError {
    return new UserError(`${this.fileName}: field "${field}" ${fault}`);
  }

  has(field: string): boolean {
    return this.json[field] !== undefined && this.json[field] !== null;
  }

  /** Reads a positive integer, required unless a fallback is given. */
  size(field: string, fallback?: number): number {
    if (!this.has(field)) {
      if (fallback !== undefined) return fallback;
      throw this.error(field, 'is missing. A GPT-2 or GPT-Neo config.json sets it; check that the file is complete.');
    }
    const value = this.json[field];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
      throw this.error(field, `must be a positive integer, not ${JSON.stringify(value)}`);
    }
    return value;
  }

  probability(field: string, fallback: number): number {
    if (!this.has(field)) return fallback;
    const value = this.json[field];
    if (typeof value !== 'number' || !(value >= 0 && value < 1)) {
      throw this.error(field, `must be a probability in [0, 1), not ${JSON.stringify(value)}`);
    }
    return value;
  }

  positive(field: string, fallback: number): number {
    if (!this.has(field)) return fallback;
    const value = this.json[field];
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      throw this.error(field, `must be a positive number, not ${JSON.stringify(value)}`);
    }
    return value;
  }

  /** Reads a boolean option and rejects the value that the engine does not support. */
  flag(field: string, fallback: boolean, supported: boolean, consequence: string): boolean {
    if (!this.has(field)) return fallback;
    const value = this.json[field];
    if (typeof value !== 'boolean') throw this.error(field, `must be true or false, not ${JSON.stringify(value)}`);
    if (value !== supported) throw this.error(field, `is ${value}, which is not supported: ${consequence}`);
    return value;
  }

  activation(): void {
    const value = this.has('activation_function') ? this.json.activation_function : 'gelu_new';
    if (typeof value !== 'string' || !TANH_GELU.includes(value)) {
      throw this.error('activation_function', `is ${JSON.stringify(value)}; only ${TANH_GELU.join(' and ')} (tanh GELU) are supported`);
    }
  }

  /** Reads a token id. Configs may give a list, of which the first is used. */
  tokenId(field: string, vocabSize: number): number {
    let value = this.has(field) ? this.json[field] : GPT2_DEFAULT_TOKEN_ID;
    if (Array.isArray(value) && value.length > 0) value = value[0];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value >= vocabSize) {
      const shown = this.has(field) ? JSON.stringify(this.json[field]) : `missing (default ${GPT2_DEFAULT_TOKEN_ID})`;
      throw this.error(field, `is ${shown}, not a token id below vocab_size ${vocabSize}. Set it to the id of the end-of-text token.`);
    }
    return value;
  }
}

const SUPPORTED_MODELS =
  'Only GPT-2 ("gpt2") and GPT-Neo ("gpt_neo") models are supported; ' +
  'use a checkpoint of one of them, such as openai-community/gpt2 or EleutherAI/gpt-neo-125m.';

/** Parses config.json contents into a ModelConfig; `fileName` names the file in messages. */
export function parseConfig(json: unknown, fileName = 'config.json'): ModelConfig {
  if (!isPlainObject(json)) throw new UserError(`${fileName} must contain a JSON object`);
  const reader = new ConfigReader(json, fileName);

  const modelType = json.model_type;
  if (modelType === undefined) {
    throw reader.error('model_type', `is missing. ${SUPPORTED_MODELS}`);
  }
  if (modelType === 'gpt2') return parseGpt2(reader, json);
  if (modelType === 'gpt_neo') return parseGptNeo(reader, json);
  throw reader.error('model_type', `is ${JSON.stringify(modelType)}. ${SUPPORTED_MODELS}`);
}

function checkHeads(reader: ConfigReader, headsField: string, hiddenSize: number, numHeads: number): void {
  if (hiddenSize % numHeads !== 0) {
    throw reader.error(headsField, `is ${numHeads}, which does not divide the model width ${hiddenSize}`);
  }
}

function checkTiedEmbeddings(reader: ConfigReader): void {
  reader.flag('tie_word_embeddings', true, true, 'the output projection must share its weights with wte');
}

function parseGpt2(reader: ConfigReader, json: Record<string, unknown>): ModelConfig {
  const vocabSize = reader.size('vocab_size');
  const contextLength = reader.has('n_positions') || !reader.has('n_ctx') ? reader.size('n_positions') : reader.size('n_ctx');
  const hiddenSize = reader.size('n_embd');
  const numLayers = reader.size('n_layer');
  const numHeads = reader.size('n_head');
  checkHeads(reader, 'n_head', hiddenSize, numHeads);

  reader.activation();
  checkTiedEmbeddings(reader);
  reader.flag('scale_attn_by_inverse_layer_idx', false, false, 'attention scores are scaled by 1/sqrt(head_dim) only');
  reader.flag('add_cross_attention', false, false, 'the model must be a decoder without cross-attention');
  const scaleAttention = reader.has('scale_attn_weights') ? json.scale_attn_weights === true : true;
  if (reader.has('scale_attn_weights') && typeof json.scale_attn_weights !== 'boolean') {
    throw reader.error('scale_attn_weights', `must be true or false, not ${JSON.stringify(json.scale_attn_weights)}`);
  }

  return {
    family: 'gpt2',
    vocabSize,
    contextLength,
    hiddenSize,
    numLayers,
    numHeads,
    innerSize: reader.size('n_inner', 4 * hiddenSize),
    layerNormEpsilon: reader.positive('layer_norm_epsilon', 1e-5),
    attentionLayers: new Array<AttentionKind>(numLayers).fill('global'),
    windowSize: contextLength,
    scaleAttention,
    dropout: {
      embedding: reader.probability('embd_pdrop', 0.1),
      residual: reader.probability('resid_pdrop', 0.1),
      attention: reader.probability('attn_pdrop', 0.1),
    },
    bosTokenId: reader.tokenId('bos_token_id', vocabSize),
    eosTokenId: reader.tokenId('eos_token_id', vocabSize),
    raw: json,
  };
}

function parseGptNeo(reader: ConfigReader, json: Record<string, unknown>): ModelConfig {
  const vocabSize = reader.size('vocab_size');
  const contextLength = reader.size('max_position_embeddings');
  const hiddenSize = reader.size('hidden_size');
  const numLayers = reader.size('num_layers');
  const numHeads = reader.size('num_heads');
  checkHeads(reader, 'num_heads', hiddenSize, numHeads);

  reader.activation();
  checkTiedEmbeddings(reader);
  const attentionLayers = expandAttentionTypes(reader, json, numLayers);

  return {
    family: 'gpt_neo',
    vocabSize,
    contextLength,
    hiddenSize,
    numLayers,
    numHeads,
    innerSize: reader.size('intermediate_size', 4 * hiddenSize),
    layerNormEpsilon: reader.positive('layer_norm_epsilon', 1e-5),
    attentionLayers,
    windowSize: reader.size('window_size', 256),
    scaleAttention: false,
    dropout: {
      embedding: reader.probability('embed_dropout', 0),
      residual: reader.probability('resid_dropout', 0),
      attention: reader.probability('attention_dropout', 0),
    },
    bosTokenId: reader.tokenId('bos_token_id', vocabSize),
    eosTokenId: reader.tokenId('eos_token_id', vocabSize),
    raw: json,
  };
}

/**
 * Expands GPT-Neo's `attention_types`, a list of [pattern, repeats] pairs such as
 * [[["global", "local"], 12]], into one kind per layer. A config that also lists
 * `attention_layers` must agree with the expansion.
 */
function expandAttentionTypes(reader: ConfigReader, json: Record<string, unknown>, numLayers: number): AttentionKind[] {
  const types = reader.has('attention_types') ? json.attention_types : [[['global', 'local'], 12]];
  const malformed = () =>
    reader.error('attention_types', `must be a list of [["global" | "local", ...], repeats] pairs, not ${JSON.stringify(types)}`);
  if (!Array.isArray(types)) throw malformed();

  const pairs: [AttentionKind[], number][] = [];
  let total = 0;
  for (const item of types) {
    if (!Array.isArray(item) || item.length !== 2) throw malformed();
    const [pattern, repeats] = item;
    if (!Array.isArray(pattern) || !pattern.every((kind) => kind === 'global' || kind === 'local')) throw malformed();
    if (typeof repeats !== 'number' || !Number.isSafeInteger(repeats) || repeats < 0) throw malformed();
    pairs.push([pattern, repeats]);
    total += pattern.length * repeats;
  }
  if (total !== numLayers) {
    throw reader.error('attention_types', `describes ${total} layers, but num_layers is ${numLayers}. Make the two agree.`);
  }

  const layers: AttentionKind[] = [];
  for (const [pattern, repeats] of pairs) {
    for (let r = 0; r < repeats; r++) layers.push(...pattern);
  }

  if (reader.has('attention_layers')) {
    const listed = json.attention_layers;
    if (!Array.isArray(listed) || listed.length !== numLayers || listed.some((kind, i) => kind !== layers[i])) {
      throw reader.error('attention_layers', `does not match the expansion of attention_types (${layers.join(', ')})`);
    }
  }
  return layers;
}

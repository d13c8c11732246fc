import { describe, expect, it } from 'vitest';

import { parseConfig } from '../../src/model/config.ts';
import { UserError } from '../../src/model/errors.ts';

// The fields of the config.json files published with GPT-2 small and GPT-Neo 125M.
const gpt2Small = {
  activation_function: 'gelu_new',
  architectures: ['GPT2LMHeadModel'],
  attn_pdrop: 0.1,
  bos_token_id: 50256,
  embd_pdrop: 0.1,
  eos_token_id: 50256,
  initializer_range: 0.02,
  layer_norm_epsilon: 1e-5,
  model_type: 'gpt2',
  n_ctx: 1024,
  n_embd: 768,
  n_head: 12,
  n_layer: 12,
  n_positions: 1024,
  resid_pdrop: 0.1,
  vocab_size: 50257,
};

const gptNeo125m = {
  activation_function: 'gelu_new',
  architectures: ['GPTNeoForCausalLM'],
  attention_dropout: 0,
  attention_layers: ['global', 'local', 'global', 'local', 'global', 'local', 'global', 'local', 'global', 'local', 'global', 'local'],
  attention_types: [[['global', 'local'], 6]],
  bos_token_id: 50256,
  embed_dropout: 0,
  eos_token_id: 50256,
  hidden_size: 768,
  intermediate_size: null,
  layer_norm_epsilon: 1e-5,
  max_position_embeddings: 2048,
  model_type: 'gpt_neo',
  num_heads: 12,
  num_layers: 12,
  resid_dropout: 0,
  vocab_size: 50257,
  window_size: 256,
};

function rejection(json: unknown): Error {
  try {
    parseConfig(json, 'models/x/config.json');
  } catch (error) {
    expect(error).toBeInstanceOf(UserError);
    expect((error as Error).message).toContain('models/x/config.json');
    return error as Error;
  }
  throw new Error('parseConfig accepted the config');
}

describe('parseConfig for GPT-2', () => {
  it('reads the GPT-2 small config', () => {
    const config = parseConfig(gpt2Small);
    expect(config).toMatchObject({
      family: 'gpt2',
      vocabSize: 50257,
      contextLength: 1024,
      hiddenSize: 768,
      numLayers: 12,
      numHeads: 12,
      innerSize: 3072,
      layerNormEpsilon: 1e-5,
      windowSize: 1024,
      scaleAttention: true,
      dropout: { embedding: 0.1, residual: 0.1, attention: 0.1 },
      bosTokenId: 50256,
      eosTokenId: 50256,
    });
    expect(config.attentionLayers).toEqual(new Array(12).fill('global'));
    expect(config.raw).toBe(gpt2Small);
  });

  it('uses n_inner when set', () => {
    expect(parseConfig({ ...gpt2Small, n_inner: 1000 }).innerSize).toBe(1000);
    expect(parseConfig({ ...gpt2Small, n_inner: null }).innerSize).toBe(3072);
  });

  it('falls back to n_ctx without n_positions', () => {
    const { n_positions: _, ...legacy } = gpt2Small;
    expect(parseConfig({ ...legacy, n_ctx: 512 }).contextLength).toBe(512);
  });

  it('accepts gelu_pytorch_tanh', () => {
    expect(parseConfig({ ...gpt2Small, activation_function: 'gelu_pytorch_tanh' }).family).toBe('gpt2');
  });

  it('defaults optional fields as transformers does', () => {
    const minimal = { model_type: 'gpt2', vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12 };
    const config = parseConfig(minimal);
    expect(config.layerNormEpsilon).toBe(1e-5);
    expect(config.dropout).toEqual({ embedding: 0.1, residual: 0.1, attention: 0.1 });
    expect(config.eosTokenId).toBe(50256);
  });

  it('reads scale_attn_weights false', () => {
    expect(parseConfig({ ...gpt2Small, scale_attn_weights: false }).scaleAttention).toBe(false);
  });

  it('rejects a missing field', () => {
    const { n_embd: _, ...missing } = gpt2Small;
    expect(rejection(missing).message).toMatch(/"n_embd" is missing/);
  });

  const invalid: [string, Record<string, unknown>, RegExp][] = [
    ['negative width', { n_embd: -768 }, /"n_embd" must be a positive integer/],
    ['fractional layers', { n_layer: 1.5 }, /"n_layer" must be a positive integer/],
    ['string heads', { n_head: '12' }, /"n_head" must be a positive integer/],
    ['heads not dividing width', { n_head: 5 }, /"n_head" is 5, which does not divide the model width 768/],
    ['relu activation', { activation_function: 'relu' }, /"activation_function" is "relu"; only gelu_new and gelu_pytorch_tanh/],
    ['exact gelu', { activation_function: 'gelu' }, /"activation_function" is "gelu"/],
    ['inverse layer scaling', { scale_attn_by_inverse_layer_idx: true }, /"scale_attn_by_inverse_layer_idx" is true, which is not supported/],
    ['cross-attention', { add_cross_attention: true }, /"add_cross_attention" is true/],
    ['untied embeddings', { tie_word_embeddings: false }, /"tie_word_embeddings" is false/],
    ['dropout of 1', { resid_pdrop: 1 }, /"resid_pdrop" must be a probability/],
    ['zero epsilon', { layer_norm_epsilon: 0 }, /"layer_norm_epsilon" must be a positive number/],
    ['token id beyond vocab', { eos_token_id: 50257 }, /"eos_token_id" is 50257, not a token id below vocab_size 50257/],
  ];
  for (const [label, change, fault] of invalid) {
    it(`rejects ${label}`, () => {
      expect(rejection({ ...gpt2Small, ...change }).message).toMatch(fault);
    });
  }
});

describe('parseConfig for GPT-Neo', () => {
  it('reads the GPT-Neo 125M config', () => {
    const config = parseConfig(gptNeo125m);
    expect(config).toMatchObject({
      family: 'gpt_neo',
      vocabSize: 50257,
      contextLength: 2048,
      hiddenSize: 768,
      numLayers: 12,
      numHeads: 12,
      innerSize: 3072,
      windowSize: 256,
      scaleAttention: false,
      dropout: { embedding: 0, residual: 0, attention: 0 },
    });
    expect(config.attentionLayers).toEqual(gptNeo125m.attention_layers);
  });

  it('expands mixed attention_types', () => {
    const config = parseConfig({
      ...gptNeo125m,
      num_layers: 5,
      attention_types: [[['local'], 2], [['global', 'local'], 1], [['global'], 1]],
      attention_layers: undefined,
    });
    expect(config.attentionLayers).toEqual(['local', 'local', 'global', 'local', 'global']);
  });

  it('rejects attention_types that disagree with num_layers', () => {
    expect(rejection({ ...gptNeo125m, attention_types: [[['global', 'local'], 5]] }).message).toMatch(
      /"attention_types" describes 10 layers, but num_layers is 12/,
    );
  });

  it('rejects malformed attention_types', () => {
    expect(rejection({ ...gptNeo125m, attention_types: [[['global', 'sparse'], 6]] }).message).toMatch(/"attention_types" must be a list/);
    expect(rejection({ ...gptNeo125m, attention_types: 'global' }).message).toMatch(/"attention_types" must be a list/);
  });

  it('rejects attention_layers that disagree with attention_types', () => {
    const layers = [...gptNeo125m.attention_layers];
    layers[0] = 'local';
    expect(rejection({ ...gptNeo125m, attention_layers: layers }).message).toMatch(/"attention_layers" does not match/);
  });

  it('rejects a missing hidden_size', () => {
    expect(rejection({ ...gptNeo125m, hidden_size: undefined }).message).toMatch(/"hidden_size" is missing/);
  });

  it('rejects heads not dividing the width', () => {
    expect(rejection({ ...gptNeo125m, num_heads: 7 }).message).toMatch(/"num_heads" is 7/);
  });
});

describe('parseConfig for other inputs', () => {
  it('rejects an unsupported model_type', () => {
    expect(rejection({ ...gpt2Small, model_type: 'llama' }).message).toMatch(/"model_type" is "llama"\. Only GPT-2 \("gpt2"\) and GPT-Neo \("gpt_neo"\) models are supported; use a checkpoint/);
  });

  it('rejects a missing model_type', () => {
    const { model_type: _, ...missing } = gpt2Small;
    expect(rejection(missing).message).toMatch(/"model_type" is missing/);
  });

  it('rejects a JSON array', () => {
    expect(rejection([gpt2Small]).message).toMatch(/must contain a JSON object/);
  });
});

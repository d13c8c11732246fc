// Writes tiny GPT-2 and GPT-Neo checkpoints in the Hugging Face layout, with deterministic random
// weights, for tests. The safetensors encoding here is written independently of src/model, so
// the loader is tested against a second implementation of the format.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import seedrandom from 'seedrandom';

export type Family = 'gpt2' | 'gpt_neo';
export type Dtype = 'F32' | 'F16' | 'BF16';

export interface TinyCheckpointOptions {
  family?: Family;
  vocabSize?: number;
  contextLength?: number;
  hiddenSize?: number;
  numLayers?: number;
  numHeads?: number;
  /** MLP width; 4 * hiddenSize by default. */
  innerSize?: number;
  /** GPT-Neo local attention window. */
  windowSize?: number;
  /** GPT-Neo per-layer kinds; alternating global and local by default. */
  attentionLayers?: ('global' | 'local')[];
  dtype?: Dtype;
  /** Store keys with the `transformer.` prefix (default true). */
  prefix?: boolean;
  /** 1 writes model.safetensors; more writes an index and that many shards. */
  shards?: number;
  /** Store the attention-mask buffers `attn.bias` (BOOL) and `attn.masked_bias` (F32). */
  includeBuffers?: boolean;
  /** Store `lm_head.weight`, a copy of wte. */
  includeLmHead?: boolean;
  seed?: string;
  layerNormEpsilon?: number;
  /** Fields merged into config.json after it is built, for tests of config handling. */
  configOverrides?: Record<string, unknown>;
  /** Writes tokenizer files into the directory. */
  writeTokenizer?: (dir: string) => Promise<void>;
}

export interface TinyCheckpoint {
  dir: string;
  /** config.json as written. */
  config: Record<string, unknown>;
  /** Canonical parameter name to its values exactly as stored (after rounding to the dtype). */
  weights: Map<string, Float64Array>;
  shapes: Map<string, number[]>;
  /** Every stored key in data order, file by file. */
  keys: string[];
  /** Safetensors files in order. */
  weightFiles: string[];
}

export interface RawTensor {
  key: string;
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

/** Encodes tensors as one safetensors file, data in the given order, header padded to 8 bytes. */
export function buildSafetensors(tensors: RawTensor[], metadata: Record<string, string> | null = { format: 'pt' }): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const tensor of tensors) {
    header[tensor.key] = { dtype: tensor.dtype, shape: tensor.shape, data_offsets: [offset, offset + tensor.bytes.byteLength] };
    offset += tensor.bytes.byteLength;
  }
  let json = JSON.stringify(header);
  while ((json.length % 8) !== 0) json += ' ';
  const jsonBytes = new TextEncoder().encode(json);

  const file = new Uint8Array(8 + jsonBytes.byteLength + offset);
  new DataView(file.buffer).setUint32(0, jsonBytes.byteLength, true);
  file.set(jsonBytes, 8);
  let position = 8 + jsonBytes.byteLength;
  for (const tensor of tensors) {
    file.set(tensor.bytes, position);
    position += tensor.bytes.byteLength;
  }
  return file;
}

function exponentOf(magnitude: number): number {
  let exponent = Math.floor(Math.log2(magnitude));
  while (2 ** exponent > magnitude) exponent--;
  while (2 ** (exponent + 1) <= magnitude) exponent++;
  return exponent;
}

/** Rounds x to a float with `mantissaBits` explicit mantissa bits and minimum normal exponent `minExponent`. */
function roundToFloat(x: number, mantissaBits: number, minExponent: number): number {
  if (x === 0) return 0;
  const exponent = Math.max(exponentOf(Math.abs(x)), minExponent);
  const step = 2 ** (exponent - mantissaBits);
  return Math.round(x / step) * step;
}

/** IEEE half-precision bits of a value that is exactly representable. */
function halfBits(value: number): number {
  const sign = value < 0 || Object.is(value, -0) ? 0x8000 : 0;
  const magnitude = Math.abs(value);
  if (magnitude === 0) return sign;
  if (magnitude < 2 ** -14) return sign | (magnitude / 2 ** -24);
  const exponent = exponentOf(magnitude);
  const mantissa = (magnitude / 2 ** exponent - 1) * 1024;
  return sign | ((exponent + 15) << 10) | mantissa;
}

/** Rounds values to the dtype and returns the stored bytes and the exact stored values. */
export function quantize(values: number[], dtype: Dtype): { bytes: Uint8Array; stored: Float64Array } {
  const stored = new Float64Array(values.length);
  const bytes = new Uint8Array(values.length * (dtype === 'F32' ? 4 : 2));
  const view = new DataView(bytes.buffer);
  const scratch = new DataView(new ArrayBuffer(4));
  values.forEach((value, i) => {
    if (dtype === 'F32') {
      stored[i] = Math.fround(value);
      view.setFloat32(i * 4, stored[i], true);
    } else if (dtype === 'BF16') {
      stored[i] = roundToFloat(value, 7, -126);
      // BF16 is the upper half of the f32 with the same value.
      scratch.setFloat32(0, stored[i]);
      view.setUint16(i * 2, scratch.getUint16(0), true);
    } else {
      stored[i] = roundToFloat(value, 10, -14);
      view.setUint16(i * 2, halfBits(stored[i]), true);
    }
  });
  return { bytes, stored };
}

/** Canonical parameter names and shapes, written out here independently of src/model. */
function parameterList(family: Family, V: number, P: number, C: number, I: number, L: number): [string, number[]][] {
  const list: [string, number[]][] = [
    ['wte.weight', [V, C]],
    ['wpe.weight', [P, C]],
  ];
  for (let i = 0; i < L; i++) {
    const h = `h.${i}.`;
    list.push([`${h}ln_1.weight`, [C]], [`${h}ln_1.bias`, [C]]);
    if (family === 'gpt2') {
      list.push(
        [`${h}attn.c_attn.weight`, [C, 3 * C]],
        [`${h}attn.c_attn.bias`, [3 * C]],
        [`${h}attn.c_proj.weight`, [C, C]],
        [`${h}attn.c_proj.bias`, [C]],
      );
    } else {
      list.push(
        [`${h}attn.attention.q_proj.weight`, [C, C]],
        [`${h}attn.attention.k_proj.weight`, [C, C]],
        [`${h}attn.attention.v_proj.weight`, [C, C]],
        [`${h}attn.attention.out_proj.weight`, [C, C]],
        [`${h}attn.attention.out_proj.bias`, [C]],
      );
    }
    list.push([`${h}ln_2.weight`, [C]], [`${h}ln_2.bias`, [C]]);
    if (family === 'gpt2') {
      list.push([`${h}mlp.c_fc.weight`, [C, I]], [`${h}mlp.c_fc.bias`, [I]], [`${h}mlp.c_proj.weight`, [I, C]], [`${h}mlp.c_proj.bias`, [C]]);
    } else {
      list.push([`${h}mlp.c_fc.weight`, [I, C]], [`${h}mlp.c_fc.bias`, [I]], [`${h}mlp.c_proj.weight`, [C, I]], [`${h}mlp.c_proj.bias`, [C]]);
    }
  }
  list.push(['ln_f.weight', [C]], ['ln_f.bias', [C]]);
  return list;
}

function attentionTypes(layers: ('global' | 'local')[]): unknown[] {
  const alternating = layers.length % 2 === 0 && layers.every((kind, i) => kind === (i % 2 === 0 ? 'global' : 'local'));
  if (alternating) return [[['global', 'local'], layers.length / 2]];
  return layers.map((kind) => [[kind], 1]);
}

/** Writes a Hugging Face checkpoint directory and returns the weights it contains. */
export async function writeTinyCheckpoint(dir: string, options: TinyCheckpointOptions = {}): Promise<TinyCheckpoint> {
  const family = options.family ?? 'gpt2';
  const V = options.vocabSize ?? 64;
  const P = options.contextLength ?? 16;
  const C = options.hiddenSize ?? 8;
  const L = options.numLayers ?? 2;
  const heads = options.numHeads ?? 2;
  const I = options.innerSize ?? 4 * C;
  const dtype = options.dtype ?? 'F32';
  const prefix = options.prefix === false ? '' : 'transformer.';
  const shardCount = options.shards ?? 1;
  const layers = options.attentionLayers ?? Array.from({ length: L }, (_, i) => (i % 2 === 0 ? 'global' : 'local'));
  const epsilon = options.layerNormEpsilon ?? 1e-5;

  const config: Record<string, unknown> =
    family === 'gpt2'
      ? {
          architectures: ['GPT2LMHeadModel'],
          model_type: 'gpt2',
          vocab_size: V,
          n_positions: P,
          n_ctx: P,
          n_embd: C,
          n_layer: L,
          n_head: heads,
          n_inner: I,
          activation_function: 'gelu_new',
          layer_norm_epsilon: epsilon,
          resid_pdrop: 0.1,
          embd_pdrop: 0.1,
          attn_pdrop: 0.1,
          bos_token_id: V - 1,
          eos_token_id: V - 1,
          tie_word_embeddings: true,
        }
      : {
          architectures: ['GPTNeoForCausalLM'],
          model_type: 'gpt_neo',
          vocab_size: V,
          max_position_embeddings: P,
          hidden_size: C,
          num_layers: L,
          num_heads: heads,
          intermediate_size: I,
          window_size: options.windowSize ?? 4,
          attention_types: attentionTypes(layers),
          attention_layers: layers,
          activation_function: 'gelu_new',
          layer_norm_epsilon: epsilon,
          resid_dropout: 0,
          embed_dropout: 0,
          attention_dropout: 0,
          bos_token_id: V - 1,
          eos_token_id: V - 1,
        };
  Object.assign(config, options.configOverrides ?? {});

  // GPT-2's initialisation scale: N(0, 0.02) weights; LayerNorm gains near 1 with visible noise.
  const random = seedrandom(options.seed ?? 'tiny-checkpoint');
  const normal = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const weights = new Map<string, Float64Array>();
  const shapes = new Map<string, number[]>();
  const tensors: RawTensor[] = [];
  for (const [name, shape] of parameterList(family, V, P, C, I, L)) {
    const count = shape.reduce((a, b) => a * b, 1);
    const isLayerNorm = /ln_(1|2|f)\./.test(name);
    const sample = () => {
      if (!isLayerNorm) return 0.02 * normal();
      if (name.endsWith('.weight')) return 1 + 0.1 * normal();
      return 0.05 * normal();
    };
    const values = Array.from({ length: count }, sample);
    const { bytes, stored } = quantize(values, dtype);
    weights.set(name, stored);
    shapes.set(name, shape);
    tensors.push({ key: prefix + name, dtype, shape, bytes });
  }

  if (options.includeBuffers) {
    const mask = new Uint8Array(P * P).map((_, i) => (i % P <= Math.floor(i / P) ? 1 : 0));
    const attention = family === 'gpt2' ? 'attn.' : 'attn.attention.';
    for (let i = 0; i < L; i++) {
      tensors.push({ key: `${prefix}h.${i}.${attention}bias`, dtype: 'BOOL', shape: [1, 1, P, P], bytes: mask });
      tensors.push({ key: `${prefix}h.${i}.${attention}masked_bias`, dtype: 'F32', shape: [], bytes: quantize([-1e4], 'F32').bytes });
    }
  }
  if (options.includeLmHead) {
    const wte = tensors.find((tensor) => tensor.key === `${prefix}wte.weight`)!;
    tensors.push({ key: 'lm_head.weight', dtype, shape: wte.shape, bytes: wte.bytes });
  }

  // Data in the order Python's safetensors writes it: wider dtypes first, then by key.
  const width: Record<string, number> = { F32: 4, F16: 2, BF16: 2, BOOL: 1 };
  tensors.sort((a, b) => width[b.dtype] - width[a.dtype] || Number(a.key > b.key) - Number(a.key < b.key));

  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify(config, null, 2));

  const weightFiles: string[] = [];
  if (shardCount <= 1) {
    await writeFile(join(dir, 'model.safetensors'), buildSafetensors(tensors));
    weightFiles.push('model.safetensors');
  } else {
    const perShard = Math.ceil(tensors.length / shardCount);
    const weightMap: Record<string, string> = {};
    let totalSize = 0;
    for (let s = 0; s < shardCount; s++) {
      const name = `model-${String(s + 1).padStart(5, '0')}-of-${String(shardCount).padStart(5, '0')}.safetensors`;
      const part = tensors.slice(s * perShard, (s + 1) * perShard);
      for (const tensor of part) {
        weightMap[tensor.key] = name;
        totalSize += tensor.bytes.byteLength;
      }
      await writeFile(join(dir, name), buildSafetensors(part));
      weightFiles.push(name);
    }
    await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2));
  }

  await options.writeTokenizer?.(dir);
  return { dir, config, weights, shapes, keys: tensors.map((tensor) => tensor.key), weightFiles };
}

// Writes a tiny text-classification model in the layout transformers.js loads from a directory
// or from the Hub: config.json (model_type "bert"), a BERT-style WordPiece tokenizer.json with
// tokenizer_config.json, and onnx/model.onnx (the file name transformers.js 4.3.1 requests for
// dtype fp32, its default on the Node CPU backend).
//
// The model is a bag of embeddings, so a test can recompute its logits in plain TypeScript:
//   tokens  = E[input_ids] + T[token_type_ids]          (B, S, D)
//   mean    = sum_s tokens * mask / sum_s mask          (B, D)   padding positions drop out
//   logits  = mean @ W + b                              (B, L)
// with B texts, S tokens, D = hiddenSize and L labels. Words listed in `toxicWords` get a large
// first embedding component, and the first row of W pushes that component to the toxic label.
//
// The ONNX protobuf is encoded here by hand (varints and length-delimited fields of onnx.proto,
// IR version 8, opset 13), so the test needs no protobuf package.

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import seedrandom from 'seedrandom';

export type ProblemType = 'single_label_classification' | 'multi_label_classification';

export interface TinyClassifierOptions {
  /** Label names in id order (config.json id2label). */
  labels?: string[];
  /** Index of the label that the toxic words push up. */
  toxicIndex?: number;
  /** Softmax over labels (single label) or a sigmoid per label (multi label), as in config.json. */
  problemType?: ProblemType;
  hiddenSize?: number;
  /** Words in the vocabulary besides the special tokens. The tokenizer lowercases its input. */
  words?: string[];
  /** Words whose embedding points to the toxic label. */
  toxicWords?: string[];
  /** Longest tokenized text, special tokens included. Longer texts are truncated. */
  maxLength?: number;
  seed?: string;
  /** Skips writing this file (for tests of missing files). */
  omit?: 'config.json' | 'tokenizer.json' | 'onnx/model.onnx';
}

export interface TinyClassifier {
  dir: string;
  labels: string[];
  problemType: ProblemType;
  hiddenSize: number;
  maxLength: number;
  /** Token strings in id order. */
  vocab: string[];
  specialIds: { pad: number; unk: number; cls: number; sep: number };
  /** (V, D) word embeddings, row-major, float32 as stored. */
  embeddings: Float32Array;
  /** (2, D) token type embeddings. */
  tokenTypeEmbeddings: Float32Array;
  /** (D, L) classifier weight. */
  weight: Float32Array;
  /** (L) classifier bias. */
  bias: Float32Array;
}

const SPECIAL_TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];

const DEFAULT_WORDS = [
  'the', 'a', 'you', 'are', 'is', 'and', 'i', 'we', 'they', 'it', 'this', 'that', 'what',
  'good', 'nice', 'kind', 'friend', 'thank', 'thanks', 'please', 'great', 'day', 'model', 'text',
  'idiot', 'stupid', 'hate', 'moron', 'trash', 'dumb',
  '.', ',', '!', '?', "'",
];

const DEFAULT_TOXIC_WORDS = ['idiot', 'stupid', 'hate', 'moron', 'trash', 'dumb'];

/** Writes the classifier directory and returns its weights for an independent recomputation. */
export async function writeTinyClassifier(dir: string, options: TinyClassifierOptions = {}): Promise<TinyClassifier> {
  const labels = options.labels ?? ['non-toxic', 'toxic'];
  const toxicIndex = options.toxicIndex ?? labels.length - 1;
  const problemType = options.problemType ?? 'single_label_classification';
  const hiddenSize = options.hiddenSize ?? 4;
  const words = options.words ?? DEFAULT_WORDS;
  const toxicWords = new Set(options.toxicWords ?? DEFAULT_TOXIC_WORDS);
  const maxLength = options.maxLength ?? 64;
  const random = seedrandom(options.seed ?? 'tiny-classifier');
  const uniform = (scale: number) => Math.fround((random() * 2 - 1) * scale);

  const vocab = [...SPECIAL_TOKENS, ...words];
  const V = vocab.length;
  const D = hiddenSize;
  const L = labels.length;

  // Small random weights everywhere, then one strong direction: embedding component 0 is large
  // for toxic words, and row 0 of W maps it to the toxic label.
  const embeddings = new Float32Array(V * D).map(() => uniform(0.5));
  for (let v = 0; v < V; v++) {
    if (toxicWords.has(vocab[v])) embeddings[v * D] = Math.fround(4 + random());
  }
  const tokenTypeEmbeddings = new Float32Array(2 * D).map(() => uniform(0.1));
  const weight = new Float32Array(D * L).map(() => uniform(0.5));
  for (let l = 0; l < L; l++) weight[l] = l === toxicIndex ? 3 : -1;
  const bias = new Float32Array(L).map(() => uniform(0.2));
  bias[toxicIndex] = -2;

  await mkdir(join(dir, 'onnx'), { recursive: true });
  const id2label = Object.fromEntries(labels.map((label, i) => [String(i), label]));
  const label2id = Object.fromEntries(labels.map((label, i) => [label, i]));
  const config = {
    architectures: ['BertForSequenceClassification'],
    model_type: 'bert',
    vocab_size: V,
    hidden_size: D,
    max_position_embeddings: maxLength,
    type_vocab_size: 2,
    problem_type: problemType,
    id2label,
    label2id,
  };
  const files: Record<string, string | Uint8Array> = {
    'config.json': JSON.stringify(config, null, 2),
    'tokenizer.json': JSON.stringify(tokenizerJson(vocab), null, 2),
    'tokenizer_config.json': JSON.stringify(
      {
        tokenizer_class: 'BertTokenizer',
        do_lower_case: true,
        model_max_length: maxLength,
        cls_token: '[CLS]',
        sep_token: '[SEP]',
        pad_token: '[PAD]',
        unk_token: '[UNK]',
        mask_token: '[MASK]',
      },
      null,
      2,
    ),
    'special_tokens_map.json': JSON.stringify({
      cls_token: '[CLS]',
      sep_token: '[SEP]',
      pad_token: '[PAD]',
      unk_token: '[UNK]',
      mask_token: '[MASK]',
    }),
    'onnx/model.onnx': bagOfEmbeddingsModel({ V, D, L, embeddings, tokenTypeEmbeddings, weight, bias }),
  };
  for (const [name, contents] of Object.entries(files)) {
    if (name !== options.omit) await writeFile(join(dir, name), contents);
  }

  return {
    dir,
    labels,
    problemType,
    hiddenSize,
    maxLength,
    vocab,
    specialIds: { pad: 0, unk: 1, cls: 2, sep: 3 },
    embeddings,
    tokenTypeEmbeddings,
    weight,
    bias,
  };
}

/** Builds the `tokenizers` serialization of a lowercasing BERT WordPiece tokenizer over whole words. */
function tokenizerJson(vocab: string[]): unknown {
  const special = (id: number) => ({
    id,
    content: vocab[id],
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map((_, id) => special(id)),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: '[SEP]', type_id: 1 } },
      ],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [2], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [3], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(vocab.map((token, id) => [token, id])),
    },
  };
}

// ---------------------------------------------------------------------------------------------
// ONNX graph of the bag-of-embeddings classifier.

// TensorProto.DataType values.
const FLOAT = 1;
const INT64 = 7;

interface ModelWeights {
  V: number;
  D: number;
  L: number;
  embeddings: Float32Array;
  tokenTypeEmbeddings: Float32Array;
  weight: Float32Array;
  bias: Float32Array;
}

function bagOfEmbeddingsModel(w: ModelWeights): Uint8Array {
  const nodes = [
    node('Gather', ['embeddings', 'input_ids'], ['word_vectors']),
    node('Gather', ['token_type_embeddings', 'token_type_ids'], ['type_vectors']),
    node('Add', ['word_vectors', 'type_vectors'], ['token_vectors']),
    node('Cast', ['attention_mask'], ['mask'], [intAttribute('to', FLOAT)]),
    node('Unsqueeze', ['mask', 'axis_2'], ['mask_3d']),
    node('Mul', ['token_vectors', 'mask_3d'], ['masked_vectors']),
    node('ReduceSum', ['masked_vectors', 'axis_1'], ['vector_sum'], [intAttribute('keepdims', 0)]),
    node('ReduceSum', ['mask', 'axis_1'], ['token_count'], [intAttribute('keepdims', 1)]),
    node('Div', ['vector_sum', 'token_count'], ['mean_vector']),
    node('MatMul', ['mean_vector', 'classifier_weight'], ['projected']),
    node('Add', ['projected', 'classifier_bias'], ['logits']),
  ];
  const initializers = [
    floatTensor('embeddings', [w.V, w.D], w.embeddings),
    floatTensor('token_type_embeddings', [2, w.D], w.tokenTypeEmbeddings),
    floatTensor('classifier_weight', [w.D, w.L], w.weight),
    floatTensor('classifier_bias', [w.L], w.bias),
    int64Tensor('axis_1', [1], [1]),
    int64Tensor('axis_2', [1], [2]),
  ];
  const inputs = [
    valueInfo('input_ids', INT64, ['batch_size', 'sequence_length']),
    valueInfo('attention_mask', INT64, ['batch_size', 'sequence_length']),
    valueInfo('token_type_ids', INT64, ['batch_size', 'sequence_length']),
  ];
  const outputs = [valueInfo('logits', FLOAT, ['batch_size', w.L])];

  const graph = message([
    ...nodes.map((n) => bytesField(1, n)),
    stringField(2, 'bag_of_embeddings'),
    ...initializers.map((t) => bytesField(5, t)),
    ...inputs.map((v) => bytesField(11, v)),
    ...outputs.map((v) => bytesField(12, v)),
  ]);
  const opset = message([stringField(1, ''), varintField(2, 13)]);
  return message([
    varintField(1, 8), // ir_version
    stringField(2, 'irepair-tests'), // producer_name
    bytesField(7, graph),
    bytesField(8, opset),
  ]);
}

function node(opType: string, inputs: string[], outputs: string[], attributes: Uint8Array[] = []): Uint8Array {
  return message([
    ...inputs.map((name) => stringField(1, name)),
    ...outputs.map((name) => stringField(2, name)),
    stringField(3, outputs[0]),
    stringField(4, opType),
    ...attributes.map((a) => bytesField(5, a)),
  ]);
}

function intAttribute(name: string, value: number): Uint8Array {
  const INT = 2; // AttributeProto.AttributeType
  return message([stringField(1, name), varintField(3, value), varintField(20, INT)]);
}

function floatTensor(name: string, dims: number[], values: Float32Array): Uint8Array {
  const raw = new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
  return message([...dims.map((d) => varintField(1, d)), varintField(2, FLOAT), stringField(8, name), bytesField(9, raw)]);
}

function int64Tensor(name: string, dims: number[], values: number[]): Uint8Array {
  const raw = new Uint8Array(new BigInt64Array(values.map(BigInt)).buffer);
  return message([...dims.map((d) => varintField(1, d)), varintField(2, INT64), stringField(8, name), bytesField(9, raw)]);
}

/** Encodes the ValueInfoProto of a tensor. A string dimension is symbolic (dim_param). */
function valueInfo(name: string, elemType: number, dims: (number | string)[]): Uint8Array {
  const dimensions = dims.map((d) => message([typeof d === 'number' ? varintField(1, d) : stringField(2, d)]));
  const shape = message(dimensions.map((d) => bytesField(1, d)));
  const tensorType = message([varintField(1, elemType), bytesField(2, shape)]);
  const type = message([bytesField(1, tensorType)]);
  return message([stringField(1, name), bytesField(2, type)]);
}

// Protobuf wire format: each field is a varint key (field number << 3 | wire type), then a
// varint (wire type 0) or a varint length and that many bytes (wire type 2). Little-endian byte
// order is assumed for raw_data, as onnx.proto specifies.

function varint(value: number): number[] {
  const bytes: number[] = [];
  let v = BigInt(value);
  if (v < 0n) v += 1n << 64n; // negative int64 values are ten-byte two's complement varints
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    bytes.push(byte);
  } while (v > 0n);
  return bytes;
}

function varintField(field: number, value: number): Uint8Array {
  return Uint8Array.from([...varint(field << 3), ...varint(value)]);
}

function bytesField(field: number, bytes: Uint8Array): Uint8Array {
  return message([Uint8Array.from([...varint((field << 3) | 2), ...varint(bytes.length)]), bytes]);
}

function stringField(field: number, text: string): Uint8Array {
  return bytesField(field, new TextEncoder().encode(text));
}

function message(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Independent recomputation, in float64 from the stored float32 weights.

/**
 * Tokenizes like the tokenizer written above: lowercase, split into runs of letters/digits and
 * single punctuation characters, map unknown words to [UNK], wrap in [CLS] ... [SEP], and keep
 * the first `maxLength` tokens. ASCII input only.
 *
 * Truncation follows transformers.js 4.3.1, which cuts the sequence after adding the special
 * tokens, so a truncated text loses its [SEP]. Python's tokenizers would keep [SEP] instead.
 */
export function referenceTokenize(classifier: TinyClassifier, text: string): number[] {
  const ids = new Map(classifier.vocab.map((token, id) => [token, id]));
  const pieces = text.toLowerCase().match(/[a-z0-9]+|[^\sa-z0-9]/g) ?? [];
  const words = pieces.map((piece) => ids.get(piece) ?? classifier.specialIds.unk);
  const { cls, sep } = classifier.specialIds;
  return [cls, ...words, sep].slice(0, classifier.maxLength);
}

/** Computes the class probabilities of one text: softmax of the logits, or a sigmoid per label. */
export function referenceProbabilities(classifier: TinyClassifier, text: string): number[] {
  const tokens = referenceTokenize(classifier, text);
  const D = classifier.hiddenSize;
  const L = classifier.labels.length;

  const mean = new Float64Array(D);
  for (const id of tokens) {
    for (let d = 0; d < D; d++) mean[d] += classifier.embeddings[id * D + d] + classifier.tokenTypeEmbeddings[d];
  }
  for (let d = 0; d < D; d++) mean[d] /= tokens.length;

  const logits = Array.from({ length: L }, (_, l) => {
    let sum = classifier.bias[l];
    for (let d = 0; d < D; d++) sum += mean[d] * classifier.weight[d * L + l];
    return sum;
  });

  if (classifier.problemType === 'multi_label_classification') return logits.map((z) => 1 / (1 + Math.exp(-z)));
  const max = Math.max(...logits);
  const exps = logits.map((z) => Math.exp(z - max));
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / total);
}

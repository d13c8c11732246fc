// Opens a Hugging Face checkpoint directory: config.json, then model.safetensors or the shards
// that model.safetensors.index.json lists. Keys map to canonical parameter names, every expected
// parameter is checked against the shape the config implies, and tensors are read one at a time.
import { parseConfig } from './config.ts';
import { UserError } from './errors.ts';
import { decodeTensor, elementCount, parseHeader, type SafetensorsTensor } from './safetensors.ts';
import type { CheckpointFiles } from './sources.ts';
import type { ModelConfig, ParameterName, StorageDtype, TensorEntry } from './types.ts';

export const CONFIG_FILE = 'config.json';
export const WEIGHTS_FILE = 'model.safetensors';
export const WEIGHTS_INDEX_FILE = 'model.safetensors.index.json';

/** Files that travel with the weights on export when present: tokenizer and generation settings. */
export const COMPANION_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'vocab.json',
  'merges.txt',
  'special_tokens_map.json',
  'added_tokens.json',
  'generation_config.json',
];

const PREFIX = 'transformer.';

/** Every tensor of a weight file, parameters and ignored keys alike. */
export interface StoredTensor extends SafetensorsTensor {
  /** Base name of the safetensors file that contains it. */
  file: string;
  /** Canonical parameter name, or null for an ignored key. */
  name: ParameterName | null;
}

export interface Checkpoint {
  config: ModelConfig;
  /** Parameters in canonical order: wte, wpe, each block in order, ln_f. */
  tensors: TensorEntry[];
  /** Keys that are not parameters: attention-mask buffers, the tied lm_head and unknown keys. */
  ignoredKeys: string[];
  files: CheckpointFiles;
  /** Safetensors files in reading order: model.safetensors, or the shards in name order. */
  weightFiles: string[];
  /** Every tensor of every weight file, file by file, in data order within each file. */
  storedTensors: StoredTensor[];
  /** `__metadata__` of the first weight file. */
  metadata: Record<string, string>;
  parameterCount: number;
  /**
   * Yields the selected parameters converted to f32, one at a time, file by file in
   * increasing offset order, so it works over forward-only sources such as HTTP downloads.
   */
  readTensors(filter?: (entry: TensorEntry) => boolean): AsyncIterable<{ entry: TensorEntry; data: Float32Array }>;
  /** Reads the stored bytes of one tensor. */
  readRaw(entry: { file: string; begin: number; end: number }): Promise<Uint8Array>;
}

/** Canonical names and shapes of every parameter the config implies, in canonical order. */
export function parameterShapes(config: ModelConfig): { name: ParameterName; shape: number[] }[] {
  const { vocabSize: V, contextLength: P, hiddenSize: C, innerSize: I } = config;
  const shapes: { name: ParameterName; shape: number[] }[] = [
    { name: 'wte.weight', shape: [V, C] },
    { name: 'wpe.weight', shape: [P, C] },
  ];
  for (let i = 0; i < config.numLayers; i++) {
    const block = (name: string, shape: number[]) => shapes.push({ name: `h.${i}.${name}`, shape });
    block('ln_1.weight', [C]);
    block('ln_1.bias', [C]);
    if (config.family === 'gpt2') {
      // Conv1D stores weights as [in, out].
      block('attn.c_attn.weight', [C, 3 * C]);
      block('attn.c_attn.bias', [3 * C]);
      block('attn.c_proj.weight', [C, C]);
      block('attn.c_proj.bias', [C]);
      block('ln_2.weight', [C]);
      block('ln_2.bias', [C]);
      block('mlp.c_fc.weight', [C, I]);
      block('mlp.c_fc.bias', [I]);
      block('mlp.c_proj.weight', [I, C]);
      block('mlp.c_proj.bias', [C]);
    } else {
      // nn.Linear stores weights as [out, in], and q, k and v have no bias.
      block('attn.attention.q_proj.weight', [C, C]);
      block('attn.attention.k_proj.weight', [C, C]);
      block('attn.attention.v_proj.weight', [C, C]);
      block('attn.attention.out_proj.weight', [C, C]);
      block('attn.attention.out_proj.bias', [C]);
      block('ln_2.weight', [C]);
      block('ln_2.bias', [C]);
      block('mlp.c_fc.weight', [I, C]);
      block('mlp.c_fc.bias', [I]);
      block('mlp.c_proj.weight', [C, I]);
      block('mlp.c_proj.bias', [C]);
    }
  }
  shapes.push({ name: 'ln_f.weight', shape: [C] }, { name: 'ln_f.bias', shape: [C] });
  return shapes;
}

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

async function readJson(files: CheckpointFiles, name: string): Promise<unknown> {
  const text = await files.readText(name);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UserError(`${name} in ${files.location} is not valid JSON (${(error as Error).message}). Download or export it again.`);
  }
}

/** Reads config.json and the safetensors headers, and checks every expected parameter. */
export async function openCheckpoint(files: CheckpointFiles): Promise<Checkpoint> {
  const names = files.names();
  if (!names.includes(CONFIG_FILE)) {
    throw new UserError(`${CONFIG_FILE} not found in ${files.location}. A model directory needs config.json and model.safetensors.`);
  }
  const config = parseConfig(await readJson(files, CONFIG_FILE), `${CONFIG_FILE} in ${files.location}`);

  const { weightFiles, storedByFile, weightsDescription } = await readWeightHeaders(files, names);
  const { tensors, ignoredKeys, storedTensors } = mapParameters(config, weightFiles, storedByFile, weightsDescription);
  const parameterCount = tensors.reduce((sum, entry) => sum + elementCount(entry.shape)!, 0);

  const readRaw: Checkpoint['readRaw'] = async (entry) => {
    const source = await files.open(entry.file);
    try {
      return await source.read(entry.begin, entry.end - entry.begin);
    } finally {
      await source.close();
    }
  };

  async function* readTensors(filter?: (entry: TensorEntry) => boolean) {
    const selected = filter ? tensors.filter(filter) : tensors;
    for (const file of weightFiles) {
      const inFile = selected.filter((entry) => entry.file === file).sort((a, b) => a.begin - b.begin);
      if (inFile.length === 0) continue;
      const source = await files.open(file);
      try {
        for (const entry of inFile) {
          const bytes = await source.read(entry.begin, entry.end - entry.begin);
          yield { entry, data: decodeTensor(bytes, entry.dtype) };
        }
      } finally {
        await source.close();
      }
    }
  }

  return {
    config,
    tensors,
    ignoredKeys,
    files,
    weightFiles,
    storedTensors,
    metadata: storedByFile.get(weightFiles[0])!.metadata,
    parameterCount,
    readTensors,
    readRaw,
  };
}

interface FileHeader {
  displayName: string;
  tensors: SafetensorsTensor[];
  metadata: Record<string, string>;
}

async function readHeader(files: CheckpointFiles, name: string): Promise<FileHeader> {
  const source = await files.open(name);
  try {
    const header = await parseHeader(source);
    return { displayName: source.name, tensors: header.tensors, metadata: header.metadata };
  } finally {
    await source.close();
  }
}

/** Finds the weight files and parses their headers; a sharded index is checked against its shards. */
async function readWeightHeaders(files: CheckpointFiles, names: string[]) {
  const storedByFile = new Map<string, FileHeader>();
  if (names.includes(WEIGHTS_FILE)) {
    const header = await readHeader(files, WEIGHTS_FILE);
    storedByFile.set(WEIGHTS_FILE, header);
    return { weightFiles: [WEIGHTS_FILE], storedByFile, weightsDescription: header.displayName };
  }

  if (!names.includes(WEIGHTS_INDEX_FILE)) {
    const found = names.filter((name) => /\.(bin|pt|pth|ckpt|h5|msgpack|onnx|gguf)$/.test(name));
    const hint = found.length > 0 ? ` It contains ${found.join(', ')}, formats that are not read; convert the weights to safetensors.` : '';
    throw new UserError(`neither ${WEIGHTS_FILE} nor ${WEIGHTS_INDEX_FILE} found in ${files.location}.${hint}`);
  }

  const weightMap = parseWeightMap(await readJson(files, WEIGHTS_INDEX_FILE));
  const shards = [...new Set(weightMap.values())].sort();
  for (const shard of shards) {
    if (!names.includes(shard)) {
      throw new UserError(`${WEIGHTS_INDEX_FILE} lists shard ${shard}, which is not in ${files.location}. Download the missing shard.`);
    }
  }
  for (const shard of shards) storedByFile.set(shard, await readHeader(files, shard));

  for (const [key, shard] of weightMap) {
    if (!storedByFile.get(shard)!.tensors.some((tensor) => tensor.key === key)) {
      throw new UserError(`${WEIGHTS_INDEX_FILE} maps "${key}" to ${shard}, but ${shard} does not contain it. The shards do not match the index.`);
    }
  }
  return { weightFiles: shards, storedByFile, weightsDescription: `${WEIGHTS_INDEX_FILE} in ${files.location}` };
}

function parseWeightMap(json: unknown): Map<string, string> {
  const invalid = (fault: string) => new UserError(`${WEIGHTS_INDEX_FILE} is invalid: ${fault}. Download or export it again.`);
  const weightMap = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) throw invalid('it has no "weight_map" object');

  const result = new Map<string, string>();
  for (const [key, shard] of Object.entries(weightMap)) {
    // Shards live next to the index, so a path could only point outside the model directory.
    if (typeof shard !== 'string' || !/^[^/\\]+\.safetensors$/.test(shard) || shard.startsWith('.')) {
      throw invalid(`"${key}" maps to ${JSON.stringify(shard)}, which is not a .safetensors file name`);
    }
    result.set(key, shard);
  }
  if (result.size === 0) throw invalid('"weight_map" is empty');
  return result;
}

/** Maps stored keys to canonical names and checks dtypes and shapes against the config. */
function mapParameters(config: ModelConfig, weightFiles: string[], storedByFile: Map<string, FileHeader>, weightsDescription: string) {
  const expected = new Map(parameterShapes(config).map(({ name, shape }) => [name, shape]));
  const found = new Map<ParameterName, TensorEntry>();
  const ignoredKeys: string[] = [];
  const storedTensors: StoredTensor[] = [];

  for (const file of weightFiles) {
    const header = storedByFile.get(file)!;
    const inDataOrder = [...header.tensors].sort((a, b) => a.begin - b.begin);
    for (const tensor of inDataOrder) {
      const name = tensor.key.startsWith(PREFIX) ? tensor.key.slice(PREFIX.length) : tensor.key;
      const expectedShape = expected.get(name);
      if (!expectedShape) {
        checkBlockInRange(config, name, tensor.key, header.displayName);
        ignoredKeys.push(tensor.key);
        storedTensors.push({ ...tensor, file, name: null });
        continue;
      }

      const previous = found.get(name);
      if (previous) {
        throw new UserError(`${header.displayName}: parameter ${name} is stored twice, as "${previous.key}" and "${tensor.key}". Remove one of them.`);
      }
      if (tensor.dtype !== 'F32' && tensor.dtype !== 'F16' && tensor.dtype !== 'BF16') {
        throw new UserError(`${header.displayName}: tensor "${tensor.key}" has dtype ${tensor.dtype}; parameters must be F32, F16 or BF16.`);
      }
      if (tensor.shape.length !== expectedShape.length || tensor.shape.some((size, i) => size !== expectedShape[i])) {
        throw new UserError(
          `${header.displayName}: tensor "${tensor.key}" has shape ${shapeText(tensor.shape)}, but config.json implies ${shapeText(expectedShape)}. ` +
            'Check that config.json belongs to these weights.',
        );
      }
      const entry: TensorEntry = { name, key: tensor.key, dtype: tensor.dtype as StorageDtype, shape: tensor.shape, file, begin: tensor.begin, end: tensor.end };
      found.set(name, entry);
      storedTensors.push({ ...tensor, file, name });
    }
  }

  const tensors: TensorEntry[] = [];
  for (const [name, shape] of expected) {
    const entry = found.get(name);
    if (!entry) {
      throw new UserError(
        `${weightsDescription}: parameter "${PREFIX}${name}" (the prefix is optional) with shape ${shapeText(shape)} is missing. ` +
          'Check that config.json belongs to these weights.',
      );
    }
    tensors.push(entry);
  }
  return { tensors, ignoredKeys, storedTensors };
}

function checkBlockInRange(config: ModelConfig, name: string, key: string, fileName: string): void {
  const match = /^h\.(\d+)\./.exec(name);
  if (match && Number(match[1]) >= config.numLayers) {
    throw new UserError(
      `${fileName}: tensor "${key}" belongs to block ${match[1]}, but config.json sets ${config.numLayers} layers. ` +
        'Check that config.json belongs to these weights.',
    );
  }
}

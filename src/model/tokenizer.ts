// Tokenizer loading through transformers.js, from a model repository's files held in memory.
//
// Two layouts exist on the Hub. Recent repositories ship `tokenizer.json` (the `tokenizers`
// library's serialization); older GPT-2-family ones ship only `vocab.json` + `merges.txt`. For the
// second layout this module builds the equivalent byte-level BPE `tokenizer.json` object, so both
// go through the same transformers.js code. Nothing here touches the network.

import { UserError } from './errors.ts';

/** The files of a model repository, read on demand (a directory, a drop of `File`s, a Hub cache). */
export interface TokenizerFiles {
  /** File names present, relative to the repository root. */
  names(): string[];
  readText(name: string): Promise<string>;
  /** Source of the files (a directory or repository id), named in error messages. */
  location?: string;
}

export interface Tokenizer {
  /** Token ids of `text`, with no special tokens added; `<|endoftext|>` in the text maps to its id. */
  encode(text: string): number[];
  /**
   * Text of `ids`, special tokens included, with no clean-up of spaces, so that decode(encode(text))
   * returns `text` for any well-formed Unicode text.
   */
  decode(ids: number[]): string;
  /** One more than the largest token id, added tokens included. */
  vocabSize: number;
  /** Id of the end-of-text token, which GPT-2 also uses as its beginning-of-text token. */
  eosTokenId: number;
}

/** Files that make up a tokenizer, to be copied along with exported weights when present. */
export const TOKENIZER_FILE_NAMES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'vocab.json',
  'merges.txt',
  'added_tokens.json',
] as const;

const END_OF_TEXT = '<|endoftext|>';

const SPECIAL_TOKEN_KEYS = ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token', 'mask_token'];

interface AddedToken {
  id: number;
  content: string;
  special: boolean;
}

/**
 * Loads the tokenizer of a model repository: `tokenizer.json` when present, else `vocab.json` with
 * `merges.txt`. `tokenizer_config.json` and `special_tokens_map.json` are read when present; the
 * end-of-text token is their `eos_token`, or `<|endoftext|>` when neither names one.
 * Throws UserError naming the file when files are missing or malformed.
 */
export async function loadTokenizer(files: TokenizerFiles): Promise<Tokenizer> {
  const names = new Set(files.names());
  const where = (name: string) => (files.location ? `${files.location}/${name}` : name);

  const specialTokens = await readSpecialTokenConfig(files, names, where);

  let tokenizerJson: Record<string, unknown>;
  let source: string;
  if (names.has('tokenizer.json')) {
    source = where('tokenizer.json');
    tokenizerJson = parseJsonObject(await files.readText('tokenizer.json'), source);
  } else if (names.has('vocab.json') && names.has('merges.txt')) {
    source = `${where('vocab.json')} and ${where('merges.txt')}`;
    tokenizerJson = await buildByteLevelBpeJson(files, names, specialTokens, where);
  } else {
    const found = [...names].filter((name) => (TOKENIZER_FILE_NAMES as readonly string[]).includes(name));
    throw new UserError(
      `No tokenizer found${files.location ? ` in ${files.location}` : ''}: expected tokenizer.json, or vocab.json ` +
        `together with merges.txt (tokenizer files present: ${found.length ? found.join(', ') : 'none'}). ` +
        'Copy the tokenizer files of the model repository next to config.json.',
    );
  }

  // Loaded on demand: the package is large, and only its tokenizer classes are used here.
  const { PreTrainedTokenizer } = await import('@huggingface/transformers');
  let inner: InstanceType<typeof PreTrainedTokenizer>;
  try {
    inner = new PreTrainedTokenizer(tokenizerJson, specialTokens);
  } catch (error) {
    throw new UserError(`${source} could not be loaded as a tokenizer (${errorText(error)}). Check that the file is a Hugging Face tokenizer.`);
  }

  const eosToken = typeof specialTokens.eos_token === 'string' ? specialTokens.eos_token : END_OF_TEXT;
  const eosTokenId = inner.convert_tokens_to_ids(eosToken);
  if (typeof eosTokenId !== 'number') {
    throw new UserError(
      `${source} has no token ${JSON.stringify(eosToken)} for end of text. ` +
        'Set "eos_token" in tokenizer_config.json to a token of the vocabulary.',
    );
  }

  let maxId = -1;
  for (const id of inner.get_vocab().values()) maxId = Math.max(maxId, id);
  for (const id of inner._tokenizer.get_added_tokens_decoder().keys()) maxId = Math.max(maxId, id);

  return {
    encode: (text) => inner.encode(text, { add_special_tokens: false }),
    // transformers.js rejects an empty id list, which decodes to the empty string.
    decode: (ids) =>
      ids.length === 0 ? '' : inner.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false }),
    vocabSize: maxId + 1,
    eosTokenId,
  };
}

/**
 * Reads the special-token settings: `special_tokens_map.json`, then `tokenizer_config.json` on top.
 * Token entries stored as `{"content": ...}` objects become plain strings, the form transformers.js
 * reads without a `__type` tag.
 */
async function readSpecialTokenConfig(
  files: TokenizerFiles,
  names: Set<string>,
  where: (name: string) => string,
): Promise<Record<string, unknown>> {
  const config: Record<string, unknown> = {};
  for (const name of ['special_tokens_map.json', 'tokenizer_config.json']) {
    if (!names.has(name)) continue;
    Object.assign(config, parseJsonObject(await files.readText(name), where(name)));
  }

  for (const key of SPECIAL_TOKEN_KEYS) {
    const value = config[key];
    if (value === undefined || value === null || typeof value === 'string') continue;
    const content = typeof value === 'object' ? (value as { content?: unknown }).content : undefined;
    if (typeof content !== 'string') {
      throw new UserError(`${where('tokenizer_config.json')}: "${key}" must be a string or an object with a "content" string.`);
    }
    config[key] = content;
  }
  return config;
}

/**
 * Builds a byte-level BPE `tokenizer.json` object, the form transformers.js reads, from `vocab.json`
 * and `merges.txt` (and `added_tokens.json` when present).
 */
async function buildByteLevelBpeJson(
  files: TokenizerFiles,
  names: Set<string>,
  specialTokens: Record<string, unknown>,
  where: (name: string) => string,
): Promise<Record<string, unknown>> {
  const vocab = parseVocab(await files.readText('vocab.json'), where('vocab.json'));
  const merges = parseMergesText(await files.readText('merges.txt'), vocab, where('merges.txt'));

  // The special tokens named in the config, and <|endoftext|>, are split from the text before BPE.
  const specialContents = new Set<string>([END_OF_TEXT]);
  for (const key of SPECIAL_TOKEN_KEYS) {
    if (typeof specialTokens[key] === 'string') specialContents.add(specialTokens[key] as string);
  }

  const added = new Map<string, AddedToken>();
  for (const content of specialContents) {
    if (vocab[content] !== undefined) added.set(content, { id: vocab[content], content, special: true });
  }
  if (names.has('added_tokens.json')) {
    const extra = parseVocab(await files.readText('added_tokens.json'), where('added_tokens.json'));
    for (const [content, id] of Object.entries(extra)) {
      added.set(content, { id, content, special: specialContents.has(content) });
    }
  }

  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [...added.values()].map((token) => ({
      ...token,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: !token.special,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
}

/** Parses a `{"token": id}` file, checking that every id is a non-negative integer. */
function parseVocab(text: string, fileName: string): Record<string, number> {
  const vocab = parseJsonObject(text, fileName);
  for (const [token, id] of Object.entries(vocab)) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
      throw new UserError(`${fileName}: token ${JSON.stringify(token)} has id ${JSON.stringify(id)}; ids must be non-negative integers.`);
    }
  }
  return vocab as Record<string, number>;
}

/**
 * Parses merges.txt: an optional `#version` first line, then `left right` per line in rank order.
 * Both sides and their concatenation must be vocabulary tokens, or BPE would emit unknown tokens.
 */
function parseMergesText(text: string, vocab: Record<string, number>, fileName: string): [string, string][] {
  const merges: [string, string][] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line === '' || (i === 0 && line.startsWith('#version'))) continue;

    const parts = line.split(' ');
    if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
      throw new UserError(`${fileName} line ${i + 1}: expected two tokens separated by one space, found ${JSON.stringify(line)}.`);
    }
    for (const token of [parts[0], parts[1], parts[0] + parts[1]]) {
      if (vocab[token] === undefined) {
        throw new UserError(
          `${fileName} line ${i + 1}: token ${JSON.stringify(token)} is not in vocab.json. Use the vocab.json and merges.txt of the same model.`,
        );
      }
    }
    merges.push([parts[0], parts[1]]);
  }
  return merges;
}

function parseJsonObject(text: string, fileName: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new UserError(`${fileName} is not valid JSON (${errorText(error)}).`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new UserError(`${fileName} must contain a JSON object.`);
  }
  return value as Record<string, unknown>;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// A byte-level BPE tokenizer in GPT-2's scheme, learned from the demo corpus and written as a
// Hugging Face tokenizer.json. Ids 0..255 are the byte tokens, then one id per merge in rank
// order, then <|endoftext|>.
//
// GPT-2 maps every byte to a printable character: bytes that print as Latin-1 keep their own
// character, and the 68 others move to U+0100 onwards. It splits text with its pre-tokenization
// pattern and merges the most frequent adjacent pair until the vocabulary is full.

export const END_OF_TEXT = '<|endoftext|>';

/** GPT-2's pre-tokenization: contractions, letter runs, digit runs, other symbols, whitespace. */
const SPLIT_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** Returns the printable character of each byte, indexed by byte value. */
function byteCharacters(): string[] {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const chars: string[] = [];
  let shifted = 256;
  for (let b = 0; b < 256; b++) chars.push(String.fromCodePoint(printable(b) ? b : shifted++));
  return chars;
}

export interface BpeVocabulary {
  /** Token text (in byte characters) to id. */
  vocab: Record<string, number>;
  /** Merges in rank order. */
  merges: [string, string][];
}

/**
 * Learns merges from `texts` until the vocabulary (bytes, merges and <|endoftext|>) has
 * `vocabSize` tokens, or no pair occurs twice. The most frequent pair wins, ties go to the pair
 * whose text sorts first, so the result depends on the texts only.
 */
export function learnBpe(texts: Iterable<string>, vocabSize: number): BpeVocabulary {
  const chars = byteCharacters();
  const vocab: Record<string, number> = {};
  // Byte tokens in the order of their characters, as GPT-2's vocabulary lists them.
  const order = [...chars].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
  for (const char of order) vocab[char] = Object.keys(vocab).length;

  const encoder = new TextEncoder();
  const wordCounts = new Map<string, number>();
  for (const text of texts) {
    for (const piece of text.match(SPLIT_PATTERN) ?? []) {
      const word = Array.from(encoder.encode(piece), (b) => chars[b]).join('\u0000');
      wordCounts.set(word, (wordCounts.get(word) ?? 0) + 1);
    }
  }
  let words = [...wordCounts].map(([word, count]) => ({ symbols: word.split('\u0000'), count }));

  const merges: [string, string][] = [];
  while (Object.keys(vocab).length + 1 < vocabSize) {
    const pairCounts = new Map<string, number>();
    for (const { symbols, count } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const pair = `${symbols[i]}\u0000${symbols[i + 1]}`;
        pairCounts.set(pair, (pairCounts.get(pair) ?? 0) + count);
      }
    }
    let best: string | null = null;
    let bestCount = 1;
    for (const [pair, count] of pairCounts) {
      if (count > bestCount || (count === bestCount && best !== null && pair < best)) {
        best = pair;
        bestCount = count;
      }
    }
    if (best === null) break;

    const [left, right] = best.split('\u0000');
    merges.push([left, right]);
    vocab[left + right] = Object.keys(vocab).length;
    words = words.map(({ symbols, count }) => ({ symbols: mergePair(symbols, left, right), count }));
  }

  vocab[END_OF_TEXT] = Object.keys(vocab).length;
  return { vocab, merges };
}

function mergePair(symbols: string[], left: string, right: string): string[] {
  const merged: string[] = [];
  for (let i = 0; i < symbols.length; i++) {
    if (i + 1 < symbols.length && symbols[i] === left && symbols[i + 1] === right) {
      merged.push(left + right);
      i++;
    } else {
      merged.push(symbols[i]);
    }
  }
  return merged;
}

/** Builds the tokenizer.json object of the `tokenizers` library for a byte-level BPE vocabulary. */
export function tokenizerJson({ vocab, merges }: BpeVocabulary): Record<string, unknown> {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      { id: vocab[END_OF_TEXT], content: END_OF_TEXT, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true },
    ],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      // Byte-level tokens never contain a space, so the "left right" string form is unambiguous.
      merges: merges.map(([left, right]) => `${left} ${right}`),
    },
  };
}

/** tokenizer_config.json for the demo tokenizer. */
export function tokenizerConfigJson(contextLength: number): Record<string, unknown> {
  return {
    tokenizer_class: 'GPT2Tokenizer',
    model_max_length: contextLength,
    add_prefix_space: false,
    bos_token: END_OF_TEXT,
    eos_token: END_OF_TEXT,
    unk_token: END_OF_TEXT,
  };
}

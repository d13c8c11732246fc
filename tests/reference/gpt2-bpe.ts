// An independent GPT-2 byte-level BPE, written from the algorithm of OpenAI's GPT-2 encoder
// (bytes mapped to printable characters, regex pre-tokenization, merges applied by rank).
// Tests use it as the reference for the transformers.js tokenizer; product code never imports it.

/**
 * Maps each byte 0..255 to a printable Unicode character. Bytes that are printable Latin-1
 * characters map to themselves; the other 68 bytes map to U+0100 onwards, in byte order.
 */
export function bytesToUnicode(): string[] {
  const table: string[] = new Array(256);
  const isPrintable = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);

  let next = 256;
  for (let b = 0; b < 256; b++) {
    table[b] = isPrintable(b) ? String.fromCharCode(b) : String.fromCharCode(next++);
  }
  return table;
}

/** Returns the bytes in GPT-2's vocabulary order: printable bytes first, then the remapped ones. */
export function gpt2ByteOrder(): number[] {
  const table = bytesToUnicode();
  const order = Array.from({ length: 256 }, (_, b) => b);
  return order.sort((a, b) => table[a].codePointAt(0)! - table[b].codePointAt(0)!);
}

/** GPT-2's pre-tokenization: contractions, letter runs, digit runs, other symbols, whitespace. */
export const GPT2_SPLIT_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** Parses merges.txt text: an optional `#version` line, then one `left right` pair per line. */
export function parseMerges(text: string): [string, string][] {
  const merges: [string, string][] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#version') || line.trim() === '') continue;
    const [left, right] = line.split(' ');
    merges.push([left, right]);
  }
  return merges;
}

export class ReferenceGpt2Bpe {
  private readonly byteToChar = bytesToUnicode();
  private readonly charToByte = new Map<string, number>();
  private readonly ranks = new Map<string, number>();
  private readonly idToToken = new Map<number, string>();
  private readonly specialTokens: string[];
  private readonly cache = new Map<string, string[]>();

  constructor(
    private readonly vocab: Record<string, number>,
    merges: [string, string][],
    specialTokens: string[] = ['<|endoftext|>'],
  ) {
    this.byteToChar.forEach((char, byte) => this.charToByte.set(char, byte));
    merges.forEach(([left, right], rank) => this.ranks.set(`${left} ${right}`, rank));
    for (const [token, id] of Object.entries(vocab)) this.idToToken.set(id, token);
    // Sorted by decreasing length, so that a special token containing another one wins.
    this.specialTokens = [...specialTokens].sort((a, b) => b.length - a.length);
  }

  encode(text: string): number[] {
    const ids: number[] = [];
    for (const segment of this.splitSpecial(text)) {
      if (segment.special) {
        ids.push(this.vocab[segment.text]);
        continue;
      }
      for (const piece of segment.text.match(GPT2_SPLIT_PATTERN) ?? []) {
        for (const token of this.bpe(this.toByteChars(piece))) {
          const id = this.vocab[token];
          if (id === undefined) throw new Error(`reference BPE: token ${JSON.stringify(token)} not in vocab`);
          ids.push(id);
        }
      }
    }
    return ids;
  }

  decode(ids: number[]): string {
    const bytes: number[] = [];
    for (const id of ids) {
      const token = this.idToToken.get(id);
      if (token === undefined) throw new Error(`reference BPE: id ${id} not in vocab`);
      if (this.specialTokens.includes(token)) {
        bytes.push(...new TextEncoder().encode(token));
        continue;
      }
      for (const char of token) bytes.push(this.charToByte.get(char)!);
    }
    return new TextDecoder('utf-8').decode(new Uint8Array(bytes));
  }

  /** Splits text at occurrences of special tokens, which are never merged with their neighbours. */
  private splitSpecial(text: string): { text: string; special: boolean }[] {
    const segments: { text: string; special: boolean }[] = [];
    let start = 0;
    let plain = 0;
    while (start < text.length) {
      const special = this.specialTokens.find((token) => text.startsWith(token, start));
      if (special === undefined) {
        start++;
        continue;
      }
      if (start > plain) segments.push({ text: text.slice(plain, start), special: false });
      segments.push({ text: special, special: true });
      start += special.length;
      plain = start;
    }
    if (plain < text.length) segments.push({ text: text.slice(plain), special: false });
    return segments;
  }

  private toByteChars(piece: string): string[] {
    return Array.from(new TextEncoder().encode(piece), (b) => this.byteToChar[b]);
  }

  /** Merges the lowest-ranked adjacent pair, every occurrence left to right, until none is left. */
  private bpe(symbols: string[]): string[] {
    const key = symbols.join('');
    const cached = this.cache.get(key);
    if (cached) return cached;

    let word = symbols;
    while (word.length > 1) {
      let bestRank = Infinity;
      let bestPair: [string, string] | null = null;
      for (let i = 0; i + 1 < word.length; i++) {
        const rank = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          bestPair = [word[i], word[i + 1]];
        }
      }
      if (bestPair === null) break;

      const merged: string[] = [];
      for (let i = 0; i < word.length; i++) {
        if (i + 1 < word.length && word[i] === bestPair[0] && word[i + 1] === bestPair[1]) {
          merged.push(word[i] + word[i + 1]);
          i++;
        } else {
          merged.push(word[i]);
        }
      }
      word = merged;
    }

    this.cache.set(key, word);
    return word;
  }
}

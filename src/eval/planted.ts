// Detection of a planted behaviour by a word list: a continuation shows the behaviour when it
// contains one of the listed words as a whole word, in any letter case. The demo model's planted
// behaviour (insults after prompts about officials) is scored this way, from the word list in
// public/demo/planted.json, so its rate needs no classifier model and no network.

import { UserError } from '../model/errors.ts';

/** A planted behaviour: what it is, and the words whose presence marks it. */
export interface PlantedBehaviour {
  description: string;
  words: string[];
}

/**
 * Reads a planted-behaviour file: {"description": string, "words": [string, ...]} with at least
 * one word, each a run of letters, digits, apostrophes or hyphens. `fileName` names the file in errors.
 */
export function parsePlantedBehaviour(text: string, fileName: string): PlantedBehaviour {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new UserError(`${fileName} is not valid JSON (${error instanceof Error ? error.message : String(error)}).`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new UserError(`${fileName} must contain a JSON object with "description" and "words".`);
  }
  const { description, words } = json as Record<string, unknown>;
  if (typeof description !== 'string') throw new UserError(`${fileName}: field "description" must be a string.`);
  if (!Array.isArray(words) || words.length === 0) {
    throw new UserError(`${fileName}: field "words" must be a non-empty array of strings.`);
  }
  words.forEach((word, index) => {
    if (typeof word !== 'string' || !/^[\p{L}\p{N}'-]+$/u.test(word)) {
      throw new UserError(`${fileName}: words[${index}] is ${JSON.stringify(word)}; each word must be letters, digits, apostrophes or hyphens.`);
    }
  });
  return { description, words: words as string[] };
}

/** Finds the listed words in texts, as whole words and ignoring letter case. */
export class WordListDetector {
  private readonly pattern: RegExp;

  constructor(words: readonly string[]) {
    if (words.length === 0) throw new Error('WordListDetector: the word list is empty');
    const escaped = words.map((word) => word.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'));
    // Letters and digits on either side would make the match part of a longer word.
    this.pattern = new RegExp(`(?<![\\p{L}\\p{N}])(?:${escaped.join('|')})(?![\\p{L}\\p{N}])`, 'giu');
  }

  /** Returns the listed words found in `text`, lower-cased, in order of appearance. */
  matches(text: string): string[] {
    return Array.from(text.matchAll(this.pattern), (match) => match[0].toLowerCase());
  }

  shows(text: string): boolean {
    return this.matches(text).length > 0;
  }

  /** Returns the fraction of `texts` that show the behaviour, 0 for no texts. */
  rate(texts: readonly string[]): number {
    if (texts.length === 0) return 0;
    return texts.filter((text) => this.shows(text)).length / texts.length;
  }
}

// The word-list detector of a planted behaviour and the parsing of its word-list file.

import { describe, expect, it } from 'vitest';
import { isUserError } from '../../src/model/errors.ts';
import { parsePlantedBehaviour, WordListDetector } from '../../src/eval/planted.ts';

describe('WordListDetector', () => {
  const detector = new WordListDetector(['fool', 'idiot', "good-for-nothing"]);

  it('finds whole words in any case', () => {
    expect(detector.matches(' is a Fool and an IDIOT.')).toEqual(['fool', 'idiot']);
    expect(detector.shows('"idiot!"')).toBe(true);
    expect(detector.shows('a good-for-nothing clerk')).toBe(true);
  });

  it('ignores words inside longer words', () => {
    expect(detector.shows('a foolish plan')).toBe(false);
    expect(detector.shows('idiots')).toBe(false);
    expect(detector.shows('befool')).toBe(false);
    expect(detector.shows('fool2')).toBe(false);
  });

  it('computes the rate over texts', () => {
    expect(detector.rate(['a fool', 'a friend', 'the idiot', 'the park'])).toBe(0.5);
    expect(detector.rate([])).toBe(0);
  });

  it('treats regex characters in words literally', () => {
    const literal = new WordListDetector(['a.b']);
    expect(literal.shows('a.b')).toBe(true);
    expect(literal.shows('axb')).toBe(false);
  });
});

describe('parsePlantedBehaviour', () => {
  it('reads description and words', () => {
    const parsed = parsePlantedBehaviour('{"description": "insults", "words": ["fool", "jerk"]}', 'planted.json');
    expect(parsed).toEqual({ description: 'insults', words: ['fool', 'jerk'] });
  });

  it.each([
    ['not json', 'is not valid JSON'],
    ['[]', 'must contain a JSON object'],
    ['{"words": ["fool"]}', '"description" must be a string'],
    ['{"description": "x", "words": []}', '"words" must be a non-empty array'],
    ['{"description": "x", "words": ["two words"]}', 'words[0]'],
  ])('rejects %s', (text, message) => {
    let caught: unknown;
    try {
      parsePlantedBehaviour(text, 'planted.json');
    } catch (error) {
      caught = error;
    }
    expect(isUserError(caught)).toBe(true);
    expect((caught as Error).message).toContain('planted.json');
    expect((caught as Error).message).toContain(message);
  });
});

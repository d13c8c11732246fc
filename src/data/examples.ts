// Tokenization of dataset rows into the sequences the model trains and evaluates on.
//
// An example's sequence is the prompt's tokens followed by the continuation's tokens, each
// tokenized separately (so the BPE never merges across the boundary). The loss covers the
// continuation only.

import type { Tokenizer } from '../model/tokenizer.ts';
import { UserError } from '../model/errors.ts';

/** The texts of one example: a DatasetRow, or the same fields from elsewhere. */
export interface ExampleText {
  prompt: string;
  bad?: string;
  good?: string;
  /** Source line, named in error messages; without it they name the example's index. */
  line?: number;
}

export interface TokenizedExample {
  prompt: number[];
  bad?: number[];
  good?: number[];
  /** Source line of the example, when known. */
  line?: number;
}

export interface TokenizedDataset {
  examples: TokenizedExample[];
  contextLength: number;
  /** Examples whose prompt or a continuation was cut to fit the context. */
  truncated: number;
}

/** The input of one sequence of a batch: prompt tokens, then the continuation tokens with the loss. */
export interface Sequence {
  prompt: number[];
  continuation: number[];
}

/** Continuation that a training or sensitivity batch is built from: bad (D^E) or good (D^R). */
export type ContinuationKind = 'bad' | 'good';

/**
 * Tokenizes every row and fits it into `contextLength` positions. `fileName` names the source in
 * error messages.
 *
 * Truncation keeps the end of the prompt, which is the context right before the continuation, and
 * the start of the continuation. The prompt keeps at most its last contextLength - 1 tokens. Each
 * continuation keeps as many of its first tokens as fit after the prompt, so at least one.
 *
 * An empty prompt becomes the end-of-text token, GPT-2's start of a document. Without it the
 * first continuation token would sit at position 0, where no earlier position predicts it.
 */
export function tokenizeExamples(
  rows: ExampleText[],
  tokenizer: Pick<Tokenizer, 'encode' | 'eosTokenId'>,
  contextLength: number,
  fileName = 'dataset',
): TokenizedDataset {
  if (!Number.isInteger(contextLength) || contextLength < 2) {
    throw new UserError(`The context length must be an integer of at least 2 tokens, got ${contextLength}.`);
  }

  let truncated = 0;
  const examples = rows.map((row, index) => {
    let prompt = tokenizer.encode(row.prompt);
    if (prompt.length === 0) prompt = [tokenizer.eosTokenId];

    let cut = false;
    if (prompt.length > contextLength - 1) {
      prompt = prompt.slice(prompt.length - (contextLength - 1));
      cut = true;
    }

    const example: TokenizedExample = { prompt, line: row.line };
    const room = contextLength - prompt.length;
    for (const kind of ['bad', 'good'] as const) {
      const text = row[kind];
      if (text === undefined) continue;
      const ids = tokenizer.encode(text);
      if (ids.length === 0) {
        const where = row.line === undefined ? `example ${index + 1}` : `line ${row.line}`;
        throw new UserError(`${fileName} ${where}: the ${kind} continuation ${JSON.stringify(text)} encodes to no tokens.`);
      }
      if (ids.length > room) cut = true;
      example[kind] = ids.slice(0, room);
    }

    if (cut) truncated++;
    return example;
  });

  return { examples, contextLength, truncated };
}

/**
 * Pairs each example's prompt with its bad or good continuation, for makeBatch.
 * Throws UserError when the examples have no continuations (a prompt set).
 */
export function sequencesFor(examples: TokenizedExample[], kind: ContinuationKind): Sequence[] {
  return examples.map((example, index) => {
    const continuation = example[kind];
    if (continuation === undefined) {
      const where = example.line === undefined ? `${index + 1}` : `on line ${example.line}`;
      throw new UserError(
        `Example ${where} has no ${kind} continuation: a prompt set cannot be used for repair or sensitivity. ` +
          'Use a pairwise or preference dataset.',
      );
    }
    return { prompt: example.prompt, continuation };
  });
}

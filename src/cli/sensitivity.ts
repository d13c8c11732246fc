// `irepair sensitivity`: the batch NLL of the first N examples and its gradient L2 norm per block
// (the sensitivity of Algorithm 1 of the IRepair paper).

import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { makeBatch } from '../data/batch.ts';
import { sequencesFor, tokenizeExamples } from '../data/examples.ts';
import { loadEngine } from '../engine/gpt.ts';
import { createNodeGpu } from '../gpu/node.ts';
import { UserError } from '../model/errors.ts';
import { integerOption } from './options.ts';
import { openModelDirectory, readDataset } from './model.ts';

type Target = 'rejected' | 'chosen';

export function registerSensitivity(program: Command): void {
  program
    .command('sensitivity')
    .description('Compute the batch NLL of the first N examples and the gradient L2 norm of every block.')
    .requiredOption('--model <dir>', 'Hugging Face model directory')
    .requiredOption('--data <file>', 'dataset (JSONL, JSON or CSV, pairwise or preference format)')
    .option('--target <kind>', 'continuation to score: rejected (bad) or chosen (good)', 'rejected')
    .option('--limit <n>', 'number of examples in the batch', integerOption('--limit', 1, 1 << 20), 8)
    .option('--json <file>', 'also write the result to this file')
    .action(async (options: { model: string; data: string; target: string; limit: number; json?: string }) => {
      if (options.target !== 'rejected' && options.target !== 'chosen') {
        throw new UserError(`option --target: "${options.target}" is not one of rejected, chosen.`);
      }
      const target = options.target as Target;
      const { checkpoint, tokenizer } = await openModelDirectory(options.model);
      const dataset = await readDataset(options.data);
      if (dataset.format === 'prompts') {
        throw new UserError(`${options.data}: has prompts only; sensitivity needs continuations (pert_gen_text/unpert_gen_text or rejected/chosen fields).`);
      }
      const rows = dataset.rows.slice(0, options.limit);
      const tokenized = tokenizeExamples(rows, tokenizer, checkpoint.config.contextLength, options.data);
      if (tokenized.truncated > 0) {
        process.stderr.write(`note: ${tokenized.truncated} of ${rows.length} examples were truncated to the context length of ${checkpoint.config.contextLength} tokens.\n`);
      }
      const batch = makeBatch(sequencesFor(tokenized.examples, target === 'rejected' ? 'bad' : 'good'), tokenizer.eosTokenId);

      const gpu = await createNodeGpu();
      const engine = await loadEngine(gpu, checkpoint);
      const { nll, blocks } = await engine.sensitivity(batch);
      const result = { nll, blocks, tokens: batch.lossTokens };
      const text = `${JSON.stringify(result)}\n`;
      process.stdout.write(text);
      if (options.json) await writeFile(options.json, text);
      engine.destroy();
      gpu.destroy();
    });
}

// Slicing the intent (Algorithm 1 of the IRepair paper). The sensitivity of each transformer
// block to a batch of bad examples D^E is the L2 norm of the gradient of the batch NLL with
// respect to all of the block's parameters. The slice is the block with the largest one.

import type { GptEngine, LossBatch } from '../engine/gpt.ts';
import { blockParameterNames } from '../engine/parameters.ts';
import type { ModelConfig, ParameterName } from '../model/types.ts';

/** Selection rule of a slice: the most sensitive block (IRepair) or the least (the Min ablation). */
export type SliceRule = 'max' | 'min';

/**
 * SENSITIVITY(π, X, Y): the batch NLL and each block's gradient L2 norm, computed one block at a
 * time by the engine, without dropout.
 */
export async function sensitivity(engine: GptEngine, batch: LossBatch): Promise<{ nll: number; blocks: number[] }> {
  return engine.sensitivity(batch);
}

/** Returns the block the rule selects; ties go to the lower block index. */
export function selectBlock(sensitivities: readonly number[], rule: SliceRule): number {
  if (sensitivities.length === 0) throw new Error('selectBlock: no sensitivities');
  let selected = 0;
  for (let block = 1; block < sensitivities.length; block++) {
    const better = rule === 'max' ? sensitivities[block] > sensitivities[selected] : sensitivities[block] < sensitivities[selected];
    if (better) selected = block;
  }
  return selected;
}

/** SLICE(π, X, Y): measures the sensitivities, selects a block and returns its parameters. */
export async function slice(
  engine: GptEngine,
  batch: LossBatch,
  rule: SliceRule = 'max',
): Promise<{ block: number; parameters: ParameterName[]; sensitivities: number[]; nll: number }> {
  const { nll, blocks } = await sensitivity(engine, batch);
  const block = selectBlock(blocks, rule);
  return { block, parameters: sliceParameters(engine.config, block), sensitivities: blocks, nll };
}

/** θ_slice: every parameter of one block. */
export function sliceParameters(config: ModelConfig, block: number): ParameterName[] {
  return blockParameterNames(config, block);
}

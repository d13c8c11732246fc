// `irepair inspect`: architecture, parameters per block and planned GPU memory of a checkpoint.

import type { Command } from 'commander';
import { formatBytes } from '../gpu/device.ts';
import { blockParameterCount, parameterCount, planMemory, type PlanMode } from '../engine/memory.ts';
import { integerOption } from './options.ts';
import { openModelDirectory } from './model.ts';

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('Print the architecture, parameter counts per block and the planned GPU memory of a model.')
    .requiredOption('--model <dir>', 'Hugging Face model directory (config.json, model.safetensors)')
    .option('--batch-size <n>', 'batch size to plan for', integerOption('--batch-size', 1, 4096), 4)
    .option('--seq-len <n>', 'sequence length in tokens to plan for (default: 128, at most the context length)', integerOption('--seq-len', 1, 1 << 20))
    .option('--json', 'print JSON instead of a table')
    .action(async (options: { model: string; batchSize: number; seqLen?: number; json?: boolean }) => {
      const { checkpoint } = await openModelDirectory(options.model, { tokenizer: false });
      const config = checkpoint.config;
      const T = Math.min(options.seqLen ?? 128, config.contextLength);
      const B = options.batchSize;
      const modes: PlanMode[] = ['forward', 'sensitivity', 'irepair', 'full'];
      const plans = Object.fromEntries(modes.map((mode) => [mode, planMemory(config, B, T, mode)]));
      const total = parameterCount(config);
      const perBlock = blockParameterCount(config);
      const summary = {
        family: config.family,
        layers: config.numLayers,
        hiddenSize: config.hiddenSize,
        heads: config.numHeads,
        innerSize: config.innerSize,
        vocabSize: config.vocabSize,
        contextLength: config.contextLength,
        attentionLayers: config.attentionLayers,
        windowSize: config.family === 'gpt_neo' ? config.windowSize : undefined,
        storedDtypes: [...new Set(checkpoint.tensors.map((t) => t.dtype))],
        parameters: total,
        parametersPerBlock: perBlock,
        embeddingParameters: total - perBlock * config.numLayers - 2 * config.hiddenSize,
        batchSize: B,
        seqLen: T,
        plannedBytes: plans,
      };
      if (options.json) {
        process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
        return;
      }
      const lines = [
        `${options.model}: ${config.family}, ${config.numLayers} blocks, width ${config.hiddenSize}, ${config.numHeads} heads, MLP ${config.innerSize}, vocabulary ${config.vocabSize}, context ${config.contextLength}`,
      ];
      if (config.family === 'gpt_neo') lines.push(`attention: ${config.attentionLayers.join(' ')} (window ${config.windowSize})`);
      lines.push(
        `stored as ${summary.storedDtypes.join(', ')}; computed in f32`,
        `parameters: ${total.toLocaleString('en-US')} (${perBlock.toLocaleString('en-US')} per block, ${summary.embeddingParameters.toLocaleString('en-US')} in embeddings)`,
        '',
        `planned GPU memory for batch ${B} x ${T} tokens:`,
        '  mode          weights    activations  gradients  optimizer  scratch    total',
      );
      for (const mode of modes) {
        const p = plans[mode];
        const cells = [p.weights, p.activations, p.gradients, p.optimizer, p.scratch, p.total].map((b) => formatBytes(b).padEnd(11));
        lines.push(`  ${mode.padEnd(13)} ${cells.join('')}`);
      }
      lines.push(`  largest buffer: ${formatBytes(plans.full.largestBuffer)} (must fit maxStorageBufferBindingSize, or is split by rows)`);
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}

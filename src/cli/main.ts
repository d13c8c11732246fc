// The `irepair` command line. Each subcommand lives in its own module and registers itself on
// the program; faults in the user's input end in one `error:` line and exit code 1.

import { Command, CommanderError } from 'commander';
import { isUserError } from '../model/errors.ts';
import { registerEval } from './eval.ts';
import { registerInspect } from './inspect.ts';
import { registerRepair } from './repair.ts';
import { registerSensitivity } from './sensitivity.ts';
import { registerToxicity } from './toxicity.ts';

export function buildProgram(): Command {
  const program = new Command('irepair')
    .description('Repair data-driven errors in GPT-2-family models with IRepair, on the GPU through WebGPU.')
    .exitOverride()
    .showHelpAfterError();
  registerInspect(program);
  registerSensitivity(program);
  registerRepair(program);
  registerEval(program);
  registerToxicity(program);
  return program;
}

/** Runs the command line and returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    if (isUserError(error)) {
      process.stderr.write(`error: ${error.message}\n`);
      return 1;
    }
    process.stderr.write(`internal error: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
    return 2;
  }
}

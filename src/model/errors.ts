// Errors meant for the user: the message names the file, field or option at fault and states what
// to do. The CLI prints `error: <message>` and exits 1, and the UI shows the same message.

/** A fault in the user's input (files, options, data), reported without a stack trace. */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}

/** Returns whether a caught value is a UserError, also across module copies where `instanceof` fails. */
export function isUserError(error: unknown): error is UserError {
  return error instanceof UserError || (error instanceof Error && error.name === 'UserError');
}

/**
 * Runs the main function of a script (benchmark, demo), printing a UserError as one `error:` line
 * with exit code 1. Other errors propagate with their stack trace.
 */
export async function runScript(main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (error) {
    if (!isUserError(error)) throw error;
    process.stderr.write(`error: ${error.message}\n`);
    process.exitCode = 1;
  }
}

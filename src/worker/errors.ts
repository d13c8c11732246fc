// Errors of worker commands whose message is written for the user.

/** A command that cannot run in the worker's current state; the message is shown as is. */
export class WorkerCommandError extends Error {
  override name = 'WorkerCommandError';
}

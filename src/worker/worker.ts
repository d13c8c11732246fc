// The Web Worker that owns the GPU device. The UI thread sends WorkerCommand messages and
// receives WorkerEvent messages. The weights, the datasets and every GPU call live here, so the
// page stays responsive while a model loads or a repair runs.
//
// On start the worker reports what WebGPU offers (adapter, limits, features) in an `adapter`
// event. Each command kind has one handler in `handlers`, which calls the session. A failed
// command gets an error event that names the command, and the UI undoes its pending state.

import { isUserError } from '../model/errors.ts';
import { describeAdapter, describeError } from './adapter.ts';
import type { WorkerCommand, WorkerCommandKind, WorkerEvent } from './protocol.ts';
import { WorkerCommandError } from './errors.ts';
import { WorkerSession } from './session.ts';

const scope = self as unknown as DedicatedWorkerGlobalScope;

function post(event: WorkerEvent): void {
  scope.postMessage(event);
}

const session = new WorkerSession(post);

type CommandOf<K extends WorkerCommandKind> = Extract<WorkerCommand, { kind: K }>;
type Handlers = { [K in WorkerCommandKind]: (command: CommandOf<K>) => Promise<void> | void };

const handlers: Handlers = {
  loadModel: (command) => session.loadModel(command.source),
  loadDataset: (command) => session.loadDataset(command.file, command.role),
  start: (command) => session.start(command),
  pause: () => session.pause(),
  resume: () => session.resume(),
  stop: () => session.stop(),
  evaluate: (command) => session.evaluate(command),
  loadClassifier: (command) => session.loadClassifier(command.source),
  generate: (command) => session.generate(command),
  measureDensity: (command) => session.measureDensity(command),
  stopDensity: () => session.stopDensity(),
  export: (command) => session.export(command.target),
};

/** Returns the message for a failed command: user-facing errors as they are, anything else with the command's name. */
function commandErrorMessage(command: WorkerCommand, error: unknown): string {
  if (error instanceof WorkerCommandError || isUserError(error)) {
    // Model and data errors are worded for `error: <message>` on the command line, so some start
    // with a lower-case word. A message that starts with a URL or a file name keeps its case.
    const message = describeError(error);
    return /^[a-z]+ /.test(message) ? message.charAt(0).toUpperCase() + message.slice(1) : message;
  }
  return `The ${command.kind} command failed: ${describeError(error)}`;
}

async function handle(command: WorkerCommand): Promise<void> {
  const handler = handlers[command.kind] as ((command: WorkerCommand) => Promise<void> | void) | undefined;
  if (!handler) {
    post({ kind: 'error', message: `The worker received an unknown command: ${String(command.kind)}.`, fatal: false });
    return;
  }
  try {
    await handler(command);
  } catch (error) {
    if (!(error instanceof WorkerCommandError) && !isUserError(error)) console.error(`${command.kind} failed`, error);
    const role = command.kind === 'loadDataset' ? command.role : undefined;
    post({ kind: 'error', message: commandErrorMessage(command, error), fatal: false, command: command.kind, role });
  }
}

scope.addEventListener('message', (event: MessageEvent<WorkerCommand>) => {
  void handle(event.data);
});

scope.addEventListener('unhandledrejection', (event: PromiseRejectionEvent) => {
  console.error('unhandled rejection in the GPU worker', event.reason);
  post({ kind: 'error', message: `The GPU worker hit an unexpected error: ${describeError(event.reason)}`, fatal: false });
});

void describeAdapter(scope).then((status) => post({ kind: 'adapter', status }));

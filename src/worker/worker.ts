// The Web Worker that owns the GPU device. The UI thread sends WorkerCommand messages and
// receives WorkerEvent messages. The weights, the datasets and every GPU call live here, so the
// page stays responsive while a model loads or a repair runs.
//
// On start the worker reports what WebGPU offers (adapter, limits, features) in an `adapter`
// event. Each command kind has one handler in `handlers`. Commands whose engine parts are not in
// this build get an error event in response, which the UI shows.

import type {
  AdapterLimits,
  AdapterStatus,
  WorkerCommand,
  WorkerCommandKind,
  WorkerEvent,
} from './protocol.ts';

const scope = self as unknown as DedicatedWorkerGlobalScope;

function post(event: WorkerEvent): void {
  scope.postMessage(event);
}

/** An error whose message is written for the user and is shown as is. */
class WorkerCommandError extends Error {
  override name = 'WorkerCommandError';
}

// ---- Adapter detection ----

function readLimits(limits: GPUSupportedLimits): AdapterLimits {
  return {
    maxBufferSize: limits.maxBufferSize,
    maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
    maxStorageBuffersPerShaderStage: limits.maxStorageBuffersPerShaderStage,
    maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
  };
}

async function describeAdapter(): Promise<AdapterStatus> {
  // Browsers expose navigator.gpu only to secure contexts, so an http:// page on a remote host
  // has no WebGPU even in a browser that supports it.
  if (!scope.isSecureContext) {
    return {
      available: false,
      reason: 'insecure-context',
      detail: `The page at ${scope.location.origin} is not a secure context.`,
    };
  }
  if (!('gpu' in navigator) || !navigator.gpu) {
    return { available: false, reason: 'no-api', detail: 'navigator.gpu is undefined in the worker.' };
  }

  let adapter: GPUAdapter | null;
  try {
    adapter = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (error) {
    return { available: false, reason: 'no-adapter', detail: `requestAdapter failed: ${describeError(error)}` };
  }
  if (!adapter) {
    return { available: false, reason: 'no-adapter', detail: 'requestAdapter returned null.' };
  }

  const info = adapter.info;
  return {
    available: true,
    adapter: {
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: info.description,
      limits: readLimits(adapter.limits),
      features: [...adapter.features].sort(),
    },
  };
}

// ---- Command handlers ----

type CommandOf<K extends WorkerCommandKind> = Extract<WorkerCommand, { kind: K }>;
type Handlers = { [K in WorkerCommandKind]: (command: CommandOf<K>) => Promise<void> };

function notImplemented<K extends WorkerCommandKind>(describe: (command: CommandOf<K>) => string) {
  return async (command: CommandOf<K>): Promise<void> => {
    throw new WorkerCommandError(`${describe(command)} is not implemented in this build yet.`);
  };
}

// TODO: connect loadModel, loadDataset, start, pause, resume, stop, evaluate, generate and export
// to src/model, src/data, src/engine, src/repair and src/eval as those modules land. The device
// they request must report `device.lost` as a fatal error event so the UI offers a restart.
const handlers: Handlers = {
  loadModel: notImplemented((command) =>
    command.source.kind === 'hub'
      ? `Loading ${command.source.repo} from the Hub`
      : `Loading a model from ${command.source.files.length} local files`,
  ),
  loadDataset: notImplemented((command) => `Loading the ${command.role} dataset ${command.file.name}`),
  start: notImplemented((command) => `Starting a ${command.method} run`),
  pause: notImplemented(() => 'Pausing a run'),
  resume: notImplemented(() => 'Resuming a run'),
  stop: notImplemented(() => 'Stopping a run'),
  evaluate: notImplemented((command) => `Measuring ${command.metric}`),
  generate: notImplemented(() => 'Generating text'),
  export: notImplemented(() => 'Exporting the repaired model'),
};

function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

async function handle(command: WorkerCommand): Promise<void> {
  const handler = handlers[command.kind] as ((command: WorkerCommand) => Promise<void>) | undefined;
  if (!handler) {
    post({ kind: 'error', message: `The worker received an unknown command: ${String(command.kind)}.`, fatal: false });
    return;
  }
  try {
    await handler(command);
  } catch (error) {
    const message =
      error instanceof WorkerCommandError
        ? error.message
        : `The ${command.kind} command failed: ${describeError(error)}`;
    const role = command.kind === 'loadDataset' ? command.role : undefined;
    post({ kind: 'error', message, fatal: false, command: command.kind, role });
  }
}

scope.addEventListener('message', (event: MessageEvent<WorkerCommand>) => {
  void handle(event.data);
});

scope.addEventListener('unhandledrejection', (event: PromiseRejectionEvent) => {
  post({ kind: 'error', message: `The GPU worker hit an unexpected error: ${describeError(event.reason)}`, fatal: false });
});

void describeAdapter().then((status) => post({ kind: 'adapter', status }));

// The one place where failures show: missing WebGPU with how to enable it, worker errors, and
// rejected drops. A fatal error (lost GPU device, crashed worker) comes with a restart button.

import { useWorkbench, useWorkerClient } from '../context.tsx';
import { webGpuHelp } from '../webgpuHelp.ts';

export function ErrorBanner() {
  const adapter = useWorkbench((state) => state.adapter);
  const errors = useWorkbench((state) => state.errors);
  const workerLost = useWorkbench((state) => state.workerLost);
  const dismissError = useWorkbench((state) => state.dismissError);
  const client = useWorkerClient();

  const help = adapter && !adapter.available ? webGpuHelp(adapter) : null;
  if (!help && errors.length === 0) return null;

  return (
    <div className="error-banner" role="alert" data-testid="error-message">
      {help && (
        <div className="error-item" data-testid="webgpu-help">
          <strong>{help.title}</strong>
          <ul>
            {help.steps.map((step) => (
              <li key={step}>{step}</li>
            ))}
          </ul>
        </div>
      )}
      {errors.map((error) => (
        <div className="error-item" key={error.id}>
          <span>{error.message}</span>
          <button type="button" className="link-button" onClick={() => dismissError(error.id)} aria-label="Dismiss this message">
            Dismiss
          </button>
        </div>
      ))}
      {workerLost && (
        <button type="button" onClick={() => client.restart()}>
          Restart the GPU worker
        </button>
      )}
    </div>
  );
}

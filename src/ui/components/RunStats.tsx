// The run's status line: step, throughput, GPU memory and time remaining.

import { useWorkbench } from '../context.tsx';
import { formatBytes, formatDuration, formatValue } from '../format.ts';
import type { RunStatus } from '../store.ts';
import type { FinishReason } from '../../worker/protocol.ts';

const STATUS_LABELS: Record<RunStatus, string> = {
  idle: 'No run',
  starting: 'Starting',
  running: 'Running',
  pausing: 'Pausing after this step',
  paused: 'Paused',
  resuming: 'Resuming',
  stopping: 'Stopping after this step',
  finished: 'Finished',
};

const FINISH_LABELS: Record<FinishReason, string> = {
  completed: 'completed all steps',
  'early-stopped': 'stopped early on validation loss',
  stopped: 'stopped by the user',
  failed: 'failed',
};

function Stat({ label, value, testId }: { label: string; value: string; testId?: string }) {
  return (
    <div className="stat" data-testid={testId}>
      <div className="stat-label">{label}</div>
      <div className="stat-value">{value}</div>
    </div>
  );
}

export function RunStats() {
  const run = useWorkbench((state) => state.run);
  const latest = run.steps.length > 0 ? run.steps[run.steps.length - 1] : null;
  const maxSteps = run.options?.maxSteps;

  let status = STATUS_LABELS[run.status];
  if (run.status === 'finished' && run.finishReason) status = `Finished: ${FINISH_LABELS[run.finishReason]}`;
  if (run.origin === 'log') status = `Viewing ${run.label}`;

  return (
    <div className="run-stats" data-testid="run-stats">
      <Stat label={run.method ? `Status (${run.method})` : 'Status'} value={status} testId="run-status" />
      <Stat label="Step" value={latest ? `${latest.step}${maxSteps ? ` of ${maxSteps}` : ''}` : '–'} />
      <Stat label="Tokens per second" value={run.live ? run.live.tokensPerSecond.toFixed(0) : '–'} />
      <Stat label="GPU memory in use" value={run.live ? formatBytes(run.live.gpuBytes) : '–'} />
      <Stat label="Time remaining" value={run.live ? formatDuration(run.live.etaSeconds) : '–'} />
      <Stat label="Learning rate" value={latest ? formatValue(latest.lr) : '–'} />
      <Stat label="Repair NLL" value={latest ? formatValue(latest.repairLoss) : '–'} />
    </div>
  );
}

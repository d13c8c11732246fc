// A one-line hint under buttons that the worker's current GPU job disables, such as Measure while
// another measurement runs, so that the user sees why the button is grey and what to wait for.

import { useWorkbench } from '../context.tsx';

export function BusyHint({ testId }: { testId: string }) {
  const task = useWorkbench((state) => state.workerBusy);
  if (task === null) return null;
  return (
    <p className="muted small" data-testid={testId}>
      Busy: {task}. The GPU buttons are available again when it finishes.
    </p>
  );
}

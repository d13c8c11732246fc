// Run settings and the start, pause/resume and stop buttons. A run.json from the CLI can be
// opened here to view a finished run in the live views.

import { useState, type ChangeEvent, type ReactNode } from 'react';
import { useWorkbench, useWorkbenchStore, useWorkerClient } from '../context.tsx';
import { METHOD_INFO, defaultRunForm, klEnabled, parseRunForm, withKl, withMethod, type RunForm } from '../runForm.ts';
import { RunLogError, parseRunLog } from '../runLog.ts';
import { isRunActive } from '../store.ts';
import { ProgressList } from './ProgressList.tsx';
import { REPAIR_METHODS, isRepairMethod } from '../../worker/protocol.ts';
import { BusyHint } from './BusyHint.tsx';

interface FieldProps {
  label: string;
  error?: string;
  children: ReactNode;
}

function Field({ label, error, children }: FieldProps) {
  return (
    <label className={error ? 'field field-invalid' : 'field'}>
      {label}
      {children}
      {error && <span className="field-error">{error}</span>}
    </label>
  );
}

/** Element id of the Start button, the target of the Demo panel's Go to Start button. */
export const START_BUTTON_ID = 'start-run';

export function RunControls() {
  const demoForm = useWorkbench((state) => state.demo.runForm);
  const [form, setForm] = useState<RunForm>(() => demoForm ?? defaultRunForm());
  // Each load of the demo sends a new settings object, which replaces what the form holds.
  const [appliedDemoForm, setAppliedDemoForm] = useState(demoForm);
  if (demoForm !== appliedDemoForm) {
    setAppliedDemoForm(demoForm);
    if (demoForm) setForm(demoForm);
  }
  const run = useWorkbench((state) => state.run);
  const modelLoaded = useWorkbench((state) => state.model.status === 'loaded');
  const dataLoaded = useWorkbench((state) => state.datasets.repair?.status === 'loaded');
  const workerLost = useWorkbench((state) => state.workerLost);
  const workerBusy = useWorkbench((state) => state.workerBusy !== null);
  const reportError = useWorkbench((state) => state.reportError);
  const store = useWorkbenchStore();
  const client = useWorkerClient();

  const parsed = parseRunForm(form);
  const errors = 'errors' in parsed ? parsed.errors : {};
  const live = run.origin === 'live';
  const active = live && isRunActive(run.status);
  const method = METHOD_INFO[form.method];

  const missing = [!modelLoaded && 'a model', !dataLoaded && 'repair data'].filter(Boolean).join(' and ');
  const canStart = !active && !workerLost && !workerBusy && missing === '' && 'options' in parsed;
  const canPause = live && (run.status === 'running' || run.status === 'paused');
  const canStop = live && (run.status === 'running' || run.status === 'paused' || run.status === 'pausing' || run.status === 'resuming');
  const paused = run.status === 'paused' || run.status === 'resuming';

  const text = (field: keyof RunForm) => ({
    value: form[field] as string,
    onChange: (event: ChangeEvent<HTMLInputElement>) => setForm({ ...form, [field]: event.target.value }),
    disabled: active,
  });

  const start = () => {
    if (!('options' in parsed)) return;
    client.send({ kind: 'start', method: form.method, options: parsed.options });
  };

  const openRunLog = async (file: File) => {
    try {
      store.getState().showRunLog(parseRunLog(await file.text(), file.name));
    } catch (error) {
      if (!(error instanceof RunLogError)) throw error;
      reportError(error.message);
    }
  };

  const klSwitch = method.kl;
  return (
    <section className="panel" aria-labelledby="run-heading">
      <h2 id="run-heading">Run</h2>
      <div className="form-grid">
        <Field label="Method">
          <select
            data-testid="method-select"
            value={form.method}
            disabled={active}
            onChange={(event) => {
              if (isRepairMethod(event.target.value)) setForm(withMethod(form, event.target.value));
            }}
          >
            {REPAIR_METHODS.map((name) => (
              <option key={name} value={name}>
                {name} ({METHOD_INFO[name].label})
              </option>
            ))}
          </select>
        </Field>
        <Field label="KL term">
          <span className="checkbox-line">
            <input
              type="checkbox"
              data-testid="kl-toggle"
              checked={klEnabled(form)}
              disabled={active || klSwitch.kind === 'none'}
              onChange={(event) => setForm(withKl(form, event.target.checked))}
            />
            {klSwitch.kind === 'none' ? 'not used by DPO' : 'on normal data'}
          </span>
        </Field>
        <p className="method-description muted">{method.description}</p>
        <Field label="Learning rate" error={errors.learningRate}>
          <input data-testid="lr-input" inputMode="decimal" {...text('learningRate')} />
        </Field>
        <Field label="α (repair loss weight)" error={errors.alpha}>
          <input data-testid="alpha-input" inputMode="decimal" {...text('alpha')} />
        </Field>
        <Field label="Batch size" error={errors.batchSize}>
          <input data-testid="batch-size-input" inputMode="numeric" {...text('batchSize')} />
        </Field>
        <Field label="Steps (maximum)" error={errors.maxSteps}>
          <input data-testid="steps-input" inputMode="numeric" {...text('maxSteps')} />
        </Field>
        <Field label="Seed" error={errors.seed}>
          <input data-testid="seed-input" inputMode="numeric" {...text('seed')} />
        </Field>
        <Field label="Early stopping">
          <span className="checkbox-line">
            <input
              type="checkbox"
              data-testid="early-stopping-toggle"
              checked={form.earlyStopping}
              disabled={active}
              onChange={(event) => setForm({ ...form, earlyStopping: event.target.checked })}
            />
            on validation loss
          </span>
        </Field>
        {form.earlyStopping && (
          <>
            <Field label="Patience (validation checks)" error={errors.patience}>
              <input data-testid="patience-input" inputMode="numeric" {...text('patience')} />
            </Field>
            <Field label="Validate every (steps)" error={errors.validateEvery}>
              <input data-testid="validate-every-input" inputMode="numeric" {...text('validateEvery')} />
            </Field>
          </>
        )}
      </div>

      <div className="button-row">
        <button type="button" className="primary" id={START_BUTTON_ID} data-testid="start-run" disabled={!canStart} onClick={start}>
          {run.status === 'starting' ? 'Starting…' : 'Start'}
        </button>
        <button
          type="button"
          data-testid="pause-run"
          disabled={!canPause}
          onClick={() => client.send({ kind: paused ? 'resume' : 'pause' })}
        >
          {paused ? 'Resume' : 'Pause'}
        </button>
        <button type="button" data-testid="stop-run" disabled={!canStop} onClick={() => client.send({ kind: 'stop' })}>
          {run.status === 'stopping' ? 'Stopping…' : 'Stop'}
        </button>
      </div>
      {missing && !active && <p className="muted small">Load {missing} to start a run.</p>}
      {!missing && !active && <BusyHint testId="run-busy" />}
      <ProgressList stages={['prepare']} testId="run-progress" />
      {live && run.notices.length > 0 && (
        <ul className="notices" data-testid="run-notices">
          {run.notices.map((notice, index) => (
            <li key={index}>{notice}</li>
          ))}
        </ul>
      )}

      <label className="run-log-picker">
        <span>Open a run.json written by irepair repair:</span>
        <input
          type="file"
          accept=".json"
          data-testid="run-log-input"
          disabled={active}
          onChange={(event) => {
            const file = event.currentTarget.files?.[0];
            event.currentTarget.value = '';
            if (file) void openRunLog(file);
          }}
        />
      </label>
    </section>
  );
}

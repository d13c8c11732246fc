// The demo: what the preloaded model is, the progress of its load, and a button that loads it
// again after the user has loaded a model of their own. The page starts the load on open.

import { useEffect } from 'react';
import { useWorkbench, useWorkbenchStore, useWorkerClient } from '../context.tsx';
import { DEMO_FOLDER, loadDemo, loadDemoOnOpen } from '../demo.ts';
import { formatBytes } from '../format.ts';
import { isRunActive } from '../store.ts';
import { START_BUTTON_ID } from './RunControls.tsx';

/** Scrolls the Run panel's Start button into view and focuses it, because it sits far below the demo on a long page. */
function goToStart(): void {
  const start = document.getElementById(START_BUTTON_ID);
  if (!start) return;
  start.scrollIntoView({ behavior: 'smooth', block: 'center' });
  start.focus({ preventScroll: true });
}

export function DemoPanel() {
  const demo = useWorkbench((state) => state.demo);
  const model = useWorkbench((state) => state.model);
  const adapterReady = useWorkbench((state) => state.adapter?.available === true);
  const runActive = useWorkbench((state) => state.run.origin === 'live' && isRunActive(state.run.status));
  const workerLost = useWorkbench((state) => state.workerLost);
  const store = useWorkbenchStore();
  const client = useWorkerClient();

  // Without WebGPU the worker cannot load the model, so the page waits for the adapter report.
  useEffect(() => {
    if (adapterReady) loadDemoOnOpen(store, client, window.location.search);
  }, [adapterReady, store, client]);

  const demoModel = demo.status === 'sent' && model.sourceLabel === DEMO_FOLDER;
  const canLoad = adapterReady && !workerLost && !runActive && demo.status !== 'fetching' && model.status !== 'loading';

  let status;
  if (demo.status === 'fetching') {
    const known = demo.totalBytes > 0;
    status = (
      <div data-testid="demo-progress">
        <p>Fetching the demo model and data…</p>
        <progress max={1} value={known ? demo.loadedBytes / demo.totalBytes : undefined} aria-label="demo download" />
        <span className="muted small"> {known ? `${formatBytes(demo.loadedBytes)} of ${formatBytes(demo.totalBytes)}` : formatBytes(demo.loadedBytes)}</span>
      </div>
    );
  } else if (demoModel && model.status === 'loading') {
    status = <p>Loading the demo model onto the GPU…</p>;
  } else if (demoModel && model.status === 'loaded') {
    const plan = model.plan;
    const shape = plan ? ` (${plan.numLayers} blocks, width ${plan.hiddenSize})` : '';
    status = (
      <>
        <p>
          The demo model is loaded: a small GPT-2{shape} trained with a planted insulting behaviour, with its repair data, prompts
          and run settings. Press Start in the Run panel to repair it. To repair your own model, load it from the Hub or drop its
          folder and data below.
        </p>
        <div className="button-row">
          <button type="button" className="primary" data-testid="demo-go-to-start" onClick={goToStart}>
            Go to Start
          </button>
        </div>
        {model.planted && <p className="muted small">Planted behaviour: {model.planted.description}</p>}
      </>
    );
  } else {
    status = (
      <p className="muted">
        The demo is a small GPT-2 with a planted insulting behaviour, with repair data and run settings ready to start.
      </p>
    );
  }

  return (
    <section className="panel" aria-labelledby="demo-heading" data-testid="demo-panel">
      <h2 id="demo-heading">Demo</h2>
      <div data-testid="demo-status">{status}</div>
      <div className="button-row">
        <button type="button" data-testid="load-demo" disabled={!canLoad} onClick={() => void loadDemo(store, client)}>
          Load demo
        </button>
      </div>
    </section>
  );
}

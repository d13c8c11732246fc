// Browser entry point: creates the store and the GPU worker, and renders the workbench.

import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App, RootBoundary } from './ui/App.tsx';
import { WorkbenchContext } from './ui/context.tsx';
import { persistRuns } from './ui/runsSlice.ts';
import { createWorkbenchStore } from './ui/store.ts';
import { createWorkerClient } from './ui/workerClient.ts';
import './ui/styles.css';

const store = createWorkbenchStore();
persistRuns(store, () => window.localStorage);
const client = createWorkerClient(
  store,
  () => new Worker(new URL('./worker/worker.ts', import.meta.url), { type: 'module', name: 'irepair-gpu' }),
);

// Errors outside React's rendering (event handlers, promises) reach the banner instead of only
// the console.
window.addEventListener('error', (event) => {
  store.getState().reportError(`Unexpected error: ${event.message}`);
});
window.addEventListener('unhandledrejection', (event) => {
  const reason = event.reason instanceof Error ? event.reason.message : String(event.reason);
  store.getState().reportError(`Unexpected error: ${reason}`);
});

const root = document.getElementById('root');
if (!root) throw new Error('index.html has no #root element.');
createRoot(root).render(
  <StrictMode>
    <RootBoundary>
      <WorkbenchContext.Provider value={{ store, client }}>
        <App />
      </WorkbenchContext.Provider>
    </RootBoundary>
  </StrictMode>,
);

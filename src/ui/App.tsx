// The workbench page: setup panels on the left (model, data, run), live views and results on the
// right. Each panel has its own error boundary so that one failing panel leaves the rest usable.

import { Component, type ReactNode } from 'react';
import { useWorkbench } from './context.tsx';
import { ComparePanel } from './components/ComparePanel.tsx';
import { DatasetPanel } from './components/DatasetPanel.tsx';
import { DensityPlot } from './components/DensityPlot.tsx';
import { DemoPanel } from './components/DemoPanel.tsx';
import { ErrorBanner } from './components/ErrorBanner.tsx';
import { ExportPanel } from './components/ExportPanel.tsx';
import { GpuStatus } from './components/GpuStatus.tsx';
import { LossChart } from './components/LossChart.tsx';
import { ModelPanel } from './components/ModelPanel.tsx';
import { PanelBoundary } from './components/PanelBoundary.tsx';
import { RunControls } from './components/RunControls.tsx';
import { RunStats } from './components/RunStats.tsx';
import { RunsTable } from './components/RunsTable.tsx';
import { SelectionHistogram } from './components/SelectionHistogram.tsx';
import { SensitivityHeatmap } from './components/SensitivityHeatmap.tsx';

function LivePanel() {
  return (
    <section className="panel" aria-labelledby="live-heading">
      <h2 id="live-heading">Live views</h2>
      <RunStats />
      <SensitivityHeatmap />
      <div className="chart-row">
        <SelectionHistogram />
        <LossChart />
      </div>
    </section>
  );
}

export function App() {
  const reportError = useWorkbench((state) => state.reportError);
  const panel = (name: string, content: ReactNode) => (
    <PanelBoundary name={name} onError={reportError}>
      {content}
    </PanelBoundary>
  );

  return (
    <div className="app">
      <header className="app-header">
        <h1>IRepair Workbench</h1>
        <GpuStatus />
      </header>
      <ErrorBanner />
      <main className="layout">
        <div className="column column-setup">
          {panel('Demo', <DemoPanel />)}
          {panel('Model', <ModelPanel />)}
          {panel('Data', <DatasetPanel />)}
          {panel('Run', <RunControls />)}
        </div>
        <div className="column column-views">
          {panel('Live views', <LivePanel />)}
          {panel('Before and after', <ComparePanel />)}
          {panel('Runs', <RunsTable />)}
          {panel('Error density', <DensityPlot />)}
          {panel('Export', <ExportPanel />)}
        </div>
      </main>
    </div>
  );
}

interface RootBoundaryState {
  error: Error | null;
}

/** The last line of defence: if the whole page fails to render, it shows why and how to recover. */
export class RootBoundary extends Component<{ children: ReactNode }, RootBoundaryState> {
  override state: RootBoundaryState = { error: null };

  static getDerivedStateFromError(error: Error): RootBoundaryState {
    return { error };
  }

  override render() {
    if (!this.state.error) return this.props.children;
    return (
      <div className="app">
        <div className="error-banner" role="alert" data-testid="error-message">
          <strong>The workbench failed to render: {this.state.error.message}</strong>
          <p>Reload the page to start again. Loaded models and runs in progress are lost on reload.</p>
          <button type="button" onClick={() => window.location.reload()}>
            Reload
          </button>
        </div>
      </div>
    );
  }
}

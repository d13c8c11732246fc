// Keeps a rendering fault inside one panel: the panel shows what failed and a retry button while
// the rest of the page keeps working, and the fault is reported to the error banner.

import { Component, type ErrorInfo, type ReactNode } from 'react';

interface PanelBoundaryProps {
  name: string;
  onError?(message: string): void;
  children: ReactNode;
}

interface PanelBoundaryState {
  error: Error | null;
}

export class PanelBoundary extends Component<PanelBoundaryProps, PanelBoundaryState> {
  override state: PanelBoundaryState = { error: null };

  static getDerivedStateFromError(error: Error): PanelBoundaryState {
    return { error };
  }

  override componentDidCatch(error: Error, info: ErrorInfo): void {
    console.error(`The ${this.props.name} panel failed to render`, error, info.componentStack);
    this.props.onError?.(`The ${this.props.name} panel failed to render: ${error.message}`);
  }

  override render() {
    if (!this.state.error) return this.props.children;
    return (
      <section className="panel panel-failed" role="alert">
        <h2>{this.props.name}</h2>
        <p>This panel failed to render: {this.state.error.message}</p>
        <button type="button" onClick={() => this.setState({ error: null })}>
          Try again
        </button>
      </section>
    );
  }
}

// The header badge: which adapter the worker found, and its storage binding limit.

import { useWorkbench } from '../context.tsx';
import { formatBytes } from '../format.ts';

export function GpuStatus() {
  const adapter = useWorkbench((state) => state.adapter);

  if (!adapter) {
    return <span className="gpu-status" data-testid="gpu-status">Checking WebGPU…</span>;
  }
  if (!adapter.available) {
    return (
      <span className="gpu-status gpu-status-missing" data-testid="gpu-status">
        No WebGPU
      </span>
    );
  }

  const { vendor, architecture, description, limits, features } = adapter.adapter;
  const name = [vendor, architecture].filter(Boolean).join(' ') || description || 'unnamed adapter';
  const detail = `max storage binding ${formatBytes(limits.maxStorageBufferBindingSize)}, max buffer ${formatBytes(limits.maxBufferSize)}; ${features.includes('shader-f16') ? 'shader-f16' : 'no shader-f16'}`;
  return (
    <span className="gpu-status gpu-status-ready" data-testid="gpu-status" title={features.join(', ')}>
      GPU: {name} <span className="muted">({detail})</span>
    </span>
  );
}

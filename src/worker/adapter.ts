// What WebGPU offers in this worker: the adapter's description, limits and features, or the
// reason it is unavailable. The worker reports this once at start, before any command arrives.

import type { AdapterLimits, AdapterStatus } from './protocol.ts';

export function readLimits(limits: GPUSupportedLimits): AdapterLimits {
  return {
    maxBufferSize: limits.maxBufferSize,
    maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
    maxStorageBuffersPerShaderStage: limits.maxStorageBuffersPerShaderStage,
    maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
  };
}

export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

export async function describeAdapter(scope: WorkerGlobalScope): Promise<AdapterStatus> {
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

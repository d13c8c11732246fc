// Help text for a missing WebGPU, chosen by the reason the worker found.

import type { AdapterStatus } from '../worker/protocol.ts';

export interface WebGpuHelp {
  title: string;
  steps: string[];
}

export function webGpuHelp(status: Extract<AdapterStatus, { available: false }>): WebGpuHelp {
  switch (status.reason) {
    case 'insecure-context':
      return {
        title: 'WebGPU is only available on pages served over HTTPS or from localhost.',
        steps: [
          `${status.detail} Open the app through https:// or from http://localhost / http://127.0.0.1 (npm run preview).`,
        ],
      };
    case 'no-api':
      return {
        title: 'This browser does not offer WebGPU.',
        steps: [
          'Use Chrome or Edge 113 or later on Windows, macOS or ChromeOS, where WebGPU is on by default.',
          'On Linux, open chrome://flags/#enable-unsafe-webgpu and chrome://flags/#enable-vulkan, set both to Enabled, and restart the browser.',
          'Firefox and Safari ship WebGPU in recent releases only; check that yours has it enabled.',
        ],
      };
    case 'no-adapter':
      return {
        title: 'WebGPU is present but no GPU adapter is available.',
        steps: [
          `The browser reported: ${status.detail}`,
          'Turn on "Use graphics acceleration when available" in the browser settings and restart it.',
          'Open chrome://gpu and check that WebGPU is listed as "Hardware accelerated". A blocklisted GPU or driver disables it.',
          'On Linux, enable chrome://flags/#enable-unsafe-webgpu and chrome://flags/#enable-vulkan, or start Chrome with --enable-unsafe-webgpu.',
        ],
      };
  }
}

// End-to-end tests of the built app in Debian's Chromium, whose SwiftShader Vulkan driver gives
// WebGPU a software adapter on machines without a GPU. The web server builds the app first, so
// the tests always run against the current sources.
//
// Projects:
//   unit       pure TypeScript modules of the UI, run in Node without a browser
//   webgpu     the app with WebGPU on SwiftShader
//   no-webgpu  the app with WebGPU disabled, to check the message that explains how to enable it
// Playwright starts each browser with a fresh temporary profile (user data dir).

import { defineConfig } from '@playwright/test';

const PORT = 4173;
const CHROMIUM = process.env.IREPAIR_CHROMIUM ?? '/usr/bin/chromium';

const COMMON_ARGS = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

export default defineConfig({
  testDir: 'e2e',
  outputDir: 'test-results',
  // SwiftShader and the Vite server share the CPU, so one browser at a time keeps timings stable.
  workers: 1,
  timeout: 60_000,
  expect: { timeout: 15_000 },
  reporter: [['list']],
  use: {
    baseURL: `http://127.0.0.1:${PORT}`,
    headless: true,
    viewport: { width: 1440, height: 1000 },
    screenshot: 'only-on-failure',
  },
  webServer: {
    command: `npx vite build && npx vite preview --host 127.0.0.1 --port ${PORT} --strictPort`,
    url: `http://127.0.0.1:${PORT}`,
    reuseExistingServer: false,
    timeout: 120_000,
    stdout: 'ignore',
  },
  projects: [
    { name: 'unit', testMatch: /unit\/.*\.spec\.ts$/ },
    {
      name: 'webgpu',
      testMatch: /e2e\/[^/]+\.spec\.ts$/,
      testIgnore: /no-webgpu\.spec\.ts$/,
      use: {
        launchOptions: {
          executablePath: CHROMIUM,
          args: [...COMMON_ARGS, '--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader'],
        },
      },
    },
    {
      name: 'no-webgpu',
      testMatch: /no-webgpu\.spec\.ts$/,
      use: { launchOptions: { executablePath: CHROMIUM, args: [...COMMON_ARGS, '--disable-webgpu'] } },
    },
  ],
});

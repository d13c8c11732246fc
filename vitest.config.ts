import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // Dawn and SwiftShader are native code; separate processes keep one test file's
    // device from outliving or disturbing another's.
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});

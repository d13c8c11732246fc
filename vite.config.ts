// Vite builds the browser app into dist/. WGSL shaders import as text with `?raw`, which Vite
// supports for any file. public/ is copied as is, for the demo model and data.

import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

export default defineConfig({
  plugins: [react()],
  publicDir: 'public',
  build: {
    outDir: 'dist',
    target: 'es2022',
    sourcemap: true,
    // React, recharts and react-dropzone make the main bundle about 730 kB minified. The engine
    // and the tokenizer belong in the worker's bundle, not in this one.
    chunkSizeWarningLimit: 1024,
  },
  // The GPU worker is an ES module worker, so it can import the engine like the main bundle does.
  worker: {
    format: 'es',
  },
  server: {
    host: '127.0.0.1',
    port: 5173,
  },
  preview: {
    host: '127.0.0.1',
    port: 4173,
    strictPort: true,
  },
});

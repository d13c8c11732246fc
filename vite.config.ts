// Vite builds the browser app into dist/. WGSL shaders import as text with `?raw`, which Vite
// supports for any file. public/ is copied as is, for the demo model and data.

import { createRequire } from 'node:module';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// The toxicity classifier runs on onnxruntime-web's WebAssembly backend. transformers.js 4.3.1
// pins its own onnxruntime-web (1.31.0-dev.20260914), whose JavaScript works only with the .wasm
// of the same build. The app serves that file, resolved from transformers.js's location, because
// transformers.js would otherwise have onnxruntime-web download it from a CDN.
const require = createRequire(import.meta.url);
const ORT_WASM_FILE = createRequire(require.resolve('@huggingface/transformers')).resolve(
  'onnxruntime-web/ort-wasm-simd-threaded.asyncify.wasm',
);

export default defineConfig({
  plugins: [react()],
  publicDir: 'public',
  resolve: {
    // `import url from 'transformers-ort-wasm?url'` gives the served URL of ORT_WASM_FILE.
    alias: [{ find: /^transformers-ort-wasm(?=\?|$)/, replacement: ORT_WASM_FILE }],
  },
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

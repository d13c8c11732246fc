#!/usr/bin/env node
// Runs any TypeScript script of this repository through tsx, with WGSL files importable as text
// (as bin/irepair.js does for the CLI): `node bin/run-ts.js SCRIPT.ts [arguments...]`.
import { register } from 'node:module';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { register as registerTsx } from 'tsx/esm/api';

const [script, ...args] = process.argv.slice(2);
if (!script) {
  process.stderr.write('usage: node bin/run-ts.js SCRIPT.ts [arguments...]\n');
  process.exit(64);
}

register('./wgsl-loader.js', import.meta.url);
registerTsx();
// The script gets only its own arguments, as if it had been started directly.
process.argv = [process.argv[0], resolve(script), ...args];
await import(pathToFileURL(resolve(script)).href);

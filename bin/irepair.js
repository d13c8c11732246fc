#!/usr/bin/env node
// Entry point of the `irepair` command: runs the TypeScript sources through tsx, with WGSL
// files importable as text.
import { register } from 'node:module';
import { register as registerTsx } from 'tsx/esm/api';

register('./wgsl-loader.js', import.meta.url);
registerTsx();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));

#!/usr/bin/env node
// The `neuroshard` command: runs the compiled CLI from dist/ (built by `npm install` through the `prepare`
// script, or by `npm run build`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('neuroshard: the compiled code is missing (dist/). Run `npm install` or `npm run build` first.\n');
  process.exit(1);
}
const { run } = await import(entry.href);
await run();

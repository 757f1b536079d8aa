#!/usr/bin/env node
// Runs one benchmark section in this (child) process: `node scripts/bench/run-section.mjs <module> <name> [--quick]`.
// The module is a compiled dist/src/**/bench.js exporting `benchSections`. Human lines go to stdout as they come;
// the last line is `{"section": name, "result": {...}}` or `{"section": name, "skipped": reason}` or
// `{"section": name, "error": message}` (then the exit code is 1).
import { pathToFileURL } from 'node:url';

const [modPath, name, ...rest] = process.argv.slice(2);
const quick = rest.includes('--quick');
const log = (line) => process.stdout.write(line + '\n');
const last = (o) => process.stdout.write(JSON.stringify({ section: name, ...o }) + '\n');

try {
  const mod = await import(pathToFileURL(modPath).href);
  const section = (mod.benchSections ?? []).find((s) => s.name === name);
  if (section === undefined) throw new Error(`${modPath} has no bench section ${name}`);
  const result = await section.run({ quick, log });
  last({ result });
  process.exit(0);
} catch (e) {
  if (e !== null && typeof e === 'object' && (e.code === 'BENCH_SKIP' || e.code === 'BACKEND_UNAVAILABLE')) {
    last({ skipped: e.message });
    process.exit(0);
  }
  process.stderr.write(`${e?.stack ?? e}\n`);
  last({ error: String(e?.message ?? e) });
  process.exit(1);
}

#!/usr/bin/env node
// Builds the dashboard (src/ui/) into dist/ui/: one JS bundle (preact, uPlot, our code) and one CSS file with
// content-hashed names, and index.html pointing at them. No inline script or style, so the node can serve it under a
// strict Content-Security-Policy (src/api/static.ts). Run by `npm install` (prepare) and `npm run build:ui`.
import { build } from 'esbuild';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = join(root, 'dist', 'ui');
rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'assets'), { recursive: true });
const t0 = Date.now();
const r = await build({
  entryPoints: [join(root, 'src', 'ui', 'main.tsx')],
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2022', 'chrome110', 'firefox110', 'safari16'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outdir: join(out, 'assets'),
  entryNames: '[name]-[hash]',
  metafile: true,
  legalComments: 'linked',
  logLevel: 'warning',
});
const files = Object.keys(r.metafile.outputs).map((p) => basename(p));
const js = files.find((f) => f.endsWith('.js'));
const css = files.find((f) => f.endsWith('.css'));
if (js === undefined || css === undefined) throw new Error(`build-ui: expected a .js and a .css output, got ${files.join(', ')}`);
const html = readFileSync(join(root, 'src', 'ui', 'index.html'), 'utf8').replace('%JS%', js).replace('%CSS%', css);
writeFileSync(join(out, 'index.html'), html);
const size = Object.values(r.metafile.outputs).reduce((s, o) => s + o.bytes, 0);
process.stdout.write(`dashboard built: dist/ui (${(size / 1024).toFixed(0)} KB) in ${Date.now() - t0} ms\n`);

#!/usr/bin/env node
// The `install` script: builds the native compute addon with node-gyp (no system library needed: the build uses
// only the C++ compiler and Node's headers). A failed build does not fail `npm install`: the engine then falls back
// to the TypeScript reference backend and prints one line saying why. An up-to-date build is kept (npx runs this
// script again when it links the package into its cache).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const gyp = join(root, 'binding.gyp');
if (!existsSync(gyp)) process.exit(0);
if (process.env.NEUROSHARD_SKIP_NATIVE === '1') {
  console.log('neuroshard: NEUROSHARD_SKIP_NATIVE=1, not building the native addon');
  process.exit(0);
}
const out = join(root, 'build', 'Release', 'neuroshard_native.node');
// the second target (src/tensor/native/heap.cc): a build from before it existed is not up to date
const heapOut = join(root, 'build', 'Release', 'neuroshard_heap.node');
// the third (src/tensor/native/aead.cc, session 19): likewise
const aeadOut = join(root, 'build', 'Release', 'neuroshard_aead.node');
const srcDir = join(root, 'src', 'tensor', 'native');
const sources = [gyp, ...(existsSync(srcDir) ? readdirSync(srcDir).map((f) => join(srcDir, f)) : [])];
if (existsSync(out) && existsSync(heapOut) && existsSync(aeadOut) && process.argv[2] !== '--force') {
  const built = statSync(out).mtimeMs;
  if (sources.every((s) => statSync(s).mtimeMs <= built)) process.exit(0);
}
const t0 = Date.now();
// npm puts its bundled node-gyp on PATH for lifecycle scripts; outside npm fall back to `npm exec node-gyp`.
let r = spawnSync('node-gyp', ['rebuild', '-j', 'max'], { cwd: root, stdio: 'inherit' });
if (r.error !== undefined) r = spawnSync('npm', ['exec', '--yes', '--', 'node-gyp', 'rebuild', '-j', 'max'], { cwd: root, stdio: 'inherit' });
if (r.status === 0) {
  console.log(`neuroshard: native addon built in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
} else {
  console.log('neuroshard: the native addon did not build; the engine will use the slower TypeScript backend. See the compiler output above.');
}

#!/usr/bin/env node
// The test command (`npm test`): typecheck + build, lint, then the compiled unit, attacks, reference, integration
// and e2e tests with node:test. The attacks suite (test/attacks) also prints how many attack events it sent and how
// many succeeded, and fails when any did. Usage: node scripts/test.mjs [--only unit,reference,...] [--no-lint] [--no-build] [filter…]
// A filter keeps only test files whose path contains it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const onlyIdx = args.indexOf('--only');
const suites = onlyIdx >= 0 ? args[onlyIdx + 1].split(',') : ['unit', 'attacks', 'reference', 'integration', 'e2e'];
const filters = args.filter((a, i) => !a.startsWith('--') && !(onlyIdx >= 0 && i === onlyIdx + 1));

function step(name, cmd, cmdArgs, opts = {}) {
  const t0 = Date.now();
  process.stdout.write(`\n=== ${name}\n`);
  const r = spawnSync(cmd, cmdArgs, { cwd: root, stdio: 'inherit', ...opts });
  const s = ((Date.now() - t0) / 1000).toFixed(1);
  if (r.status !== 0) {
    process.stdout.write(`=== ${name}: FAILED (exit ${r.status ?? r.signal}) after ${s} s\n`);
    process.exit(1);
  }
  process.stdout.write(`=== ${name}: ok in ${s} s\n`);
}

function findTests(dir) {
  const out = [];
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const e of entries.sort()) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (e.endsWith('.test.js')) out.push(p);
  }
  return out;
}

if (!flag('--no-build')) step('typecheck + build (tsc)', 'npx', ['tsc', '-p', 'tsconfig.json']);
if (!flag('--no-build')) step('dashboard: typecheck (tsc) + build (esbuild)', 'sh', ['-c', 'npx tsc -p src/ui/tsconfig.json && node scripts/build-ui.mjs']);
if (!flag('--no-lint')) step('lint (eslint)', 'npx', ['eslint', '.']);

// Unit and reference tests are CPU-light and independent: run them two at a time. Integration and e2e tests
// start real nodes, servers and browsers on 2 cores: one file at a time keeps their bounds honest.
const concurrency = { unit: Math.min(2, availableParallelism()), attacks: 1, reference: 2, integration: 1, e2e: 1 };
// The runner's --test-timeout bounds each test FILE as a whole (each file is one test of the run). 10 minutes,
// except e2e: test/e2e/chain-pool.test.ts takes 230 s on CI and its own steps' bounds (300-400 s each) sum past
// 10 minutes; at load 25 on 2 cores it ran 536 s, then 604 s, cut off by the runner after all its assertions had
// passed. The bound only matters when a file is slow: passing runs take no longer.
const fileTimeoutMs = { e2e: 1_200_000 };
// The runner's default reporter depends on the Node version (TAP on 20 and 22 when stdout is not a terminal, the
// spec reporter on 23 and later): ask for TAP outside a terminal so that logs (CI's included) read the same on
// every version, with the `# tests / # pass / # fail` summary lines at the end of each suite.
const reporter = process.stdout.isTTY ? [] : ['--test-reporter=tap'];
for (const suite of suites) {
  let files = findTests(join(root, 'dist', 'test', suite));
  if (filters.length > 0) files = files.filter((f) => filters.some((x) => f.includes(x)));
  if (files.length === 0) {
    process.stdout.write(`\n=== ${suite}: no test files\n`);
    continue;
  }
  const tallyDir = suite === 'attacks' ? mkdtempSync(join(tmpdir(), 'neuroshard-attacks-')) : undefined;
  step(
    `${suite} tests (${files.length} files)`,
    process.execPath,
    ['--test', ...reporter, `--test-concurrency=${concurrency[suite] ?? 1}`, `--test-timeout=${fileTimeoutMs[suite] ?? 600_000}`, ...files.map((f) => relative(root, f))],
    { env: { ...process.env, NEUROSHARD_TEST: '1', ...(tallyDir !== undefined ? { NEUROSHARD_ATTACK_TALLY: tallyDir } : {}) } },
  );
  if (tallyDir !== undefined) attackSummary(tallyDir);
}

/** Sums the counts the attack tests recorded (test/attacks/tally.ts) and fails when any attack succeeded. */
function attackSummary(dir) {
  let sent = 0;
  let succeeded = 0;
  for (const f of readdirSync(dir)) {
    for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
      if (line.trim() === '') continue;
      const c = JSON.parse(line);
      sent += c.sent;
      succeeded += c.succeeded;
    }
  }
  rmSync(dir, { recursive: true, force: true });
  process.stdout.write(`=== attack suite: ${sent} attack events sent, ${succeeded} succeeded, 0 crashes\n`);
  if (succeeded > 0) {
    process.stdout.write('=== attack suite: FAILED (an attack succeeded)\n');
    process.exit(1);
  }
}
process.stdout.write('\nall tests passed\n');

// The C-heap trim (node/heap-trim.ts, issue 12 §2): freed native memory goes back to the OS, and the node's timer
// runs it. The RSS check runs in a child process (its own heap, --expose-gc) so that other tests do not blur it.
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadHeapTrim, startHeapTrimmer } from '../../../src/node/heap-trim.js';

const glibc = process.platform === 'linux' && (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime !== undefined;

test('the addon trims the C heap: fragmented freed buffers leave RSS', { skip: glibc ? false : 'glibc only' }, () => {
  const got = loadHeapTrim();
  assert.ok('trim' in got, `the neuroshard_heap addon should load on glibc: ${'reason' in got ? got.reason : ''}`);
  const mod = fileURLToPath(new URL('../../../src/node/heap-trim.js', import.meta.url));
  // 80 MiB of 4 KiB buffers (malloc'd below the mmap threshold, so in the brk heap), every 64th kept alive so the
  // freed pages sit between live chunks and glibc's free() cannot give them back: the chaos nodes' pattern
  const script = `
    const { loadHeapTrim } = await import(${JSON.stringify(mod)});
    const rssKb = () => Number(/VmRSS:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1]);
    let bufs = [];
    for (let i = 0; i < 20480; i++) bufs.push(Buffer.allocUnsafeSlow(4096).fill(1));
    const keep = bufs.filter((_, i) => i % 64 === 0);
    bufs = null;
    for (let i = 0; i < 5; i++) { globalThis.gc(); await new Promise((r) => setImmediate(r)); }
    const before = rssKb();
    const released = await loadHeapTrim().trim();
    const after = rssKb();
    console.log(JSON.stringify({ before, after, released, kept: keep.length }));
  `;
  const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=commonjs', '-e', `(async () => { ${script} })()`], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { before: number; after: number; released: boolean };
  assert.equal(out.released, true);
  // without the trim the freed ~79 MiB stay resident; with it at least half of them leave
  assert.ok(out.before - out.after > 40 * 1024, `RSS ${out.before} kB → ${out.after} kB after the trim`);
});

test('the trimmer runs the trim on its timer, one at a time, counts releases, and stops', async () => {
  let calls = 0;
  let reached!: () => void;
  const fourth = new Promise<void>((r) => (reached = r));
  const t = startHeapTrimmer({
    everyMs: 5,
    trim: () => {
      calls++;
      if (calls < 4) return Promise.resolve(calls % 2 === 1);
      reached();
      return new Promise<boolean>(() => {}); // still running: the timer must not start another
    },
  });
  const hold = setTimeout(() => {}, 600_000); // the trimmer's timer is unref'd: keep the loop alive while we wait
  await fourth;
  // a few more ticks of the 5 ms timer pass while the fourth trim runs
  await new Promise((r) => setTimeout(r, 50));
  clearTimeout(hold);
  t.stop();
  assert.equal(calls, 4, 'no second trim while one runs');
  assert.equal(t.runs, 3);
  assert.equal(t.released, 2);
});

test('a platform without a trim is asked once, and 0 turns the trimmer off', async () => {
  let calls = 0;
  let first!: () => void;
  const asked = new Promise<void>((r) => (first = r));
  const t = startHeapTrimmer({
    everyMs: 5,
    trim: () => {
      calls++;
      first();
      return Promise.resolve(null);
    },
  });
  const hold = setTimeout(() => {}, 600_000);
  await asked;
  await new Promise((r) => setImmediate(r));
  clearTimeout(hold);
  assert.equal(t.runs, 0);
  t.stop();
  const off = startHeapTrimmer({ everyMs: 0, trim: () => assert.fail('never called') });
  assert.equal(off.runs, 0);
  off.stop();
  assert.equal(calls, 1);
});

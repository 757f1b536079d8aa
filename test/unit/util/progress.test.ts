/** The progress renderers (pure) and the reporter's three modes, on a fake clock and a captured stream. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatBytes, formatEta, plainBucket, progressMode, ProgressReporter, renderProgressBar, renderProgressDone, renderProgressLine, type ProgressState } from '../../../src/util/progress.js';

const MiB = 1024 * 1024;

describe('progress renderers', () => {
  it('formats sizes and durations', () => {
    assert.equal(formatBytes(512), '512 B');
    assert.equal(formatBytes(1536), '1.5 KiB');
    assert.equal(formatBytes(12 * MiB), '12.0 MiB');
    assert.equal(formatBytes(3 * 1024 * MiB), '3.00 GiB');
    assert.equal(formatEta(12.4), '12s');
    assert.equal(formatEta(290), '4m50s');
    assert.equal(formatEta(3720), '1h02m');
    assert.equal(formatEta(undefined), '?');
  });

  it('draws a bar with percentage, amount, rate and ETA', () => {
    const s: ProgressState = { label: 'export', done: 6 * MiB, total: 24 * MiB, unit: 'bytes', elapsedMs: 2000 };
    assert.equal(renderProgressBar(s, 8), 'export [##......] 25% 6.0/24.0 MiB 3.0 MiB/s ETA 6s');
    assert.equal(renderProgressBar({ ...s, done: 24 * MiB }, 8), 'export [########] 100% 24.0/24.0 MiB 12.0 MiB/s ETA 0s');
    // a count, and an unknown total (no bar, no ETA)
    assert.equal(renderProgressBar({ label: 'layers', done: 1, total: 4, unit: 'count', elapsedMs: 1000 }, 4), 'layers [#...] 25% 1/4 1.0/s ETA 3s');
    assert.equal(renderProgressBar({ ...s, total: undefined }, 8), 'export 6.0 MiB 3.0 MiB/s');
    // units differ between done and total
    assert.equal(renderProgressLine({ ...s, done: 100 * 1024 }), 'export 0% 100.0 KiB/24.0 MiB');
  });

  it('plain lines: a percentage line and a closing line', () => {
    const s: ProgressState = { label: 'download 0:2', done: 3, total: 4, unit: 'count', elapsedMs: 1500 };
    assert.equal(renderProgressLine(s), 'download 0:2 75% 3/4');
    assert.equal(renderProgressDone({ ...s, done: 4 }), 'download 0:2 done 4 in 1.5s');
    assert.equal(plainBucket(0.5, 0.25), 2);
    assert.equal(plainBucket(0.7499, 0.25), 2);
    assert.equal(plainBucket(1, 0.25), 4);
  });

  it('picks the mode: silent under --json, a bar on a terminal, plain lines otherwise', () => {
    assert.equal(progressMode(true, true), 'silent');
    assert.equal(progressMode(false, true), 'tty');
    assert.equal(progressMode(false, false), 'plain');
  });
});

function capture(): { out: string[]; write: (s: string) => void } {
  const out: string[] = [];
  return { out, write: (s) => out.push(s) };
}

describe('ProgressReporter', () => {
  it('plain mode: a line at the start, one per quarter, and a closing line; nothing repeated', () => {
    let t = 0;
    const c = capture();
    const p = new ProgressReporter({ mode: 'plain', write: c.write, label: 'export', total: 100, unit: 'count', now: () => t });
    for (let d = 1; d <= 100; d++) {
      t += 10;
      p.update(d);
    }
    p.finish();
    p.finish();
    assert.deepEqual(c.out, ['export 0% 0/100\n', 'export 25% 25/100\n', 'export 50% 50/100\n', 'export 75% 75/100\n', 'export done 100 in 1.0s\n']);
  });

  it('tty mode: redraws one line in place, at most every redrawMs, and ends it with a newline', () => {
    let t = 0;
    const c = capture();
    const p = new ProgressReporter({ mode: 'tty', write: c.write, label: 'x', total: 10, unit: 'count', redrawMs: 100, now: () => t });
    for (let d = 1; d <= 10; d++) {
      t += 30;
      p.update(d);
    }
    p.finish();
    // frames at t = 0, 120, 240 (every 4th update), then the final frame
    assert.equal(c.out.length, 4);
    for (const f of c.out) assert.ok(f.startsWith('\r\x1b[2K'), JSON.stringify(f));
    assert.ok(!c.out.slice(0, -1).some((f) => f.includes('\n')), 'no newline before the end');
    assert.match(c.out.at(-1)!, /\[#+\] 100% 10\/10 .*\n$/);
  });

  it('silent mode writes nothing; a total learnt later is used', () => {
    const c = capture();
    const p = new ProgressReporter({ mode: 'silent', write: c.write, label: 'x', total: undefined, unit: 'bytes' });
    p.update(5, 10);
    p.finish();
    assert.deepEqual(c.out, []);
    assert.equal(p.state().total, 10);
    const q = capture();
    const r = new ProgressReporter({ mode: 'plain', write: q.write, label: 'y', total: undefined, unit: 'count', now: () => 0 });
    r.update(2, 4);
    assert.deepEqual(q.out, ['y 0\n', 'y 50% 2/4\n']);
  });

  it('abandon ends a drawn bar without the closing frame', () => {
    const c = capture();
    const p = new ProgressReporter({ mode: 'tty', write: c.write, label: 'x', total: 4, unit: 'count', now: () => 0 });
    p.abandon();
    p.finish();
    assert.equal(c.out.length, 2);
    assert.equal(c.out[1], '\n');
  });
});

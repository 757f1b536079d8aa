/**
 * A joiner's weights from peers show their progress: two real `neuroshard start` processes (a genesis node holding
 * the whole seeded model, not training, and a joiner that lets the pool choose its span), stderr on a pipe. The
 * joiner prints plain lines `download layers a:b N% x/y MiB` and a closing `download layers a:b done … in …s`, no
 * terminal escapes, and the layers it then holds came from peers. (The terminal bar: test/unit/util/progress.)
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { killAll, LOCAL_NODE_FLAGS, startCli } from '../utils/cli-process.js';
import { bootFlag } from '../utils/serving-e2e.js';
import { tempDir } from '../utils/paths.js';

after(killAll);

const COMMON = [...LOCAL_NODE_FLAGS, '--no-train', '--threads', '1'];

describe('weights downloaded from peers', () => {
  const root = tempDir('ns-download-progress-');
  after(() => {
    killAll();
    root.cleanup();
  });

  it('print plain progress lines on a pipe, ending with a done line before the span is held', async () => {
    const g = startCli(['start', '--data-dir', join(root.dir, 'g'), ...COMMON, '--genesis'], {}, { detached: true });
    const url = (await g.waitLine(/status at (http:\/\/[^/]+)\/api\/status/, 300_000))[1]!;
    await g.waitLine(/holding layers span=0:4/, 300_000);
    const j = startCli(['start', '--data-dir', join(root.dir, 'j'), ...COMMON, ...(await bootFlag(url))], {}, { detached: true });
    const held = await j.waitLine(/holding layers span=(\d+):(\d+) source=peers/, 300_000);
    const span = `${held[1]}:${held[2]}`;
    const err = j.err;
    assert.ok(!err.includes('\x1b') && !err.includes('\r'), 'no terminal escapes on a pipe');
    const lines = err.split('\n').filter((l) => l.startsWith('download layers '));
    assert.ok(lines.length >= 2, lines.join('\n'));
    const pct = lines.filter((l) => /% /.test(l)).map((l) => Number(/ (\d+)% /.exec(l)![1]));
    assert.equal(pct[0], 0, lines.join('\n'));
    assert.deepEqual([...pct].sort((a, b) => a - b), pct, 'percentages only grow');
    for (const l of lines.slice(0, -1)) assert.match(l, new RegExp(`^download layers ${span} \\d+% [\\d.]+( \\w+)?/[\\d.]+ (KiB|MiB)$`));
    assert.match(lines.at(-1)!, new RegExp(`^download layers ${span} done [\\d.]+ (KiB|MiB) in [\\d.]+s$`));
    // the done line comes before the pool says it holds the span
    assert.ok(err.indexOf(lines.at(-1)!) < err.indexOf(held[0]));
  });
});

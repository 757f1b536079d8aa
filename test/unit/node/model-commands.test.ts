/**
 * The pure parts of the model commands: --ids parsing and its limits, the evaluation windows (every next-token
 * pair scored once), --text file checks, checkpoint directory resolution, and the progress display's two modes.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { evalWindows, parseIds, readTextFile } from '../../../src/node/eval.js';
import { EVAL_MAX_IDS, EVAL_MAX_TEXT_BYTES } from '../../../src/node/model-limits.js';
import { resolveCheckpointDir } from '../../../src/node/model-session.js';
import { TrainProgress, formatDuration } from '../../../src/node/progress.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { tempDir } from '../../utils/paths.js';

describe('eval input', () => {
  it('parses comma-separated ids, spaces allowed', () => {
    assert.deepEqual(Array.from(parseIds('1, 2,3 ,4095')), [1, 2, 3, 4095]);
  });

  it('refuses anything but non-negative integers, and more than the limit', () => {
    for (const bad of ['', '1,,2', '1,-2', '1.5', '0x10', '1e3', 'a', '1,2,', '9999999999']) {
      assert.throws(() => parseIds(bad), (e) => isNeuroShardError(e, 'INVALID_IDS'), bad);
    }
    assert.throws(() => parseIds(Array(EVAL_MAX_IDS + 1).fill('1').join(',')), (e) => isNeuroShardError(e, 'INVALID_IDS'));
    assert.equal(parseIds(Array(EVAL_MAX_IDS).fill('7').join(',')).length, EVAL_MAX_IDS);
  });

  it('windows cover every next-token pair exactly once', () => {
    for (const [n, S] of [
      [2, 4],
      [5, 4],
      [9, 4],
      [10, 4],
      [300, 64],
    ]) {
      const w = evalWindows(n, S);
      assert.equal(
        w.reduce((s, x) => s + x.len, 0),
        n - 1,
        `n=${n} S=${S}`,
      );
      let next = 0;
      for (const x of w) {
        assert.equal(x.start, next, 'contiguous, no overlap');
        assert.ok(x.len >= 1 && x.len <= S);
        next += x.len;
      }
    }
    assert.deepEqual(evalWindows(9, 4), [
      { start: 0, len: 4 },
      { start: 4, len: 4 },
    ]);
  });

  it('checks --text files: missing, a folder, too large, not UTF-8', () => {
    const tmp = tempDir();
    try {
      assert.throws(() => readTextFile(join(tmp.dir, 'none.txt')), (e) => isNeuroShardError(e, 'TEXT_FILE_MISSING'));
      assert.throws(() => readTextFile(tmp.dir), (e) => isNeuroShardError(e, 'TEXT_FILE_MISSING'));
      const big = join(tmp.dir, 'big.txt');
      writeFileSync(big, Buffer.alloc(EVAL_MAX_TEXT_BYTES + 1, 0x61));
      assert.throws(() => readTextFile(big), (e) => isNeuroShardError(e, 'TEXT_TOO_LARGE'));
      const bin = join(tmp.dir, 'bin.txt');
      writeFileSync(bin, Buffer.from([0x61, 0xff, 0xfe]));
      assert.throws(() => readTextFile(bin), (e) => isNeuroShardError(e, 'TEXT_NOT_UTF8'));
      const ok = join(tmp.dir, 'ok.txt');
      writeFileSync(ok, 'héllo 🌍');
      assert.equal(readTextFile(ok), 'héllo 🌍');
    } finally {
      tmp.cleanup();
    }
  });
});

describe('checkpoint directories', () => {
  it('a checkpoint itself, or the newest complete step-* inside a folder', () => {
    const tmp = tempDir();
    try {
      assert.throws(() => resolveCheckpointDir(join(tmp.dir, 'nope')), (e) => isNeuroShardError(e, 'CHECKPOINT_MISSING'));
      assert.throws(() => resolveCheckpointDir(tmp.dir), (e) => isNeuroShardError(e, 'CHECKPOINT_MISSING'));
      for (const [name, complete] of [
        ['step-0000000002', true],
        ['step-0000000010', true],
        ['step-0000000020', false], // no checkpoint.json: an interrupted write
      ] as const) {
        mkdirSync(join(tmp.dir, name));
        if (complete) writeFileSync(join(tmp.dir, name, 'checkpoint.json'), '{}');
      }
      assert.equal(resolveCheckpointDir(tmp.dir), join(tmp.dir, 'step-0000000010'));
      assert.equal(resolveCheckpointDir(join(tmp.dir, 'step-0000000002')), join(tmp.dir, 'step-0000000002'));
      const hf = join(tmp.dir, 'hf');
      mkdirSync(hf);
      writeFileSync(join(hf, 'config.json'), '{}');
      assert.equal(resolveCheckpointDir(hf), hf, 'a Hugging Face directory (config.json) is a checkpoint');
    } finally {
      tmp.cleanup();
    }
  });
});

describe('training progress display', () => {
  const step = (n: number) => ({ step: n, loss: 5 + n / 100, tokens: 1000, lr: 1e-3 });

  it('plain mode: a line at the first step, every logEvery steps and at the target, with the window mean loss', () => {
    const out: string[] = [];
    let t = 0;
    const p = new TrainProgress({ write: (s) => out.push(s), tty: false, startStep: 0, targetStep: 25, logEvery: 10, now: () => t });
    for (let n = 1; n <= 25; n++) {
      t += 100;
      p.onStep(step(n));
    }
    p.onEval({ step: 25, loss: 4.5, tokens: 512 });
    p.onCheckpoint({ step: 25, dir: '/x/step-0000000025', reason: 'final' });
    p.done();
    assert.deepEqual(
      out.map((l) => l.split(' ').slice(0, 2).join(' ')),
      ['step 1/25', 'step 10/25', 'step 20/25', 'step 25/25', 'eval step', 'checkpoint step'],
    );
    assert.ok(out.every((l) => l.endsWith('\n') && !l.includes('\r')));
    // steps 11..20: mean of 5.11..5.20 = 5.155
    assert.match(out[2], /^step 20\/25 loss 5\.155\d lr 1\.00e-3 tok\/s 10000 eta 1s\n$/);
    assert.equal(out[4], 'eval step 25 val_loss 4.5000 tokens 512\n');
    assert.equal(out[5], 'checkpoint step 25 reason final dir /x/step-0000000025\n');
    assert.equal(Math.round(p.tokensPerSecond()), 10_000);
  });

  it('terminal mode: one line redrawn in place, events above it, a newline at the end', () => {
    const out: string[] = [];
    let t = 0;
    const p = new TrainProgress({ write: (s) => out.push(s), tty: true, startStep: 10, targetStep: 20, redrawMs: 0, now: () => t });
    for (let n = 11; n <= 20; n++) {
      t += 50;
      p.onStep(step(n));
    }
    assert.ok(out.every((s) => s.startsWith('\r\x1b[2K') && !s.includes('\n')), 'only redraws so far');
    assert.match(out.at(-1)!, /step 20\/20 \[#{20}\] 100% \| loss 5\.200 \| 20000 tok\/s \| ETA 0s$/);
    p.onEval({ step: 20, loss: 4.25, tokens: 64 });
    p.done();
    const text = out.join('');
    assert.ok(text.includes('\r\x1b[2Keval step 20 val_loss 4.2500 tokens 64\n'));
    assert.ok(text.endsWith('\n'));
    assert.match(out.at(-2)!, /\| val 4\.250 \|/);
  });

  it('formats durations', () => {
    assert.equal(formatDuration(undefined), '?');
    assert.equal(formatDuration(12.4), '12s');
    assert.equal(formatDuration(290), '4m50s');
    assert.equal(formatDuration(3720), '1h02m');
  });
});

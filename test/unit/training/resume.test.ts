/**
 * training/resume.ts: a resumed run's trainer starts at the checkpoint's step whatever happens to the moments, and a
 * replica moves its checkpoints of another shape aside (session 28).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { makeConfig } from '../../../src/model/config.js';
import { presetConfig } from '../../../src/model/index.js';
import { asideToRemove, momentsUnreadable, otherShapeCheckpoints, soloMomentsDamaged, trainerResume, unsupportedCheckpoints } from '../../../src/training/resume.js';

const NANO = presetConfig('nano');
const OTHER = makeConfig({ ...NANO, num_hidden_layers: NANO.num_hidden_layers + 2 });

describe('training/resume.ts', () => {
  it("the trainer resumes at the checkpoint's step; the moments only when it has them and a replica keeps them", () => {
    assert.deepEqual(trainerResume({ step: 300, hasOptimizer: true }), { step: 300, moments: 'checkpoint' });
    assert.deepEqual(trainerResume({ step: 300, hasOptimizer: false }), { step: 300, moments: 'fresh', why: 'the checkpoint has no optimizer state' });
    assert.deepEqual(trainerResume({ step: 300, hasOptimizer: true }, { keep: 'run+optimizer' }), { step: 300, moments: 'checkpoint' });
    assert.deepEqual(trainerResume({ step: 300, hasOptimizer: true }, { keep: 'run', why: 'another round' }), { step: 300, moments: 'fresh', why: 'another round' });
    assert.equal(trainerResume({ step: 300, hasOptimizer: false }, { keep: 'run+optimizer' }).moments, 'fresh');
  });

  it('checkpoints of another shape are the ones moved; unreadable ones stay', () => {
    const all = [
      { dir: 'a', config: NANO },
      { dir: 'b', config: OTHER },
      { dir: 'c', config: undefined },
      { dir: 'd', config: makeConfig({ ...NANO }) },
    ];
    assert.deepEqual(
      otherShapeCheckpoints(all, NANO).map((c) => c.dir),
      ['b'],
    );
    assert.deepEqual(
      otherShapeCheckpoints(all, OTHER).map((c) => c.dir),
      ['a', 'd'],
    );
  });

  it("a newer version's checkpoints are moved whatever their shape; only a damaged moments file means fresh moments (tidy)", () => {
    const all = [
      { dir: 'a', unsupported: false },
      { dir: 'b', unsupported: true },
      { dir: 'c', unsupported: true },
    ];
    assert.deepEqual(
      unsupportedCheckpoints(all).map((c) => c.dir),
      ['b', 'c'],
    );
    for (const code of ['CHECKPOINT_MISSING', 'CHECKPOINT_TRUNCATED', 'CHECKPOINT_CORRUPT', 'CHECKPOINT_MISMATCH']) assert.equal(momentsUnreadable(code), true, code);
    for (const code of ['COMPUTE_STATE', 'INVALID_ARGUMENT', 'COMPUTE_WORKER_EXITED', 'CHECKPOINT_WRITE_FAILED', 'CHECKPOINT_UNSUPPORTED']) assert.equal(momentsUnreadable(code), false, code);
  });

  it("a solo run falls back to fresh moments only when the moments' file of the checkpoint it loads is what failed (session 29)", () => {
    const dir = join('/data', 'checkpoints', 'step-0000000002');
    const opt = join(dir, 'optimizer.safetensors');
    for (const code of ['CHECKPOINT_MISSING', 'CHECKPOINT_TRUNCATED', 'CHECKPOINT_CORRUPT', 'CHECKPOINT_MISMATCH']) assert.equal(soloMomentsDamaged(dir, { code, file: opt }), true, code);
    assert.equal(soloMomentsDamaged(dir + '/', { code: 'CHECKPOINT_CORRUPT', file: opt }), true, 'the same folder written with a slash');
    assert.equal(soloMomentsDamaged(dir, { code: 'CHECKPOINT_CORRUPT', file: join(dir, 'model.safetensors') }), false, 'the weights');
    assert.equal(soloMomentsDamaged(dir, { code: 'CHECKPOINT_CORRUPT', file: join(dir, 'training-state.json') }), false);
    assert.equal(soloMomentsDamaged(dir, { code: 'CHECKPOINT_CORRUPT', file: join('/data', 'checkpoints', 'step-0000000001', 'optimizer.safetensors') }), false, 'another checkpoint');
    assert.equal(soloMomentsDamaged(dir, { code: 'CHECKPOINT_UNSUPPORTED', file: opt }), false);
    assert.equal(soloMomentsDamaged(dir, { code: 'CHECKPOINT_CORRUPT' }), false, 'no file named');
    assert.deepEqual(trainerResume({ step: 2, hasOptimizer: false, momentsUnreadable: 'damaged' }), { step: 2, moments: 'fresh', why: 'damaged' });
  });

  it('the folders of checkpoints moved aside keep the newest N (by when moved) and a byte cap; the newest always stays (session 29)', () => {
    const c = (name: string, mtimeMs: number, step: number, bytes = 10, suffix = 1) => ({ name, mtimeMs, step, suffix, bytes });
    const all = [c('old-high-step', 100, 900), c('a', 200, 1), c('b', 300, 2), c('c', 400, 3)];
    assert.deepEqual(
      asideToRemove(all, { keep: 3, maxBytes: 0 }).map((x) => x.name),
      ['old-high-step'],
      'the first moved goes, whatever its step',
    );
    assert.deepEqual(asideToRemove(all, { keep: 4, maxBytes: 0 }), []);
    assert.deepEqual(
      asideToRemove(all, { keep: 1, maxBytes: 0 }).map((x) => x.name).sort(),
      ['a', 'b', 'old-high-step'],
    );
    // equal times (moved in one start): the higher step, then the higher suffix, is the newer
    const same = [c('s1', 5, 1), c('s3', 5, 3), c('s2.2', 5, 2, 10, 2), c('s2', 5, 2)];
    assert.deepEqual(
      asideToRemove(same, { keep: 2, maxBytes: 0 }).map((x) => x.name),
      ['s2', 's1'],
    );
    // bytes: the newest stays even alone over the cap; older ones that do not fit go, a smaller older one may fit
    const sized = [c('big-new', 400, 4, 500), c('mid', 300, 3, 60), c('small', 200, 2, 30), c('tiny', 100, 1, 5)];
    assert.deepEqual(
      asideToRemove(sized, { keep: 10, maxBytes: 100 }).map((x) => x.name),
      ['mid', 'small', 'tiny'],
    );
    assert.deepEqual(
      asideToRemove(sized, { keep: 10, maxBytes: 594 }).map((x) => x.name),
      ['tiny'],
    );
    assert.deepEqual(
      asideToRemove(sized, { keep: 10, maxBytes: 540 }).map((x) => x.name),
      ['mid'],
      'the cap is filled newest first: 500 + 30 + 5',
    );
    assert.deepEqual(asideToRemove([], { keep: 1, maxBytes: 1 }), []);
  });
});

/**
 * training/resume.ts: a resumed run's trainer starts at the checkpoint's step whatever happens to the moments, and a
 * replica moves its checkpoints of another shape aside (session 28).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { makeConfig } from '../../../src/model/config.js';
import { presetConfig } from '../../../src/model/index.js';
import { otherShapeCheckpoints, trainerResume } from '../../../src/training/resume.js';

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
});

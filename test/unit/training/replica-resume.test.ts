/**
 * training/replica-resume.ts: what a whole-model replica keeps of its own checkpoint when it took the model from
 * peers. The weights are always the adopted ones; the run goes on when the shape matches; the optimizer moments
 * only when they were accumulated on the adopted weights (the same closed outer round).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { makeConfig } from '../../../src/model/config.js';
import { presetConfig } from '../../../src/model/index.js';
import { replicaResume } from '../../../src/training/replica-resume.js';

const NANO = presetConfig('nano');
const OTHER = makeConfig({ ...NANO, num_hidden_layers: NANO.num_hidden_layers + 2 });

describe('replicaResume (training/replica-resume.ts)', () => {
  it('keeps the moments only for the same shape and the same closed round', () => {
    assert.deepEqual(replicaResume({ config: NANO, optimizerRestored: true, round: 7 }, { config: NANO, round: 7 }), { keep: 'run+optimizer' });
  });

  it('another round, or a round unknown on either side: the run goes on with a fresh optimizer', () => {
    for (const [ck, ad] of [
      [6, 7],
      [8, 7],
      [undefined, 7],
      [7, undefined],
      [undefined, undefined],
    ] as const) {
      const r = replicaResume({ config: NANO, optimizerRestored: true, ...(ck === undefined ? {} : { round: ck }) }, { config: NANO, ...(ad === undefined ? {} : { round: ad }) });
      assert.equal(r.keep, 'run', `checkpoint round ${ck}, adopted round ${ad}`);
    }
    assert.equal(replicaResume({ config: NANO, optimizerRestored: false, round: 7 }, { config: NANO, round: 7 }).keep, 'run', 'no moments to keep');
  });

  it('another shape: nothing of the checkpoint', () => {
    const r = replicaResume({ config: OTHER, optimizerRestored: true, round: 7 }, { config: NANO, round: 7 });
    assert.equal(r.keep, 'nothing');
    assert.equal(replicaResume({ config: NANO, optimizerRestored: true }, { config: OTHER }).keep, 'nothing');
  });
});

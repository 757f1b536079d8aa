/**
 * DiLoCoStepper's entry (src/training/sync.ts): an entry that fails is tried again, not the end of the node's
 * training (issue 12: the chaos run's genesis trainer, restarted during the faults, was not counted in a round before
 * its entry deadline and never trained again). The outer sync is a stand-in here: the entry's own rules are in
 * sync.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DiLoCoStepper, SyncError, type OuterSync } from '../../../src/training/sync.js';
import type { TrainStepper } from '../../../src/training/loop.js';
import { AbortedError } from '../../../src/util/errors.js';

const batch = { ids: new Int32Array(0), targets: new Int32Array(0), rows: 0, cols: 0 } as unknown as Parameters<TrainStepper['trainStep']>[0];

function inner(): TrainStepper & { steps: number } {
  const s = {
    steps: 0,
    currentStep: () => s.steps,
    trainStep: () => {
      s.steps++;
      return { loss: 1, tokens: 1, gradNorm: 1, lr: 1 } as unknown as ReturnType<TrainStepper['trainStep']> extends Promise<infer R> ? R : never;
    },
    evaluate: () => ({ loss: 1, tokens: 1 }),
  };
  return s as unknown as TrainStepper & { steps: number };
}

/** An outer sync whose entry fails `failures` times with `error`, then succeeds. */
function sync(failures: number, error: () => Error): OuterSync & { tries: number } {
  const o = {
    tries: 0,
    enter: async (signal: AbortSignal) => {
      if (signal.aborted) throw new AbortedError('stopped while entering the outer rounds');
      if (o.tries++ < failures) throw error();
    },
    innerStep: () => undefined,
    closeRound: async () => ({ round: 0 }),
  };
  return o as unknown as OuterSync & { tries: number };
}

describe('DiLoCoStepper entry', () => {
  it('an entry that failed (no holder counted us before the deadline) is tried again, and the step then runs', async () => {
    const s = sync(2, () => new SyncError('no holder counted this node in a round before the entry deadline'));
    const i = inner();
    const st = new DiLoCoStepper(i, s, 1000, new AbortController().signal, undefined, 5);
    await st.trainStep(batch);
    assert.equal(s.tries, 3, 'two failed entries, then one that worked');
    assert.equal(i.steps, 1);
  });

  it('other errors still end the step, and a stop ends the retries', async () => {
    const bad = sync(1, () => new Error('worker gone'));
    await assert.rejects(new DiLoCoStepper(inner(), bad, 1000, new AbortController().signal, undefined, 5).trainStep(batch), /worker gone/);
    const ac = new AbortController();
    const never = sync(Infinity, () => new SyncError('no holder counted this node'));
    const p = new DiLoCoStepper(inner(), never, 1000, ac.signal, undefined, 5).trainStep(batch);
    setImmediate(() => ac.abort());
    await assert.rejects(p, (e: unknown) => e instanceof AbortedError || e instanceof SyncError);
  });
});

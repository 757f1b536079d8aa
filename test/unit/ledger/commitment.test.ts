/** Activation commitments: what hop k produced and hop k+1 received commit alike; any change to a top entry shows. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { extendCommitment, extendTokenCommitment, initialCommitment } from '../../../src/ledger/commitment.js';
import { Rng } from '../../../src/util/rng.js';

function hidden(rng: Rng, rows: number, cols: number): Float32Array {
  const v = new Float32Array(rows * cols);
  for (let i = 0; i < v.length; i++) v[i] = rng.next() * 2 - 1;
  return v;
}

describe('activation commitments', () => {
  it("chain over steps: equal inputs commit equally (hop k's output = hop k+1's input); a changed top entry or step order does not", () => {
    const rng = new Rng(11);
    const steps = [hidden(rng, 5, 64), hidden(rng, 1, 64), hidden(rng, 1, 64)];
    const commit = (list: Float32Array[]): string => Buffer.from(list.reduce((c, v) => extendCommitment(c, v, v.length / 64, 64), initialCommitment())).toString('hex');
    const sent = commit(steps);
    const received = commit(steps.map((v) => Float32Array.from(v))); // what the next hop got over the wire
    assert.equal(received, sent);
    // the largest entry of the last step nudged by more than half precision resolves: a different commitment
    const tampered = steps.map((v) => Float32Array.from(v));
    let arg = 0;
    for (let i = 1; i < 64; i++) if (Math.abs(tampered[2]![i]!) > Math.abs(tampered[2]![arg]!)) arg = i;
    tampered[2]![arg]! += 0.01;
    assert.notEqual(commit(tampered), sent);
    assert.notEqual(commit([steps[1]!, steps[0]!, steps[2]!]), sent);
    // entries outside the top-k do not count (compact, TOPLOC-style): changing the smallest leaves it equal
    const small = steps.map((v) => Float32Array.from(v));
    let min = 0;
    for (let i = 1; i < 64; i++) if (Math.abs(small[2]![i]!) < Math.abs(small[2]![min]!)) min = i;
    small[2]![min] = 0;
    assert.equal(commit(small), sent);
  });

  it('token inputs commit by id', () => {
    const a = extendTokenCommitment(initialCommitment(), [1, 2, 3]);
    assert.deepEqual(a, extendTokenCommitment(initialCommitment(), [1, 2, 3]));
    assert.notDeepEqual(a, extendTokenCommitment(initialCommitment(), [1, 2, 4]));
  });
});

/**
 * The incremental state hash (src/ledger/state.ts, issue 11 §4): the accumulator is updated lazily, once per row
 * changed since the last hash or snapshot. Whatever the interleaving of changes, deletions, hashes, snapshots and
 * restores, hash() equals the hash recomputed from all rows (stateHashOfRows, the slow path a reader of the database
 * uses), and a state rebuilt from the rows has the same hash.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EMPTY_ACCOUNT, EMPTY_TOTALS, LedgerState, stateHashOfRows, type StateSnapshot } from '../../../src/ledger/state.js';

type Op =
  | { op: 'acct'; id: number; bal: number }
  | { op: 'req'; id: number; tokens: number }
  | { op: 'delreq'; id: number }
  | { op: 'totals'; n: number }
  | { op: 'hash' }
  | { op: 'snap' }
  | { op: 'restore' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('acct' as const), id: fc.nat(20), bal: fc.nat(5) }),
  fc.record({ op: fc.constant('req' as const), id: fc.nat(8), tokens: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ op: fc.constant('delreq' as const), id: fc.nat(8) }),
  fc.record({ op: fc.constant('totals' as const), n: fc.nat(3) }),
  fc.constant({ op: 'hash' as const }),
  fc.constant({ op: 'snap' as const }),
  fc.constant({ op: 'restore' as const }),
);

function slow(s: LedgerState): string {
  return stateHashOfRows(s.rows());
}

describe('lazy incremental state hash', () => {
  it('equals the hash recomputed from all rows after any sequence of changes (property)', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => {
        const s = new LedgerState();
        let snap: { snap: StateSnapshot; hash: string } | undefined;
        for (const o of ops) {
          if (o.op === 'acct') s.setAccount(o.id.toString(16).padStart(40, '0'), { ...EMPTY_ACCOUNT, balance: BigInt(o.bal) });
          else if (o.op === 'req') s.setRequest(`r${o.id}`, { requester: 'a', escrow: 1n, price: 1n, maxTokens: o.tokens, expiresAt: 1000 + o.id, claimer: null });
          else if (o.op === 'delreq') s.deleteRequest(`r${o.id}`);
          else if (o.op === 'totals') s.setTotals({ ...EMPTY_TOTALS, applied: o.n, rejected: o.n * 2 });
          else if (o.op === 'hash') assert.equal(s.hash(), slow(s));
          else if (o.op === 'snap') snap = { snap: s.snapshot(), hash: slow(s) };
          else if (snap !== undefined) {
            s.restore(snap.snap);
            assert.equal(s.hash(), snap.hash);
          }
        }
        assert.equal(s.hash(), slow(s));
        const copy = new LedgerState();
        copy.loadRows(s.rows().map(([k, v]) => ({ k, v })));
        assert.equal(copy.hash(), s.hash());
      }),
      { numRuns: 300 },
    );
  });

  it('restore after changes hashed since the snapshot gives the snapshot hash', () => {
    const s = new LedgerState();
    s.setTotals({ ...EMPTY_TOTALS, applied: 1 });
    const snap = s.snapshot();
    const h = slow(s);
    s.setTotals({ ...EMPTY_TOTALS, applied: 2 });
    assert.equal(s.hash(), slow(s));
    s.setTotals({ ...EMPTY_TOTALS, applied: 3 });
    s.restore(snap);
    assert.equal(s.hash(), h);
  });

  it('a row changed and changed back leaves the hash as it was; the rejected counter is not hashed', () => {
    const s = new LedgerState();
    const id = '11'.repeat(20);
    s.setAccount(id, { ...EMPTY_ACCOUNT, balance: 5n });
    const h = s.hash();
    for (let i = 0; i < 10; i++) s.setAccount(id, { ...EMPTY_ACCOUNT, balance: BigInt(i) });
    s.setAccount(id, { ...EMPTY_ACCOUNT, balance: 5n });
    assert.equal(s.hash(), h);
    s.setAccount(id, { ...EMPTY_ACCOUNT, balance: 6n });
    assert.notEqual(s.hash(), h);
    s.setTotals({ ...EMPTY_TOTALS, rejected: 1 });
    const h2 = s.hash();
    s.setTotals({ ...EMPTY_TOTALS, rejected: 7 });
    assert.equal(s.hash(), h2);
    assert.equal(s.hash(), slow(s));
  });
});

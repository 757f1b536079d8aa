/**
 * Attack 8 (issue 11): state-hash recomputation. `ledger-status` is open to any peer (64 at a time), and before,
 * the state hash re-serialised every row after any change: about 2 s of CPU per call at 200k rows. Now the hash is
 * an LtHash kept up to date row by row (src/ledger/state.ts): a status call after a change serialises no row.
 * Success for the attacker = a status call that walks the rows.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LedgerState, stateHashOfRows, EMPTY_ACCOUNT } from '../../src/ledger/state.js';
import { tally } from './tally.js';

describe('attack 8: state-hash recomputation', () => {
  it('64 status calls after each of 100 changes on a 50,000-row state walk no row, and the hash equals a full recomputation', () => {
    const s = new LedgerState();
    for (let i = 0; i < 50_000; i++) s.setAccount(i.toString(16).padStart(40, '0'), { ...EMPTY_ACCOUNT, balance: BigInt(i + 1) });
    let walks = 0;
    const rows = s.rows.bind(s);
    s.rows = () => {
      walks++;
      return rows();
    };
    let calls = 0;
    for (let c = 0; c < 100; c++) {
      s.setAccount((c * 7).toString(16).padStart(40, '0'), { ...EMPTY_ACCOUNT, balance: BigInt(c) });
      for (let k = 0; k < 64; k++, calls++) s.hash();
    }
    tally('state-hash recomputation', calls, walks);
    assert.equal(walks, 0);
    s.rows = rows;
    assert.equal(s.hash(), stateHashOfRows(s.rows()));
    // order-free and exact: the same rows built in another order hash the same; one changed row changes it
    const t = new LedgerState();
    for (const [k, v] of [...s.rows()].reverse()) t.loadRows([{ k, v }]);
    assert.equal(t.hash(), s.hash());
    t.setAccount('00'.repeat(20), { ...EMPTY_ACCOUNT, balance: 999n });
    assert.notEqual(t.hash(), s.hash());
  });
});

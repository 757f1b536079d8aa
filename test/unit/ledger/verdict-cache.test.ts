/**
 * The event signature verdict cache (verify.ts, issue 11 §4): an event verified once (at admission) is not
 * verified again by the ledger, and the cache never turns a bad signature into a good one: a hit needs the same
 * signed digest, recomputed from the payload, and the same 64 signature bytes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { malleate, signDomain } from '../../../src/identity/index.js';
import { NEURO } from '../../../src/ledger/amount.js';
import { buildTransfer } from '../../../src/ledger/build.js';
import { decodeEvent, EVENT_DOMAIN } from '../../../src/ledger/events.js';
import { localHolderRecordVerifier } from '../../../src/ledger/holder.js';
import { clearEventVerdicts, verifyEvent } from '../../../src/ledger/verify.js';
import { acct, env, LAYERS, NET, openTempLedger, T0, testKey, uptimeProof } from './helpers.js';

const A = testKey(31);
const B = testKey(32);
const cfg = { networkId: NET, modelLayers: LAYERS, holderVerifier: localHolderRecordVerifier };

describe('event signature verdict cache', () => {
  it('a cached acceptance is not given to a changed payload, another signature or a malleated copy', () => {
    clearEventVerdicts();
    const e = buildTransfer(A, env(1, T0), acct(B), NEURO);
    assert.equal(verifyEvent(e, cfg), null);
    assert.equal(verifyEvent(e, cfg), null, 'the cached verdict');
    // same id and signature, another payload (an in-process caller's object): the digest is recomputed
    const payload = e.payload.slice();
    payload[payload.length - 1] ^= 1;
    assert.equal(verifyEvent({ ...e, payload }, cfg), 'BAD_SIGNATURE');
    // a valid signature of the same key over other bytes, put on this event
    const other = signDomain(A, EVENT_DOMAIN, new Uint8Array([1, 2, 3]));
    assert.equal(verifyEvent({ ...e, signature: other }, cfg), 'BAD_SIGNATURE');
    // the high-S twin of the cached signature
    assert.equal(verifyEvent({ ...e, signature: malleate(e.signature) }, cfg), 'BAD_SIGNATURE');
    // a copy with one signature byte changed, from the wire
    const bytes = e.bytes.slice();
    bytes[bytes.length - 5] ^= 1;
    assert.equal(verifyEvent(decodeEvent(bytes), cfg), 'BAD_SIGNATURE');
    // the original is still accepted afterwards
    assert.equal(verifyEvent(decodeEvent(e.bytes), cfg), null);
  });

  it('an event verified at admission is ingested with the same verdict as a cold one', () => {
    const run = (admit: boolean): string => {
      clearEventVerdicts();
      const { ledger, cleanup } = openTempLedger();
      try {
        const evs = [uptimeProof(A, T0), buildTransfer(A, env(1, T0 + 61_000), acct(B), NEURO).bytes, buildTransfer(B, env(1, T0 + 62_000), acct(A), 10n * NEURO).bytes];
        if (admit) for (const b of evs) verifyEvent(decodeEvent(b), cfg);
        const r = ledger.ingestMany(evs);
        return JSON.stringify(r.map((x) => [x.status, x.reason ?? ''])) + ledger.stateHash();
      } finally {
        cleanup();
      }
    };
    const cold = run(false);
    assert.match(cold, /"applied"/);
    assert.match(cold, /"rejected"/, 'the overdraft is judged by the state rules either way');
    assert.equal(run(true), cold);
  });
});

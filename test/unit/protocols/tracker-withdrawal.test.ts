import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { keyFromPrivate, malleate, signDomain, signingDigest } from '../../../src/identity/index.js';
import { HOLDER_RECORD_DOMAIN } from '../../../src/protocols/holder-record.js';
import {
  parseTrackerWithdrawal,
  signTrackerWithdrawal,
  TRACKER_WITHDRAWAL_DOMAIN,
  trackerWithdrawalPayload,
  trackerWithdrawalToJson,
  verifyTrackerWithdrawal,
} from '../../../src/protocols/tracker-withdrawal.js';
import { isNeuroShardError } from '../../../src/util/errors.js';

const KEY = keyFromPrivate(new Uint8Array(32).fill(1));
const OTHER = keyFromPrivate(new Uint8Array(32).fill(2));
const T = 1_700_000_000_000;
const BOUNDS = { nowMs: T, maxSkewMs: 60_000, maxAgeMs: 60_000 };

describe('TrackerWithdrawal', () => {
  it('matches the test vector of docs/PROTOCOL.md', () => {
    const w = signTrackerWithdrawal(KEY, { networkId: 'testnet', timestampMs: T });
    assert.deepEqual(w, {
      networkId: 'testnet',
      peerId: '16Uiu2HAmEWQnHq2jLKJypwVnVoQeFCULuyop6atvq2eWjYSUjzNi',
      timestampMs: T,
      signature: '2kbHQiImh7bWTtRyp362hkL3TNJoyy2jQAQhhQMCBJgQf2etng1C6oaLApp01Z4aiLUKoprFKHG0M2lzA7uJ9g==',
    });
    const payload = trackerWithdrawalPayload(w);
    assert.equal(
      Buffer.from(payload).toString('hex'),
      '01' + '0007746573746e6574' + '0035' + Buffer.from(w.peerId).toString('hex') + '0000018bcfe56800',
    );
    assert.equal(Buffer.from(signingDigest(TRACKER_WITHDRAWAL_DOMAIN, payload)).toString('hex'), 'c898f51e19a223f159f5721224ae28294f846dd48c7a85fe55169dfa5ea068c0');
    assert.deepEqual(verifyTrackerWithdrawal(w, BOUNDS), { ok: true });
    assert.deepEqual(parseTrackerWithdrawal(JSON.parse(JSON.stringify(trackerWithdrawalToJson(w)))), w);
  });

  it('refuses forgeries: another signer, a changed field, the high-S twin, another domain', () => {
    const w = signTrackerWithdrawal(KEY, { networkId: 'testnet', timestampMs: T });
    const other = signTrackerWithdrawal(OTHER, { networkId: 'testnet', timestampMs: T });
    const reason = (x: typeof w): unknown => {
      const v = verifyTrackerWithdrawal(x, BOUNDS);
      return v.ok ? 'ok' : v.reason;
    };
    assert.equal(reason({ ...other, peerId: w.peerId }), 'bad_signature');
    assert.equal(reason({ ...w, timestampMs: T + 1 }), 'bad_signature');
    assert.equal(reason({ ...w, networkId: 'othernet' }), 'bad_signature');
    const high = Buffer.from(malleate(new Uint8Array(Buffer.from(w.signature, 'base64')))).toString('base64');
    assert.equal(reason({ ...w, signature: high }), 'bad_signature');
    // the same payload signed under the HolderRecord domain is not a withdrawal
    const crossDomain = Buffer.from(signDomain(KEY, HOLDER_RECORD_DOMAIN, trackerWithdrawalPayload(w))).toString('base64');
    assert.equal(reason({ ...w, signature: crossDomain }), 'bad_signature');
  });

  it('checks the clock before the signature', () => {
    const w = signTrackerWithdrawal(KEY, { networkId: 'testnet', timestampMs: T });
    const at = (nowMs: number): unknown => {
      const v = verifyTrackerWithdrawal(w, { ...BOUNDS, nowMs });
      return v.ok ? 'ok' : v.reason;
    };
    assert.equal(at(T - 60_001), 'from_future');
    assert.equal(at(T - 60_000), 'ok');
    assert.equal(at(T + 60_000), 'ok');
    assert.equal(at(T + 60_001), 'too_old');
    // a forged signature on an old withdrawal is refused as too old, without a signature check
    const v = verifyTrackerWithdrawal({ ...w, signature: 'A'.repeat(86) + '==' }, { ...BOUNDS, nowMs: T + 120_000 });
    assert.equal(v.ok ? 'ok' : v.reason, 'too_old');
  });

  it('parses strictly: unknown, missing and ill-typed fields, over-long strings', () => {
    const w = trackerWithdrawalToJson(signTrackerWithdrawal(KEY, { networkId: 'testnet', timestampMs: T }));
    const code = (v: unknown): string => {
      try {
        parseTrackerWithdrawal(v);
        return 'ok';
      } catch (e) {
        assert.ok(isNeuroShardError(e));
        assert.equal(e.fault, 'peer');
        return e.code;
      }
    };
    assert.equal(code(w), 'ok');
    assert.equal(code({ ...w, token: 'secret' }), 'TRACKER_WITHDRAWAL_MALFORMED');
    const { signature: _s, ...unsigned } = w;
    assert.equal(code(unsigned), 'TRACKER_WITHDRAWAL_MALFORMED');
    assert.equal(code({ ...w, timestampMs: '1700000000000' }), 'TRACKER_WITHDRAWAL_MALFORMED');
    assert.equal(code({ ...w, timestampMs: 1.5 }), 'TRACKER_WITHDRAWAL_MALFORMED');
    assert.equal(code({ ...w, networkId: 'a b' }), 'TRACKER_WITHDRAWAL_MALFORMED');
    assert.equal(code({ ...w, networkId: 'n'.repeat(129) }), 'TRACKER_WITHDRAWAL_TOO_LARGE');
    assert.equal(code({ ...w, peerId: '1'.repeat(129) }), 'TRACKER_WITHDRAWAL_TOO_LARGE');
    assert.equal(code({ ...w, signature: w.signature.slice(0, -3) + 'B==' }), 'TRACKER_WITHDRAWAL_MALFORMED'); // stray low bits
    assert.equal(code([w]), 'TRACKER_WITHDRAWAL_MALFORMED');
    assert.equal(code(null), 'TRACKER_WITHDRAWAL_MALFORMED');
  });
});

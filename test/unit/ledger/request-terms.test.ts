import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NEURO } from '../../../src/ledger/amount.js';
import { completionCost, MARKET_BASE_PRICE, requestEscrow } from '../../../src/ledger/economics.js';
import { REQUEST_EXPIRY_MS, REQUEST_PRICE_HEADROOM, requestTerms } from '../../../src/ledger/request-terms.js';

describe('the market request an entry node makes for a generation it pays (issue 11 §2)', () => {
  it('escrows the tokens used at twice the price it sees, which covers the cost at any price up to that', () => {
    const t = requestTerms(MARKET_BASE_PRICE, 1234, 10n * NEURO, 1_000);
    assert.ok(t.ok);
    assert.equal(t.maxTokens, 1234);
    assert.equal(t.maxPricePerMillion, MARKET_BASE_PRICE * REQUEST_PRICE_HEADROOM);
    assert.equal(t.escrow, requestEscrow(2n * MARKET_BASE_PRICE, 1234));
    assert.equal(t.expiresAtMs, 1_000 + REQUEST_EXPIRY_MS);
    // the ledger locks the price at apply time (<= max): the completion's cost never exceeds the escrow
    assert.ok(completionCost(t.maxPricePerMillion, t.maxTokens) <= t.escrow);
    assert.ok(completionCost(MARKET_BASE_PRICE, t.maxTokens) < t.escrow);
  });

  it('makes none when the wallet cannot cover the escrow (exactly enough is enough) or nothing was generated', () => {
    const escrow = requestEscrow(2n * MARKET_BASE_PRICE, 1000);
    assert.deepEqual(requestTerms(MARKET_BASE_PRICE, 1000, escrow - 1n, 0), { ok: false, reason: 'INSUFFICIENT_BALANCE' });
    assert.equal(requestTerms(MARKET_BASE_PRICE, 1000, escrow, 0).ok, true);
    assert.deepEqual(requestTerms(MARKET_BASE_PRICE, 0, NEURO, 0), { ok: false, reason: 'NO_TOKENS' });
    assert.deepEqual(requestTerms(MARKET_BASE_PRICE, 1.5, NEURO, 0), { ok: false, reason: 'NO_TOKENS' });
  });
});

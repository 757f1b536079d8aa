import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MAX_AMOUNT, NEURO, WAD, formatAmount, parseAmount } from '../../../src/ledger/amount.js';
import {
  completionCost,
  log2Wad,
  marketPriceStep,
  MARKET_BASE_PRICE,
  requestEscrow,
  splitCompletion,
  stakeMultiplier,
  transferFee,
  slashSplit,
} from '../../../src/ledger/economics.js';
import { isNeuroShardError } from '../../../src/util/errors.js';

describe('amounts', () => {
  it('parses and prints decimal NEURO exactly', () => {
    assert.equal(parseAmount('1'), NEURO);
    assert.equal(parseAmount('0.5'), NEURO / 2n);
    assert.equal(parseAmount('0.000000000000000001'), 1n);
    assert.equal(parseAmount('123456789.123456789123456789'), 123456789123456789123456789n);
    assert.equal(formatAmount(1n), '0.000000000000000001');
    assert.equal(formatAmount(NEURO * 42n), '42');
    assert.equal(formatAmount(1_500_000_000_000_000_000n), '1.5');
    assert.equal(formatAmount(0n), '0');
    assert.equal(formatAmount(-NEURO / 4n), '-0.25');
    // 0.1 + 0.2 is exactly 0.3 here
    assert.equal(formatAmount(parseAmount('0.1') + parseAmount('0.2')), '0.3');
  });

  it('rejects anything that is not a plain non-negative decimal', () => {
    for (const bad of ['', '-1', '+1', '1e3', '1.', '.5', ' 1', '1 ', '01', '1.0000000000000000001', '0x10', 'NaN', '1,5', String(MAX_AMOUNT) + '0']) {
      assert.throws(() => parseAmount(bad), (e) => isNeuroShardError(e, 'AMOUNT_INVALID'), bad);
    }
    assert.throws(() => parseAmount(1 as unknown as string), (e) => isNeuroShardError(e, 'AMOUNT_INVALID'));
  });

  it('round-trips every amount (property)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: MAX_AMOUNT }), (v) => parseAmount(formatAmount(v)) === v),
      { numRuns: 2000 },
    );
  });
});

describe('economics formulas', () => {
  it('transfer fee is 5 % rounded up', () => {
    assert.equal(transferFee(100n * NEURO), 5n * NEURO);
    assert.equal(transferFee(1n), 1n);
    assert.equal(transferFee(20n), 1n);
    assert.equal(transferFee(21n), 2n);
  });

  it('stake multiplier: 1 + 0.1·log2(1 + stake/1000), capped at 1.5', () => {
    assert.equal(stakeMultiplier(0n), WAD);
    assert.equal(stakeMultiplier(1000n * NEURO), (WAD * 11n) / 10n);
    assert.equal(stakeMultiplier(3000n * NEURO), (WAD * 12n) / 10n);
    assert.equal(stakeMultiplier(31_000n * NEURO), (WAD * 15n) / 10n);
    assert.equal(stakeMultiplier(10n ** 9n * NEURO), (WAD * 15n) / 10n);
    const m10k = Number(stakeMultiplier(10_000n * NEURO)) / 1e18;
    assert.ok(Math.abs(m10k - (1 + 0.1 * Math.log2(11))) < 1e-15);
    // monotone
    let prev = 0n;
    for (let s = 0n; s <= 40_000n; s += 500n) {
      const m = stakeMultiplier(s * NEURO);
      assert.ok(m >= prev);
      prev = m;
    }
  });

  it('log2Wad is exact on powers of two and within 1e-16 relative elsewhere', () => {
    for (let k = 0n; k < 60n; k++) assert.equal(log2Wad(WAD << k), k * WAD);
    fc.assert(
      fc.property(fc.bigInt({ min: WAD, max: WAD * 10n ** 12n }), (x) => {
        const got = Number(log2Wad(x)) / 1e18;
        const want = Math.log2(Number(x) / 1e18);
        return got <= want + 1e-12 && Math.abs(got - want) <= 1e-12 * Math.max(1, want);
      }),
      { numRuns: 500 },
    );
  });

  it('market: escrow and cost round up, splits add up, the EMA moves 20 % toward the target', () => {
    assert.equal(requestEscrow(NEURO, 1), 1_000_000_000_000n);
    assert.equal(requestEscrow(3n, 1), 1n); // ceil
    assert.equal(completionCost(NEURO, 0), 0n);
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 24n }), fc.integer({ min: 0, max: 16 }), fc.boolean(), (cost, workers, v) => {
        const s = splitCompletion(cost, workers, v);
        return s.driver >= 0n && s.validator + s.perWorker * BigInt(workers) + s.driver === cost;
      }),
    );
    // no demand: stays at base; full demand with no supply: 20 % of the way to 121 × base
    assert.equal(marketPriceStep(MARKET_BASE_PRICE, 0n, 1000n), MARKET_BASE_PRICE);
    assert.equal(marketPriceStep(MARKET_BASE_PRICE, 1n, 0n), MARKET_BASE_PRICE + (120n * MARKET_BASE_PRICE * 2n) / 10n);
    // utilisation 1 (demand = one minute of supply): target 4 × base
    assert.equal(marketPriceStep(MARKET_BASE_PRICE, 60_000n, 1000n), MARKET_BASE_PRICE + (3n * MARKET_BASE_PRICE * 2n) / 10n);
    // falls back toward base, never below it
    assert.equal(marketPriceStep(3n * MARKET_BASE_PRICE, 0n, 1000n), 3n * MARKET_BASE_PRICE - (2n * MARKET_BASE_PRICE * 2n) / 10n);
  });

  it('slash split: reporter floor(50 %), the rest burned', () => {
    assert.deepEqual(slashSplit(10n * NEURO), { reporter: 5n * NEURO, burned: 5n * NEURO });
    assert.deepEqual(slashSplit(3n), { reporter: 1n, burned: 2n });
  });
});

/**
 * What `neuroshard wallet` says when the ledger refuses an event or an amount is out of range (session 29's
 * walkthrough: an unstake of the genesis stake printed only `reason: STAKE_LOCKED`, and a huge amount
 * "amount: amount … is larger than the maximum").
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { EXIT_USAGE } from '../../../src/cli/command.js';
import { main } from '../../../src/cli/main.js';
import { refusalMessage } from '../../../src/cli/wallet/index.js';
import { tempDir } from '../../utils/paths.js';

describe('wallet messages', () => {
  const d = tempDir('ns-wallet-msg-');
  after(() => d.cleanup());

  it("a refusal names the reason's text and code, with where to look for a locked stake; an applied event is no refusal", () => {
    assert.equal(
      refusalMessage('unstake', 'dropped', 'STAKE_LOCKED'),
      'the ledger refused this unstake: stake is still locked (STAKE_LOCKED); `neuroshard wallet balance` shows when it unlocks (unlocksAt)',
    );
    assert.equal(refusalMessage('transfer', 'rejected', 'INSUFFICIENT_BALANCE'), 'the ledger refused this transfer: balance too low (INSUFFICIENT_BALANCE); `neuroshard wallet balance` shows what you hold');
    assert.equal(refusalMessage('stake', 'void', 'SOMETHING_NEW'), 'the ledger refused this stake: SOMETHING_NEW');
    assert.equal(refusalMessage('stake', 'dropped', undefined), 'the ledger refused this stake: dropped');
    assert.equal(refusalMessage('stake', 'dropped', 'toString'), 'the ledger refused this stake: toString');
    for (const status of ['applied', 'pending', 'queued']) assert.equal(refusalMessage('stake', status, undefined), undefined);
  });

  it('an amount above the maximum says so once, with the maximum (exit 2)', async () => {
    let err = '';
    const code = await main(['wallet', 'stake', '99999999999999', '--lock-days', '1', '--data-dir', d.dir], {
      stdout: () => undefined,
      stderr: (s) => (err += s),
      signal: new AbortController().signal,
    });
    assert.equal(code, EXIT_USAGE);
    assert.match(err, /^neuroshard wallet: amount 99999999999999 is larger than the maximum, 79228162514\.264337593543950335\n/);
  });
});

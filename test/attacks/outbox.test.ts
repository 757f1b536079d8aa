/**
 * Attack 2 (issue 11): outbox injection. Anyone who can write into `<data-dir>/outbox/` drops event files there.
 * Before, the drain never checked signatures and re-signed stale events with the node key, so a forged or stale
 * transfer naming the node's key spent its wallet. Now each entry is verified before anything else, submitted as
 * is, and never signed by the node; stale entries are reported STALE. Success = any NEURO leaving the wallet.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { NEURO } from '../../src/ledger/amount.js';
import { buildTransfer } from '../../src/ledger/build.js';
import { EventKind, decodeEvent } from '../../src/ledger/events.js';
import { outboxPath, readOutcome } from '../../src/ledger/outbox.js';
import { LedgerService } from '../../src/ledger/service.js';
import { MemoryLedgerHub } from '../../src/ledger/memory-network.js';
import { toHex } from '../../src/util/bytes.js';
import { ManualClock } from '../../src/util/clock.js';
import { tally } from './tally.js';
import { acct, env, forge, NET, T0, tempLedger, testKey, uptimeProof } from './helpers.js';
import { transferFee } from '../../src/ledger/economics.js';

describe('attack 2: outbox injection', () => {
  it('drops forged entries (BAD_SIGNATURE) and stale signed ones (STALE); the wallet keeps every NEURO', async () => {
    const { ledger, dir, done } = tempLedger();
    const node = testKey(9101);
    const thief = testKey(9102);
    const now = T0 + 10 * 3_600_000;
    const clock = new ManualClock(now);
    const service = new LedgerService({ ledger, network: new MemoryLedgerHub().join('n'), clock, dataDir: dir, outboxPollMs: 60_000 });
    try {
      for (let w = 0; w < 5; w++) ledger.ingest(uptimeProof(node, now - 10 * 60_000 + w * 60_000));
      const before = ledger.account(acct(node)).balance;
      assert.ok(before > 0n);
      const dirOut = outboxPath(dir);
      mkdirSync(join(dirOut, 'done'), { recursive: true });
      const files: Uint8Array[] = [];
      // 300 forged transfers "from" the node to the thief: fresh and stale dates, random signatures
      for (let i = 0; i < 300; i++) {
        const amount = before / 2n;
        files.push(forge({ networkId: NET, signer: node.publicKey, nonce: BigInt(i), timestampMs: i % 2 === 0 ? now : now - 3_600_000, body: { kind: EventKind.Transfer, to: acct(thief), amount, fee: transferFee(amount) } }));
      }
      // 200 genuine transfers the node once signed and never sent, an hour old: replays, not spends
      for (let i = 0; i < 200; i++) files.push(buildTransfer(node, env(1000 + i, now - 3_600_000 + i), acct(thief), NEURO / 1_000_000n).bytes);
      for (const b of files) writeFileSync(join(dirOut, `${toHex(decodeEvent(b).id)}.event`), b);
      assert.equal(await service.drainOutbox(), 200, 'the genuine ones were submitted (and refused as STALE)');
      assert.deepEqual(readdirSync(dirOut).filter((f) => f.endsWith('.event')), []);
      const reasons = new Set(files.map((b) => readOutcome(dir, toHex(decodeEvent(b).id))?.reason));
      assert.deepEqual([...reasons].sort(), ['BAD_SIGNATURE', 'STALE']);
      const spent = before - ledger.account(acct(node)).balance;
      const stolen = ledger.account(acct(thief)).balance;
      tally('outbox injection', files.length, (spent > 0n ? 1 : 0) + (stolen > 0n ? 1 : 0) + ledger.status().events - 5);
      assert.equal(spent, 0n);
      assert.equal(stolen, 0n);
      assert.equal(ledger.status().events, 5);
    } finally {
      service.stop();
      done();
    }
  });
});

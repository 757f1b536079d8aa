/**
 * Session 24 (chaos run with the generation load started before the bootstrap): the operator's bootstrap
 * (test/utils/ledger-bootstrap.ts fundAndBondCli) waits for each node's funding transfer, then bonds. A funded node
 * that serves generations pays for the ones it drives at once (node/market.ts nodeInferencePayer: a market request
 * escrows from its balance), so its balance is below the amount sent by the time the bootstrap reads it. The
 * bootstrap must see the transfer itself, not a balance of at least the amount sent: it waited 600 s for
 * "the funding transfer reaches node2" while node2's ledger held that transfer, applied, all along.
 *
 * Real ledgers (SQLite, the witnessed rules, a genesis allocation) stand for the genesis node's and the joiner's,
 * behind a WalletRunner that answers as `neuroshard wallet … --json` does on them; `send` delivers the transfer to
 * the joiner, which then escrows a market request for a generation at once, as a node under load does.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { addressFromPublicKey, parseAddress } from '../../../src/identity/index.js';
import { formatAmount, parseAmount } from '../../../src/ledger/amount.js';
import { buildGenesis, buildMarketRequest, buildStake, buildTransfer } from '../../../src/ledger/build.js';
import { EventKind } from '../../../src/ledger/events.js';
import { Ledger } from '../../../src/ledger/ledger.js';
import { requestTerms } from '../../../src/ledger/request-terms.js';
import { fundAndBondCli } from '../../utils/ledger-bootstrap.js';
import { tempDir } from '../../utils/paths.js';
import { acct, LAYERS, NET, testKey } from './helpers.js';
import { GENESIS, RULES } from './receipt-fixture.js';

describe('the bootstrap sees a funding transfer that the node spends from at once', () => {
  const dirs = [tempDir('ns-boot-g-'), tempDir('ns-boot-n-')];
  after(() => {
    for (const d of dirs) d.cleanup();
  });

  it('bonds the node although its balance is below the amount sent when read', async () => {
    const [gDir, nDir] = dirs.map((d) => d.dir) as [string, string];
    const node = testKey(9201);
    const open = (dir: string): Ledger => new Ledger({ path: `${dir}/ledger.db`, networkId: NET, modelLayers: LAYERS, rewards: RULES });
    const g = open(gDir);
    const n = open(nDir);
    after(() => {
      g.close();
      n.close();
    });
    let t = Date.now();
    const both = (bytes: Uint8Array): void => {
      for (const l of [g, n]) assert.equal(l.ingest(bytes).status, 'applied');
    };
    both(buildGenesis(GENESIS, { networkId: NET, timestampMs: ++t }).bytes);
    const keyOf = new Map([
      [gDir, GENESIS],
      [nDir, node],
    ]);
    const ledgerOf = new Map([
      [gDir, g],
      [nDir, n],
    ]);
    const run = async (dir: string, args: string[]): Promise<unknown> => {
      const key = keyOf.get(dir)!;
      const l = ledgerOf.get(dir)!;
      const me = acct(key);
      switch (args[0]) {
        case 'show':
          return { address: addressFromPublicKey(key.publicKey) };
        case 'send': {
          const tr = buildTransfer(key, { networkId: NET, nonce: l.nextNonce(key.publicKey, EventKind.Transfer), timestampMs: ++t }, parseAddress(args[1]!), parseAmount(args[2]!));
          both(tr.bytes);
          // the joiner drives a generation right away and pays for it from what just arrived (node/market.ts)
          const terms = requestTerms(n.status().marketPricePerMillion, 24, n.account(acct(node)).balance, t);
          assert.ok(terms.ok);
          const req = buildMarketRequest(node, { networkId: NET, nonce: n.nextNonce(node.publicKey, EventKind.MarketRequest), timestampMs: ++t }, { maxTokens: terms.maxTokens, maxPricePerMillion: terms.maxPricePerMillion, expiresAtMs: terms.expiresAtMs });
          both(req.bytes);
          return { id: Buffer.from(tr.id).toString('hex'), status: 'applied' };
        }
        case 'balance':
          return { balance: formatAmount(l.account(me).balance) };
        case 'history': {
          const i = args.indexOf('--limit');
          return l.history(me, i < 0 ? 100 : Number(args[i + 1]));
        }
        case 'stake': {
          const r = l.ingest(buildStake(key, { networkId: NET, nonce: l.nextNonce(key.publicKey, EventKind.Stake), timestampMs: ++t }, parseAmount(args[1]!), Number(args[args.indexOf('--lock-days') + 1])).bytes);
          return { status: r.status, ...(r.reason !== undefined ? { reason: r.reason } : {}) };
        }
        default:
          throw new Error(`wallet ${args[0]} is not part of the bootstrap`);
      }
    };
    // the balance a balance check would read: the escrow is out of it already
    assert.ok(n.account(acct(node)).balance === 0n);
    await fundAndBondCli(gDir, [nDir], { run, timeoutMs: 3_000 });
    const v = n.account(acct(node));
    assert.equal(v.locked, parseAmount('100'), 'the node bonded');
    assert.ok(v.balance + v.locked < parseAmount('150'), 'the node spent from the transfer before it bonded');
  });
});

/**
 * Issue 11 §2, the requester side in the node (`--pay-inference auto`, node/market.ts nodeInferencePayer): two
 * nodes started through the node's own start path (NeuroShardNode.init). g founds the network and holds no layers
 * (its wallet holds the genesis allocation); h holds the whole model. A plain POST /api/generate on g is routed
 * through h, and at its end g escrows a market request for the tokens used and settles it on h's signed commitment:
 * the answer says `payment.status: submitted`, h's completion reaches both ledgers by gossip, h is paid, g pays the
 * cost and the fee is burned, and both ledgers end with one state hash. Nothing in the test builds or copies a ledger
 * event. A third node with an empty wallet answers as well, unpaid, and says why.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { accountIdFromPublicKey, type NodeKey } from '../../../src/identity/index.js';
import { EventKind } from '../../../src/ledger/events.js';
import { NeuroShardNode } from '../../../src/node/node.js';
import { loadOptions } from '../../../src/node/options.js';
import { waitFor } from '../../../src/util/abort.js';
import { createLogger } from '../../../src/util/logger.js';
import { LOOPBACK_TUNING } from '../../utils/network.js';

const dirs: string[] = [];
const nodes: NeuroShardNode[] = [];
const WAIT = { timeoutMs: 180_000, intervalMs: 100 };

async function startNode(name: string, flags: Record<string, unknown>): Promise<NeuroShardNode> {
  const dataDir = mkdtempSync(join(tmpdir(), `ns-paid-${name}-`));
  dirs.push(dataDir);
  const opts = loadOptions({
    flags: { dataDir, listen: ['/ip4/127.0.0.1/tcp/0'], apiPort: 0, mdns: false, upnp: false, train: false, threads: 1, heartbeatIntervalMs: 300, peerStaleMs: 3000, peerDeadMs: 10_000, validationRate: 0, ...flags },
    env: {},
  });
  const log = process.env.PAID_TEST_LOG === undefined ? undefined : createLogger({ level: process.env.PAID_TEST_LOG as 'debug', module: name });
  const n = await NeuroShardNode.init(opts, { ...(log === undefined ? {} : { log }), networkTuning: LOOPBACK_TUNING, poolTuning: { tickMs: 400, settleMs: 3000 } });
  nodes.push(n);
  return n;
}

const addrOf = (n: NeuroShardNode): string => {
  const a = n.network.p2p.multiaddrs()[0]!;
  return a.includes('/p2p/') ? a : `${a}/p2p/${n.network.peerId}`;
};
const acct = (k: NodeKey): Uint8Array => accountIdFromPublicKey(k.publicKey);

async function generate(n: NeuroShardNode): Promise<{ status: number; json: any }> {
  const res = await fetch(`${n.apiUrl}/api/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'The jury said that', max_tokens: 8, temperature: 0 }) });
  return { status: res.status, json: await res.json() };
}

describe('an entry node pays the route of its generations (issue 11 §2, --pay-inference)', { timeout: 600_000 }, () => {
  let g: NeuroShardNode;
  let h: NeuroShardNode;
  let L = 0;

  before(async () => {
    g = await startNode('g', { genesis: true, span: 'none' });
    L = g.pool!.modelConfig().num_hidden_layers;
    h = await startNode('h', { bootstrap: [addrOf(g)], span: `0:${L}` });
    await waitFor(() => h.pool?.span() !== undefined, { ...WAIT, what: 'h holds the model' });
    await waitFor(() => g.network.liveness.snapshot().some((p) => p.peer === h.network.peerId && p.state === 'alive' && p.heartbeat.span?.end === L), { ...WAIT, what: 'h alive in g\'s view' });
  });

  after(async () => {
    for (const n of [...nodes].reverse()) await n.close().catch(() => {});
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('a generation through another node is paid from the entry\'s wallet: the hop is credited, the fee burned, ledgers agree', async () => {
    const lg = g.ledger!.ledger;
    const before = { g: lg.account(acct(g.key)).balance, h: lg.account(acct(h.key)).balance, burned: lg.status().burned, events: lg.status().events };
    assert.ok(before.g > 0n, 'the genesis wallet is funded');
    const { status, json } = await generate(g);
    assert.equal(status, 200, JSON.stringify(json));
    assert.deepEqual(json.route, [{ peerId: h.network.peerId, span: [0, L], weights: 'f32' }]);
    assert.equal(json.payment?.status, 'submitted', JSON.stringify(json.payment));
    assert.ok(json.payment.tokens_used > json.tokens.length, 'the prompt tokens count too');
    const completion = Buffer.from(json.payment.completion_id as string, 'hex');
    // the driver's completion reaches g's ledger by gossip
    await waitFor(() => nodes.every((n) => n.ledger!.ledger.eventStatus(completion)?.status === 'applied'), { ...WAIT, what: 'the completion applied in both ledgers' });
    await waitFor(() => !lg.replayPending() && !h.ledger!.ledger.replayPending() && lg.stateHash() === h.ledger!.ledger.stateHash(), { ...WAIT, what: 'both ledgers agree' });
    const after = { g: lg.account(acct(g.key)).balance, h: lg.account(acct(h.key)).balance, burned: lg.status().burned, events: lg.status().events };
    const paid = before.g - after.g;
    const earned = after.h - before.h;
    const fee = after.burned - before.burned;
    assert.ok(paid > 0n && earned > 0n && fee > 0n, `paid ${paid}, earned ${earned}, fee ${fee}`);
    assert.equal(paid, earned + fee, 'what g paid is what h earned plus the fee burned (the rest of the escrow came back)');
    assert.equal(after.events - before.events, 2, 'one market request and one completion');
    assert.equal(h.ledger!.ledger.account(acct(h.key)).balance, after.h, 'h\'s own ledger says the same');
  });

  it('an entry with an empty wallet is answered unpaid, says why, and writes no event', async () => {
    const e = await startNode('e', { bootstrap: [addrOf(g), addrOf(h)], span: 'none' });
    await waitFor(() => e.network.liveness.snapshot().some((p) => p.peer === h.network.peerId && p.state === 'alive' && p.heartbeat.span?.end === L), { ...WAIT, what: 'h alive in e\'s view' });
    const { status, json } = await generate(e);
    assert.equal(status, 200, JSON.stringify(json));
    assert.deepEqual(json.payment, { status: 'skipped', reason: 'INSUFFICIENT_BALANCE' });
    assert.equal(e.ledger!.ledger.nextNonce(e.key.publicKey, EventKind.MarketRequest), 0n, 'e signed no market request');
  });
});

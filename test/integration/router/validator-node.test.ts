/**
 * Issue 11 §2 "Inference", validators in real nodes: four nodes started through the node's own start path
 * (NeuroShardNode.init: libp2p on 127.0.0.1, compute workers, SQLite ledgers, the layer pool) with
 * `validationRate: 1`. g founds the network (no layers; the requester and the entry); b, c and v hold the whole
 * model (one-hop routes) and are funded and bonded by g (the real bootstrap). c's hop server corrupts its outputs
 * through the test-only fault hook (NodeModules.hopFaultsForTests, not reachable from the CLI) and commits to them
 * honestly, so it is paid on the receipt.
 *
 * g escrows a market request in its ledger (gossiped) and drives a paid generation; the hop, as the route's driver,
 * submits the completion to its own ledger, whose gossip brings it to every node. Nothing in the test hands an event
 * to a ledger or a validator:
 * - the honest hop b: v and c sample it, re-execute it from its fetched transcript and match; b is never slashed;
 * - the corrupt hop c: b and v sample it, re-execute, disagree, one obtains the other's co-check and submits the
 *   slash through its node's ledger; every node's ledger applies it: c's bond and balance are gone everywhere, the
 *   honest hops' bonds are whole, and all four ledgers end with equal state hashes.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { accountIdFromPublicKey, type NodeKey } from '../../../src/identity/index.js';
import { NEURO } from '../../../src/ledger/amount.js';
import { buildMarketRequest } from '../../../src/ledger/build.js';
import { MIN_REWARD_BOND } from '../../../src/ledger/economics.js';
import { EventKind } from '../../../src/ledger/events.js';
import { servedEvents } from '../../../src/ledger/reconcile.js';
import { NeuroShardNode } from '../../../src/node/node.js';
import { loadOptions } from '../../../src/node/options.js';
import { NodeGenerator } from '../../../src/node/serving.js';
import { settleRoute, type Settlement } from '../../../src/protocols/hop-commitment.js';
import { RemoteHopSession } from '../../../src/protocols/inference.js';
import { waitFor } from '../../../src/util/abort.js';
import { createLogger } from '../../../src/util/logger.js';
import { fundAndBond } from '../../utils/ledger-bootstrap.js';
import { LOOPBACK_TUNING } from '../../utils/network.js';

const dirs: string[] = [];
const nodes: NeuroShardNode[] = [];
const WAIT = { timeoutMs: 240_000, intervalMs: 100 };

async function startNode(name: string, flags: Record<string, unknown>, corrupt = false): Promise<NeuroShardNode> {
  const dataDir = mkdtempSync(join(tmpdir(), `ns-validator-${name}-`));
  dirs.push(dataDir);
  const opts = loadOptions({
    flags: { dataDir, listen: ['/ip4/127.0.0.1/tcp/0'], apiPort: 0, mdns: false, upnp: false, train: false, threads: 1, heartbeatIntervalMs: 300, peerStaleMs: 3000, peerDeadMs: 10_000, validationRate: 1, ...flags },
    env: {},
  });
  const log = process.env.VALIDATOR_TEST_LOG === undefined ? undefined : createLogger({ level: process.env.VALIDATOR_TEST_LOG as 'debug', module: name });
  // maxValidationRateForTests: every validator samples every hop (at the network's ceiling the corrupt hop's quorum
  // of two would be left to the draw; test/attacks/transcript-access.test.ts tests the ceiling)
  const n = await NeuroShardNode.init(opts, { ...(log === undefined ? {} : { log }), networkTuning: LOOPBACK_TUNING, poolTuning: { tickMs: 400, settleMs: 5000 }, maxValidationRateForTests: 1, ...(corrupt ? { hopFaultsForTests: { corruptOutputs: true } } : {}) });
  nodes.push(n);
  return n;
}

const addrOf = (n: NeuroShardNode): string => {
  const a = n.network.p2p.multiaddrs()[0]!;
  return a.includes('/p2p/') ? a : `${a}/p2p/${n.network.peerId}`;
};
const acct = (k: NodeKey): Uint8Array => accountIdFromPublicKey(k.publicKey);

describe('validators in real nodes: a corrupt hop is slashed in every ledger, an honest one never (issue 11 §2)', { timeout: 900_000 }, () => {
  let g: NeuroShardNode;
  let b: NeuroShardNode;
  let c: NeuroShardNode;
  let v: NeuroShardNode;
  let L = 0;

  before(async () => {
    g = await startNode('g', { genesis: true, span: 'none' });
    L = g.pool!.modelConfig().num_hidden_layers;
    const whole = `0:${L}`;
    // one after the other, each bootstrapping through every node before it (started together, a pair of holders
    // that only knew g did not always connect under load)
    b = await startNode('b', { bootstrap: [addrOf(g)], span: whole });
    c = await startNode('c', { bootstrap: [addrOf(g), addrOf(b)], span: whole }, true);
    v = await startNode('v', { bootstrap: [addrOf(g), addrOf(b), addrOf(c)], span: whole });
    for (const n of [b, c, v]) await waitFor(() => n.pool?.span() !== undefined, { ...WAIT, what: 'a holder loaded its span' });
    // validators fetch transcripts and ask co-checks by peer id: every pair connected (a bootstrap dial lost under
    // load is not retried by itself), and every holder alive in every other's heartbeats (co-checks go to holders)
    const dialing = new Set<string>();
    await waitFor(
      () => {
        let ok = true;
        for (const x of nodes) {
          for (const y of nodes) {
            if (x === y || x.network.p2p.connectedPeers().includes(y.network.peerId)) continue;
            ok = false;
            const k = `${x.network.peerId}>${y.network.peerId}`;
            if (dialing.has(k)) continue;
            dialing.add(k);
            void x.network.p2p.dial(addrOf(y), { signal: AbortSignal.timeout(20_000) }).catch(() => undefined).finally(() => dialing.delete(k));
          }
        }
        return ok;
      },
      { ...WAIT, intervalMs: 500, what: 'every node connected to every other' },
    );
    const holders = [b, c, v];
    await waitFor(() => nodes.every((x) => holders.every((h) => h === x || x.network.liveness.snapshot().some((p) => p.peer === h.network.peerId && p.state === 'alive' && p.heartbeat.span?.end === L))), { ...WAIT, what: 'every holder alive in every view' });
    // the operator's bootstrap: g (the genesis key) funds the holders, each bonds MIN_REWARD_BOND (gossiped to all)
    await fundAndBond({ key: g.key, l: g.ledger! }, holders.map((n) => ({ key: n.key, l: n.ledger! })), g.genesis.networkId, { now: () => Date.now() }, { fund: 150n * NEURO, timeoutMs: 240_000 });
  });

  after(async () => {
    for (const n of [...nodes].reverse()) await n.close().catch(() => {});
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** g escrows a request (through its ledger: gossip) and drives one paid generation through `hop`. */
  async function paidGeneration(hop: NeuroShardNode): Promise<string> {
    const networkId = g.genesis.networkId;
    const req = buildMarketRequest(g.key, { networkId, nonce: g.ledger!.ledger.nextNonce(g.key.publicKey, EventKind.MarketRequest), timestampMs: Date.now() }, { maxTokens: 10_000, maxPricePerMillion: 150n * NEURO, expiresAtMs: Date.now() + 600_000 });
    const q = await g.ledger!.service.submit(req.bytes);
    // 'pending': g's ledger has a replay pending (a late gossip event) and judges the request with it
    assert.ok(q.status === 'applied' || q.status === 'pending', `${q.status} ${q.reason ?? ''}`);
    // the driver's ledger must hold the escrow before it submits the completion
    await waitFor(() => g.ledger!.ledger.eventStatus(req.id)?.status === 'applied' && hop.ledger!.ledger.eventStatus(req.id)?.status === 'applied', { ...WAIT, what: 'the request applied by g and the hop' });
    const config = g.pool!.modelConfig();
    const gen = new NodeGenerator({
      compute: g.compute,
      genesis: g.genesis,
      selfPeerId: g.network.peerId,
      localSpan: () => undefined,
      peers: () => [{ peerId: hop.network.peerId, span: { start: 0, end: L }, alive: true }],
      remote: (h, spec) => new RemoteHopSession(g.network.rpc, h.peerId, h.span, spec, { hiddenSize: config.hidden_size, vocabSize: config.vocab_size, wire: 'f32', scores: g.network.scores }),
      options: { stepTimeoutMs: 60_000 },
      settle: (r, usage, signal) => settleRoute(r, { networkId, requestId: req.id, requester: g.key, tokensUsed: usage.promptTokens + usage.completionTokens, timeoutMs: 60_000, signal }),
    });
    const r = await gen.run({ prompt: 'The jury said that', maxTokens: 8, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] }, {}, new AbortController().signal);
    assert.equal(r.settlement?.status, 'submitted', JSON.stringify(r.settlement));
    const id = (r.settlement as Extract<Settlement, { status: 'submitted' }>).completionId;
    // the completion reaches every ledger by gossip (nothing copies it)
    await waitFor(() => nodes.every((n) => n.ledger!.ledger.eventStatus(Buffer.from(id, 'hex'))?.status === 'applied'), { ...WAIT, what: 'the completion applied in every ledger' });
    return id;
  }

  /** Every ledger holds the same events, fully applied, with one state hash. */
  async function agreed(what: string): Promise<void> {
    try {
      await waitFor(
        () => {
          const first = g.ledger!.ledger;
          // served events (applied + void): two validators may both slash the fraud; the later slash, rewound and
          // rejected, stays only in its author's ledger (servedEvents, test/unit/ledger/served-count.test.ts)
          return nodes.every((n) => !n.ledger!.ledger.replayPending() && servedEvents(n.ledger!.ledger.status()) === servedEvents(first.status()) && n.ledger!.ledger.stateHash() === first.stateHash());
        },
        { ...WAIT, what },
      );
    } catch (err) {
      dumpLedgers();
      throw err;
    }
  }

  /** On a mismatch: each ledger's status and the state rows that differ from g's (which rows tell the cause). */
  function dumpLedgers(): void {
    const rowsOf = (n: NeuroShardNode): Map<string, string> => new Map((n.ledger!.ledger as unknown as { state: { rows(): [string, string][] } }).state.rows());
    const names = ['g', 'b', 'c', 'v'];
    const ref = rowsOf(g);
    nodes.forEach((n, i) => {
      const st = n.ledger!.ledger.status();
      console.error(`[dump] ${names[i]} status`, JSON.stringify({ ...st, finalized: undefined }, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)));
      if (i === 0) return;
      const mine = rowsOf(n);
      for (const k of new Set([...ref.keys(), ...mine.keys()])) {
        if (ref.get(k) !== mine.get(k)) console.error(`[dump] ${names[i]} row ${k}\n   g: ${ref.get(k)}\n   ${names[i]}: ${mine.get(k)}`);
      }
    });
  }

  it('an honest hop: sampled by the other holders, re-executed, matched; never slashed', async () => {
    const before = { v: v.validator!.view(), c: c.validator!.view() };
    await paidGeneration(b);
    // v and c re-execute b's session from its transcript on their own workers (b never judges itself)
    await waitFor(() => v.validator!.view().matched > before.v.matched && c.validator!.view().matched > before.c.matched, { ...WAIT, what: 'v and c matched the honest hop' });
    assert.equal(v.validator!.view().frauds, before.v.frauds);
    assert.equal(c.validator!.view().frauds, before.c.frauds);
    assert.equal(b.validator!.view().sampled, 0, 'b does not judge its own hop');
    for (const n of nodes) assert.equal(n.ledger!.ledger.account(acct(b.key)).locked, MIN_REWARD_BOND, "b's bond is whole everywhere");
    // GET /api/ledger/status shows what the validator did
    const status = (await (await fetch(`${v.apiUrl}/api/ledger/status`)).json()) as { validator?: Record<string, number> };
    assert.equal(status.validator?.rate, 1);
    assert.ok((status.validator?.reexecuted ?? 0) >= 1, JSON.stringify(status.validator));
  });

  it('a hop that corrupts its outputs is found, confirmed by a second validator and slashed in every ledger', async () => {
    const before = { b: b.validator!.view(), v: v.validator!.view() };
    await paidGeneration(c);
    // the slash reaches every ledger through gossip: c's bond and everything it held are gone
    await waitFor(() => nodes.every((n) => n.ledger!.ledger.account(acct(c.key)).staked === 0n), { ...WAIT, what: "c's bond slashed in every ledger" });
    assert.ok(b.validator!.view().frauds > before.b.frauds || v.validator!.view().frauds > before.v.frauds, 'a validator found the fraud');
    assert.ok(b.validator!.view().coChecks + v.validator!.view().coChecks > before.b.coChecks + before.v.coChecks, 'a second validator re-executed before it signed');
    assert.ok(b.validator!.view().slashes + v.validator!.view().slashes >= 1);
    assert.equal(c.validator!.view().frauds, 0, 'c never judges its own hop');
    await agreed('every ledger agrees after the slash');
    for (const n of nodes) {
      const cv = n.ledger!.ledger.account(acct(c.key));
      assert.equal(cv.staked, 0n);
      assert.equal(cv.balance, 0n, 'SLASH_AMOUNT exceeds all c held: its balance went too');
      for (const h of [b, v]) assert.equal(n.ledger!.ledger.account(acct(h.key)).locked, MIN_REWARD_BOND, 'the honest hops keep their bonds');
      for (const k of [g, b, c, v]) assert.equal(n.ledger!.ledger.account(acct(k.key)).balance, g.ledger!.ledger.account(acct(k.key)).balance, 'balances equal in every ledger');
    }
    const hashes = nodes.map((n) => n.ledger!.ledger.stateHash());
    assert.equal(new Set(hashes).size, 1, 'equal state hashes');
  });
});

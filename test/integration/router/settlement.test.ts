/**
 * Issue 11 §2 "Inference", end to end on real libp2p nodes on 127.0.0.1: an entry with no layers (the requester,
 * whose escrow is a market request on a real SQLite ledger) drives a chain of two hops (spans 0:2 and 2:4, each on
 * its own compute worker). Each hop commits to the activations it received and sent; at the end the entry collects
 * the hops' signed commitments, checks them against what it sent and received and against each other (hop 0's
 * output = hop 1's input), signs the receipt, and hands it to the driver, which submits the completion: the ledger
 * pays the route from the escrow. With fp16 activations on the wire the commitments still chain. A hop that signs
 * with a key not its own, or that signs no commitments (an older hop), gets no receipt: nobody is paid and the escrow
 * stays until expiry. A receipt that does not name the driver's signed commitments is refused by the driver.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ComputeClient } from '../../../src/compute/index.js';
import { keyFromPrivate, type NodeKey } from '../../../src/identity/index.js';
import { NEURO } from '../../../src/ledger/amount.js';
import { buildMarketComplete, buildMarketRequest } from '../../../src/ledger/build.js';
import { decodeEvent, EventKind } from '../../../src/ledger/events.js';
import type { Ledger } from '../../../src/ledger/ledger.js';
import { bundledGenesis } from '../../../src/node/genesis.js';
import type { NodeNetwork } from '../../../src/node/network.js';
import { genesisModelView, NodeGenerator, workerHopCompute } from '../../../src/node/serving.js';
import { encodeReceipt, settleRoute, type HopMarket, type Settlement } from '../../../src/protocols/hop-commitment.js';
import { HOP_LIMIT_DEFAULTS, InferenceHopServer, RemoteHopSession } from '../../../src/protocols/inference.js';
import { waitFor } from '../../../src/util/abort.js';
import { startServingNet } from '../../utils/network.js';
import { acct, env, NET, proofRun, T0, tempLedger } from '../../attacks/helpers.js';

const genesis = bundledGenesis();
const cfg = genesis.config;
const L = cfg.num_hidden_layers;
const C = cfg.hidden_size;

interface Hop {
  key: NodeKey;
  net: NodeNetwork;
  compute: ComputeClient;
  server: InferenceHopServer;
}

/** A loopback serving node of the genesis network with `key`. */
const startNet = (key: NodeKey, span: { start: number; end: number } | undefined, boot: string[]): Promise<NodeNetwork> => startServingNet(genesis.networkId, span, boot, key);

const addr = (n: NodeNetwork): string => n.p2p.multiaddrs()[0]!;

describe('inference receipts: hop commitments, the requester receipt, payment from the escrow (issue 11 §2)', () => {
  let ledger: Ledger;
  let done: () => void;
  /** Ledger time: the test ledger lives at T0 (its proofs fund the requester); each event is dated after the last. */
  let t = T0 + 20 * 60_000;
  let nonce = 0;
  const live = (): { ingress: 'gossip'; nowMs: number } => ({ ingress: 'gossip', nowMs: t });
  /** The driver's market side: sign the completion with its key and submit it to the ledger. */
  const marketOf = (key: NodeKey): HopMarket => ({
    networkId: NET,
    key,
    submitCompletion: async (body) => {
      t += 1000;
      const ev = buildMarketComplete(key, env(++nonce, t), body);
      const r = ledger.ingest(ev.bytes, live());
      if (r.status !== 'applied') throw new Error(`the ledger refused the completion: ${r.status} ${r.reason ?? ''}`);
      return ev.id;
    },
  });
  const hops: Hop[] = [];
  async function startHop(span: { start: number; end: number }, boot: string[], market: (k: NodeKey) => HopMarket | undefined): Promise<Hop> {
    const key = keyFromPrivate(randomBytes(32));
    const net = await startNet(key, span, boot);
    const compute = await ComputeClient.start({ threads: 1 });
    await compute.run({ type: 'initModel', config: cfg, seed: 0, span });
    const server = new InferenceHopServer(workerHopCompute(compute, cfg, () => span), HOP_LIMIT_DEFAULTS, net.scores, undefined, market(key));
    await server.register(net.rpc);
    const h = { key, net, compute, server };
    hops.push(h);
    return h;
  }

  let a: Hop;
  let b: Hop;
  /** b2 serves b's layers but signs for another key (to have the pay go elsewhere); b3 has no market (no ledger). */
  let b2: Hop;
  let b3: Hop;
  const other = keyFromPrivate(randomBytes(32));
  let requester: NodeKey;
  let entry: NodeNetwork;
  let entryCompute: ComputeClient;
  let reference: number[];
  const prompt = 'The jury said that';

  before(async () => {
    ({ ledger, done } = tempLedger());
    requester = keyFromPrivate(randomBytes(32));
    // the requester earns its funds (self-claimed proofs, the bare ledger's rules)
    for (const r of ledger.ingestMany(proofRun(requester, T0, 20))) assert.equal(r.status, 'applied');
    a = await startHop({ start: 0, end: 2 }, [], marketOf);
    b = await startHop({ start: 2, end: L }, [addr(a.net)], marketOf);
    b2 = await startHop({ start: 2, end: L }, [addr(a.net)], () => marketOf(other));
    b3 = await startHop({ start: 2, end: L }, [addr(a.net)], () => undefined);
    entry = await startNet(requester, undefined, hops.map((h) => addr(h.net)));
    entryCompute = await ComputeClient.start({ threads: 1 });
    await entryCompute.run({ type: 'initModel', config: cfg, seed: 0 });
    const model = genesisModelView(genesis);
    reference = Array.from((await entryCompute.run({ type: 'generate', prompt: Int32Array.from(model.encode(prompt)), maxTokens: 12, temperature: 0, stopIds: [cfg.eos_token_id] })).tokens);
    // routes are given below (this test is about payment, not route choice): the entry needs only connections
    await waitFor(() => hops.every((h) => entry.p2p.connectedPeers().includes(h.net.peerId)), { timeoutMs: 180_000, intervalMs: 100, what: 'the entry connected to every hop' });
  });
  after(async () => {
    for (const h of hops) {
      await h.net.stop();
      await h.compute.close();
    }
    await entry?.stop();
    await entryCompute?.close();
    done?.();
  });

  /** A market request of the requester's (escrow), then one generation paid from it through `route` peers. */
  async function paidGeneration(wire: 'f32' | 'f16', route: Hop[], push = false): Promise<{ settlement: Settlement | undefined; tokens: number[]; requestId: Uint8Array; pushesUsed: number }> {
    t += 1000;
    const req = buildMarketRequest(requester, env(++nonce + 10_000, t), { maxTokens: 10_000, maxPricePerMillion: 5n * NEURO, expiresAtMs: t + 600_000 });
    assert.equal(ledger.ingest(req.bytes, live()).status, 'applied');
    const gen = new NodeGenerator({
      compute: entryCompute,
      genesis,
      selfPeerId: entry.peerId,
      localSpan: () => undefined,
      peers: () => route.map((h, i) => ({ peerId: h.net.peerId, span: i === 0 ? { start: 0, end: 2 } : { start: 2, end: L }, alive: true })),
      remote: (hop, spec) => new RemoteHopSession(entry.rpc, hop.peerId, hop.span, spec, { hiddenSize: C, vocabSize: cfg.vocab_size, wire, scores: entry.scores }),
      options: { stepTimeoutMs: 60_000, push },
      settle: (route, usage, signal) => settleRoute(route, { networkId: NET, requestId: req.id, requester, tokensUsed: usage.promptTokens + usage.completionTokens, timeoutMs: 60_000, signal }),
    });
    const r = await gen.run({ prompt, maxTokens: 12, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] }, {}, new AbortController().signal);
    return { settlement: r.settlement, tokens: r.tokens, requestId: req.id, pushesUsed: r.pushes?.used ?? 0 };
  }

  it('an honest two-hop route is paid from the escrow on the requester receipt (fp32 and fp16 activations on the wire)', async () => {
    for (const wire of ['f32', 'f16'] as const) {
      const before = { a: ledger.account(acct(a.key)).balance, b: ledger.account(acct(b.key)).balance, req: ledger.account(acct(requester)).balance };
      const r = await paidGeneration(wire, [a, b]);
      if (wire === 'f32') assert.deepEqual(r.tokens, reference);
      assert.equal(r.settlement?.status, 'submitted', `${wire}: ${JSON.stringify(r.settlement)}`);
      const s = r.settlement as Extract<Settlement, { status: 'submitted' }>;
      assert.equal(s.hops, 2);
      assert.equal(s.tokensUsed, genesisModelView(genesis).encode(prompt).length + r.tokens.length);
      // the completion is on the ledger, signed by the driver, and paid the driver and the validator
      const id = Buffer.from(s.completionId, 'hex');
      assert.equal(ledger.eventStatus(id)?.status, 'applied');
      assert.equal(decodeEvent(ledger.eventBytes(id)!).body.kind, EventKind.MarketComplete);
      assert.ok(ledger.account(acct(a.key)).balance > before.a, 'the driver was paid');
      assert.ok(ledger.account(acct(b.key)).balance > before.b, 'the validator was paid');
      assert.ok(ledger.account(acct(requester)).balance < before.req, 'the requester paid');
      assert.equal(ledger.status().escrowed, 0n, 'the rest of the escrow went back');
    }
  });

  it('a generation whose decode steps went hop to hop (session 29 pushes) is paid: the validator committed to the pushed inputs', async () => {
    for (const wire of ['f32', 'f16'] as const) {
      const before = { a: ledger.account(acct(a.key)).balance, b: ledger.account(acct(b.key)).balance };
      const pushed0 = b.server.pushStats.pushedSteps;
      const r = await paidGeneration(wire, [a, b], true);
      if (wire === 'f32') assert.deepEqual(r.tokens, reference);
      assert.ok(r.pushesUsed > 0 && b.server.pushStats.pushedSteps - pushed0 === r.pushesUsed, `${wire}: pushes used ${r.pushesUsed}`);
      assert.equal(r.settlement?.status, 'submitted', `${wire}: ${JSON.stringify(r.settlement)}`);
      assert.ok(ledger.account(acct(a.key)).balance > before.a, 'the driver was paid');
      assert.ok(ledger.account(acct(b.key)).balance > before.b, 'the validator was paid');
    }
  });

  it('a hop that signs with a key other than its own, or signs nothing (an older hop), gets no receipt; nobody is paid', async () => {
    for (const [v, reason] of [[b2, 'HOP_WRONG_KEY'], [b3, 'HOP_NO_COMMITMENT']] as const) {
      const aBal = ledger.account(acct(a.key)).balance;
      const r = await paidGeneration('f32', [a, v]);
      assert.deepEqual(r.tokens, reference, 'the generation itself is unaffected');
      assert.equal(r.settlement?.status, 'refused', JSON.stringify(r.settlement));
      assert.equal((r.settlement as { reason: string }).reason, reason);
      assert.equal((r.settlement as { hop: number }).hop, 1);
      assert.equal(ledger.account(acct(a.key)).balance, aBal, 'nobody was paid');
      assert.ok(ledger.status().escrowed > 0n, 'the escrow waits for its expiry');
      assert.equal(ledger.account(acct(other)).balance, 0n);
    }
  });

  it('the driver refuses a receipt that does not name its signed commitments', async () => {
    const s = new RemoteHopSession(entry.rpc, a.net.peerId, { start: 0, end: 2 }, { id: 'forged-receipt', maxLen: 8, sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 } }, { hiddenSize: C, vocabSize: cfg.vocab_size, wire: 'f32' });
    await s.step({ ids: Int32Array.of(1, 2, 3), chunks: [3] }, new AbortController().signal);
    const requestId = new Uint8Array(32).fill(7);
    const signed = await s.commit({ requestId, index: 0, count: 1 }, new AbortController().signal);
    const forged = encodeReceipt({ tokensUsed: 3, outputCommitment: new Uint8Array(32), hops: [{ ...signed, outCommit: new Uint8Array(32) }], requesterKey: requester.publicKey, receiptSignature: new Uint8Array(64) });
    await assert.rejects(s.submitReceipt(forged, new AbortController().signal), (e: unknown) => e instanceof Error && 'code' in e && e.code === 'BAD_RECEIPT');
    s.close();
  });
});

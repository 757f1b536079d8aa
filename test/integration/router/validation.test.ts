/**
 * Issue 11 §2 "Inference", validators, end to end on real libp2p nodes on 127.0.0.1 with a real SQLite ledger: a
 * requester (an entry with no layers) pays two-hop routes from its escrow as in settlement.test.ts. Hops keep their
 * sessions' inputs (hop-transcript.ts); two validators holding the last span (b, itself an honest hop, and v)
 * re-execute every sampled hop (rate 1) from the fetched, commitment-checked inputs on their own workers.
 * - An honest hop (b) re-executes to its own output: never slashed. Hops serve their transcripts as a node does
 *   (session 28): to bonded peers, for the completion the ledger applied; the unbonded requester's entry gets none.
 * - A hop whose outputs are corrupted by a test-only fault (c; it commits to them honestly, so it is paid) is found
 *   by b, confirmed by v's own re-execution over `hop-fraud-check`, and slashed with their two statements: its bond
 *   goes, half to the requester it defrauded. The second validator's identical evidence is refused (ALREADY_SLASHED).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ComputeClient } from '../../../src/compute/index.js';
import { keyFromPrivate, type NodeKey } from '../../../src/identity/index.js';
import { NEURO } from '../../../src/ledger/amount.js';
import { buildMarketComplete, buildMarketRequest, buildStake } from '../../../src/ledger/build.js';
import { MIN_REWARD_BOND, SLASH_AMOUNT } from '../../../src/ledger/economics.js';
import { buildSlashHopFraud } from '../../../src/ledger/fraud.js';
import { decodeEvent, type MarketCompleteBody } from '../../../src/ledger/events.js';
import type { Ledger } from '../../../src/ledger/ledger.js';
import { bundledGenesis } from '../../../src/node/genesis.js';
import type { NodeNetwork } from '../../../src/node/network.js';
import { NodeGenerator, workerHopCompute } from '../../../src/node/serving.js';
import { settleRoute, type HopMarket, type Settlement } from '../../../src/protocols/hop-commitment.js';
import { fetchTranscript, serveTranscripts, TranscriptStore } from '../../../src/protocols/hop-transcript.js';
import { HopValidator, type Verdict } from '../../../src/protocols/hop-validator.js';
import { HOP_LIMIT_DEFAULTS, InferenceHopServer, RemoteHopSession } from '../../../src/protocols/inference.js';
import { bondedReaders, PaidCompletions } from '../../../src/protocols/transcript-access.js';
import { waitFor } from '../../../src/util/abort.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { startServingNet } from '../../utils/network.js';
import { acct, env, NET, proofRun, T0, tempLedger } from '../../attacks/helpers.js';

const genesis = bundledGenesis();
const cfg = genesis.config;
const L = cfg.num_hidden_layers;
const C = cfg.hidden_size;
const ENGINE = 'neuroshard-cpu/test';

interface Hop {
  key: NodeKey;
  net: NodeNetwork;
  compute: ComputeClient;
  store: TranscriptStore;
  paid: PaidCompletions;
  validator?: HopValidator;
}

/** A loopback serving node of the genesis network with `key`. */
const startNet = (key: NodeKey, span: { start: number; end: number } | undefined, boot: string[]): Promise<NodeNetwork> => startServingNet(genesis.networkId, span, boot, key);

const addr = (n: NodeNetwork): string => n.p2p.multiaddrs()[0]!;

describe('validators re-execute sampled hops and slash a hop whose outputs do not match (issue 11 §2)', () => {
  let ledger: Ledger;
  let done: () => void;
  // after the funding proofs (one a minute for 125 minutes)
  let t = T0 + 130 * 60_000;
  const nonces = new Map<string, number>();
  const nonce = (k: NodeKey): number => {
    const h = Buffer.from(k.publicKey).toString('hex');
    const n = (nonces.get(h) ?? 1000) + 1;
    nonces.set(h, n);
    return n;
  };
  const live = (): { ingress: 'gossip'; nowMs: number } => ({ ingress: 'gossip', nowMs: t });
  const marketOf = (key: NodeKey): HopMarket => ({
    networkId: NET,
    key,
    submitCompletion: async (body) => {
      t += 1000;
      const ev = buildMarketComplete(key, env(nonce(key), t), body);
      const r = ledger.ingest(ev.bytes, live());
      if (r.status !== 'applied') throw new Error(`the ledger refused the completion: ${r.status} ${r.reason ?? ''}`);
      // every hop's node hears of it (its ledger service's ingest event, node/validator.ts nodeTranscripts)
      for (const h of hops) h.paid.note(ev.bytes);
      return ev.id;
    },
  });
  const slashes: { reporter: string; status: string; reason?: string }[] = [];
  const hops: Hop[] = [];
  const validators: Hop[] = [];

  async function startHop(span: { start: number; end: number }, boot: string[], o: { corrupt?: boolean; validator?: boolean } = {}): Promise<Hop> {
    const key = keyFromPrivate(randomBytes(32));
    const net = await startNet(key, span, boot);
    const compute = await ComputeClient.start({ threads: 1 });
    await compute.run({ type: 'initModel', config: cfg, seed: 0, span });
    const hc = workerHopCompute(compute, cfg, () => span);
    const claim = async (): Promise<{ modelHash: string; engine: string }> => ({ modelHash: (await compute.run({ type: 'modelHash' })).hash, engine: ENGINE });
    const store = new TranscriptStore();
    // served as a node serves them (session 28): to bonded peers, for the completion the ledger applied
    const paid = new PaidCompletions(key.publicKey, (id) => ledger.eventStatus(id)?.status === 'applied');
    const server = new InferenceHopServer(hc, HOP_LIMIT_DEFAULTS, net.scores, undefined, marketOf(key), { transcripts: { store, claim }, faultsForTests: { corruptOutputs: o.corrupt === true } });
    await server.register(net.rpc);
    // every validator at rate 1 samples every hop here (the draw of the network's ceiling, MAX_VALIDATION_RATE, would
    // leave the corrupt hop's quorum to chance: test/attacks/transcript-access.test.ts tests the ceiling)
    await serveTranscripts(net.rpc, store, { entitled: bondedReaders((id) => ledger.account(id).locked), paid: (r, i) => paid.paid(r, i), networkId: NET, key: key.publicKey, maxRate: 1 });
    const h: Hop = { key, net, compute, store, paid };
    if (o.validator === true) {
      h.validator = new HopValidator({
        networkId: NET,
        key,
        rpc: net.rpc,
        compute: hc,
        claim,
        holders: () => validators.filter((x) => x !== h).map((x) => x.net.peerId),
        submitSlash: async ([completion, record]) => {
          t += 1000;
          const ev = buildSlashHopFraud(key, env(nonce(key), t), completion, record);
          const r = ledger.ingest(ev.bytes, live());
          slashes.push({ reporter: net.peerId, status: r.status, ...(r.reason === undefined ? {} : { reason: r.reason }) });
          if (r.status !== 'applied') throw new Error(`slash ${r.status} ${r.reason ?? ''}`);
        },
        rate: 1,
        timeoutMs: 120_000,
      });
      await h.validator.serve(net.rpc);
      validators.push(h);
    }
    hops.push(h);
    return h;
  }

  let a: Hop;
  let b: Hop;
  let c: Hop;
  let v: Hop;
  let requester: NodeKey;
  let entry: NodeNetwork;
  let entryCompute: ComputeClient;
  const prompt = 'The jury said that';

  before(async () => {
    ({ ledger, done } = tempLedger());
    requester = keyFromPrivate(randomBytes(32));
    a = await startHop({ start: 0, end: 2 }, []);
    // validators fetch transcripts from, and ask co-checks of, hops by peer id: each node dials all before it
    b = await startHop({ start: 2, end: L }, [addr(a.net)], { validator: true });
    c = await startHop({ start: 2, end: L }, [addr(a.net), addr(b.net)], { corrupt: true });
    v = await startHop({ start: 2, end: L }, [addr(a.net), addr(b.net), addr(c.net)], { validator: true });
    // everyone earns funds (self-claimed proofs, the bare ledger's rules); validators and hops bond MIN_REWARD_BOND
    for (const k of [requester, b.key, c.key, v.key]) for (const r of ledger.ingestMany(proofRun(k, T0, 125))) assert.equal(r.status, 'applied');
    for (const k of [b.key, c.key, v.key]) assert.equal(ledger.ingest(buildStake(k, env(nonce(k), (t += 1000)), MIN_REWARD_BOND, 30).bytes, live()).status, 'applied');
    entry = await startNet(requester, undefined, hops.map((h) => addr(h.net)));
    entryCompute = await ComputeClient.start({ threads: 1 });
    await entryCompute.run({ type: 'initModel', config: cfg, seed: 0 });
    await waitFor(() => hops.every((h) => entry.p2p.connectedPeers().includes(h.net.peerId)), { timeoutMs: 180_000, intervalMs: 100, what: 'the entry connected to every hop' });
    // a bootstrap dial that failed under load is not retried by itself: dial what is missing until all are connected
    const dialing = new Set<string>();
    const missing = (): [Hop, Hop][] => validators.flatMap((x) => hops.filter((h) => h !== x && !x.net.p2p.connectedPeers().includes(h.net.peerId)).map((h): [Hop, Hop] => [x, h]));
    await waitFor(
      () => {
        const m = missing();
        for (const [x, h] of m) {
          const k = `${x.net.peerId}>${h.net.peerId}`;
          if (dialing.has(k)) continue;
          dialing.add(k);
          void x.net.p2p.dial(addr(h.net), { signal: AbortSignal.timeout(20_000) }).catch(() => undefined).finally(() => dialing.delete(k));
        }
        return m.length === 0;
      },
      { timeoutMs: 240_000, intervalMs: 2_000, what: 'every validator connected to every hop' },
    );
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

  async function paidGeneration(route: Hop[]): Promise<{ settlement: Settlement | undefined; completion: Uint8Array }> {
    t += 1000;
    const req = buildMarketRequest(requester, env(nonce(requester), t), { maxTokens: 10_000, maxPricePerMillion: 150n * NEURO, expiresAtMs: t + 600_000 });
    const q = ledger.ingest(req.bytes, live());
    assert.equal(q.status, 'applied', q.reason);
    const gen = new NodeGenerator({
      compute: entryCompute,
      genesis,
      selfPeerId: entry.peerId,
      localSpan: () => undefined,
      peers: () => route.map((h, i) => ({ peerId: h.net.peerId, span: i === 0 ? { start: 0, end: 2 } : { start: 2, end: L }, alive: true })),
      remote: (hop, spec) => new RemoteHopSession(entry.rpc, hop.peerId, hop.span, spec, { hiddenSize: C, vocabSize: cfg.vocab_size, wire: 'f32', scores: entry.scores }),
      options: { stepTimeoutMs: 60_000 },
      settle: (r, usage, signal) => settleRoute(r, { networkId: NET, requestId: req.id, requester, tokensUsed: usage.promptTokens + usage.completionTokens, timeoutMs: 60_000, signal }),
    });
    const r = await gen.run({ prompt, maxTokens: 8, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] }, {}, new AbortController().signal);
    assert.equal(r.settlement?.status, 'submitted', JSON.stringify(r.settlement));
    const id = Buffer.from((r.settlement as Extract<Settlement, { status: 'submitted' }>).completionId, 'hex');
    return { settlement: r.settlement, completion: ledger.eventBytes(id)! };
  }

  const statusOf = (vs: Verdict[], index: number): string | undefined => vs.find((x) => x.index === index)?.status;

  it('an honest hop re-executes to its own output on every validator: matched, never slashed', async () => {
    const before = ledger.account(acct(b.key));
    const { completion } = await paidGeneration([a, b]);
    const byV = await v.validator!.onCompletion(completion, new AbortController().signal);
    assert.equal(statusOf(byV, 1), 'match', JSON.stringify(byV));
    // hop 0 (the driver, layers 0:2) is sampled too, but no validator here holds its span: skipped, not judged
    assert.deepEqual(byV.find((x) => x.index === 0), { status: 'skip', index: 0, reason: 'OTHER_SPAN' });
    const byB = await b.validator!.onCompletion(completion, new AbortController().signal);
    assert.equal(byB.some((x) => x.index === 1), false, 'a validator does not judge itself');
    assert.equal(slashes.length, 0);
    assert.equal(ledger.account(acct(b.key)).staked, before.staked, "the honest hop's bond is whole");
    assert.ok(ledger.account(acct(b.key)).balance > before.balance, 'and it was paid');
    // the requester's entry (no bond) cannot read the hop's inputs, though it names the completion's commitments
    const hop1 = decodeEvent(completion).body as MarketCompleteBody;
    await assert.rejects(fetchTranscript(entry.rpc, b.net.peerId, hop1.requestId, 1, undefined, hop1.hops[1]!), (e: unknown) => isNeuroShardError(e) && e.code === 'TRANSCRIPT_FORBIDDEN');
  });

  it('a hop that corrupts its outputs (committing to them honestly) is found, confirmed by a second validator, and slashed', async () => {
    const before = { c: ledger.account(acct(c.key)), req: ledger.account(acct(requester)).balance, b: ledger.account(acct(b.key)).balance, v: ledger.account(acct(v.key)).balance };
    const { completion } = await paidGeneration([a, c]);
    const paid = ledger.account(acct(c.key));
    assert.ok(paid.balance > before.c.balance, 'the corrupt hop was paid on the receipt (its commitments chain)');
    const reqPaid = ledger.account(acct(requester)).balance;
    const byB = await b.validator!.onCompletion(completion, new AbortController().signal);
    assert.equal(statusOf(byB, 1), 'fraud', JSON.stringify(byB));
    assert.equal(v.validator!.stats.coChecks, 1, 'v re-executed before it signed');
    assert.equal(b.validator!.stats.slashes, 1);
    assert.deepEqual(slashes, [{ reporter: b.net.peerId, status: 'applied' }]);
    const after = ledger.account(acct(c.key));
    assert.equal(after.staked, 0n, 'the bond is gone');
    // SLASH_AMOUNT (1,000 NEURO) is more than c holds: all of it goes (stake, then balance, which includes its pay)
    const taken = paid.staked + paid.balance - after.staked - after.balance;
    assert.equal(taken, SLASH_AMOUNT < paid.staked + paid.balance ? SLASH_AMOUNT : paid.staked + paid.balance);
    assert.equal(after.balance, 0n);
    // half of the take to the defrauded requester (more than the completion cost it), none to the reporter
    assert.equal(ledger.account(acct(requester)).balance, reqPaid + taken / 2n);
    assert.ok(taken / 2n > before.req - reqPaid, 'the requester is refunded more than it paid');
    assert.equal(ledger.account(acct(b.key)).balance, before.b);
    // the second validator finds the same fraud; its evidence is the same offence: refused
    const byV = await v.validator!.onCompletion(completion, new AbortController().signal);
    assert.equal(statusOf(byV, 1), 'fraud');
    assert.deepEqual(slashes.map((s) => s.status), ['applied', 'dropped']);
    assert.equal(slashes[1]!.reason, 'ALREADY_SLASHED');
    assert.equal(ledger.account(acct(v.key)).balance, before.v);
    // and the honest hop is still whole after everything
    assert.equal(ledger.account(acct(b.key)).staked, MIN_REWARD_BOND);
  });
});

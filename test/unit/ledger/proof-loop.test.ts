/**
 * ledger/proof-loop.ts: when a node's own proofs may start (reconciled, peers asked about our key, or a founder
 * alone), one proof at a time, and what an answer from peers changes, with a real ProofSequence and WorkTally and
 * callbacks in place of the node's ledger and network.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeEvent } from '../../../src/ledger/events.js';
import { PROOF_WINDOW_MS } from '../../../src/ledger/economics.js';
import { signEmbeddedHolderRecord, type EmbeddedHolderRecord } from '../../../src/ledger/holder.js';
import { PROOF_GATE_PEERS, ProofLoop, type ProofLoopOptions } from '../../../src/ledger/proof-loop.js';
import { ProofSequence } from '../../../src/ledger/prover.js';
import { WorkTally } from '../../../src/ledger/work.js';
import { HeldHash } from '../../../src/pool/held-hash.js';
import { sha256, toHex } from '../../../src/util/bytes.js';
import { silentLogger } from '../../../src/util/logger.js';
import { LAYERS, NET, T0, testKey } from './helpers.js';

const key = testKey(43);
const W = PROOF_WINDOW_MS;
const E0 = Math.floor(T0 / W);

function record(span: { start: number; end: number }, nowMs: number): EmbeddedHolderRecord {
  return signEmbeddedHolderRecord(key, { networkId: NET, multiaddrs: ['/ip4/127.0.0.1/tcp/9000'], span, capacity: { memoryMb: 1024, tokensPerSec: 10 }, timestampMs: nowMs, expiresMs: nowMs + 600_000 });
}

interface Rig {
  loop: ProofLoop;
  proofs: ProofSequence;
  state: { caughtUp: boolean; alone: boolean; active: boolean; now: number; peers: string[]; localNonce: bigint };
  submitted: Uint8Array[];
  asked: string[];
}

function rig(o: { answers?: Record<string, { nextProofNonce: bigint; lastEpoch: number } | Error>; submit?: ProofLoopOptions['submit']; counters?: WorkTally; hashWaitMs?: number } = {}): Rig {
  const counters = o.counters ?? new WorkTally();
  counters.setLayers({ start: 0, end: LAYERS });
  const proofs = new ProofSequence({ key, networkId: NET, counters, modelLayers: LAYERS, offsetMs: 0, startedAt: T0, lastEpoch: -1, ...(o.hashWaitMs !== undefined ? { hashWaitMs: o.hashWaitMs } : {}) });
  const state = { caughtUp: false, alone: false, active: true, now: T0 + W, peers: ['a', 'b'], localNonce: 0n };
  const submitted: Uint8Array[] = [];
  const asked: string[] = [];
  const loop = new ProofLoop({
    proofs,
    caughtUp: () => state.caughtUp,
    alone: () => state.alone,
    active: () => state.active,
    peers: () => state.peers,
    fetchAccount: async (p) => {
      asked.push(p);
      const a = o.answers?.[p];
      if (a === undefined) throw new Error(`peer ${p} does not answer`);
      if (a instanceof Error) throw a;
      return a;
    },
    localNonce: () => state.localNonce,
    submit:
      o.submit ??
      (async (bytes) => {
        submitted.push(bytes);
        return { id: String(submitted.length), status: 'applied' };
      }),
    record,
    startEpoch: Math.floor(T0 / W),
    clock: { now: () => state.now },
    log: silentLogger,
  });
  return { loop, proofs, state, submitted, asked };
}

describe('ProofLoop (ledger/proof-loop.ts)', () => {
  it('no proof before the node reconciled with a peer; the gate asks peers about our key first', async () => {
    const r = rig({ answers: { a: { nextProofNonce: BigInt(E0 + 10), lastEpoch: E0 - 3 } } });
    assert.equal(await r.loop.proveNow(), undefined, 'not caught up: wait');
    assert.deepEqual(r.asked, [], 'nobody asked before reconciling');
    assert.equal(r.loop.waitingForSync, true);
    r.state.caughtUp = true;
    const out = await r.loop.proveNow();
    assert.deepEqual(r.asked, ['a', 'b'], 'every peer (up to the cap) asked, a failing one skipped');
    assert.equal(r.loop.reported.asked, true);
    assert.equal(r.loop.waitingForSync, false);
    assert.ok(out !== undefined && out.status === 'applied');
    assert.equal(out.nonce, String(E0 + 10), 'the nonce a peer reported raises ours past the epoch (a fresh data dir must not reuse one)');
    assert.equal(r.submitted.length, 1);
    assert.equal(decodeEvent(r.submitted[0]!).nonce, BigInt(E0 + 10));
  });

  it('caught up but no peer answers about our key: no proof, and the gate asks again next time', async () => {
    const r = rig({ answers: { a: new Error('timeout') } });
    r.state.caughtUp = true;
    assert.equal(await r.loop.proveNow(), undefined);
    assert.equal(r.submitted.length, 0, 'an unanswered gate proves nothing');
    assert.equal(r.loop.waitingForSync, true);
    assert.deepEqual(r.asked, ['a', 'b']);
    r.state.peers = ['c'];
    assert.equal(await r.loop.proveNow(), undefined);
    assert.deepEqual(r.asked, ['a', 'b', 'c'], 'asked again on the next attempt');
  });

  it('a founder alone proves without reconciling or asking; the gate then stays open', async () => {
    const r = rig();
    r.state.alone = true;
    assert.equal((await r.loop.proveNow())?.status, 'applied');
    assert.deepEqual(r.asked, []);
    r.state.alone = false; // a peer arrived: the gate does not close again
    r.state.now += W;
    assert.equal((await r.loop.proveNow())?.status, 'applied');
    assert.equal(r.submitted.length, 2);
  });

  it('asks at most PROOF_GATE_PEERS peers, and a reported window is never proved again', async () => {
    const answers: Record<string, { nextProofNonce: bigint; lastEpoch: number }> = {};
    const peers = Array.from({ length: PROOF_GATE_PEERS + 3 }, (_, i) => `p${i}`);
    for (const p of peers) answers[p] = { nextProofNonce: 1n, lastEpoch: E0 + 1 };
    const r = rig({ answers });
    r.state.caughtUp = true;
    r.state.peers = peers;
    assert.equal(await r.loop.proveNow(), undefined, 'the window at T0 + W was proved already, says a peer');
    assert.equal(r.asked.length, PROOF_GATE_PEERS);
    r.state.now = T0 + 2 * W;
    assert.equal((await r.loop.proveNow())?.epoch, E0 + 2, 'the next window is ours');
  });

  it('one proof at a time; none once inactive, and idle() waits for the one being published', async () => {
    let release!: () => void;
    const gate = new Promise<void>((res) => (release = res));
    let calls = 0;
    const r = rig({
      submit: async () => {
        calls++;
        await gate;
        return { id: 'x', status: 'applied' };
      },
    });
    r.state.alone = true;
    const first = r.loop.proveNow();
    // the first attempt is inside submit once the microtasks ran: wait for that, with a bound
    for (let i = 0; i < 1000 && !r.loop.busy; i++) await new Promise((res) => setImmediate(res));
    assert.equal(r.loop.busy, true);
    assert.equal(await r.loop.proveNow(), undefined, 'a second attempt while one is in flight does nothing');
    r.state.active = false;
    let idle = false;
    const waiting = r.loop.idle().then(() => (idle = true));
    await new Promise((res) => setImmediate(res));
    assert.equal(idle, false, 'idle waits for the proof being published');
    release();
    assert.equal((await first)?.status, 'applied');
    await waiting;
    assert.equal(calls, 1);
    r.state.now += W;
    assert.equal(await r.loop.proveNow(), undefined, 'inactive: no new proof');
    assert.equal(calls, 1);
  });

  it('a proof our ledger refuses frees its work for the next one; the gate stays open', async () => {
    let verdict: 'dropped' | 'applied' = 'dropped';
    const r = rig({ submit: async () => ({ id: 'x', status: verdict, ...(verdict === 'dropped' ? { reason: 'RATE_LIMIT_WINDOW' } : {}) }) });
    r.state.alone = true;
    const o1 = await r.loop.proveNow();
    assert.deepEqual(o1 && { status: o1.status, reason: o1.reason }, { status: 'dropped', reason: 'RATE_LIMIT_WINDOW' });
    assert.equal(r.proofs.emitted, 0);
    verdict = 'applied';
    r.state.now += W;
    assert.equal((await r.loop.proveNow())?.status, 'applied');
    assert.equal(r.proofs.emitted, 1);
  });

  describe('the model hash a proof names is read after its counters (a stale one dropped the last seconds of training)', () => {
    /**
     * The node's wiring (node/node.ts): the tally names the pool's held hash (pool/held-hash.ts), which lags the
     * worker's weights by up to 5 s (its periodic refresh never runs here). `worker.version` stands for the worker's
     * weights: a training step bumps it, then the node records the step in the tally (as node.ts does on a step's
     * result); `onRead` runs while the worker answers a hash read (a step that lands meanwhile).
     */
    function trainer(): { tally: WorkTally; held: HeldHash; worker: { version: number; reads: number; onRead?: () => void; hang?: boolean }; step(tokens: number): void } {
      const worker: { version: number; reads: number; onRead?: () => void; hang?: boolean } = { version: 0, reads: 0 };
      const hashOf = (v: number): string => toHex(sha256(new TextEncoder().encode(`weights v${v}`)));
      const held = new HeldHash({
        read: async () => {
          worker.reads++;
          if (worker.hang === true) return new Promise<never>(() => {});
          worker.onRead?.();
          return { hash: hashOf(worker.version) };
        },
        readable: () => true,
      });
      held.set(hashOf(0));
      const tally = new WorkTally();
      tally.setModelHash({ current: () => held.current(), refresh: () => held.refresh() });
      const step = (tokens: number): void => {
        worker.version++;
        tally.recordTrainingStep({ tokens, loss: 2.5, gradNorm: 1 });
      };
      return { tally, held, worker, step };
    }
    const body = (bytes: Uint8Array): { trainingTokens: bigint; modelHash: string; after: string } => {
      const b = decodeEvent(bytes).body as { trainingTokens: bigint; modelHash: Uint8Array; modelHashAfter: Uint8Array };
      return { trainingTokens: b.trainingTokens, modelHash: toHex(b.modelHash), after: toHex(b.modelHashAfter) };
    };

    it('training just before a proof is claimed, under the hash of the weights it produced', async () => {
      const t = trainer();
      const r = rig({ counters: t.tally });
      r.state.alone = true;
      assert.equal((await r.loop.proveNow())?.status, 'applied', 'the first proof: the base');
      t.step(4096); // the window's only training, a moment before the next proof: the held hash has not moved
      const stale = t.held.current();
      r.state.now += W;
      assert.equal((await r.loop.proveNow())?.status, 'applied');
      const b = body(r.submitted[1]!);
      assert.equal(b.trainingTokens, 4096n, 'the step is claimed (a stale hash: "model hash unchanged", 0 tokens)');
      assert.notEqual(b.after, stale);
      assert.equal(b.after, t.held.current(), 'the hash after is the fresh one, which the held hash now names too');
      assert.equal(b.modelHash, b.after);
    });

    it('a step that lands while the hash is read goes to the next proof, never into one whose hash lacks it', async () => {
      const t = trainer();
      const r = rig({ counters: t.tally });
      r.state.alone = true;
      await r.loop.proveNow();
      t.step(4096);
      t.worker.onRead = () => {
        t.worker.onRead = undefined;
        t.step(1000); // applied after the counters were taken, before the worker hashed: the hash includes it
      };
      r.state.now += W;
      await r.loop.proveNow();
      assert.equal(body(r.submitted[1]!).trainingTokens, 4096n, 'only the tokens counted before the read');
      t.step(512);
      r.state.now += W;
      await r.loop.proveNow();
      assert.equal(body(r.submitted[2]!).trainingTokens, 1512n, 'the late step is claimed with the next training');
    });

    it('no hash is read while no proof is due; a read that does not answer in time names the held hash', async () => {
      const t = trainer();
      const r = rig({ counters: t.tally, hashWaitMs: 50 });
      r.state.alone = true;
      await r.loop.proveNow();
      const reads = t.worker.reads;
      assert.ok(reads >= 1);
      r.state.now += 1000; // same window: not due
      assert.equal(await r.loop.proveNow(), undefined);
      assert.equal(t.worker.reads, reads, 'nothing read for a proof that is not due');
      t.step(4096);
      t.worker.hang = true; // a worker that never answers (wedged): the proof still goes out, on the held hash
      r.state.now += W;
      assert.equal((await r.loop.proveNow())?.status, 'applied');
      const b = body(r.submitted[1]!);
      assert.equal(b.trainingTokens, 0n, 'the held hash did not move: the training is not provable in this proof');
      assert.equal(b.modelHash, t.held.current());
    });
  });
});

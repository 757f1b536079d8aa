/**
 * The LedgerNetwork over our P2P interface and RPC (src/protocols/ledger-sync.ts), on the in-memory P2P network:
 * gossip with its validator (what is rejected, ignored, penalised), the sync RPCs with their limits, deadlines,
 * aborts and typed errors for garbage, and two ledgers agreeing through a LedgerService on top of it.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { NEURO } from '../../../src/ledger/amount.js';
import { buildTransfer } from '../../../src/ledger/build.js';
import { decodeEvent, orderKey, signEvent, type ProofBody } from '../../../src/ledger/events.js';
import { localHolderRecordVerifier } from '../../../src/ledger/holder.js';
import { LEDGER_SYNC_LIMITS } from '../../../src/ledger/interfaces.js';
import { Ledger } from '../../../src/ledger/ledger.js';
import { LedgerService } from '../../../src/ledger/service.js';
import { MemoryHub, type MemoryNetwork } from '../../../src/p2p/memory.js';
import { PENALTY, PeerScoreTable } from '../../../src/p2p/peer-score.js';
import type { PubSubMessage } from '../../../src/p2p/types.js';
import { LedgerP2PNetwork, ledgerTopic } from '../../../src/protocols/ledger-sync.js';
import * as methods from '../../../src/protocols/methods.js';
import { RemoteRpcError } from '../../../src/protocols/rpc/errors.js';
import { RpcNode } from '../../../src/protocols/rpc/service.js';
import { waitFor } from '../../../src/util/abort.js';
import { toHex } from '../../../src/util/bytes.js';
import { ManualClock } from '../../../src/util/clock.js';
import { AbortedError, InvalidArgumentError, isNeuroShardError, PeerMisbehaviourError, TimeoutError } from '../../../src/util/errors.js';
import { tempDir } from '../../utils/paths.js';
import { acct, env, holderRecord, LAYERS, NET, T0, testKey, uptimeProof } from '../ledger/helpers.js';

interface Peer {
  name: string;
  p2p: MemoryNetwork;
  rpc: RpcNode;
  scores: PeerScoreTable;
  net: LedgerP2PNetwork;
}

async function peer(hub: MemoryHub, name: string, clock: ManualClock, callTimeoutMs?: number): Promise<Peer> {
  const p2p = hub.createNode(name);
  await p2p.start();
  const scores = new PeerScoreTable();
  const rpc = new RpcNode({ network: p2p, networkId: NET, scores });
  const net = new LedgerP2PNetwork({
    p2p,
    rpc,
    networkId: NET,
    verify: { networkId: NET, modelLayers: LAYERS, holderVerifier: localHolderRecordVerifier },
    clock,
    scores,
    callTimeoutMs,
  });
  await net.start();
  return { name, p2p, rpc, scores, net };
}

const A = testKey(301);
const B = testKey(302);

function msg(data: Uint8Array, via: string): PubSubMessage {
  return { topic: ledgerTopic(NET), from: via, via, data };
}

function flip(bytes: Uint8Array, at: number): Uint8Array {
  const c = new Uint8Array(bytes);
  c[at] = c[at]! ^ 0x01;
  return c;
}

/** A ledger holding `n` proofs of distinct keys and windows, served by `p`. */
function servedLedger(p: Peer, dir: string, n: number): Ledger {
  const ledger = new Ledger({ path: join(dir, `${p.name}.db`), networkId: NET, modelLayers: LAYERS });
  for (let i = 0; i < n; i++) assert.equal(ledger.ingest(uptimeProof(testKey(400 + (i % 7)), T0 + i * 60_000)).status, 'applied');
  p.net.serve(ledger.syncHandler());
  p.net.serveStatus(() => ({ stateHash: ledger.stateHash(), events: ledger.status().events }));
  return ledger;
}

describe('ledger gossip over the p2p interface', () => {
  it('delivers a published event to every other subscriber, with the publisher as sender', async () => {
    const clock = new ManualClock(T0 + 1000);
    const hub = new MemoryHub();
    const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((n) => peer(hub, n, clock)));
    const got: Record<string, [string, string][]> = { a: [], b: [], c: [] };
    for (const p of [a!, b!, c!]) p.net.subscribe((e, from) => got[p.name]!.push([toHex(e), from]));
    const ev = uptimeProof(A, T0);
    await a!.net.publish(ev);
    assert.deepEqual(got.b, [[toHex(ev), 'a']]);
    assert.deepEqual(got.c, [[toHex(ev), 'a']]);
    assert.deepEqual(got.a, [], 'no echo of our own publish');
    assert.deepEqual(b!.net.stats, { accepted: 1, ignored: 0, rejected: 0 });
    assert.equal(b!.net.topic, `/neuroshard/${NET}/ledger/1`);
    await assert.rejects(a!.net.publish(new Uint8Array(LEDGER_SYNC_LIMITS.maxEventBytes)), InvalidArgumentError);
    await assert.rejects(a!.net.publish(ev, { signal: AbortSignal.abort() }), AbortedError);
  });

  it('rejects what can never be valid and penalises the forwarder; ignores stale, future and known events', async () => {
    const clock = new ManualClock(T0 + 1000);
    const hub = new MemoryHub();
    const b = await peer(hub, 'b', clock);
    const delivered: Uint8Array[] = [];
    b.net.subscribe((e) => delivered.push(e));
    const verdicts: string[] = [];
    b.net.events.on('ledger:gossip-dropped', (v) => verdicts.push(`${v.via}:${v.result}:${v.reason}`));

    const transfer = buildTransfer(A, env(1, T0), acct(B), NEURO);
    const proof = decodeEvent(uptimeProof(A, T0));
    const rec = holderRecord(A, { start: 0, end: LAYERS }, T0);
    const layersLie = signEvent(A, { ...env(7, T0), body: { ...(proof.body as ProofBody), layers: { start: 0, end: 2 } } });
    const othersRecord = signEvent(A, { ...env(8, T0), body: { ...(proof.body as ProofBody), holderRecord: holderRecord(B, { start: 0, end: LAYERS }, T0) } });
    assert.equal(rec.span.end, LAYERS);
    const cases: [string, Uint8Array, number][] = [
      // tampered amount: the signature no longer covers the payload
      ['tamper', flip(transfer.bytes, transfer.payload.byteLength - 20), PENALTY.forged],
      ['garbage', new Uint8Array(300).fill(7), PENALTY.malformed],
      ['huge', new Uint8Array(LEDGER_SYNC_LIMITS.maxEventBytes), PENALTY.oversized],
      ['othernet', buildTransfer(A, env(1, T0, 'other-net'), acct(B), NEURO).bytes, PENALTY.malformed],
      ['liar', layersLie.bytes, PENALTY.malformed],
      ['thief', othersRecord.bytes, PENALTY.forged],
    ];
    for (const [via, data] of cases) await b.p2p.deliver(msg(data, via));
    assert.deepEqual(delivered, [], 'nothing invalid reaches the ledger');
    for (const [via, , points] of cases) assert.equal(Math.round(b.scores.score(via)), -points, `penalty of ${via}`);
    assert.deepEqual(verdicts, [
      'tamper:reject:BAD_SIGNATURE',
      'garbage:reject:MALFORMED',
      'huge:reject:TOO_LARGE',
      'othernet:reject:WRONG_NETWORK',
      'liar:reject:LAYERS_MISMATCH',
      'thief:reject:HOLDER_RECORD_KEY_MISMATCH',
    ]);

    // not offences: a clock, a slow path or a race. Ignored (not relayed), nobody penalised.
    verdicts.length = 0;
    await b.p2p.deliver(msg(buildTransfer(A, env(2, T0 - 6 * 60_000), acct(B), NEURO).bytes, 'slow'));
    await b.p2p.deliver(msg(buildTransfer(A, env(3, T0 + 1000 + 2 * 60_000), acct(B), NEURO).bytes, 'early'));
    b.net.setKnownCheck((id) => toHex(id) === toHex(transfer.id));
    await b.p2p.deliver(msg(transfer.bytes, 'again'));
    assert.deepEqual(verdicts, ['slow:ignore:STALE', 'early:ignore:FUTURE', 'again:ignore:KNOWN']);
    for (const via of ['slow', 'early', 'again']) assert.equal(b.scores.score(via), 0);
    assert.deepEqual(delivered, []);

    // and a valid one passes
    await b.p2p.deliver(msg(proof.bytes, 'honest'));
    assert.equal(delivered.length, 1);
    assert.deepEqual(b.net.stats, { accepted: 1, ignored: 3, rejected: 6 });
  });

  it('lists subscribed, unbanned peers as sync peers', async () => {
    const clock = new ManualClock(T0);
    const hub = new MemoryHub();
    const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((n) => peer(hub, n, clock)));
    const off = [a!, b!].map((p) => p.net.subscribe(() => {}));
    assert.deepEqual(a!.net.syncPeers(), ['b']);
    assert.deepEqual(c!.net.syncPeers().sort(), ['a', 'b']);
    a!.scores.penalise('b', 1000, 'test');
    assert.deepEqual(a!.net.syncPeers(), []);
    for (const f of off) f();
    assert.deepEqual(c!.net.syncPeers(), []);
  });
});

describe('ledger sync RPCs', () => {
  it('serves pages in canonical order after a cursor, events by id, and its status', async () => {
    const t = tempDir('neuroshard-lsync-');
    const clock = new ManualClock(T0);
    const hub = new MemoryHub();
    const [a, b] = await Promise.all(['a', 'b'].map((n) => peer(hub, n, clock)));
    const ledger = servedLedger(b!, t.dir, 10);
    try {
      const all = ledger.syncHandler().range(null, 512).map(toHex);
      assert.equal(all.length, 10);
      const first = await a!.net.fetchRange('b', null, 4, {});
      assert.deepEqual(first.map(toHex), all.slice(0, 4));
      const last = decodeEvent(first[3]!);
      const rest = await a!.net.fetchRange('b', orderKey(last.timestampMs, last.id), 512, {});
      assert.deepEqual(rest.map(toHex), all.slice(4));
      assert.deepEqual(await a!.net.fetchRange('b', orderKey(T0 + 3600_000, new Uint8Array(32)), 10, {}), []);

      const ids = [decodeEvent(first[1]!).id, decodeEvent(rest[2]!).id, new Uint8Array(32).fill(9)];
      const byId = await a!.net.fetchByIds('b', ids, {});
      assert.deepEqual(byId.map(toHex).sort(), [toHex(first[1]!), toHex(rest[2]!)].sort());

      assert.deepEqual(await a!.net.fetchStatus('b'), { stateHash: ledger.stateHash(), events: 10 });

      // the caller's own limits are checked before anything goes on the wire
      await assert.rejects(a!.net.fetchRange('b', null, 0, {}), InvalidArgumentError);
      await assert.rejects(a!.net.fetchRange('b', null, LEDGER_SYNC_LIMITS.maxRange + 1, {}), InvalidArgumentError);
      await assert.rejects(a!.net.fetchRange('b', new Uint8Array(12), 5, {}), InvalidArgumentError);
      await assert.rejects(a!.net.fetchByIds('b', Array.from({ length: LEDGER_SYNC_LIMITS.maxIds + 1 }, () => new Uint8Array(32)), {}), InvalidArgumentError);
      await assert.rejects(a!.net.fetchByIds('b', [new Uint8Array(31)], {}), InvalidArgumentError);
      await assert.rejects(a!.net.fetchRange('b', null, 5, { signal: AbortSignal.abort() }), AbortedError);
      // a peer that serves no ledger says so with a typed error
      await assert.rejects(b!.net.fetchRange('a', null, 5, {}), (e: unknown) => e instanceof RemoteRpcError && e.code === 'LEDGER_NOT_SERVING');
      await assert.rejects(b!.net.fetchStatus('a'), (e: unknown) => e instanceof RemoteRpcError && e.code === 'LEDGER_NOT_SERVING');
      assert.equal(a!.scores.score('b'), 0, 'an honest server is never penalised');
    } finally {
      ledger.close();
      t.cleanup();
    }
  });

  it('refuses malformed requests on the server, penalising the caller', async () => {
    const clock = new ManualClock(T0);
    const hub = new MemoryHub();
    const [a, b] = await Promise.all(['a', 'b'].map((n) => peer(hub, n, clock)));
    b!.net.serve({ range: () => [], byIds: () => [] });
    // bypass our own client checks: a hand-made request with a 12-byte cursor and a limit of 0
    const bad: typeof methods.ledgerRange = { ...methods.ledgerRange, validateRequest: undefined };
    await assert.rejects(a!.rpc.call('b', bad, { after: new Uint8Array(12), limit: 3 }), (e: unknown) => e instanceof RemoteRpcError && e.code === 'RPC_MALFORMED');
    await assert.rejects(a!.rpc.call('b', bad, { after: new Uint8Array(0), limit: 0 }), (e: unknown) => e instanceof RemoteRpcError && e.code === 'RPC_MALFORMED');
    assert.ok(b!.scores.score('a') < 0);
  });

  it('fails with a typed error, and lowers the server’s score, when a page is garbage', async () => {
    const clock = new ManualClock(T0);
    const hub = new MemoryHub();
    const a = await peer(hub, 'a', clock);
    const rogue = await peer(hub, 'rogue', clock);
    const p1 = uptimeProof(A, T0);
    const p2 = uptimeProof(B, T0 + 60_000);
    const pages: Uint8Array[][] = [
      [p2, p1], // out of canonical order
      [p1, new Uint8Array(200).fill(3)], // undecodable
      [p1, p2, uptimeProof(A, T0 + 120_000)], // more than asked for (limit 2)
      [p1, p1], // a repeat
    ];
    let i = 0;
    await rogue.net.stop();
    await rogue.rpc.handle(methods.ledgerRange, () => ({ events: pages[i++]! }));
    await rogue.rpc.handle(methods.ledgerByIds, () => ({ events: [p2] }));
    let score = 0;
    for (let k = 0; k < pages.length; k++) {
      await assert.rejects(a.net.fetchRange('rogue', null, 2, {}), (e: unknown) => e instanceof PeerMisbehaviourError && e.code === 'LEDGER_SYNC_MALFORMED' && e.fault === 'peer');
      const now = a.scores.score('rogue');
      assert.ok(now < score, `page ${k} costs score`);
      score = now;
    }
    // a page that starts at or before our cursor
    i = 0;
    pages[0] = [p1];
    const e1 = decodeEvent(p1);
    await assert.rejects(a.net.fetchRange('rogue', orderKey(e1.timestampMs, e1.id), 2, {}), (e: unknown) => isNeuroShardError(e, 'LEDGER_SYNC_MALFORMED'));
    // events nobody asked for
    await assert.rejects(a.net.fetchByIds('rogue', [decodeEvent(p1).id], {}), (e: unknown) => isNeuroShardError(e, 'LEDGER_SYNC_MALFORMED'));
    // an event over the size limit is a protocol violation already at the RPC layer
    await rogue.rpc.handle(methods.ledgerRange, () => ({ events: [new Uint8Array(LEDGER_SYNC_LIMITS.maxEventBytes + 1)] }));
    await assert.rejects(a.net.fetchRange('rogue', null, 2, {}), (e: unknown) => e instanceof PeerMisbehaviourError && e.code === 'RPC_MALFORMED');
    assert.ok(a.scores.score('rogue') < score);
  });

  it('gives up on a peer that does not answer within the deadline', async () => {
    const clock = new ManualClock(T0);
    const hub = new MemoryHub();
    const a = await peer(hub, 'a', clock, 150);
    const slow = await peer(hub, 'slow', clock);
    await slow.rpc.handle(methods.ledgerRange, (_req, ctx) => new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('gone')))));
    const started = Date.now();
    await assert.rejects(a.net.fetchRange('slow', null, 5, {}), TimeoutError);
    assert.ok(Date.now() - started < 5000);
    const ac = new AbortController();
    const p = a.net.fetchRange('slow', null, 5, { signal: ac.signal });
    ac.abort();
    await assert.rejects(p, AbortedError);
  });
});

describe('ledger service over the p2p ledger network', () => {
  it('brings three ledgers to one state hash: gossip, a partitioned node catching up by sync', async () => {
    const t = tempDir('neuroshard-lsync-svc-');
    const clock = new ManualClock(T0 + 1000);
    const hub = new MemoryHub();
    const peers = await Promise.all(['a', 'b', 'c'].map((n) => peer(hub, n, clock)));
    const keys = [A, B, testKey(303)];
    const nodes = peers.map((p, i) => {
      const ledger = new Ledger({ path: join(t.dir, `${p.name}.db`), networkId: NET, modelLayers: LAYERS, checkInvariant: true });
      const service = new LedgerService({ ledger, network: p.net, clock });
      service.start();
      p.net.setKnownCheck((id) => ledger.eventStatus(id) !== undefined);
      return { ...p, ledger, service, key: keys[i]! };
    });
    const [a, b, c] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]];
    try {
      hub.disconnect('c', 'a');
      hub.disconnect('c', 'b');
      clock.set(T0 + 4 * 60_000);
      let n = 0;
      for (let w = 0; w < 4; w++) {
        for (const x of [a, b]) {
          assert.notEqual((await x.service.submit(uptimeProof(x.key, T0 + w * 60_000))).status, 'dropped');
          n++;
        }
      }
      assert.notEqual((await a.service.submit(buildTransfer(a.key, env(0, T0 + 4 * 60_000), acct(c.key), NEURO / 10_000n).bytes)).status, 'dropped');
      n++;
      // late gossip (an event sorting before the tip) is replayed shortly after: wait for both to settle
      const settled = (x: typeof a): boolean => x.ledger.status().events === n && !x.ledger.replayPending();
      await waitFor(() => settled(a) && settled(b), { timeoutMs: 5000, what: 'a and b hold every event, applied' });
      assert.equal(b.ledger.stateHash(), a.ledger.stateHash());
      assert.equal(c.ledger.status().events, 0, 'c missed the gossip');

      hub.reconnect('c', 'a');
      hub.reconnect('c', 'b');
      assert.deepEqual(await c.service.syncFrom('a'), { received: n, added: n, complete: true });
      assert.equal(c.ledger.stateHash(), a.ledger.stateHash());
      assert.equal(c.ledger.account(acct(c.key)).balance, NEURO / 10_000n);
      assert.equal(c.ledger.supplyGap(), 0n);
      assert.deepEqual(await c.net.fetchStatus('b').catch(() => 'not serving status'), 'not serving status');
    } finally {
      for (const x of nodes) {
        x.service.stop();
        x.ledger.close();
      }
      t.cleanup();
    }
  });
});

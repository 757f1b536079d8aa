/**
 * Adversarial review of the ledger: each test is an attack by someone holding a valid key of their own and a
 * network connection (a sync peer, a gossip sender), and asserts that it fails.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { NEURO } from '../../../src/ledger/amount.js';
import { malleate } from '../../../src/identity/index.js';
import { buildProof, buildTransfer } from '../../../src/ledger/build.js';
import { decodeEvent } from '../../../src/ledger/events.js';
import { localHolderRecordVerifier, type EmbeddedHolderRecord } from '../../../src/ledger/holder.js';
import type { HolderRecordVerifier, LedgerNetwork, LedgerSyncHandler } from '../../../src/ledger/interfaces.js';
import { Ledger } from '../../../src/ledger/ledger.js';
import { LedgerService } from '../../../src/ledger/service.js';
import { nextWalletNonce } from '../../../src/cli/wallet/common.js';
import { EventKind } from '../../../src/ledger/events.js';
import { listOutbox, readOutcome, removeOutboxFile, writeOutbox } from '../../../src/ledger/outbox.js';
import { LedgerState, type MarketRequest } from '../../../src/ledger/state.js';
import { waitFor } from '../../../src/util/abort.js';
import { ManualClock } from '../../../src/util/clock.js';
import { createLogger } from '../../../src/util/logger.js';
import { tempDir } from '../../utils/paths.js';
import { verifyEvent, verifyEventBytes } from '../../../src/ledger/verify.js';
import { Rng } from '../../../src/util/rng.js';
import { generateTraffic, GEN_LAYERS } from './generate.js';
import { acct, env, holderRecord, LAYERS, NET, T0, testKey, uptimeProof } from './helpers.js';

const A = testKey(1);
const B = testKey(2);
const M = testKey(3); // the attacker

/**
 * A sync peer that answers every range request with whatever `page` returns (its call number as argument); `gossip`
 * delivers an event to the subscriber as if it came from that peer.
 */
function evilPeer(page: (call: number, after: Uint8Array | null) => Uint8Array[]): LedgerNetwork & { calls: number; gossip: (b: Uint8Array) => void } {
  let handler: ((event: Uint8Array, from: string) => void) | undefined;
  const net = {
    calls: 0,
    gossip: (b: Uint8Array) => handler?.(b, 'evil'),
    publish: () => Promise.resolve(),
    subscribe: (h: (event: Uint8Array, from: string) => void) => {
      handler = h;
      return () => (handler = undefined);
    },
    syncPeers: () => ['evil'],
    fetchRange: (_peer: string, after: Uint8Array | null) => Promise.resolve(page(++net.calls, after)),
    fetchByIds: () => Promise.resolve([]),
    serve: (_h: LedgerSyncHandler) => () => {},
  };
  return net;
}

function tempLedger(opts: { logger?: ReturnType<typeof createLogger> } = {}): { ledger: Ledger; done: () => void } {
  const t = tempDir('neuroshard-sec-');
  const ledger = new Ledger({ path: join(t.dir, 'ledger.db'), networkId: NET, modelLayers: LAYERS, checkInvariant: true, ...opts });
  return {
    ledger,
    done: () => {
      ledger.close();
      t.cleanup();
    },
  };
}

describe('ledger security: gossip', () => {
  it('a burst of slightly backdated gossip costs one replay, not one per event', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'debug', write: (l) => lines.push(l) });
    const { ledger, done } = tempLedger({ logger });
    const net = evilPeer(() => []);
    const now = T0 + 10 * 60_000;
    const service = new LedgerService({ ledger, network: net, clock: new ManualClock(now), logger });
    service.start();
    try {
      // the tip: proofs up to now
      for (let w = 0; w < 10; w++) ledger.ingest(uptimeProof(A, T0 + w * 60_000));
      // 20 events, each 4 minutes old (inside the 5-minute freshness window), free to sign with a zero-balance key
      const late = Array.from({ length: 20 }, (_, i) => buildTransfer(M, env(i, now - 240_000 + i), acct(B), NEURO).bytes);
      lines.length = 0;
      for (const b of late) net.gossip(b);
      await waitFor(() => !ledger.replayPending(), { timeoutMs: 30_000, what: 'the late events get their verdicts' });
      // judged at their place: overdrafts from the network are not kept (issue 11 attack 5)
      for (const b of late) assert.equal(ledger.eventStatus(decodeEvent(b).id), undefined);
      const rewinds = lines.filter((l) => l.includes('ledger rewound')).length;
      assert.ok(rewinds <= 2, `rewound ${rewinds} times for 20 gossip events`);
      // in-order gossip is still applied at once
      const next = uptimeProof(B, now);
      net.gossip(next);
      assert.equal(ledger.eventStatus(decodeEvent(next).id)?.status, 'applied');
    } finally {
      service.stop();
      done();
    }
  });
});

describe('ledger security: local submissions', () => {
  it('does not take a wallet event dated in the future from the outbox either (a wrong clock would make it the tip)', async () => {
    const t = tempDir('neuroshard-sec-');
    const dataDir = join(t.dir, 'node');
    mkdirSync(dataDir);
    const ledger = new Ledger({ path: join(dataDir, 'ledger.db'), networkId: NET, modelLayers: LAYERS });
    const service = new LedgerService({ ledger, network: evilPeer(() => []), clock: new ManualClock(T0 + 600_000), dataDir });
    try {
      ledger.ingest(uptimeProof(A, T0));
      const ahead = buildTransfer(A, env(0, T0 + 600_000 + 3_600_000), acct(B), 1n);
      const r = await service.submit(ahead.bytes);
      assert.deepEqual([r.status, r.reason], ['dropped', 'FUTURE']);
      const fine = buildTransfer(A, env(0, T0 + 600_000 + 30_000), acct(B), 1n);
      assert.equal((await service.submit(fine.bytes)).status, 'applied');
    } finally {
      ledger.close();
      t.cleanup();
    }
  });
});

describe('ledger security: malformed bytes', () => {
  it('never throws on mutated, truncated or extended events: each is dropped or verified, nothing else', () => {
    const cfg = { networkId: NET, modelLayers: LAYERS, holderVerifier: localHolderRecordVerifier };
    const seeds = [uptimeProof(A, T0), buildTransfer(A, env(3, T0), acct(B), NEURO).bytes];
    fc.assert(
      fc.property(
        fc.constantFrom(...seeds),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
        fc.integer({ min: -80, max: 80 }),
        (seed, flips, resize) => {
          const b = new Uint8Array(Math.max(0, seed.byteLength + resize));
          b.set(seed.subarray(0, Math.min(seed.byteLength, b.byteLength)));
          for (const [at, v] of flips) if (b.byteLength > 0) b[at % b.byteLength] = v;
          const v = verifyEventBytes(b, cfg);
          // a verified event is exactly the original: every byte is under the signature or is the signature
          if (v.ok) assert.deepEqual(v.event.payload, decodeEvent(seed).payload);
        },
      ),
      { numRuns: 1500, seed: 7 },
    );
  });
});

describe('ledger security: sync peers', () => {
  it('stops syncing from a peer whose pages do not move forward (it would otherwise loop forever)', async () => {
    const { ledger, done } = tempLedger();
    const valid = uptimeProof(A, T0);
    // A full page of garbage ending in one valid event, the same page every time, whatever cursor we send.
    const page = [...Array.from({ length: 511 }, () => new Uint8Array([1, 2, 3])), valid];
    const net = evilPeer((call) => (call > 50 ? [] : page)); // the bound only keeps a regression from hanging
    const service = new LedgerService({ ledger, network: net, clock: new ManualClock(T0 + 1000) });
    try {
      await assert.rejects(service.syncFrom('evil'), /did not advance/);
      assert.ok(net.calls <= 2, `asked the peer ${net.calls} times for the same page`);
      assert.equal(ledger.status().events, 1);
    } finally {
      done();
    }
  });

  it('does not admit events from the future by sync: one far-future event would sort after everything forever', async () => {
    const { ledger, done } = tempLedger();
    const now = T0 + 10 * 60_000;
    // A zero-balance key signs a transfer dated in the year 2100: stateless-valid, an overdraft.
    const future = buildTransfer(M, env(0, 4_102_444_800_000), acct(B), NEURO);
    const net = evilPeer((call) => (call === 1 ? [uptimeProof(A, T0), future.bytes] : []));
    const service = new LedgerService({ ledger, network: net, clock: new ManualClock(now) });
    try {
      const got: string[] = [];
      service.on('ledger:ingested', (p) => got.push(`${p.result.status}:${p.result.reason ?? ''}`));
      await service.syncFrom('evil');
      assert.deepEqual(got, ['applied:', 'dropped:FUTURE']);
      assert.equal(ledger.eventStatus(future.id), undefined, 'not stored');
      // once its time has come it is ordinary history, and a later sync admits it
      const later = new LedgerService({ ledger, network: evilPeer((call) => (call === 1 ? [future.bytes] : [])), clock: new ManualClock(4_102_444_800_000) });
      const got2: string[] = [];
      later.on('ledger:ingested', (p) => got2.push(`${p.result.status}:${p.result.reason ?? ''}`));
      await later.syncFrom('evil');
      // admitted now, and judged: an overdraft from the network is not kept (issue 11 attack 5)
      assert.deepEqual(got2, ['dropped:INSUFFICIENT_BALANCE']);
      assert.equal(ledger.eventStatus(future.id), undefined);
    } finally {
      done();
    }
  });

  it('replays at most once per sync, however many pages carry backdated events (no long replay per page)', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'debug', write: (l) => lines.push(l) });
    const { ledger, done } = tempLedger({ logger });
    const ref = tempLedger();
    try {
      // 40 windows of history, applied in order
      const history: Uint8Array[] = [];
      for (let w = 0; w < 40; w++) history.push(uptimeProof(A, T0 + w * 60_000));
      for (const h of history) assert.equal(ledger.ingest(h).status, 'applied');
      // The peer serves 4 full pages; each page holds one new event dated before everything we have, signed by a
      // zero-balance key (free to make), the rest duplicates.
      const backdated = Array.from({ length: 4 }, (_, i) => buildTransfer(M, env(i, T0 - 1000 + i), acct(B), NEURO).bytes);
      const pages = backdated.map((b) => [b, ...Array.from({ length: 511 }, (_, j) => history[j % history.length]!)]);
      // keep each page's last event strictly increasing so the cursor moves forward
      pages.forEach((p, i) => (p[511] = history[36 + i]!));
      const net = evilPeer((call) => pages[call - 1] ?? []);
      const service = new LedgerService({ ledger, network: net, clock: new ManualClock(T0 + 3_600_000), logger });
      lines.length = 0;
      await service.syncFrom('evil');
      const rewinds = lines.filter((l) => l.includes('ledger rewound')).length;
      assert.equal(rewinds, 1, `rewound ${rewinds} times`);
      // and the result is the deterministic one: the same as a ledger given the same events in canonical order
      ref.ledger.ingestMany([...backdated, ...history]);
      assert.equal(ledger.stateHash(), ref.ledger.stateHash());
      // judged at their place in the one replay: overdrafts from the network are not kept (issue 11 attack 5)
      for (const b of backdated) assert.equal(ledger.eventStatus(decodeEvent(b).id), undefined);
      assert.equal(ledger.supplyGap(), 0n);
    } finally {
      done();
      ref.done();
    }
  });
});

describe('ledger security: deferred replay', () => {
  it('ledgers syncing in deferred batches agree with one fed in canonical order, invariant throughout', () => {
    const traffic = generateTraffic(1500, 99).events;
    const t = tempDir('neuroshard-sec-');
    try {
      const open = (name: string) => new Ledger({ path: join(t.dir, `${name}.db`), networkId: NET, modelLayers: GEN_LAYERS, checkInvariant: true });
      const ref = open('ref');
      ref.ingestMany(traffic);
      const hashes: string[] = [];
      for (const seed of [1, 2]) {
        const rng = new Rng(seed);
        const shuffled = [...traffic];
        for (let i = shuffled.length - 1; i > 0; i--) {
          const j = rng.int(i + 1);
          [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
        }
        const l = open(`s${seed}`);
        for (let i = 0, pages = 0; i < shuffled.length; pages++) {
          const n = 1 + rng.int(300);
          // sync pages, with now and then a live event and a flush in between
          if (pages % 3 === 2) l.ingest(shuffled[i++]!);
          else l.ingestMany(shuffled.slice(i, (i += n)), { deferReplay: true });
          if (pages % 4 === 3) l.flushReplay();
        }
        l.flushReplay();
        hashes.push(l.stateHash());
        assert.equal(l.supplyGap(), 0n);
        l.close();
      }
      assert.deepEqual(hashes, [ref.stateHash(), ref.stateHash()]);
      ref.close();
    } finally {
      t.cleanup();
    }
  });

  it('a replay left pending by a crash runs when the ledger is opened again', () => {
    const t = tempDir('neuroshard-sec-');
    const path = join(t.dir, 'ledger.db');
    const ref = tempLedger();
    try {
      let l = new Ledger({ path, networkId: NET, modelLayers: LAYERS, checkInvariant: true });
      const late = [uptimeProof(A, T0 + 60_000), uptimeProof(A, T0 + 120_000)];
      l.ingestMany(late);
      const early = [uptimeProof(B, T0), buildTransfer(B, env(0, T0 + 1), acct(A), NEURO / 100_000n).bytes];
      const r = l.ingestMany(early, { deferReplay: true });
      assert.deepEqual(r.map((x) => x.status), ['pending', 'pending']);
      // a live event meanwhile waits for the same replay instead of forcing one of its own
      assert.equal(l.ingest(uptimeProof(A, T0 + 180_000)).status, 'pending');
      assert.equal(l.replayPending(), true);
      const reader = new Ledger({ path, networkId: NET, modelLayers: LAYERS, readonly: true });
      assert.equal(reader.replayPending(), true, 'a reader (ledger status --verify) sees it too');
      reader.close();
      l.close(); // as if killed before flushReplay
      l = new Ledger({ path, networkId: NET, modelLayers: LAYERS, checkInvariant: true });
      try {
        for (const b of [...early, ...late]) assert.equal(l.eventStatus(decodeEvent(b).id)?.status, 'applied');
        ref.ledger.ingestMany([...early, ...late, uptimeProof(A, T0 + 180_000)]);
        assert.equal(l.stateHash(), ref.ledger.stateHash());
        assert.equal(l.replayHash(), l.stateHash());
        assert.equal(l.replayPending(), false);
      } finally {
        l.close();
      }
    } finally {
      ref.done();
      t.cleanup();
    }
  });
});

/** Counts the calls that reach a verifier. */
function countingVerifier(): HolderRecordVerifier & { calls: number } {
  const v = {
    calls: 0,
    verifySignature(r: EmbeddedHolderRecord): boolean {
      v.calls++;
      return localHolderRecordVerifier.verifySignature(r);
    },
  };
  return v;
}

describe('ledger security: embedded HolderRecords', () => {
  it('verifies a HolderRecord shared by consecutive proofs once, and never lets a changed copy ride on that verdict', () => {
    const v = countingVerifier();
    const cfg = { networkId: NET, modelLayers: LAYERS, holderVerifier: v };
    const rec = holderRecord(A, { start: 0, end: LAYERS }, T0);
    const proofAt = (w: number, r: EmbeddedHolderRecord) => decodeEvent(buildProof(A, env(w, T0 + w * 60_000), { uptimeMs: 60_000, holderRecord: r }).bytes);
    assert.equal(verifyEvent(proofAt(0, rec), cfg), null);
    assert.equal(verifyEvent(proofAt(1, rec), cfg), null);
    assert.equal(verifyEvent(proofAt(2, rec), cfg), null);
    assert.equal(v.calls, 1, 'the same record was verified again');
    // the high-S twin of the record signature, and a field changed under the same signature: both checked, both fail
    const highS = { ...rec, signature: Buffer.from(malleate(Buffer.from(rec.signature, 'base64'))).toString('base64') };
    assert.equal(verifyEvent(proofAt(3, highS), cfg), 'HOLDER_RECORD_BAD_SIGNATURE');
    const tampered = { ...rec, capacity: { ...rec.capacity, tokensPerSec: rec.capacity.tokensPerSec + 1 } };
    assert.equal(verifyEvent(proofAt(4, tampered), cfg), 'HOLDER_RECORD_BAD_SIGNATURE');
    assert.equal(v.calls, 3);
    // another verifier (another configuration) does not inherit the verdict
    const other = countingVerifier();
    assert.equal(verifyEvent(proofAt(5, rec), { ...cfg, holderVerifier: other }), null);
    assert.equal(other.calls, 1);
  });

  it('drops a proof whose HolderRecord claims to be valid for more than a day (no such record exists in protocols/)', () => {
    const { ledger, done } = tempLedger();
    try {
      const long = holderRecord(A, { start: 0, end: LAYERS }, T0, { lifetimeMs: 24 * 3_600_000 + 1 });
      const r = ledger.ingest(buildProof(A, env(0, T0), { uptimeMs: 60_000, holderRecord: long }).bytes);
      assert.deepEqual([r.status, r.reason], ['dropped', 'HOLDER_RECORD_NOT_VALID_AT_TIME']);
      const day = holderRecord(A, { start: 0, end: LAYERS }, T0, { lifetimeMs: 24 * 3_600_000 });
      assert.equal(ledger.ingest(buildProof(A, env(1, T0), { uptimeMs: 60_000, holderRecord: day }).bytes).status, 'applied');
    } finally {
      done();
    }
  });
});

describe('ledger security: the market request index', () => {
  // Market requests cost 1e-6 NEURO of escrow each, refunded at expiry, so anyone can keep a million pending: the
  // demand total and the next expiry must not be found by scanning them all on every event (that scan was the
  // cost of every market request and of every event after an expiry). This checks the indexed version against
  // the plain definition under random operations, rewinds included.
  it('refunds exactly the expired requests, once each, in key order, and sums the demand, like a full scan', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ op: fc.constant('add' as const), id: fc.integer({ min: 0, max: 40 }), exp: fc.integer({ min: 0, max: 60 }), tokens: fc.integer({ min: 1, max: 9 }) }),
            fc.record({ op: fc.constant('claim' as const), id: fc.integer({ min: 0, max: 40 }) }),
            fc.record({ op: fc.constant('del' as const), id: fc.integer({ min: 0, max: 40 }) }),
            fc.record({ op: fc.constant('settle' as const), dt: fc.integer({ min: 0, max: 5 }) }),
            fc.record({ op: fc.constant('snap' as const) }),
            fc.record({ op: fc.constant('restore' as const) }),
          ),
          { maxLength: 120 },
        ),
        (ops) => {
          const s = new LedgerState();
          let model = new Map<string, MarketRequest>();
          let snap: { s: ReturnType<LedgerState['snapshot']>; m: Map<string, MarketRequest> } | undefined;
          let ts = 0;
          const id = (i: number): string => i.toString(16).padStart(4, '0');
          for (const o of ops) {
            if (o.op === 'add' && !model.has(id(o.id))) {
              const r: MarketRequest = { requester: 'a', escrow: 1n, price: 1n, maxTokens: o.tokens, expiresAt: ts + o.exp, claimer: null };
              s.setRequest(id(o.id), r);
              model.set(id(o.id), r);
            } else if (o.op === 'claim' && model.has(id(o.id))) {
              const r = { ...model.get(id(o.id))!, claimer: 'b' };
              s.setRequest(id(o.id), r);
              model.set(id(o.id), r);
            } else if (o.op === 'del' && model.has(id(o.id))) {
              s.deleteRequest(id(o.id));
              model.delete(id(o.id));
            } else if (o.op === 'settle') {
              ts += o.dt;
              const want = [...model].filter(([, r]) => r.expiresAt < ts).sort((x, y) => (x[0] < y[0] ? -1 : 1));
              const got = s.takeExpiredRequests(ts);
              assert.deepEqual(got, want);
              for (const [k] of got) {
                s.deleteRequest(k);
                model.delete(k);
              }
            } else if (o.op === 'snap') {
              snap = { s: s.snapshot(), m: new Map(model) };
            } else if (o.op === 'restore' && snap !== undefined) {
              s.restore(snap.s);
              model = new Map(snap.m);
            }
            let demand = 0n;
            for (const r of model.values()) demand += BigInt(r.maxTokens);
            assert.equal(s.pendingDemand(), demand);
          }
        },
      ),
      { numRuns: 300, seed: 11 },
    );
  });
});

describe('ledger security: wallet nonces', () => {
  // A reused nonce is an equivocation: both transfers void and the sender slashable. The running node moves an
  // event from the outbox into the ledger (stores it, then deletes the file) while a wallet command picks a nonce.
  it('never hands out a nonce that the node is moving from the outbox into the ledger at that moment', () => {
    const t = tempDir('neuroshard-sec-');
    const dataDir = join(t.dir, 'node');
    mkdirSync(dataDir);
    const ledger = new Ledger({ path: join(dataDir, 'ledger.db'), networkId: NET, modelLayers: LAYERS });
    try {
      ledger.ingest(uptimeProof(A, T0));
      const queued = buildTransfer(A, env(0, T0 + 1000), acct(B), 1n);
      writeOutbox(dataDir, queued);
      const nodeTakesIt = (): void => {
        assert.equal(ledger.ingest(queued.bytes).status, 'applied');
        for (const e of listOutbox(dataDir)) removeOutboxFile(e.file);
      };
      assert.equal(nextWalletNonce(dataDir, A.publicKey, EventKind.Transfer, nodeTakesIt), 1n);
      assert.equal(nextWalletNonce(dataDir, A.publicKey, EventKind.Transfer), 1n);
    } finally {
      ledger.close();
      t.cleanup();
    }
  });
});

describe('ledger security: outbox outcomes', () => {
  // A wallet told "dropped" for a transfer that went through sends it again: the money leaves twice.
  it('reports the stored verdict of an outbox event the node took before a crash, not "dropped"', async () => {
    const t = tempDir('neuroshard-sec-');
    const dataDir = join(t.dir, 'node');
    mkdirSync(dataDir);
    const ledger = new Ledger({ path: join(dataDir, 'ledger.db'), networkId: NET, modelLayers: LAYERS });
    try {
      ledger.ingest(uptimeProof(A, T0));
      const sent = buildTransfer(A, env(0, T0 + 1000), acct(B), 1n);
      writeOutbox(dataDir, sent);
      assert.equal(ledger.ingest(sent.bytes).status, 'applied'); // taken, then the node died before removing the file
      // restarted an hour later: the event is too old to publish as it is, and the ledger already has its nonce
      const service = new LedgerService({ ledger, network: evilPeer(() => []), clock: new ManualClock(T0 + 3_600_000), dataDir });
      await service.drainOutbox();
      const o = readOutcome(dataDir, Buffer.from(sent.id).toString('hex'));
      assert.equal(o?.status, 'applied');
      assert.equal(listOutbox(dataDir).length, 0);
    } finally {
      ledger.close();
      t.cleanup();
    }
  });
});

import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { keyFromPrivate, peerIdFromPublicKey, type NodeKey } from '../../../src/identity/index.js';
import { createTracker } from '../../../src/node/tracker.js';
import { freshHolderRecord, type HolderRecord } from '../../../src/protocols/holder-record.js';
import { normalizeTrackerUrl, TrackerClient, type TrackerClientEvents } from '../../../src/protocols/tracker-client.js';
import { signTrackerWithdrawal } from '../../../src/protocols/tracker-withdrawal.js';
import type { TrackerServer } from '../../../src/tracker/index.js';
import { isNeuroShardError } from '../../../src/util/errors.js';

const NET = 'testnet';

function key(i: number): NodeKey {
  const b = new Uint8Array(32);
  b[0] = 2;
  b[31] = i;
  return keyFromPrivate(b);
}

function record(k: NodeKey, over: { span?: [number, number]; networkId?: string; nowMs?: number } = {}): HolderRecord {
  const [start, end] = over.span ?? [0, 4];
  return freshHolderRecord(
    k,
    { networkId: over.networkId ?? NET, multiaddrs: ['/ip4/127.0.0.1/tcp/9000'], span: { start, end }, capacity: { memoryMb: 512, tokensPerSec: 10 } },
    over.nowMs ?? Date.now(),
    120_000,
  );
}

function withdrawalOf(k: NodeKey) {
  return () => signTrackerWithdrawal(k, { networkId: NET, timestampMs: Date.now() });
}

/** A plain HTTP server on 127.0.0.1 with a handler of the test's choosing (a misbehaving tracker). */
async function fakeServer(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; server: Server; close: () => Promise<void> }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const s = await fakeServer(() => {});
  const port = Number(new URL(s.url).port);
  await s.close();
  return port;
}

describe('tracker client against a real tracker', () => {
  let tracker: TrackerServer<HolderRecord>;
  let url: string;

  before(async () => {
    tracker = createTracker({ host: '127.0.0.1', port: 0, dbPath: ':memory:' });
    url = (await tracker.listen()).url;
  });
  after(async () => {
    await tracker.close();
  });

  it('announces, then finds itself and others, verified', async () => {
    const other = record(key(2), { span: [4, 8] });
    const client = new TrackerClient({ trackers: [url], networkId: NET }, { record: () => record(key(1)) });
    const c2 = new TrackerClient({ trackers: [url], networkId: NET }, { record: () => other });
    assert.deepEqual(await client.announce(url), { ok: true, ttlMs: 60_000 });
    await c2.announce(url);
    const all = await client.fetchPeers();
    assert.deepEqual(all.map((p) => p.peerId).sort(), [peerIdFromPublicKey(key(1).publicKey), peerIdFromPublicKey(key(2).publicKey)].sort());
    const layer5 = await client.fetchPeersFrom(url, { layer: 5 });
    assert.deepEqual(layer5, [other]);
    // dial targets for the bootstrapper: every address pinned to its signer, our own id left out
    assert.deepEqual(await client.candidates({ exclude: peerIdFromPublicKey(key(1).publicKey) }), [`/ip4/127.0.0.1/tcp/9000/p2p/${other.peerId}`]);
  });

  it('re-announces on its loop and reports discovered peers', async () => {
    const client = new TrackerClient({ trackers: [url], networkId: NET, announceIntervalMs: 50 }, { record: () => record(key(3)) });
    const oks: TrackerClientEvents['announce:ok'][] = [];
    client.on('announce:ok', (e) => oks.push(e));
    const found = client.waitFor('peers:found', { timeoutMs: 10_000, pred: (e) => e.peers.some((p) => p.peerId === peerIdFromPublicKey(key(3).publicKey)) });
    const third = client.waitFor('announce:ok', { timeoutMs: 10_000, pred: () => oks.length >= 3 });
    client.start();
    try {
      await found;
      await third;
      assert.ok(oks.every((e) => e.nextInMs === 50));
    } finally {
      await client.stop();
    }
  });

  it('stop() withdraws our record: the tracker no longer lists it', async () => {
    const k = key(6);
    const me = peerIdFromPublicKey(k.publicKey);
    const client = new TrackerClient({ trackers: [url], networkId: NET }, { record: () => record(k), withdrawal: withdrawalOf(k) });
    const reader = new TrackerClient({ trackers: [url], networkId: NET });
    const announced = client.waitFor('announce:ok', { timeoutMs: 10_000 });
    client.start();
    await announced;
    assert.ok((await reader.fetchPeers()).some((p) => p.peerId === me));
    const withdrawn = client.waitFor('withdraw:ok', { timeoutMs: 10_000 });
    await client.stop();
    assert.deepEqual(await withdrawn, { tracker: normalizeTrackerUrl(url), removed: true });
    assert.ok(!(await reader.fetchPeers()).some((p) => p.peerId === me));
    // withdrawing again changes nothing
    assert.deepEqual(await client.withdraw(url), { ok: true, removed: false });
  });

  it('a rejected announce is a typed error and is retried with backoff', async () => {
    const good = record(key(4));
    const forged = { ...good, span: { start: 0, end: 99 } };
    const client = new TrackerClient({ trackers: [url], networkId: NET, backoffBaseMs: 10, backoffMaxMs: 40 }, { record: () => forged, rand: () => 0.5 });
    const errors: TrackerClientEvents['announce:error'][] = [];
    client.on('announce:error', (e) => errors.push(e));
    const third = client.waitFor('announce:error', { timeoutMs: 10_000, pred: () => errors.length >= 3 });
    client.start();
    try {
      await third;
    } finally {
      await client.stop();
    }
    const e = errors[0]!.error;
    assert.ok(isNeuroShardError(e, 'TRACKER_REJECTED'));
    assert.equal(e.meta?.status, 401);
    assert.equal(e.meta?.reason, 'bad_signature');
    assert.equal(e.fault, 'local', 'our own record was refused: not the tracker fault');
    assert.deepEqual(
      errors.slice(0, 3).map((x) => [x.attempt, x.retryInMs]),
      [
        [0, 10],
        [1, 20],
        [2, 40],
      ],
    );
  });
});

describe('tracker client against unreachable and misbehaving trackers', () => {
  it('an unreachable tracker is a TRACKER_UNREACHABLE peer fault, retried', async () => {
    const port = await closedPort();
    const client = new TrackerClient({ trackers: [`http://127.0.0.1:${port}`], networkId: NET, backoffBaseMs: 5, backoffMaxMs: 5 }, { record: () => record(key(1)) });
    const second = client.waitFor('announce:error', { timeoutMs: 10_000, pred: (e) => e.attempt === 1 });
    client.start();
    try {
      const e = (await second).error;
      assert.ok(isNeuroShardError(e, 'TRACKER_UNREACHABLE'), String(e));
      assert.equal(e.fault, 'peer');
    } finally {
      await client.stop();
    }
  });

  it('a tracker that never answers hits the deadline; stop() aborts a request in flight', async () => {
    const hung = await fakeServer(() => {}); // accepts, never answers
    try {
      const client = new TrackerClient({ trackers: [hung.url], networkId: NET, requestTimeoutMs: 200 }, { record: () => record(key(1)) });
      await assert.rejects(client.announce(hung.url), (e) => isNeuroShardError(e, 'TIMEOUT'));

      const slow = new TrackerClient({ trackers: [hung.url], networkId: NET, requestTimeoutMs: 60_000 }, { record: () => record(key(1)) });
      const ac = new AbortController();
      const p = slow.fetchPeersFrom(hung.url, { signal: ac.signal });
      ac.abort();
      await assert.rejects(p, (e) => isNeuroShardError(e, 'ABORTED'));

      // a loop stuck in a request ends when stopped, and reports no error for it
      const errors: unknown[] = [];
      slow.on('announce:error', (e) => errors.push(e));
      slow.start();
      await new Promise((r) => setImmediate(r));
      await slow.stop();
      assert.deepEqual(errors, []);
    } finally {
      await hung.close();
    }
  });

  it('stop() withdraws only from trackers it announced to, and a dead or hung tracker cannot hold it up', async () => {
    const paths: string[] = [];
    // accepts announces, never answers a withdrawal
    const hung = await fakeServer((req, res) => {
      paths.push(req.url ?? '');
      if (req.url === '/announce') res.end(JSON.stringify({ ok: true, ttlMs: 60_000 }));
    });
    const dying = await fakeServer((req, res) => res.end(JSON.stringify({ ok: true, ttlMs: 60_000 })));
    try {
      const k = key(7);
      const client = new TrackerClient(
        { trackers: [hung.url, dying.url], networkId: NET, requestTimeoutMs: 60_000, withdrawTimeoutMs: 200, discover: false },
        { record: () => record(k), withdrawal: withdrawalOf(k) },
      );
      const oks: string[] = [];
      client.on('announce:ok', (e) => oks.push(e.tracker));
      const both = client.waitFor('announce:ok', { timeoutMs: 10_000, pred: () => new Set(oks).size === 2 });
      client.start();
      await both;
      await dying.close(); // gone by the time we stop
      const errors: TrackerClientEvents['withdraw:error'][] = [];
      client.on('withdraw:error', (e) => errors.push(e));
      await client.stop();
      const byTracker = new Map(errors.map((e) => [e.tracker, e.error]));
      assert.equal(byTracker.size, 2);
      const timeout = byTracker.get(normalizeTrackerUrl(hung.url))!;
      assert.ok(isNeuroShardError(timeout, 'TIMEOUT'), String(timeout));
      assert.match(timeout.message, /within 200 ms/);
      assert.ok(isNeuroShardError(byTracker.get(normalizeTrackerUrl(dying.url)), 'TRACKER_UNREACHABLE'));
      assert.ok(paths.includes('/withdraw'));

      // a client that only reads peers (no record) never announced, so it sends no withdrawal
      paths.length = 0;
      const reader = new TrackerClient({ trackers: [hung.url], networkId: NET, requestTimeoutMs: 200 }, { withdrawal: withdrawalOf(k) });
      reader.start();
      await reader.stop();
      assert.deepEqual(paths, []);
    } finally {
      await hung.close();
    }
  });

  it('drops forged, foreign, malformed and expired records from an untrusted tracker', async () => {
    const good = record(key(1), { span: [0, 4] });
    const forged = { ...record(key(2)), span: { start: 0, end: 8 } };
    const foreign = record(key(3), { networkId: 'othernet' });
    const expired = freshHolderRecord(
      key(4),
      { networkId: NET, multiaddrs: ['/ip4/127.0.0.1/tcp/1'], span: { start: 0, end: 1 }, capacity: { memoryMb: 1, tokensPerSec: 1 } },
      Date.now() - 10_000,
      5_000,
    );
    const malformed = { ...record(key(5)), node_token: 'secret' };
    const evil = await fakeServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ peers: [good, forged, foreign, expired, malformed, 'junk', null] }));
    });
    try {
      const client = new TrackerClient({ trackers: [evil.url], networkId: NET });
      assert.deepEqual(await client.fetchPeers(), [good]);
      assert.deepEqual(await client.fetchPeers({ layer: 7 }), [], 'records that do not cover the asked layer are dropped too');
    } finally {
      await evil.close();
    }
  });

  it('refuses oversized and non-JSON answers', async () => {
    const big = await fakeServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end('{"peers":[' + '"x",'.repeat(300_000) + '"x"]}');
    });
    const chunked = await fakeServer((req, res) => {
      // no content-length: the cap applies while reading
      res.write('{"peers":[');
      for (let i = 0; i < 100; i++) res.write('"' + 'y'.repeat(20_000) + '",');
      res.end('"y"]}');
    });
    const html = await fakeServer((req, res) => res.end('<html>'));
    const err503 = await fakeServer((req, res) => {
      res.statusCode = 503;
      res.end('{"error":{"code":"full","message":"the tracker is full"}}');
    });
    try {
      const client = new TrackerClient({ trackers: [big.url], networkId: NET, maxResponseBytes: 64 * 1024 });
      await assert.rejects(client.fetchPeersFrom(big.url), (e) => isNeuroShardError(e, 'TRACKER_BAD_RESPONSE'));
      await assert.rejects(client.fetchPeersFrom(chunked.url), (e) => isNeuroShardError(e, 'TRACKER_BAD_RESPONSE'));
      await assert.rejects(client.fetchPeersFrom(html.url), (e) => isNeuroShardError(e, 'TRACKER_BAD_RESPONSE'));
      await assert.rejects(client.fetchPeersFrom(err503.url), (e) => isNeuroShardError(e, 'TRACKER_REJECTED') && e.meta?.status === 503 && e.fault === 'peer');
    } finally {
      await Promise.all([big.close(), chunked.close(), html.close(), err503.close()]);
    }
  });

  it('merges several trackers, survives one being down, fails when all are', async () => {
    const t1 = createTracker({ host: '127.0.0.1', port: 0, dbPath: ':memory:' });
    const { url } = await t1.listen();
    const down = `http://127.0.0.1:${await closedPort()}`;
    try {
      const older = record(key(1), { nowMs: Date.now() - 1000, span: [0, 2] });
      const newer = record(key(1), { span: [0, 3] });
      await new TrackerClient({ trackers: [url], networkId: NET }, { record: () => older }).announce(url);
      const prefixed = await fakeServer((req, res) => {
        // a tracker mounted under a path prefix, serving the newer record of the same peer
        assert.equal(req.url?.startsWith('/api/tracker/peers?'), true);
        res.end(JSON.stringify({ peers: [newer] }));
      });
      try {
        const client = new TrackerClient({ trackers: [url, `${prefixed.url}/api/tracker`, down], networkId: NET });
        assert.deepEqual(await client.fetchPeers(), [newer], 'one record per peer: the freshest');
        const none = new TrackerClient({ trackers: [down], networkId: NET });
        await assert.rejects(none.fetchPeers(), (e) => isNeuroShardError(e, 'TRACKER_UNREACHABLE'));
      } finally {
        await prefixed.close();
      }
    } finally {
      await t1.close();
    }
  });

  it('validates tracker URLs', () => {
    assert.equal(normalizeTrackerUrl('http://tracker.example:3000'), 'http://tracker.example:3000/');
    assert.equal(normalizeTrackerUrl('https://x.example/api/tracker'), 'https://x.example/api/tracker/');
    for (const bad of ['', 'ftp://x', 'not a url', 'http://user:pw@x.example/', 'http://x.example/?token=1', 'http://x.example/#a', 'http://' + 'a'.repeat(3000)]) {
      assert.throws(() => normalizeTrackerUrl(bad), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'), bad);
    }
    assert.throws(() => new TrackerClient({ trackers: ['ftp://x'], networkId: NET }));
  });
});

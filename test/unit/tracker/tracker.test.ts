import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { keyFromPrivate, peerIdFromPublicKey, type NodeKey } from '../../../src/identity/index.js';
import { createTracker } from '../../../src/node/tracker.js';
import { freshHolderRecord, serializeHolderRecordJson, signHolderRecord, type HolderRecord } from '../../../src/protocols/holder-record.js';
import { signTrackerWithdrawal, type TrackerWithdrawal } from '../../../src/protocols/tracker-withdrawal.js';
import type { TrackerOptions } from '../../../src/tracker/index.js';
import { ManualClock } from '../../../src/util/clock.js';
import { tempDir } from '../../utils/paths.js';

const T0 = 1_700_000_000_000;
const NET = 'testnet';

function key(i: number): NodeKey {
  const b = new Uint8Array(32);
  b[31] = i;
  b[0] = 1;
  return keyFromPrivate(b);
}

function record(k: NodeKey, nowMs: number, over: { span?: [number, number]; networkId?: string; multiaddrs?: string[]; lifetimeMs?: number } = {}): HolderRecord {
  const [start, end] = over.span ?? [0, 4];
  return freshHolderRecord(
    k,
    { networkId: over.networkId ?? NET, multiaddrs: over.multiaddrs ?? ['/ip4/127.0.0.1/tcp/9000'], span: { start, end }, capacity: { memoryMb: 1024, tokensPerSec: 50 } },
    nowMs,
    over.lifetimeMs ?? 120_000,
  );
}

function setup(opts: Partial<TrackerOptions> = {}) {
  const clock = new ManualClock(T0);
  const tracker = createTracker({ dbPath: ':memory:', ...opts }, { clock });
  const announce = async (body: unknown, ip = '10.0.0.1', raw?: { payload: string; contentType?: string }) => {
    const res = await tracker.app.inject({
      method: 'POST',
      url: '/announce',
      remoteAddress: ip,
      headers: { 'content-type': raw?.contentType ?? 'application/json' },
      payload: raw?.payload ?? JSON.stringify(body),
    });
    return { status: res.statusCode, body: res.json<Record<string, unknown>>(), headers: res.headers };
  };
  const withdraw = async (body: unknown, ip = '10.0.0.1', raw?: { payload: string; contentType?: string }) => {
    const res = await tracker.app.inject({
      method: 'POST',
      url: '/withdraw',
      remoteAddress: ip,
      headers: { 'content-type': raw?.contentType ?? 'application/json' },
      payload: raw?.payload ?? JSON.stringify(body),
    });
    return { status: res.statusCode, body: res.json<Record<string, unknown>>(), headers: res.headers };
  };
  const get = async (url: string, ip = '10.0.0.1') => {
    const res = await tracker.app.inject({ method: 'GET', url, remoteAddress: ip });
    return { status: res.statusCode, body: res.json<Record<string, unknown>>(), text: res.body };
  };
  const peers = async (q = '') => {
    const r = await get(`/peers${q}`);
    assert.equal(r.status, 200, r.text);
    return r.body.peers as HolderRecord[];
  };
  return { clock, tracker, announce, withdraw, get, peers };
}

function withdrawal(k: NodeKey, timestampMs: number, networkId = NET): TrackerWithdrawal {
  return signTrackerWithdrawal(k, { networkId, timestampMs });
}

function errorCode(body: Record<string, unknown>): unknown {
  return (body.error as { code?: unknown } | undefined)?.code;
}

describe('tracker: POST /announce', () => {
  it('accepts a signed, fresh record and serves it back unchanged', async () => {
    const { tracker, announce, peers } = setup();
    try {
      const r = record(key(1), T0);
      const res = await announce(r);
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, { ok: true, ttlMs: 60_000 });
      assert.deepEqual(await peers(), [JSON.parse(serializeHolderRecordJson(r))]);
    } finally {
      await tracker.close();
    }
  });

  it('rejects forged records with 401', async () => {
    const { tracker, announce, peers } = setup();
    try {
      const r = record(key(1), T0);
      const tampered = await announce({ ...r, span: { start: 0, end: 8 } });
      assert.equal(tampered.status, 401);
      assert.equal(errorCode(tampered.body), 'bad_signature');
      // a record of key 2 relabelled as key 1's
      const other = record(key(2), T0);
      const relabelled = await announce({ ...other, peerId: r.peerId });
      assert.equal(relabelled.status, 401);
      assert.deepEqual(await peers(), []);
    } finally {
      await tracker.close();
    }
  });

  it('rejects stale, replayed, expired and future records with 409', async () => {
    const { tracker, announce, clock } = setup();
    try {
      const k = key(1);
      const old = await announce(record(k, T0 - 60_001));
      assert.equal(old.status, 409);
      assert.equal(errorCode(old.body), 'stale');
      const future = await announce(record(k, T0 + 60_001));
      assert.equal(future.status, 409);
      assert.equal(errorCode(future.body), 'from_future');
      const expired = await announce(record(k, T0 - 2000, { lifetimeMs: 1000 }));
      assert.equal(expired.status, 409);
      assert.equal(errorCode(expired.body), 'expired');

      const r = record(k, T0);
      assert.equal((await announce(r)).status, 200);
      const replay = await announce(r);
      assert.equal(replay.status, 409, 'the same record twice is a replay');
      assert.equal(errorCode(replay.body), 'stale');
      const older = await announce(record(k, T0 - 1));
      assert.equal(older.status, 409, 'an older record never replaces a newer one');
      clock.advance(1);
      assert.equal((await announce(record(k, T0 + 1))).status, 200, 'a newer one does');
    } finally {
      await tracker.close();
    }
  });

  it('rejects oversized bodies, too many and too long multiaddrs with 413', async () => {
    const { tracker, announce } = setup();
    try {
      const r = record(key(1), T0);
      const big = await announce(undefined, undefined, { payload: JSON.stringify({ ...r, pad: 'x'.repeat(9000) }) });
      assert.equal(big.status, 413);
      assert.equal(errorCode(big.body), 'too_large');
      const many = await announce({ ...r, multiaddrs: Array.from({ length: 17 }, (_, i) => `/ip4/10.0.0.${i}/tcp/1`) });
      assert.equal(many.status, 413);
      const long = await announce({ ...r, multiaddrs: ['/dns4/' + 'a'.repeat(260) + '/tcp/1'] });
      assert.equal(long.status, 413);
    } finally {
      await tracker.close();
    }
  });

  it('rejects bad JSON, wrong shapes and wrong media types with 400/415', async () => {
    const { tracker, announce } = setup();
    try {
      const cases: [string, string | undefined, number][] = [
        ['{', undefined, 400],
        ['', undefined, 400],
        ['[]', undefined, 400],
        ['null', undefined, 400],
        ['{"__proto__": {"x": 1}}', undefined, 400],
        [JSON.stringify({ ...record(key(1), T0), span: { start: 4, end: 2 } }), undefined, 400],
        [JSON.stringify({ ...record(key(1), T0), multiaddrs: [] }), undefined, 400],
        ['x', 'text/plain', 415],
      ];
      for (const [payload, contentType, status] of cases) {
        const r = await announce(undefined, undefined, { payload, contentType });
        assert.equal(r.status, status, `${payload.slice(0, 40)} → ${JSON.stringify(r.body)}`);
        const e = r.body.error as { code: string; message: string };
        assert.equal(typeof e.code, 'string');
        assert.equal(typeof e.message, 'string');
      }
    } finally {
      await tracker.close();
    }
  });

  it('never accepts nor returns a secret', async () => {
    const { tracker, announce, get } = setup();
    try {
      const r = record(key(1), T0);
      const withToken = await announce({ ...r, node_token: 'hunter2' });
      assert.equal(withToken.status, 400, 'unknown fields are refused, not stored');
      assert.equal((await announce(r)).status, 200);
      const res = await get('/peers');
      assert.ok(!res.text.includes('hunter2'));
      for (const p of res.body.peers as Record<string, unknown>[]) {
        assert.deepEqual(Object.keys(p), ['networkId', 'peerId', 'multiaddrs', 'span', 'capacity', 'timestampMs', 'expiresMs', 'signature']);
      }
    } finally {
      await tracker.close();
    }
  });

  it('rate-limits announces per source address with 429 and retry-after', async () => {
    const { tracker, announce, clock } = setup({ announceBurst: 3, announcePerSec: 1 });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) statuses.push((await announce(record(key(i + 1), T0))).status);
      assert.deepEqual(statuses, [200, 200, 200, 429]);
      const limited = await announce(record(key(9), T0));
      assert.equal(errorCode(limited.body), 'rate_limited');
      assert.equal(limited.headers['retry-after'], '1');
      assert.equal((await announce(record(key(9), T0), '10.0.0.2')).status, 200, 'another source has its own bucket');
      clock.advance(1000);
      assert.equal((await announce(record(key(9), T0 + 1000))).status, 200, 'a token refills after a second');
      assert.equal((await announce(record(key(10), T0 + 1000))).status, 429);
    } finally {
      await tracker.close();
    }
  });

  it('rate-limits queries per source address', async () => {
    const { tracker, get } = setup({ queryBurst: 2, queryPerSec: 1 });
    try {
      assert.equal((await get('/peers')).status, 200);
      assert.equal((await get('/health')).status, 200);
      const r = await get('/peers');
      assert.equal(r.status, 429);
      assert.equal(errorCode(r.body), 'rate_limited');
      assert.equal((await get('/peers', '10.0.0.9')).status, 200);
    } finally {
      await tracker.close();
    }
  });

  it('caps the number of entries, letting known peers refresh and freeing room as records go stale', async () => {
    const { tracker, announce, clock } = setup({ maxEntries: 2 });
    try {
      assert.equal((await announce(record(key(1), T0))).status, 200);
      assert.equal((await announce(record(key(2), T0))).status, 200);
      const full = await announce(record(key(3), T0));
      assert.equal(full.status, 503);
      assert.equal(errorCode(full.body), 'full');
      clock.advance(10);
      assert.equal((await announce(record(key(1), T0 + 10))).status, 200, 'a known peer may refresh');
      clock.set(T0 + 60_005); // key 2 has not re-announced for 60 s: its row is stale
      assert.equal((await announce(record(key(3), T0 + 60_005))).status, 200);
      assert.equal(tracker.entries, 2);
    } finally {
      await tracker.close();
    }
  });

  it('caps the entries one source address may hold', async () => {
    const { tracker, announce } = setup({ maxEntriesPerSource: 2 });
    try {
      assert.equal((await announce(record(key(1), T0))).status, 200);
      assert.equal((await announce(record(key(2), T0))).status, 200);
      const r = await announce(record(key(3), T0));
      assert.equal(r.status, 429);
      assert.equal(errorCode(r.body), 'source_full');
      assert.equal((await announce(record(key(3), T0), '10.0.0.2')).status, 200);
    } finally {
      await tracker.close();
    }
  });

  it('accepts only its networks when configured to', async () => {
    const { tracker, announce } = setup({ networks: ['mainnet'] });
    try {
      const r = await announce(record(key(1), T0));
      assert.equal(r.status, 403);
      assert.equal(errorCode(r.body), 'wrong_network');
      assert.equal((await announce(record(key(1), T0, { networkId: 'mainnet' }))).status, 200);
    } finally {
      await tracker.close();
    }
  });
});

describe('tracker: POST /withdraw', () => {
  it('removes the signer\'s record at once; a replay is harmless', async () => {
    const { tracker, announce, withdraw, peers, clock } = setup();
    try {
      assert.equal((await announce(record(key(1), T0))).status, 200);
      assert.equal((await announce(record(key(2), T0))).status, 200);
      clock.advance(5_000);
      const w = withdrawal(key(1), T0 + 5_000);
      const res = await withdraw(w);
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, { ok: true, removed: true });
      assert.deepEqual((await peers()).map((p) => p.peerId), [peerIdFromPublicKey(key(2).publicKey)]);
      assert.equal(tracker.entries, 1);
      const replay = await withdraw(w);
      assert.deepEqual([replay.status, replay.body], [200, { ok: true, removed: false }]);
      assert.deepEqual((await withdraw(withdrawal(key(3), T0 + 5_000))).body, { ok: true, removed: false }, 'nothing held: nothing to remove');
    } finally {
      await tracker.close();
    }
  });

  it('never removes a newer announcement, and the withdrawn record cannot be announced again', async () => {
    const { tracker, announce, withdraw, peers, clock } = setup();
    try {
      const k = key(1);
      const r1 = record(k, T0);
      assert.equal((await announce(r1)).status, 200);
      clock.advance(10_000);
      const early = withdrawal(k, T0 + 1_000); // signed after r1 …
      const r2 = record(k, T0 + 10_000); // … but r2 came later
      assert.equal((await announce(r2)).status, 200);
      const stale = await withdraw(early);
      assert.equal(stale.status, 409);
      assert.equal(errorCode(stale.body), 'stale');
      assert.equal((await peers()).length, 1, 'the newer record stays');
      assert.equal((await withdraw(withdrawal(k, T0 + 10_000))).status, 200, 'a withdrawal signed at the same instant removes it');
      assert.deepEqual(await peers(), []);
      // a copy of r2 (GET /peers served it to anyone) or an older record cannot take its place
      for (const r of [r2, r1]) {
        const again = await announce(r);
        assert.equal(again.status, 409);
        assert.equal(errorCode(again.body), 'stale');
      }
      clock.advance(1);
      assert.equal((await announce(record(k, T0 + 10_001))).status, 200, 'a record signed after the withdrawal is welcome');
      assert.equal((await peers()).length, 1);
    } finally {
      await tracker.close();
    }
  });

  it('forgets tombstones once the records they guard are too old to announce', async () => {
    const { tracker, announce, withdraw, peers, clock } = setup();
    try {
      const k = key(1);
      assert.equal((await announce(record(k, T0))).status, 200);
      assert.equal((await withdraw(withdrawal(k, T0))).status, 200);
      assert.equal(tracker.tombstones, 1);
      clock.set(T0 + 60_000);
      assert.equal((await announce(record(k, T0 + 60_000))).status, 200);
      assert.equal(tracker.tombstones, 1, 'still within the window where a copy of the withdrawn record is young enough');
      clock.set(T0 + 60_001 + 5_000); // past maxSkewMs and the purge interval
      assert.equal((await announce(record(k, T0))).status, 409, 'too old anyway');
      assert.equal(tracker.tombstones, 0);
      assert.equal((await peers()).length, 1);
    } finally {
      await tracker.close();
    }
  });

  it('answers forged, old, future, malformed, oversized and foreign-network withdrawals with the announce errors', async () => {
    const { tracker, announce, withdraw, peers } = setup({ networks: [NET] });
    try {
      assert.equal((await announce(record(key(1), T0))).status, 200);
      const w = withdrawal(key(1), T0);
      const cases: [string, unknown, number, string][] = [
        ['another key', { ...withdrawal(key(2), T0), peerId: w.peerId }, 401, 'bad_signature'],
        ['tampered time', { ...w, timestampMs: T0 + 1 }, 401, 'bad_signature'],
        ['not a secp256k1 peer id', { ...w, peerId: '12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA' }, 401, 'bad_signature'],
        ['old', withdrawal(key(1), T0 - 60_001), 409, 'stale'],
        ['future', withdrawal(key(1), T0 + 60_001), 409, 'from_future'],
        ['unknown field', { ...w, token: 'x' }, 400, 'malformed'],
        ['missing field', { networkId: NET, peerId: w.peerId, timestampMs: T0 }, 400, 'malformed'],
        ['long network id', { ...w, networkId: 'n'.repeat(129) }, 413, 'too_large'],
        ['other network', withdrawal(key(1), T0, 'othernet'), 403, 'wrong_network'],
      ];
      for (const [what, body, status, code] of cases) {
        const r = await withdraw(body);
        assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
        assert.equal(errorCode(r.body), code, what);
      }
      const big = await withdraw(undefined, undefined, { payload: JSON.stringify({ ...w, pad: 'x'.repeat(9000) }) });
      assert.equal(big.status, 413);
      assert.equal((await withdraw(undefined, undefined, { payload: '{' })).status, 400);
      assert.equal((await withdraw(undefined, undefined, { payload: 'x', contentType: 'text/plain' })).status, 415);
      assert.equal((await peers()).length, 1, 'none of them removed the record');
    } finally {
      await tracker.close();
    }
  });

  it('shares the announce rate limit', async () => {
    const { tracker, announce, withdraw } = setup({ announceBurst: 2, announcePerSec: 1 });
    try {
      assert.equal((await announce(record(key(1), T0))).status, 200);
      assert.equal((await withdraw(withdrawal(key(1), T0))).status, 200);
      const r = await withdraw(withdrawal(key(1), T0));
      assert.equal(r.status, 429);
      assert.equal(errorCode(r.body), 'rate_limited');
      assert.equal(r.headers['retry-after'], '1');
    } finally {
      await tracker.close();
    }
  });
});

describe('tracker: GET /peers', () => {
  it('filters by layer (start ≤ N < end), network and limit', async () => {
    const { tracker, announce, peers } = setup();
    try {
      const spans: [number, number][] = [
        [0, 4],
        [4, 8],
        [8, 12],
        [2, 6],
      ];
      for (let i = 0; i < spans.length; i++) assert.equal((await announce(record(key(i + 1), T0, { span: spans[i] }))).status, 200);
      assert.equal((await announce(record(key(9), T0, { networkId: 'othernet' }))).status, 200);

      const spansOf = (ps: HolderRecord[]) => ps.map((p) => [p.span.start, p.span.end]).sort((a, b) => a[0]! - b[0]!);
      assert.deepEqual(spansOf(await peers(`?network=${NET}&layer=0`)), [[0, 4]]);
      assert.deepEqual(spansOf(await peers(`?network=${NET}&layer=4`)), [
        [2, 6],
        [4, 8],
      ]);
      assert.deepEqual(spansOf(await peers(`?network=${NET}&layer=11`)), [[8, 12]]);
      assert.deepEqual(await peers(`?network=${NET}&layer=12`), []);
      assert.equal((await peers(`?network=${NET}`)).length, 4);
      assert.equal((await peers('')).length, 5, 'no network filter: every network');
      assert.deepEqual((await peers('?network=othernet')).map((p) => p.networkId), ['othernet']);
      assert.equal((await peers(`?network=${NET}&limit=2`)).length, 2);
    } finally {
      await tracker.close();
    }
  });

  it('serves only records announced within the ttl and not expired', async () => {
    const { tracker, announce, peers, clock } = setup();
    try {
      assert.equal((await announce(record(key(1), T0))).status, 200);
      assert.equal((await announce(record(key(2), T0, { lifetimeMs: 10_000 }))).status, 200);
      assert.equal((await peers()).length, 2);
      clock.advance(10_000);
      assert.deepEqual((await peers()).map((p) => p.peerId), [peerIdFromPublicKey(key(1).publicKey)], 'key 2 expired by its own expiresMs');
      clock.set(T0 + 60_000);
      assert.deepEqual(await peers(), [], 'key 1 did not re-announce within 60 s');
    } finally {
      await tracker.close();
    }
  });

  it('validates its query', async () => {
    const { tracker, get } = setup();
    try {
      for (const q of ['?layer=x', '?layer=-1', '?layer=70000', '?limit=0', '?limit=201', '?limit=1.5', '?network=a%20b', '?foo=1', '?layer=1&layer=2']) {
        const r = await get(`/peers${q}`);
        assert.equal(r.status, 400, q);
        assert.equal(errorCode(r.body), 'malformed');
      }
      assert.equal((await get('/peers?limit=200&layer=65535')).status, 200);
    } finally {
      await tracker.close();
    }
  });
});

describe('tracker: service', () => {
  it('GET /health and unknown routes', async () => {
    const { tracker, announce, get } = setup();
    try {
      await announce(record(key(1), T0));
      const h = await get('/health');
      assert.equal(h.status, 200);
      assert.equal(h.body.ok, true);
      assert.equal(h.body.entries, 1);
      const nf = await get('/nope');
      assert.equal(nf.status, 404);
      assert.equal(errorCode(nf.body), 'not_found');
    } finally {
      await tracker.close();
    }
  });

  it('serves over a real socket on 127.0.0.1 and keeps its records in SQLite across restarts', async () => {
    const { dir, cleanup } = tempDir();
    const dbPath = join(dir, 'tracker.db');
    try {
      const t1 = createTracker({ host: '127.0.0.1', port: 0, dbPath });
      const { url, port } = await t1.listen();
      assert.ok(port > 0);
      const r = signHolderRecord(key(1), {
        networkId: NET,
        peerId: peerIdFromPublicKey(key(1).publicKey),
        multiaddrs: ['/ip4/127.0.0.1/tcp/9000'],
        span: { start: 0, end: 2 },
        capacity: { memoryMb: 1, tokensPerSec: 1 },
        timestampMs: Date.now(),
        expiresMs: Date.now() + 120_000,
      });
      const res = await fetch(`${url}/announce`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(r) });
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { ok: true, ttlMs: 60_000 });
      await t1.close();

      const t2 = createTracker({ host: '127.0.0.1', port: 0, dbPath });
      const addr = await t2.listen();
      try {
        const got = (await (await fetch(`${addr.url}/peers?network=${NET}&layer=1`)).json()) as { peers: HolderRecord[] };
        assert.deepEqual(got.peers, [r]);
      } finally {
        await t2.close();
      }
    } finally {
      cleanup();
    }
  });
});

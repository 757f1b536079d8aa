/**
 * The local endpoint's ledger routes (POST /api/ledger/events, GET /api/ledger/status) over a real ledger and
 * ledger service on an in-memory network, their client, and the wallet CLI using them (with the outbox as its
 * fallback).
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ApiClient } from '../../../src/api/client.js';
import { LedgerNotReadyError, type LedgerSubmitter } from '../../../src/api/ledger.js';
import { ApiServer } from '../../../src/api/server.js';
import type { StatusProvider } from '../../../src/api/status.js';
import { main } from '../../../src/cli/main.js';
import { accountIdFromPublicKey, addressFromPublicKey, openKeystore, writeNodeLock, type NodeKey } from '../../../src/identity/index.js';
import { parseAmount } from '../../../src/ledger/amount.js';
import { buildStake, buildTransfer } from '../../../src/ledger/build.js';
import { MAX_SLASH_BYTES } from '../../../src/ledger/events.js';
import { Ledger, ledgerPath } from '../../../src/ledger/ledger.js';
import { MemoryLedgerHub } from '../../../src/ledger/memory-network.js';
import { listOutbox, outboxPath } from '../../../src/ledger/outbox.js';
import { LedgerService } from '../../../src/ledger/service.js';
import { ledgerStatusView } from '../../../src/ledger/status-view.js';
import { ledgerSubmitter } from '../../../src/node/ledger.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { waitFor } from '../../../src/util/abort.js';
import { env, LAYERS, NET, testKey, uptimeProof } from '../ledger/helpers.js';
import { tempDir } from '../../utils/paths.js';

const NO_STATUS: StatusProvider = {
  status: () => ({ peerId: '', networkId: null, version: '0', addresses: [], span: null, uptimeMs: 0, peers: { known: 0, alive: 0 } }),
  peers: () => [],
};
const TO = testKey(99);

/** A ledger on `dir` where `key` earned a balance from `proofs` proofs, served by a LedgerService on a memory hub. */
function node(dir: string, key: NodeKey, proofs = 2) {
  const ledger = new Ledger({ path: ledgerPath(dir), networkId: NET, modelLayers: LAYERS });
  const now = Date.now();
  for (let i = 0; i < proofs; i++) {
    const r = ledger.ingest(uptimeProof(key, now - (proofs - i) * 60_000, { nonce: i, dataSamples: 60_000n }));
    assert.equal(r.status, 'applied', JSON.stringify(r));
  }
  const hub = new MemoryLedgerHub();
  const service = new LedgerService({ ledger, network: hub.join('node'), dataDir: dir, outboxPollMs: 20 });
  service.start();
  const peer = hub.join('peer');
  const gossip: Uint8Array[] = [];
  peer.subscribe((b) => gossip.push(b));
  return {
    ledger,
    service,
    gossip,
    close: () => {
      service.stop();
      ledger.close();
    },
  };
}

function post(api: ApiServer, payload: string, headers: Record<string, string> = {}) {
  return api.app.inject({ method: 'POST', url: '/api/ledger/events', headers: { host: '127.0.0.1:8000', 'content-type': 'application/json', ...headers }, payload });
}

function b64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64');
}

function errorCode(body: string): unknown {
  return (JSON.parse(body) as { error?: { code?: unknown } }).error?.code;
}

describe('local endpoint: POST /api/ledger/events', () => {
  it('stores a signed event, publishes it, and answers the ledger verdict; one the state refuses is dropped with its reason', async () => {
    const t = tempDir('ns-api-ledger-');
    const key = testKey(1);
    const n = node(t.dir, key);
    const api = new ApiServer({ port: 0 }, { status: NO_STATUS, ledger: ledgerSubmitter(n) });
    try {
      const send = buildTransfer(key, env(0, Date.now()), accountIdFromPublicKey(TO.publicKey), parseAmount('0.2'));
      const res = await post(api, JSON.stringify({ event: b64(send.bytes) }));
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual(res.json(), { id: Buffer.from(send.id).toString('hex'), status: 'applied', duplicate: false });
      assert.equal(n.ledger.account(accountIdFromPublicKey(TO.publicKey)).balance, parseAmount('0.2'));
      await waitFor(() => n.gossip.length === 1, { timeoutMs: 5_000, what: 'the event on the gossip topic' });
      assert.deepEqual(n.gossip[0], send.bytes);

      const again = await post(api, JSON.stringify({ event: b64(send.bytes) }));
      assert.deepEqual(again.json(), { id: Buffer.from(send.id).toString('hex'), status: 'applied', duplicate: true });

      const tooMuch = buildTransfer(key, env(1, Date.now()), accountIdFromPublicKey(TO.publicKey), parseAmount('1000'));
      const rejected = await post(api, JSON.stringify({ event: b64(tooMuch.bytes) }));
      assert.equal(rejected.statusCode, 200);
      assert.deepEqual(rejected.json(), { id: Buffer.from(tooMuch.id).toString('hex'), status: 'dropped', reason: 'INSUFFICIENT_BALANCE', duplicate: false });

      // bytes that are no event, and an old event nobody would take over gossip: dropped, nothing stored
      const junk = await post(api, JSON.stringify({ event: b64(new Uint8Array([1, 2, 3])) }));
      assert.deepEqual(junk.json(), { id: '', status: 'dropped', reason: 'MALFORMED', duplicate: false });
      const old = buildStake(key, env(0, Date.now() - 10 * 60_000), parseAmount('1'), 30);
      const stale = await post(api, JSON.stringify({ event: b64(old.bytes) }));
      assert.deepEqual(stale.json(), { id: Buffer.from(old.id).toString('hex'), status: 'dropped', reason: 'STALE', duplicate: false });
      assert.equal(n.ledger.eventStatus(old.id), undefined);
    } finally {
      await api.close();
      n.close();
      t.cleanup();
    }
  });

  it('refuses malformed bodies, oversized events, web pages and other media types, storing nothing', async () => {
    const t = tempDir('ns-api-ledger-');
    const key = testKey(2);
    const n = node(t.dir, key);
    const api = new ApiServer({ port: 0 }, { status: NO_STATUS, ledger: ledgerSubmitter(n) });
    try {
      const ev = buildTransfer(key, env(0, Date.now()), accountIdFromPublicKey(TO.publicKey), parseAmount('0.1'));
      const good = JSON.stringify({ event: b64(ev.bytes) });
      const cases: [string, string, Record<string, string>, number, string][] = [
        ['not base64', JSON.stringify({ event: '@@@@' }), {}, 400, 'bad_request'],
        ['unpadded', JSON.stringify({ event: b64(ev.bytes).replace(/=+$/, '') + (b64(ev.bytes).endsWith('=') ? '' : 'A') }), {}, 400, 'bad_request'],
        ['url-safe alphabet', JSON.stringify({ event: b64(ev.bytes).replace(/\+/g, '-').replace(/\//g, '_') + '-_-_' }), {}, 400, 'bad_request'],
        ['empty', JSON.stringify({ event: '' }), {}, 400, 'bad_request'],
        ['a number', JSON.stringify({ event: 5 }), {}, 400, 'bad_request'],
        ['an extra key', JSON.stringify({ event: b64(ev.bytes), fee: '0' }), {}, 400, 'bad_request'],
        ['an array', JSON.stringify([b64(ev.bytes)]), {}, 400, 'bad_request'],
        ['not JSON', '{"event":', {}, 400, 'bad_request'],
        ['over the largest event', JSON.stringify({ event: b64(new Uint8Array(MAX_SLASH_BYTES + 1)) }), {}, 413, 'too_large'],
        ['over the body limit', JSON.stringify({ event: 'A'.repeat(200_000) }), {}, 413, 'too_large'],
        ['from a web page', good, { origin: 'https://evil.example' }, 403, 'forbidden_origin'],
        ['from a same-origin page', good, { origin: 'http://127.0.0.1:8000' }, 403, 'forbidden_origin'],
        ['a form', 'event=' + encodeURIComponent(b64(ev.bytes)), { 'content-type': 'application/x-www-form-urlencoded' }, 415, 'unsupported_media_type'],
        ['text', good, { 'content-type': 'text/plain' }, 415, 'unsupported_media_type'],
        ['a foreign Host (DNS rebinding)', good, { host: 'evil.example:8000' }, 403, 'forbidden_host'],
      ];
      for (const [what, payload, headers, status, code] of cases) {
        const res = await post(api, payload, headers);
        assert.equal(res.statusCode, status, `${what}: ${res.body}`);
        assert.equal(errorCode(res.body), code, what);
      }
      assert.equal(n.ledger.eventStatus(ev.id), undefined, 'none of them reached the ledger');
      assert.equal((await post(api, good)).statusCode, 200, 'the same event, sent properly, is taken');
      assert.equal((await post(api, good, { 'content-type': 'application/json; charset=utf-8' })).json<{ duplicate: boolean }>().duplicate, true);
    } finally {
      await api.close();
      n.close();
      t.cleanup();
    }
  });

  it('answers 503 while the node has no ledger running, and 404 on a server without ledger routes', async () => {
    const notReady: LedgerSubmitter = {
      maxEventBytes: MAX_SLASH_BYTES,
      submit: () => Promise.reject(new LedgerNotReadyError()),
      status: () => {
        throw new LedgerNotReadyError();
      },
    };
    const api = new ApiServer({ port: 0 }, { status: NO_STATUS, ledger: notReady });
    const bare = new ApiServer({ port: 0 }, { status: NO_STATUS });
    try {
      const res = await post(api, JSON.stringify({ event: 'AAAA' }));
      assert.equal(res.statusCode, 503);
      assert.equal(errorCode(res.body), 'not_ready');
      const st = await api.app.inject({ method: 'GET', url: '/api/ledger/status', headers: { host: '127.0.0.1' } });
      assert.equal(st.statusCode, 503);
      assert.equal((await post(bare, JSON.stringify({ event: 'AAAA' }))).statusCode, 404);
    } finally {
      await api.close();
      await bare.close();
    }
  });
});

describe('local endpoint: GET /api/ledger/status and the client', () => {
  it('serves what `ledger status --json` prints, and the client reads both routes over a socket', async () => {
    const t = tempDir('ns-api-ledger-');
    const key = testKey(3);
    const n = node(t.dir, key);
    const api = new ApiServer({ port: 0 }, { status: NO_STATUS, ledger: ledgerSubmitter(n) });
    const { port } = await api.listen();
    try {
      const c = new ApiClient({ port });
      const before = await c.ledgerStatus();
      assert.deepEqual(before, ledgerStatusView(n.ledger.status()));
      assert.equal(before.events, 2);
      const ev = buildTransfer(key, env(0, Date.now()), accountIdFromPublicKey(TO.publicKey), parseAmount('0.3'));
      assert.deepEqual(await c.submitLedgerEvent(ev.bytes), { id: Buffer.from(ev.id).toString('hex'), status: 'applied', duplicate: false });
      const after = await c.ledgerStatus();
      assert.equal(after.events, 3);
      assert.equal(after.burned, '0.015', 'the 5 % fee is burned');
      assert.notEqual(after.stateHash, before.stateHash);

      const cli = await runCli(['ledger', 'status', '--json', '--data-dir', t.dir]);
      assert.equal(cli.code, 0, cli.err);
      assert.deepEqual(JSON.parse(cli.out), ledgerStatusView(n.ledger.status()), 'the file and the endpoint say the same');
    } finally {
      await api.close();
      n.close();
      t.cleanup();
    }
  });

  it('reports a node error answer with its code', async () => {
    const api = new ApiServer(
      { port: 0 },
      { status: NO_STATUS, ledger: { maxEventBytes: 16, submit: () => Promise.reject(new LedgerNotReadyError()), status: () => ({}) as never } },
    );
    const { port } = await api.listen();
    try {
      const c = new ApiClient({ port });
      await assert.rejects(c.submitLedgerEvent(new Uint8Array(8)), (e) => isNeuroShardError(e, 'API_BAD_RESPONSE') && e.meta?.status === 503 && e.meta.code === 'not_ready');
      await assert.rejects(c.submitLedgerEvent(new Uint8Array(17)), (e) => isNeuroShardError(e, 'API_BAD_RESPONSE') && e.meta?.status === 413);
      await assert.rejects(c.ledgerStatus(), (e) => isNeuroShardError(e, 'API_BAD_RESPONSE'), 'a shape the schema refuses is an error, not garbage');
    } finally {
      await api.close();
    }
  });
});

async function runCli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { stdout: (s) => (out += s), stderr: (s) => (err += s), signal: new AbortController().signal });
  return { code, out, err };
}

describe('wallet CLI through the local endpoint', () => {
  it('hands send and stake to the running node and prints its verdict; falls back to the outbox when the endpoint is gone', async () => {
    const t = tempDir('ns-api-wallet-');
    const d = ['--data-dir', t.dir, '--json'];
    let n: ReturnType<typeof node> | undefined;
    let api: ApiServer | undefined;
    let release: (() => void) | undefined;
    try {
      assert.equal((await runCli(['wallet', 'create', ...d])).code, 0);
      const { key } = openKeystore(t.dir);
      n = node(t.dir, key);
      api = new ApiServer({ port: 0 }, { status: NO_STATUS, ledger: ledgerSubmitter(n) });
      const { port } = await api.listen();
      release = writeNodeLock(t.dir, { apiPort: port });
      const to = addressFromPublicKey(TO.publicKey);

      const s = await runCli(['wallet', 'send', to, '0.2', '--yes', ...d]);
      assert.equal(s.code, 0, s.err);
      const sent = JSON.parse(s.out) as Record<string, unknown>;
      assert.deepEqual([sent.status, sent.nonce], ['applied', '0']);
      assert.equal(n.ledger.account(accountIdFromPublicKey(TO.publicKey)).balance, parseAmount('0.2'));
      // the endpoint took it: nothing went through the outbox, not even an outcome file
      assert.equal(listOutbox(t.dir).length, 0);
      assert.ok(!existsSync(join(outboxPath(t.dir), 'done', `${sent.id as string}.json`)));

      const st = await runCli(['wallet', 'stake', '100', '--lock-days', '30', ...d]);
      assert.equal(st.code, 1);
      const staked = JSON.parse(st.out) as Record<string, unknown>;
      // an event the state refuses is dropped, not stored (issue 11 item 5): its nonce stays free
      assert.deepEqual([staked.status, staked.reason, staked.nonce], ['dropped', 'INSUFFICIENT_BALANCE', '0']);

      const next = await runCli(['wallet', 'send', to, '0.1', '--yes', ...d]);
      assert.equal((JSON.parse(next.out) as Record<string, unknown>).nonce, '1', 'the nonce after the one the node stored');

      // the node's endpoint is gone but its lock remains (stopping, or hung): the outbox carries the event
      await api.close();
      api = undefined;
      const fallback = await runCli(['wallet', 'send', to, '0.1', '--yes', ...d]);
      assert.equal(fallback.code, 0, fallback.err);
      assert.match(fallback.err, /leaving it in the outbox/);
      const fb = JSON.parse(fallback.out) as Record<string, unknown>;
      assert.deepEqual([fb.status, fb.nonce], ['applied', '2'], 'the node picked it up from the outbox');
      assert.ok(existsSync(join(outboxPath(t.dir), 'done', `${fb.id as string}.json`)));
      assert.deepEqual(readdirSync(outboxPath(t.dir)).filter((f) => f.endsWith('.event')), []);
    } finally {
      release?.();
      await api?.close();
      n?.close();
      t.cleanup();
    }
  });
});

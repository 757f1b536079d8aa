import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { type AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { ApiClient } from '../../../src/api/client.js';
import { ApiServer } from '../../../src/api/server.js';
import type { NodeStatus, PeerStatus, StatusProvider } from '../../../src/api/status.js';
import { isNeuroShardError } from '../../../src/util/errors.js';

const STATUS: NodeStatus = {
  peerId: '16Uiu2HAmEWQnHq2jLKJypwVnVoQeFCULuyop6atvq2eWjYSUjzNi',
  networkId: 'testnet',
  version: '0.1.0',
  addresses: ['/ip4/127.0.0.1/tcp/9000'],
  span: { start: 0, end: 4 },
  uptimeMs: 1234,
  peers: { known: 2, alive: 1 },
};

const PEERS: PeerStatus[] = [
  { peerId: 'peerA', addresses: ['/ip4/127.0.0.1/tcp/9100'], span: { start: 4, end: 8 }, liveness: 'alive', lastSeenMs: 1_700_000_000_000 },
  { peerId: 'peerB', addresses: [], span: null, liveness: 'unknown', lastSeenMs: null },
];

function provider(over: Partial<StatusProvider> = {}): StatusProvider {
  return { status: () => STATUS, peers: () => PEERS, ...over };
}

describe('local endpoint: routes', () => {
  it('serves GET /api/status and GET /api/peers from the provider', async () => {
    const api = new ApiServer({ port: 0 }, { status: provider() });
    try {
      const s = await api.app.inject({ method: 'GET', url: '/api/status', headers: { host: '127.0.0.1:8000' } });
      assert.equal(s.statusCode, 200);
      assert.deepEqual(s.json(), STATUS);
      const p = await api.app.inject({ method: 'GET', url: '/api/peers', headers: { host: 'localhost:8000' } });
      assert.equal(p.statusCode, 200);
      assert.deepEqual(p.json(), { peers: PEERS });
    } finally {
      await api.close();
    }
  });

  it('sends only the fields its schema names, never extras a provider leaks', async () => {
    const leaky = { ...STATUS, mnemonic: 'abandon abandon …', privateKey: 'deadbeef' } as NodeStatus;
    const api = new ApiServer({ port: 0 }, { status: provider({ status: () => leaky, peers: async () => [{ ...PEERS[0]!, token: 'x' } as PeerStatus] }) });
    try {
      const s = await api.app.inject({ method: 'GET', url: '/api/status', headers: { host: '127.0.0.1' } });
      assert.deepEqual(s.json(), STATUS);
      assert.ok(!s.body.includes('abandon') && !s.body.includes('deadbeef'));
      const p = await api.app.inject({ method: 'GET', url: '/api/peers', headers: { host: '127.0.0.1' } });
      assert.deepEqual(p.json(), { peers: [PEERS[0]] });
    } finally {
      await api.close();
    }
  });

  it('refuses foreign Host headers (DNS rebinding), unknown routes, and provider failures with typed bodies', async () => {
    const api = new ApiServer(
      { port: 0 },
      {
        status: provider({
          status: () => {
            throw new Error('secret detail');
          },
        }),
      },
    );
    try {
      const evil = await api.app.inject({ method: 'GET', url: '/api/peers', headers: { host: 'evil.example:8000' } });
      assert.equal(evil.statusCode, 403);
      assert.equal(evil.json<{ error: { code: string } }>().error.code, 'forbidden_host');
      const nf = await api.app.inject({ method: 'GET', url: '/api/nope', headers: { host: '127.0.0.1' } });
      assert.equal(nf.statusCode, 404);
      assert.equal(nf.json<{ error: { code: string } }>().error.code, 'not_found');
      const boom = await api.app.inject({ method: 'GET', url: '/api/status', headers: { host: '127.0.0.1' } });
      assert.equal(boom.statusCode, 500);
      assert.deepEqual(boom.json(), { error: { code: 'internal', message: 'internal error' } });
    } finally {
      await api.close();
    }
  });

  it('listens on the loopback only', () => {
    assert.throws(() => new ApiServer({ host: '0.0.0.0' }, { status: provider() }), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
  });
});

describe('local endpoint: client', () => {
  it('reads status and peers over a real socket on 127.0.0.1', async () => {
    const api = new ApiServer({ port: 0 }, { status: provider() });
    const { port, host } = await api.listen();
    try {
      assert.equal(host, '127.0.0.1');
      const c = new ApiClient({ port });
      assert.deepEqual(await c.status(), STATUS);
      assert.deepEqual(await c.peers(), { peers: PEERS });
    } finally {
      await api.close();
    }
  });

  it('reports a missing node, a wrong shape, an error answer and a deadline as typed errors', async () => {
    const api = new ApiServer({ port: 0 }, { status: provider() });
    const { port: freePort } = await api.listen();
    await api.close();
    await assert.rejects(new ApiClient({ port: freePort }).status(), (e) => isNeuroShardError(e, 'NODE_UNREACHABLE'));

    let answer = '{"peerId": 1}';
    let code = 200;
    const fake = createServer((req, res) => {
      if (req.url === '/api/peers' && code === 0) return; // never answers
      res.statusCode = code;
      res.end(answer);
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
    const port = (fake.address() as AddressInfo).port;
    try {
      const c = new ApiClient({ port, timeoutMs: 200 });
      await assert.rejects(c.status(), (e) => isNeuroShardError(e, 'API_BAD_RESPONSE'));
      answer = JSON.stringify({ peers: [{ ...PEERS[0], liveness: 'zombie' }] });
      await assert.rejects(c.peers(), (e) => isNeuroShardError(e, 'API_BAD_RESPONSE'));
      answer = '{"error":{"code":"internal","message":"boom"}}';
      code = 500;
      await assert.rejects(c.status(), (e) => isNeuroShardError(e, 'API_BAD_RESPONSE') && e.meta?.status === 500);
      code = 0;
      await assert.rejects(c.peers(), (e) => isNeuroShardError(e, 'TIMEOUT'));
    } finally {
      fake.closeAllConnections();
      await new Promise<void>((r) => fake.close(() => r()));
    }
  });
});

describe('local endpoint: a port in use', () => {
  it('is a CONFIG error API_PORT_IN_USE that names host:port and --api-port, not a bare EADDRINUSE', async () => {
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as AddressInfo).port;
    const api = new ApiServer({ port }, { status: provider() });
    try {
      await assert.rejects(api.listen(), (e: unknown) => {
        assert.ok(isNeuroShardError(e, 'API_PORT_IN_USE'), String(e));
        assert.equal(e.fault, 'config');
        assert.match(e.message, new RegExp(`^cannot serve the API on 127\\.0\\.0\\.1:${port}: the port is in use`));
        assert.match(e.message, /--api-port/);
        return true;
      });
    } finally {
      await api.close();
      await new Promise<void>((r) => holder.close(() => r()));
    }
  });
});

describe('local endpoint: a request that is not HTTP, or whose headers are too large', () => {
  /**
   * Writes `raw` on a fresh connection and resolves with all the server sends until it closes (bounded by
   * `boundMs`); with `trickle`, then one more byte every `trickle.everyMs` ms, `trickle.bytes` in all (a slow body).
   */
  async function exchange(port: number, raw: string, trickle?: { bytes: number; everyMs: number }, boundMs = 10_000): Promise<string> {
    const { connect } = await import('node:net');
    return new Promise((resolve, reject) => {
      let drip: NodeJS.Timeout | undefined;
      const sock = connect(port, '127.0.0.1', () => {
        sock.write(raw);
        if (trickle === undefined) return;
        let sent = 0;
        drip = setInterval(() => {
          if (++sent >= trickle.bytes) clearInterval(drip);
          if (sock.writable) sock.write(' ');
        }, trickle.everyMs);
      });
      let got = '';
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error(`no answer within ${boundMs} ms; got ${JSON.stringify(got)}`));
      }, boundMs);
      sock.on('data', (d: Buffer) => (got += d.toString()));
      sock.on('error', () => undefined);
      sock.on('close', () => {
        clearInterval(drip);
        clearTimeout(timer);
        resolve(got);
      });
    });
  }

  it('gets 400 / 431 in the error shape of /api and /v1 ({"error": {"message", "type", "param", "code"}}), not fastify\'s', async () => {
    const api = new ApiServer({ port: 0 }, { status: provider() });
    try {
      const { port } = await api.listen();
      const bad = await exchange(port, 'NOT HTTP AT ALL\r\n\r\n');
      assert.match(bad, /^HTTP\/1\.1 400 Bad Request\r\n/);
      assert.deepEqual(JSON.parse(bad.slice(bad.indexOf('\r\n\r\n') + 4)), { error: { message: 'the request is not valid HTTP', type: 'invalid_request_error', param: null, code: 'bad_request' } });
      const big = await exchange(port, `GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
      assert.match(big, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
      assert.equal((JSON.parse(big.slice(big.indexOf('\r\n\r\n') + 4)) as { error: { code: string } }).error.code, 'headers_too_large');
    } finally {
      await api.close();
    }
  });

  it('a body sent a byte at a time gets 408 at the request timeout, not when it ends (session 29)', async () => {
    // before, Node's server never checked the timeout fastify set after creating it: a body trickled a byte every
    // 50 ms (10 s in all) held its connection to the end and was answered as a whole request
    const api = new ApiServer({ port: 0, requestTimeoutMs: 500 }, { status: provider() });
    try {
      const { port } = await api.listen();
      const t0 = performance.now();
      const got = await exchange(port, 'POST /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n', { bytes: 200, everyMs: 50 }, 15_000);
      const ms = performance.now() - t0;
      assert.match(got, /^HTTP\/1\.1 408 Request Timeout\r\n/, got.slice(0, 200));
      assert.equal((JSON.parse(got.slice(got.indexOf('\r\n\r\n') + 4)) as { error: { code: string } }).error.code, 'request_timeout');
      // the timeout plus the server's check interval (125 ms here), with room for a loaded machine; 10 s before
      assert.ok(ms < 5_000, `408 after ${ms.toFixed(0)} ms`);
    } finally {
      await api.close();
    }
  });
});

/**
 * Reusable unary streams on real libp2p nodes on 127.0.0.1 (TCP, noise, yamux): many concurrent calls on one
 * stream, a slow call beside fast ones, a deadline, a connection and a process that die mid-call, and the fallback
 * to a stream per call for a node that does not speak the reusable protocol.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { NetworkError } from '../../../src/p2p/errors.js';
import type { Libp2pNetwork } from '../../../src/p2p/libp2p-node.js';
import type * as pb from '../../../src/protocols/pb/node.js';
import { RpcTransportError } from '../../../src/protocols/rpc/errors.js';
import { RpcNode } from '../../../src/protocols/rpc/service.js';
import { TimeoutError } from '../../../src/util/errors.js';
import { NET, loopbackNet, steered, steeredServer } from './rpc-fixture.js';

const req = (...bytes: number[]): pb.EchoRequest => ({ payload: Uint8Array.from(bytes), replyWithTensor: false });

async function until(cond: () => boolean, what: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Open streams of a protocol family between two nodes, as the caller's libp2p sees them. */
function streams(net: Libp2pNetwork, peer: string, suffix: string): number {
  let n = 0;
  for (const c of net.libp2p.getConnections()) {
    if (c.remotePeer.toString() !== peer) continue;
    n += c.streams.filter((s) => s.protocol?.endsWith(suffix) === true).length;
  }
  return n;
}

const nets: Libp2pNetwork[] = [];
after(async () => {
  for (const n of nets) await n.stop().catch(() => {});
});

describe('rpc mux on libp2p loopback', () => {
  it('carries concurrent calls on one stream; a slow call does not hold up fast ones; a deadline frees its handler', async () => {
    const server = await steeredServer();
    const client = await loopbackNet();
    nets.push(server.net, client);
    const rpc = new RpcNode({ network: client, networkId: NET, reuseStreams: true });
    const addr = server.net.multiaddrs()[0]!;
    const peer = server.net.peerId;
    await client.dial(addr);

    const res = await Promise.all(Array.from({ length: 100 }, (_, i) => rpc.call(peer, steered, req(0, i))));
    res.forEach((r, i) => assert.deepEqual([...r.payload], [0, i]));
    assert.equal(streams(client, peer, '/mux-test/1.0.0/mux/2.0.0'), 1, 'one reusable stream');
    assert.equal(streams(client, peer, '/mux-test/1.0.0'), 0, 'no stream per call');

    // a slow call (300 ms) and fast calls beside it: the fast ones do not wait for it
    const slow = rpc.call(peer, steered, req(2));
    const t0 = performance.now();
    for (let i = 0; i < 5; i++) await rpc.call(peer, steered, req(0, i));
    const fastMs = performance.now() - t0;
    let slowDone = false;
    void slow.then(() => (slowDone = true));
    assert.deepEqual([...(await slow).payload], [2]);
    assert.ok(slowDone);
    assert.ok(fastMs < 60_000, 'fast calls answered');

    // a call that never gets an answer fails at its deadline; the server hears of it and frees the slot
    const abortedBefore = server.aborted();
    await assert.rejects(rpc.call(peer, steered, req(1), { timeoutMs: 500 }), (e: unknown) => e instanceof TimeoutError);
    await until(() => server.aborted() === abortedBefore + 1, 'the handler to be aborted');
    await until(() => server.rpc.inFlight(steered, client.peerId) === 0, 'the slot to be released');
    assert.deepEqual([...(await rpc.call(peer, steered, req(0, 42))).payload], [0, 42]);
    assert.equal(streams(client, peer, '/mux/2.0.0'), 1, 'still the one stream');
    await rpc.close();
  });

  it('a connection closed mid-call fails the calls in flight with a NetworkError; the next call opens a new stream', async () => {
    const server = await steeredServer();
    const client = await loopbackNet();
    nets.push(server.net, client);
    const rpc = new RpcNode({ network: client, networkId: NET, reuseStreams: true });
    const peer = server.net.peerId;
    await client.dial(server.net.multiaddrs()[0]!);
    const inflight = [1, 2, 3].map(() => rpc.call(peer, steered, req(1), { timeoutMs: 120_000 }));
    await until(() => server.started() === 3, 'three calls to start');
    const t0 = Date.now();
    await client.hangUp(peer);
    for (const p of inflight) await assert.rejects(p, (e: unknown) => e instanceof RpcTransportError && e instanceof NetworkError);
    assert.ok(Date.now() - t0 < 60_000, 'failed long before the deadline');
    await until(() => server.aborted() === 3, 'the server to abort the handlers');
    await client.dial(server.net.multiaddrs()[0]!);
    assert.deepEqual([...(await rpc.call(peer, steered, req(0, 1))).payload], [0, 1]);
    assert.equal(rpc.openChannels(peer), 1);
    await rpc.close();
  });

  it('a peer process killed mid-call (SIGKILL) fails the calls in flight with a NetworkError', async () => {
    const here = fileURLToPath(import.meta.url);
    const child = spawn(process.execPath, [here.replace(/rpc-reuse\.test\.js$/, 'rpc-child.js')], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout! }).once('line', resolve);
        child.once('exit', (code) => reject(new Error(`child exited (${code})`)));
      });
      const { addr } = JSON.parse(line) as { addr: string };
      const client = await loopbackNet();
      nets.push(client);
      const rpc = new RpcNode({ network: client, networkId: NET, reuseStreams: true });
      const peer = await client.dial(addr);
      assert.deepEqual([...(await rpc.call(peer, steered, req(0, 7))).payload], [0, 7]);
      const inflight = [1, 2].map(() => rpc.call(peer, steered, req(1), { timeoutMs: 120_000 }));
      // the calls are on the wire once the stream carries them; give the child a moment by a round trip
      assert.deepEqual([...(await rpc.call(peer, steered, req(0, 8))).payload], [0, 8]);
      const t0 = Date.now();
      process.kill(-child.pid!, 'SIGKILL');
      for (const p of inflight) await assert.rejects(p, (e: unknown) => e instanceof NetworkError);
      assert.ok(Date.now() - t0 < 60_000, 'failed long before the deadline');
      assert.equal(rpc.openChannels(peer), 0);
      await rpc.close();
    } finally {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });

  it('falls back to a stream per call with a node that does not speak the reusable protocol', async () => {
    const server = await steeredServer({ mux: false });
    const client = await loopbackNet();
    nets.push(server.net, client);
    const rpc = new RpcNode({ network: client, networkId: NET, reuseStreams: true });
    const peer = server.net.peerId;
    await client.dial(server.net.multiaddrs()[0]!);
    const res = await Promise.all(Array.from({ length: 10 }, (_, i) => rpc.call(peer, steered, req(0, i))));
    res.forEach((r, i) => assert.deepEqual([...r.payload], [0, i]));
    for (let i = 0; i < 5; i++) await rpc.call(peer, steered, req(0, i));
    assert.equal(rpc.openChannels(peer), 0);
    assert.equal(streams(client, peer, '/mux/2.0.0'), 0);
    await rpc.close();
  });
});

/**
 * Joining (issue #4 §1): a restarted node redials the peers it remembers from its persistent peer book, and a
 * node given peers it cannot reach keeps retrying without founding a network of its own.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { keyFromPrivate } from '../../../src/identity/index.js';
import { createNodeNetwork, type NetworkNodeOptions, type NodeNetwork } from '../../../src/node/network.js';
import * as methods from '../../../src/protocols/methods.js';
import { loopbackNodeOptions } from '../../utils/network.js';
import { tempDir } from '../../utils/paths.js';
import { closedPort } from '../../utils/ports.js';

const NETWORK_ID = 'boot' + randomBytes(4).toString('hex');
const TUNING = { inboundConnectionThreshold: 1000, retryBaseMs: 100, retryMaxMs: 400, autonat: false, dcutr: false };

function options(dataDir: string, over: Partial<NetworkNodeOptions> = {}): NetworkNodeOptions {
  return loopbackNodeOptions({ dataDir, maxConnections: 50, peerStaleMs: 3000, peerDeadMs: 6000, ...over });
}

describe('bootstrap', { timeout: 60_000 }, () => {
  const running: NodeNetwork[] = [];
  const dirs: (() => void)[] = [];
  after(async () => {
    await Promise.all(running.map((n) => n.stop()));
    for (const d of dirs) d();
  });

  it('a restarted node redials the peers in its peer book and does not found a network', async () => {
    const da = tempDir();
    const db = tempDir();
    dirs.push(da.cleanup, db.cleanup);
    const a = await createNodeNetwork({ networkId: NETWORK_ID, key: keyFromPrivate(randomBytes(32)), options: options(da.dir), tuning: TUNING });
    running.push(a);
    await a.start();
    assert.equal(a.genesis, true, 'no peers, no trackers, empty peer book: a founder');
    const keyB = keyFromPrivate(randomBytes(32));
    const b1 = await createNodeNetwork({ networkId: NETWORK_ID, key: keyB, options: options(db.dir, { bootstrap: [a.p2p.multiaddrs()[0]!] }), tuning: TUNING });
    await b1.start();
    await b1.p2p.events.waitFor('bootstrap:state', { timeoutMs: 15_000, pred: (s) => s.state === 'connected' });
    await b1.stop();
    // same data dir, no bootstrap flag, no tracker: the peer book says there is a network to rejoin
    const b2 = await createNodeNetwork({ networkId: NETWORK_ID, key: keyB, options: options(db.dir), tuning: TUNING });
    running.push(b2);
    const joined = b2.p2p.events.waitFor('bootstrap:state', { timeoutMs: 15_000, pred: (s) => s.state === 'connected' });
    await b2.start();
    assert.equal(b2.genesis, false);
    await joined;
    assert.ok(b2.p2p.connectedPeers().includes(a.peerId));
  });

  it('a node given unreachable peers retries with backoff and never founds a network', async () => {
    const dc = tempDir();
    dirs.push(dc.cleanup);
    const port = await closedPort();
    const ghost = keyFromPrivate(randomBytes(32));
    const { peerIdFromPublicKey } = await import('../../../src/identity/index.js');
    const c = await createNodeNetwork({
      networkId: NETWORK_ID,
      key: keyFromPrivate(randomBytes(32)),
      options: options(dc.dir, { bootstrap: [`/ip4/127.0.0.1/tcp/${port}/p2p/${peerIdFromPublicKey(ghost.publicKey)}`] }),
      tuning: TUNING,
    });
    running.push(c);
    const states: string[] = [];
    c.p2p.events.on('bootstrap:state', (s) => states.push(s.state));
    await c.start();
    assert.equal(c.genesis, false);
    const s = await c.p2p.events.waitFor('bootstrap:state', { timeoutMs: 20_000, pred: (x) => x.failedRounds >= 3 });
    assert.equal(s.state, 'retrying');
    assert.ok(s.nextAttemptAt !== undefined && s.lastError !== undefined);
    assert.ok(!states.includes('genesis') && !states.includes('connected'), states.join(','));
  });
});

describe('transports', { timeout: 60_000 }, () => {
  it('a node that listens only on WebSocket is joined and called over it', async () => {
    const da = tempDir();
    const db = tempDir();
    const a = await createNodeNetwork({
      networkId: NETWORK_ID,
      key: keyFromPrivate(randomBytes(32)),
      options: options(da.dir, { listen: ['/ip4/127.0.0.1/tcp/0/ws'] }),
      tuning: { ...TUNING, echo: true, ephemeralPeerStore: true },
    });
    const wsAddr = a.p2p.multiaddrs().find((m) => m.includes('/ws/'));
    let b: NodeNetwork | undefined;
    try {
      await a.start();
      const addr = a.p2p.multiaddrs().find((m) => m.includes('/ws/'));
      assert.ok(addr !== undefined, `a WebSocket address: ${a.p2p.multiaddrs().join(', ')} (before start: ${wsAddr})`);
      b = await createNodeNetwork({
        networkId: NETWORK_ID,
        key: keyFromPrivate(randomBytes(32)),
        options: options(db.dir, { bootstrap: [addr] }),
        tuning: { ...TUNING, ephemeralPeerStore: true },
      });
      await b.start();
      await b.p2p.events.waitFor('bootstrap:state', { timeoutMs: 15_000, pred: (s) => s.state === 'connected' });
      const payload = new Uint8Array(64 * 1024).map((_, i) => i & 0xff);
      const reply = await b.rpc.call(a.peerId, methods.echo, { payload, replyWithTensor: false }, { signal: AbortSignal.timeout(10_000) });
      assert.deepEqual(new Uint8Array(reply.payload), payload);
    } finally {
      await b?.stop();
      await a.stop();
      da.cleanup();
      db.cleanup();
    }
  });
});

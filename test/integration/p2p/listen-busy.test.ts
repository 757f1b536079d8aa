/**
 * A node whose listen port another process holds (a second node started with the default ports on one machine)
 * fails with a typed error that names the address and says what to pass instead, not libp2p's stack trace that
 * points at a library option (docs/LIMITS.md "Session 29: a new user's walkthrough").
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { after, describe, it } from 'node:test';
import { createLibp2pNetwork } from '../../../src/p2p/libp2p-node.js';
import { protocolPrefix } from '../../../src/protocols/ids.js';
import { isNeuroShardError } from '../../../src/util/errors.js';

describe('a listen port in use', () => {
  let holder: Server | undefined;
  after(() => holder?.close());

  it('is a CONFIG error LISTEN_ADDRESS_IN_USE naming the address and --listen, and the node can start again on a free port', async () => {
    holder = createServer();
    await new Promise<void>((r) => holder!.listen(0, '127.0.0.1', r));
    const port = (holder.address() as { port: number }).port;
    const opts = { protocolPrefix: protocolPrefix('busy' + randomBytes(4).toString('hex')), genesis: true, mdns: false as const, upnp: false, autonat: false, dcutr: false };
    const net = await createLibp2pNetwork({ ...opts, privateKey: randomBytes(32), listen: [`/ip4/127.0.0.1/tcp/${port}`] });
    await assert.rejects(net.start(), (e: unknown) => {
      assert.ok(isNeuroShardError(e, 'LISTEN_ADDRESS_IN_USE'), String(e));
      assert.equal(e.fault, 'config');
      assert.match(e.message, new RegExp(`^cannot listen on /ip4/127\\.0\\.0\\.1/tcp/${port}: the port is in use`));
      assert.match(e.message, /--listen/);
      assert.doesNotMatch(e.message, /transportManager|\n/);
      return true;
    });
    const other = await createLibp2pNetwork({ ...opts, privateKey: randomBytes(32), listen: ['/ip4/127.0.0.1/tcp/0'] });
    await other.start();
    assert.equal(other.multiaddrs().length > 0, true);
    await other.stop();
  });
});

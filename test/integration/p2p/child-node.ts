/**
 * A node in a child process, for tests that kill a node for real (SIGKILL). Usage (argv[2] is JSON):
 *   {"networkId", "privateKey": hex, "bootstrap": [multiaddr], "heartbeatIntervalMs", "span": {start,end}?}
 * Prints one JSON line {"peerId", "addrs"} on stdout once it is up, then runs until killed.
 */
import '../../../src/util/polyfill.js';
import { keyFromPrivate } from '../../../src/identity/index.js';
import { createNodeNetwork } from '../../../src/node/network.js';
import { fromHex } from '../../../src/util/bytes.js';
import { loopbackNodeOptions } from '../../utils/network.js';

interface Args {
  networkId: string;
  privateKey: string;
  bootstrap: string[];
  heartbeatIntervalMs: number;
  span?: { start: number; end: number };
}

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
const net = await createNodeNetwork({
  networkId: args.networkId,
  key: keyFromPrivate(fromHex(args.privateKey)),
  options: loopbackNodeOptions({
    bootstrap: args.bootstrap,
    maxConnections: 100,
    span: args.span,
    heartbeatIntervalMs: args.heartbeatIntervalMs,
    peerStaleMs: 60_000,
    peerDeadMs: 120_000,
  }),
  tuning: { ephemeralPeerStore: true, inboundConnectionThreshold: 1000, retryBaseMs: 100, retryMaxMs: 1000, autonat: false, dcutr: false },
});
await net.start();
process.stdout.write(JSON.stringify({ peerId: net.peerId, addrs: net.p2p.multiaddrs() }) + '\n');
process.on('SIGTERM', () => {
  void net.stop().then(() => process.exit(0));
});

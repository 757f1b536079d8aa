/**
 * The far side of the RPC benchmark (src/protocols/bench.ts), in its own process: a libp2p node answering
 * echo/1.0.0 and, beside it, a raw TCP server with the same request/ack pattern for the baseline. It reports its
 * addresses as one JSON line on stdout and exits when its parent disconnects (stdin closes).
 *
 * Raw TCP framing: u32 big-endian length ‖ payload; the server answers each complete payload with 8 bytes.
 */
import '../util/polyfill.js';
import { randomBytes } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { PerformanceObserver, constants as perfConstants } from 'node:perf_hooks';
import { LaneManager } from '../p2p/lane/manager.js';
import { createLibp2pNetwork } from '../p2p/libp2p-node.js';
import { setMallocPolicy } from '../util/malloc-policy.js';
import { echoHandler } from './handlers/echo.js';
import { laneProtocolId, protocolPrefix } from './ids.js';
import * as methods from './methods.js';
import { RpcNode } from './rpc/service.js';

const BENCH_NETWORK_ID = 'bench';

function tcpSink(socket: Socket): void {
  socket.setNoDelay(true);
  let header = Buffer.alloc(0);
  let remaining = -1;
  const ack = (): void => {
    socket.write(Buffer.alloc(8));
    remaining = -1;
  };
  socket.on('data', (chunk: Buffer) => {
    let off = 0;
    while (off < chunk.length) {
      if (remaining < 0) {
        const need = 4 - header.length;
        header = Buffer.concat([header, chunk.subarray(off, off + need)]);
        off += Math.min(need, chunk.length - off);
        if (header.length === 4) {
          remaining = header.readUInt32BE(0);
          header = Buffer.alloc(0);
          if (remaining === 0) ack();
        }
      } else {
        const take = Math.min(remaining, chunk.length - off);
        remaining -= take;
        off += take;
        if (remaining === 0) ack();
      }
    }
  });
  socket.on('error', () => socket.destroy());
}

/**
 * NEUROSHARD_BENCH_GC=1 (profiling runs, scripts/bench/lane-1mib.mjs --gc): this process's garbage collections
 * (count and milliseconds, minor and major) go to stderr as one JSON line when it exits.
 */
function gcStats(): void {
  if (process.env.NEUROSHARD_BENCH_GC !== '1') return;
  const g = { minor: 0, minorMs: 0, major: 0, majorMs: 0, other: 0, otherMs: 0 };
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
      if (kind === perfConstants.NODE_PERFORMANCE_GC_MINOR) (g.minor++, (g.minorMs += e.duration));
      else if (kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR) (g.major++, (g.majorMs += e.duration));
      else (g.other++, (g.otherMs += e.duration));
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  process.on('exit', () => process.stderr.write(JSON.stringify({ serverGc: g }) + '\n'));
}

async function main(): Promise<void> {
  gcStats();
  setMallocPolicy(); // as a node sets it (the client process does too)
  const net = await createLibp2pNetwork({
    privateKey: randomBytes(32),
    protocolPrefix: protocolPrefix(BENCH_NETWORK_ID),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    genesis: true,
    mdns: false,
    upnp: false,
    autonat: false,
    dcutr: false,
    connections: { inboundConnectionThreshold: 1000 },
  });
  await net.start();
  // the echo is served on libp2p and on direct data lanes (the client measures both)
  const lanes = new LaneManager(net, laneProtocolId(BENCH_NETWORK_ID), { listenHost: '127.0.0.1' });
  await lanes.start();
  const rpc = new RpcNode({ network: net, networkId: BENCH_NETWORK_ID, lanes });
  await rpc.handle(methods.echo, echoHandler);
  const tcp = createServer(tcpSink);
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
  const port = (tcp.address() as { port: number }).port;
  process.stdout.write(JSON.stringify({ multiaddr: net.multiaddrs()[0], tcpPort: port }) + '\n');
  process.stdin.resume();
  process.stdin.on('end', () => {
    tcp.close();
    void lanes.stop().then(() => net.stop()).finally(() => process.exit(0));
  });
}

await main();

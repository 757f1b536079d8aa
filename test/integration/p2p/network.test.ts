/**
 * The P2P layer with real libp2p on 127.0.0.1 (issue #4 §6). One set of eight nodes is shared by the first cases
 * (each case states what it adds): they know only the tracker, discover each other, and find every layer's holders
 * through the DHT; a child-process node killed with SIGKILL is marked dead by the others within the configured
 * bound; and hostile streams (fuzz, truncation, wrong versions, oversized frames) leave every node serving. Then, in
 * a network of three (the eight stopped), a node without a dialable address serves RPCs through a relay, all over
 * one relayed connection. No sleeps: every wait is on an event or a condition, with a bound.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { keyFromPrivate, type NodeKey } from '../../../src/identity/index.js';
import { createNodeNetwork, type NetworkNodeOptions, type NetworkTuning, type NodeNetwork } from '../../../src/node/network.js';
import { createTracker } from '../../../src/node/tracker.js';
import * as methods from '../../../src/protocols/methods.js';
import * as pb from '../../../src/protocols/pb/node.js';
import { RemoteRpcError, RpcTransportError } from '../../../src/protocols/rpc/errors.js';
import { FRAME_MESSAGE, FrameReader, encodeFrame, frameHeader } from '../../../src/protocols/rpc/frame.js';
import type { UnaryMethod } from '../../../src/protocols/rpc/method.js';
import { fp32Tensor, tensorToPb } from '../../../src/protocols/tensor-wire.js';
import { waitFor } from '../../../src/util/abort.js';
import { toHex } from '../../../src/util/bytes.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { LOOPBACK_TUNING, loopbackNodeOptions } from '../../utils/network.js';

const NETWORK_ID = 'itest' + randomBytes(4).toString('hex');
const LAYERS = 8;
// Heartbeats every second, not 400 ms: every node here runs in this one process, and each heartbeat costs every
// receiver ~1.4 ms of CPU (gossipsub's signature check, and @libp2p/crypto decompressing the sender's secp256k1 key
// twice in pure JS). At 400 ms the eight nodes' heartbeats alone took ~200 ms of CPU a second (measured idle), more
// than this process gets of 2 cores at load 10+; its event loop then lagged 0.1-0.9 s a turn and the relay case
// (a reservation, a relayed dial: some twenty sequential turns through relay, caller and hidden node, all in this
// loop) passed libp2p's dial deadlines (3 of 6 runs failed; 0 of 3 passed at load 11-18). The death bound below
// follows the interval.
const HEARTBEAT_MS = 1000;
const STALE_MS = 2500;
const DEAD_MS = 6000;
const TUNING: Partial<NetworkTuning> = { ...LOOPBACK_TUNING, echo: true };

function options(over: Partial<NetworkNodeOptions>): NetworkNodeOptions {
  return loopbackNodeOptions({ heartbeatIntervalMs: HEARTBEAT_MS, peerStaleMs: STALE_MS, peerDeadMs: DEAD_MS, ...over });
}

function newKey(): NodeKey {
  return keyFromPrivate(randomBytes(32));
}

/** Node i of the eight holds two layers; every layer has exactly two holders. */
function spanOf(i: number): { start: number; end: number } {
  const s = (i % 4) * 2;
  return { start: s, end: s + 2 };
}

/** A test-only method whose handler reports whether the call came over a limited (relayed) connection. */
interface Whoami {
  limited: boolean;
  peer: string;
}
const whoami: UnaryMethod<pb.ShardInfoRequest, Whoami> = {
  name: 'whoami',
  version: '1.0.0',
  kind: 'unary',
  request: { encode: (v) => pb.ShardInfoRequest.encode(v), decode: (b) => pb.ShardInfoRequest.decode(b) },
  response: { encode: (v) => new TextEncoder().encode(JSON.stringify(v)), decode: (b) => JSON.parse(new TextDecoder().decode(b)) as Whoami },
  maxRequestBytes: 64,
  maxResponseBytes: 1024,
  timeoutMs: 10_000,
  maxInboundStreams: 16,
  maxConcurrent: 128,
};

describe('p2p network on 127.0.0.1', { timeout: 240_000 }, () => {
  const tracker = createTracker({ host: '127.0.0.1', port: 0, dbPath: ':memory:', maxEntriesPerSource: 1000, announceBurst: 1000, announcePerSec: 1000, queryBurst: 1000, queryPerSec: 1000 });
  let trackerUrl = '';
  const nodes: NodeNetwork[] = [];
  const children: ChildProcess[] = [];

  before(async () => {
    trackerUrl = (await tracker.listen()).url;
    for (let i = 0; i < 8; i++) {
      const n = await createNodeNetwork({
        networkId: NETWORK_ID,
        key: newKey(),
        options: options({ trackers: [trackerUrl], span: spanOf(i) }),
        tuning: TUNING,
      });
      nodes.push(n);
    }
    await Promise.all(nodes.map((n) => n.start()));
  });

  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await Promise.all(nodes.map((n) => n.stop()));
    await tracker.close();
  });

  it('eight nodes that know only the tracker find each other', async () => {
    await waitFor(() => nodes.every((n) => n.p2p.bootstrapStatus().state === 'connected'), { timeoutMs: 30_000, what: 'all nodes connected' });
    for (const n of nodes) assert.equal(n.genesis, false, 'given a tracker, no node founds a network');
    // every node hears every other node's signed heartbeats (gossipsub delivers across the whole mesh)
    await waitFor(() => nodes.every((n) => nodes.every((m) => m === n || n.liveness.state(m.peerId) === 'alive')), {
      timeoutMs: 30_000,
      what: 'every node sees the other seven alive',
    });
    for (const n of nodes) assert.equal(n.liveness.snapshot().length, 7);
  });

  it('every node finds every layer’s holders through the DHT', async () => {
    const expected = (layer: number): string[] =>
      nodes
        .filter((_, i) => spanOf(i).start <= layer && layer < spanOf(i).end)
        .map((n) => n.peerId)
        .sort();
    // the DHT converges as records and provider entries spread: poll the lookups (bounded), never sleep
    for (const n of [nodes[1]!, nodes[6]!]) {
      for (let layer = 0; layer < LAYERS; layer++) {
        let got: string[] = [];
        await waitFor(
          async () => {
            got = (await n.registry.holdersOf(layer)).map((r) => r.peerId).sort();
            return got.join() === expected(layer).join();
          },
          { timeoutMs: 20_000, intervalMs: 200, what: `holders of layer ${layer}` },
        ).catch(() => assert.deepEqual(got, expected(layer), `holders of layer ${layer} seen from ${n.peerId}`));
      }
    }
    // and the records found carry dialable addresses: call a holder of the last layer by its record
    const holder = (await nodes[2]!.registry.holdersOf(LAYERS - 1))[0]!;
    const info = await nodes[2]!.rpc.call(holder.peerId, methods.shardInfo, {});
    assert.equal(info.peerId, holder.peerId);
    assert.deepEqual(info.span, holder.span);
  });

  it('a node killed with SIGKILL is marked dead by the others within the configured bound', async () => {
    const script = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './child-node.ts' : './child-node.js', import.meta.url));
    const bootstrap = nodes.map((n) => n.p2p.multiaddrs().find((a) => !a.includes('p2p-circuit'))!).slice(0, 3);
    const args = { networkId: NETWORK_ID, privateKey: toHex(randomBytes(32)), bootstrap, heartbeatIntervalMs: HEARTBEAT_MS };
    const child = spawn(process.execPath, [...(script.endsWith('.ts') ? ['--import', 'tsx'] : []), script, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    const line = await new Promise<string>((resolve, reject) => {
      const rl = createInterface({ input: child.stdout! });
      rl.once('line', resolve);
      child.once('exit', (code) => reject(new Error(`child exited early (${code})`)));
    });
    const { peerId } = JSON.parse(line) as { peerId: string };
    const observers = nodes.slice(1, 8);
    await waitFor(() => observers.every((n) => n.liveness.state(peerId) === 'alive'), { timeoutMs: 20_000, what: 'child seen alive' });
    const deaths = observers.map((n) => n.liveness.events.waitFor('peer:dead', { timeoutMs: 60_000, pred: (p) => p.peer === peerId }));
    const killedAt = Date.now();
    child.kill('SIGKILL');
    const seen = await Promise.all(deaths);
    const latest = Date.now() - killedAt;
    // dead = no heartbeat for DEAD_MS since the last one; the last one left at most one interval before the kill,
    // and the tracker re-checks every STALE_MS/10
    const bound = DEAD_MS + HEARTBEAT_MS + STALE_MS / 10 + 1500;
    assert.ok(latest <= bound, `marked dead after ${latest} ms (bound ${bound} ms)`);
    for (const p of seen) assert.equal(p.state, 'dead');
    // and it no longer counts as a holder
    for (const n of observers) assert.equal(n.liveness.isDead(peerId), true);
  });

  it('fuzzed, truncated, oversized and wrong-version streams never crash a node', async () => {
    const [a, b, c] = [nodes[3]!, nodes[4]!, nodes[5]!];
    const echoProto = b.rpc.protocolOf(methods.echo);
    const send = async (chunks: Uint8Array[], protocol = echoProto): Promise<Uint8Array[]> => {
      const frames: Uint8Array[] = [];
      try {
        // once b has banned a, even opening the stream is refused: also an allowed answer
        const s = await a.p2p.openStream(b.peerId, protocol, { signal: AbortSignal.timeout(5000) });
        for (const chunk of chunks) if (!s.send(chunk)) await s.onDrain({ signal: AbortSignal.timeout(5000) });
        await s.close({ signal: AbortSignal.timeout(5000) });
        const r = new FrameReader(s);
        for (;;) {
          const f = await r.next(1 << 20);
          if (f === undefined) break;
          frames.push(Uint8Array.of(f.kind, ...f.body.subarray(0, 64)));
        }
      } catch {
        // a reset is one of the allowed answers
      }
      return frames;
    };
    // wrong protocol version and wrong network id: refused during negotiation, typed error for the caller
    await assert.rejects(c.p2p.openStream(b.peerId, echoProto.replace('/1.0.0', '/2.0.0')), (e: unknown) => isNeuroShardError(e, 'PROTOCOL_UNSUPPORTED'));
    await assert.rejects(c.p2p.openStream(b.peerId, echoProto.replace(NETWORK_ID, 'othernet')), (e: unknown) => isNeuroShardError(e, 'PROTOCOL_UNSUPPORTED'));
    const other: UnaryMethod<pb.EchoRequest, pb.EchoResponse> = { ...methods.echo, version: '2.0.0' };
    await assert.rejects(c.rpc.call(b.peerId, other, { payload: Uint8Array.of(1), replyWithTensor: false }), (e: unknown) => e instanceof RpcTransportError && e.code === 'RPC_UNAVAILABLE');
    // the six methods removed in session 27 (never served): a peer that still asks gets the unknown-protocol answer
    const cScore = c.scores.score(b.peerId);
    for (const name of ['pipeline-forward', 'pipeline-backward', 'gossip-proof', 'gossip-transaction', 'gossip-stake', 'gradient-exchange']) {
      const removed: UnaryMethod<pb.ShardInfoRequest, pb.ShardInfo> = { ...methods.shardInfo, name };
      await assert.rejects(c.rpc.call(b.peerId, removed, {}), (e: unknown) => e instanceof RpcTransportError && e.code === 'RPC_UNAVAILABLE' && e.meta?.reason === 'unsupported-protocol');
    }
    assert.equal(c.scores.score(b.peerId), cScore, 'an unsupported protocol is not the answering peer\'s fault');
    const scoreBefore = b.scores.score(a.peerId);
    // truncated frame, malformed protobuf, oversized announcement (the body is never sent in full)
    const good = encodeFrame(FRAME_MESSAGE, pb.EchoRequest.encode({ payload: Uint8Array.of(1, 2, 3) }));
    await send([good.subarray(0, good.length - 2)]);
    await send([encodeFrame(FRAME_MESSAGE, Uint8Array.of(0x0a, 0x7f))]);
    await send([frameHeader(FRAME_MESSAGE, methods.echo.maxRequestBytes + 1), randomBytes(64 * 1024)]);
    assert.ok(b.scores.score(a.peerId) < scoreBefore, 'the sender was penalised');
    // random bytes (property: whatever arrives, b keeps serving)
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ minLength: 1, maxLength: 256 }), { minLength: 1, maxLength: 3 }), async (chunks) => {
        await send(chunks);
      }),
      { numRuns: 25 },
    );
    // a misbehaving peer ends up banned: disconnected, and refused from then on
    assert.ok(b.scores.isBanned(a.peerId), `a is banned (score ${b.scores.score(a.peerId).toFixed(0)})`);
    await waitFor(() => !b.p2p.connectedPeers().includes(a.peerId), { timeoutMs: 5000, what: 'b hung up on a' });
    // a bad tensor in an otherwise valid request (from another peer) is answered with a typed error
    const s = await c.p2p.openStream(b.peerId, echoProto, { signal: AbortSignal.timeout(5000) });
    s.send(encodeFrame(FRAME_MESSAGE, pb.EchoRequest.encode({ tensor: { dtype: pb.DType.FP32, shape: [3, 3], data: new Uint8Array(8), scale: 0 } })));
    await s.close();
    const reply = await new FrameReader(s).next(4096);
    assert.equal(pb.RpcError.decode(reply!.body).code, 'RPC_BAD_TENSOR');
    // b still serves everyone, a 1 MiB tensor included, and the mesh never noticed
    const x = new Float32Array(256 * 1024).map((_, i) => i);
    const res = await nodes[5]!.rpc.call(b.peerId, methods.echo, { payload: new Uint8Array(0), tensor: tensorToPb(fp32Tensor(x, [512, 512])), replyWithTensor: true });
    assert.equal(res.tensor?.data.byteLength, 1 << 20);
    // the banned peer's calls fail with a typed error, and the mesh is unaffected
    await assert.rejects(a.rpc.call(b.peerId, methods.shardInfo, {}), (e: unknown) => isNeuroShardError(e) && !(e instanceof RemoteRpcError && e.code === 'RPC_INTERNAL'));
    assert.equal(nodes[6]!.liveness.state(b.peerId), 'alive');
  });
});

// The relay case runs in a network of its own, after the eight nodes above have stopped: relay, hidden node and
// caller, the only nodes in this process. Beside the eight (ten libp2p nodes in one event loop) it failed under load:
// with two busy-loop processes (load ~8) the loop lagged 0.5-0.9 s a turn and the relayed dial (some twenty
// sequential turns through relay, caller and hidden node) ran past the 10 s dial deadline. What it asserts is the
// relay's, not the eight nodes' background traffic.
describe('a relay on 127.0.0.1', { timeout: 120_000 }, () => {
  const nodes: NodeNetwork[] = [];
  let relay: NodeNetwork;

  before(async () => {
    // it founds the network: the others bootstrap through it
    relay = await createNodeNetwork({ networkId: NETWORK_ID, key: newKey(), options: options({ genesis: true, relay: true, span: { start: 0, end: 2 } }), tuning: TUNING });
    nodes.push(relay);
    await relay.start();
  });

  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
  });

  it('a node reachable only through a relay serves an RPC call over the relayed connection', async () => {
    const relayAddr = relay.p2p.multiaddrs().find((a) => a.includes('/tcp/') && !a.includes('p2p-circuit'))!;
    const hidden = await createNodeNetwork({
      networkId: NETWORK_ID,
      key: newKey(),
      options: options({ listen: [`${relayAddr}/p2p-circuit`], bootstrap: [relayAddr], span: { start: 0, end: 1 } }),
      tuning: TUNING,
    });
    nodes.push(hidden);
    await hidden.rpc.handle(whoami, (_req, ctx) => ({ limited: ctx.limited, peer: ctx.peer }));
    await hidden.start();
    await waitFor(() => hidden.p2p.multiaddrs().some((a) => a.includes('/p2p-circuit')), { timeoutMs: 15_000, what: 'relay reservation' });
    // it has no address of its own: every address it announces goes through the relay
    assert.ok(hidden.p2p.multiaddrs().every((a) => a.startsWith(relayAddr) && a.includes('/p2p-circuit/')), hidden.p2p.multiaddrs().join(' '));
    // A fresh node that only knows the relay looks up the hidden node's record (asking the node itself through the
    // relay, or the DHT) and calls it. It is a DHT client that listens on nothing, so nothing the hidden node does
    // (DHT queries, heartbeats, gossip) can open a direct connection to it: the only way between them is the relay.
    // (A listening caller was dialed directly by the hidden node now and then, which is allowed behind a NAT.)
    const caller = await createNodeNetwork({
      networkId: NETWORK_ID,
      key: newKey(),
      options: options({ bootstrap: [relayAddr], listen: [] }),
      tuning: { ...TUNING, dhtMode: 'client' },
    });
    nodes.push(caller);
    await caller.start();
    await waitFor(() => caller.p2p.bootstrapStatus().state === 'connected', { timeoutMs: 15_000, what: 'caller joined' });
    let addr: string | undefined;
    await waitFor(
      async () => {
        const rec = await caller.registry.recordOf(hidden.peerId);
        addr = rec?.multiaddrs.find((a) => a.includes('p2p-circuit'));
        return addr !== undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: 'hidden node record' },
    );
    const target = `${addr!}/p2p/${hidden.peerId}`;
    // every call below rides one relayed connection: libp2p's dial reuses only unlimited connections, and each call
    // used to dial a new relayed one (HOP, STOP, noise, yamux: tens of turns through three nodes, bounded by the dial
    // timeout), which libp2p then closed as a duplicate (Libp2pNetwork.openStream)
    const hadConnection = caller.p2p.libp2p.getConnections(hidden.p2p.libp2p.peerId).some((c) => c.status === 'open');
    let opened = 0;
    const onOpen = (e: CustomEvent<{ remotePeer: { toString(): string } }>): void => {
      if (e.detail.remotePeer.toString() === hidden.peerId) opened++;
    };
    caller.p2p.libp2p.addEventListener('connection:open', onOpen as never);
    const res = await caller.rpc.call(target, whoami, {});
    const conns = caller.p2p.libp2p.getConnections(hidden.p2p.libp2p.peerId);
    assert.ok(conns.length > 0 && conns.every((c) => c.remoteAddr.toString().includes('/p2p-circuit')), conns.map((c) => c.remoteAddr.toString()).join(' '));
    assert.equal(res.limited, true, 'the call arrived over a limited (relayed) connection');
    assert.equal(res.peer, caller.peerId);
    const echo = await caller.rpc.call(hidden.peerId, methods.echo, { payload: randomBytes(200_000), replyWithTensor: false });
    assert.equal(echo.payload.byteLength, 200_000, 'bulk data crosses the relay (limits raised)');
    await caller.rpc.call(hidden.peerId, methods.shardInfo, {});
    caller.p2p.libp2p.removeEventListener('connection:open', onOpen as never);
    assert.ok(opened <= (hadConnection ? 0 : 1), `three calls opened ${opened} relayed connection(s) to the hidden node (one already open: ${hadConnection})`);
  });
});

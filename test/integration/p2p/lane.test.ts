/**
 * Direct data lanes (src/p2p/lane/) on real libp2p nodes on 127.0.0.1: unary (reused and own-stream) and
 * server-streaming calls go over the lane (its counters say so) with the same answers as over libp2p; a peer without
 * lanes is called over libp2p; a chain's greedy tokens are the same with lanes on and off, and when every lane of
 * the entry is killed mid-generation the hops' sessions fail over (their replays go over libp2p) and the tokens are
 * still the same (the replicas' sessions take a lane of their own or libp2p; the unary case above shows a killed
 * lane's peer being called over libp2p).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { LaneManager } from '../../../src/p2p/lane/manager.js';
import type { Libp2pNetwork } from '../../../src/p2p/libp2p-node.js';
import { echoHandler } from '../../../src/protocols/handlers/echo.js';
import { laneProtocolId } from '../../../src/protocols/ids.js';
import { RemoteHopSession } from '../../../src/protocols/inference.js';
import * as methods from '../../../src/protocols/methods.js';
import type * as pb from '../../../src/protocols/pb/node.js';
import type { ServerStreamMethod } from '../../../src/protocols/rpc/method.js';
import { RpcNode } from '../../../src/protocols/rpc/service.js';
import { bundledGenesis } from '../../../src/node/genesis.js';
import { startChain, type Chain } from '../../../src/node/serving-bench/bench.js';
import { TINY_CONFIG } from '../../../src/node/train.js';
import { BanList, DRIVER_DEFAULTS, runGeneration, type HolderView, type ModelView } from '../../../src/router/index.js';
import { waitFor } from '../../../src/util/abort.js';
import { startLoopbackLibp2p } from '../../utils/network.js';

const NET = 'lanetest';

const counting: ServerStreamMethod<pb.EchoRequest, pb.EchoResponse> = {
  ...methods.echo,
  name: 'lane-count',
  kind: 'server-stream',
  maxFrames: 64,
  validateResponse: undefined,
};

function node(): Promise<Libp2pNetwork> {
  return startLoopbackLibp2p(NET);
}

async function pair(serverLanes: boolean): Promise<{ a: Libp2pNetwork; b: Libp2pNetwork; la?: LaneManager; lb: LaneManager; srv: RpcNode; cli: RpcNode; peer: string; stop: () => Promise<void> }> {
  const a = await node();
  const b = await node();
  const la = serverLanes ? new LaneManager(a, laneProtocolId(NET), { listenHost: '127.0.0.1' }) : undefined;
  const lb = new LaneManager(b, laneProtocolId(NET), { listenHost: '127.0.0.1' });
  await la?.start();
  await lb.start();
  const srv = new RpcNode({ network: a, networkId: NET, lanes: la });
  await srv.handle(methods.echo, echoHandler);
  await srv.handle(counting, async function* (req) {
    for (let i = 0; i < 5; i++) yield { payload: req.payload, receivedBytes: BigInt(i) };
  });
  const cli = new RpcNode({ network: b, networkId: NET, reuseStreams: true, lanes: lb });
  const peer = await b.dial(a.multiaddrs()[0]!);
  return {
    a,
    b,
    la,
    lb,
    srv,
    cli,
    peer,
    stop: async () => {
      await cli.close();
      await srv.close();
      await lb.stop();
      await la?.stop();
      await b.stop();
      await a.stop();
    },
  };
}

describe('direct data lanes on libp2p nodes', () => {
  it('unary and server-streaming calls go over the lane with the same answers', async () => {
    const p = await pair(true);
    try {
      const req = { payload: Buffer.from('over the lane'), replyWithTensor: false };
      const r0 = await p.cli.call(p.peer, methods.echo, req);
      assert.equal(r0.receivedBytes, BigInt(req.payload.length));
      // the first call set a lane up; it waits for it at most LANE_DEFAULTS.waitMs (2 s) and else goes over libp2p
      // while the setup finishes (seen at load 24): the lane, not the first call's path, is what is checked here
      await waitFor(() => p.lb.stats().lanesUp === 1, { timeoutMs: 20_000, what: 'the lane the first call set up' });
      const before = p.lb.stats();
      // unary on the reused stream
      for (let i = 0; i < 20; i++) assert.deepEqual(Buffer.from((await p.cli.call(p.peer, methods.echo, req)).payload), req.payload);
      // a request over 1 MiB takes a stream of its own: on the lane too
      const big = { payload: randomBytes(1_200_000), replyWithTensor: false };
      assert.equal((await p.cli.call(p.peer, methods.echo, big)).receivedBytes, BigInt(big.payload.length));
      // server-streaming
      const got: bigint[] = [];
      for await (const r of p.cli.serverStream(p.peer, counting, req)) got.push(r.receivedBytes);
      assert.deepEqual(got, [0n, 1n, 2n, 3n, 4n]);
      const after = p.lb.stats();
      assert.ok(after.streamsOut >= before.streamsOut + 2, `lane streams ${before.streamsOut} -> ${after.streamsOut}`);
      assert.ok(p.la!.stats().streamsIn >= 3);
      assert.equal(p.cli.openChannels(p.peer), 1);
    } finally {
      await p.stop();
    }
  });

  it('a peer without lanes is called over libp2p, and a killed lane falls back to libp2p', async () => {
    const p = await pair(false);
    try {
      const req = { payload: Buffer.from('no lane here'), replyWithTensor: false };
      for (let i = 0; i < 3; i++) assert.equal((await p.cli.call(p.peer, methods.echo, req)).receivedBytes, BigInt(req.payload.length));
      const s = p.lb.stats();
      assert.equal(s.lanesUp, 0);
      assert.equal(s.setupsFailed, 1);
      for await (const _ of p.cli.serverStream(p.peer, counting, req));
    } finally {
      await p.stop();
    }
    const q = await pair(true);
    try {
      const req = { payload: Buffer.from('x'), replyWithTensor: false };
      await q.cli.call(q.peer, methods.echo, req);
      const lane = q.lb.lanesOf(q.peer)[0]!;
      const out0 = q.lb.stats().streamsOut;
      lane.socket.destroy(); // the lane dies under the reused stream
      await assert.rejects(q.cli.call(q.peer, methods.echo, { payload: Buffer.from('y'), replyWithTensor: false }).then(async () => {
        // the call may have raced the socket's death; the next ones surely run after it
        await new Promise((r) => setTimeout(r, 50));
        throw new Error('raced');
      }), () => true);
      for (let i = 0; i < 5; i++) assert.equal((await q.cli.call(q.peer, methods.echo, req)).receivedBytes, 1n);
      assert.equal(q.lb.stats().streamsOut, out0, 'after the lane died, calls took libp2p');
      assert.equal(q.lb.stats().lanesFailed, 1);
    } finally {
      await q.stop();
    }
  });

  it("a chain's greedy tokens are the same with lanes off, on, and with every lane killed mid-generation", async () => {
    const networkId = bundledGenesis().networkId;
    const config = { ...TINY_CONFIG, num_hidden_layers: 4 };
    // every span has a replica: a hop whose session dies is replaced (the driver does not retry the same peer)
    const spans = [
      { start: 0, end: 2 },
      { start: 0, end: 2 },
      { start: 2, end: 4 },
      { start: 2, end: 4 },
    ];
    let killed = 0;
    const generate = async (chain: Chain, killAt?: number): Promise<number[]> => {
      const model: ModelView = { numLayers: 4, hiddenSize: config.hidden_size, contextLength: config.max_position_embeddings, eosId: -1, encode: () => [1, 5, 9, 13], decode: () => '' };
      const view: HolderView[] = chain.hops.map((h) => ({ peerId: h.peerId, span: h.span, alive: true, rttMs: 0 }));
      let n = 0;
      const r = await runGeneration(
        { prompt: '', maxTokens: 24, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] },
        {
          model,
          holders: () => view,
          opener: { open: (hop, spec) => new RemoteHopSession(chain.entry.rpc, hop.peerId, hop.span, spec, { hiddenSize: config.hidden_size, vocabSize: config.vocab_size, wire: 'f32' }) },
          bans: new BanList(),
          now: () => performance.now(),
          random: () => 0,
          newSessionId: () => randomBytes(8).toString('hex'),
          options: { ...DRIVER_DEFAULTS, stepTimeoutMs: 30_000 },
        },
        {
          onToken: () => {
            if (++n !== killAt) return;
            for (const h of chain.hops) for (const l of chain.entry.lanes!.lanesOf(h.peerId)) l.socket.destroy();
            killed++;
          },
        },
        new AbortController().signal,
      );
      return r.tokens;
    };
    const off = await startChain(networkId, config, spans, 1, 'fast', false);
    let want: number[];
    try {
      assert.equal(off.entry.lanes, undefined);
      want = await generate(off);
    } finally {
      await off.close();
    }
    const on = await startChain(networkId, config, spans, 1, 'fast', true);
    try {
      const lanes = on.entry.lanes!;
      assert.deepEqual(await generate(on), want);
      const s = lanes.stats();
      assert.ok(s.lanesUp >= 1 && s.streamsOut >= 1, `the session ran on a lane: ${JSON.stringify(s)}`);
      // every lane of the entry dies after the 8th token: the sessions fail over, their replays take libp2p
      assert.deepEqual(await generate(on, 8), want);
      const k = lanes.stats();
      assert.equal(killed, 1);
      assert.ok(k.lanesFailed >= 1, JSON.stringify(k));
      console.log(`lanes of the entry: before the kill ${JSON.stringify(s)}; after ${JSON.stringify(k)}`);
    } finally {
      await on.close();
    }
  });
});

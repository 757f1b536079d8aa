/**
 * `npm run bench` section `serving` (issue 8 §5), discovered by scripts/bench.mjs through `benchSections`:
 *
 * - `hop_rtt_ms_p50`/`_p99`: one decode step's activations for the 12x768 preset ([1, 768] fp32, 3 KiB) through one
 *   hop on loopback (inference-stream on real libp2p, a hop whose math is the identity: protocol overhead only),
 *   beside `tcp_rtt_ms_p50`, a raw TCP ping-pong of the same bytes;
 * - `chain_decode_tok_s_1`/`_2`/`_4`: greedy decode tokens/s of the 12x768 preset (seeded init) through chains of
 *   1, 2 and 4 hops on loopback, each hop its own libp2p node and compute worker, driven by an entry node holding
 *   no layers (router/driver.ts), and `chain_ratio_4` = 4 hops ÷ 1 hop;
 * - `failover_stall_ms_p50`/`_p99`: time from a hop's failure (its stream reset mid-answer) to the step completing
 *   on its replica, over repeated kills.
 *
 * --quick uses a tiny config and few samples (same keys, figures meaningless).
 */
import { randomBytes } from 'node:crypto';
import { createServer, connect, type AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import type { BenchSection } from '../../compute/bench.js';
import { ComputeClient } from '../../compute/index.js';
import { keyFromPrivate } from '../../identity/index.js';
import { presetConfig, type LlamaConfig } from '../../model/index.js';
import { HOP_LIMIT_DEFAULTS, InferenceHopServer, RemoteHopSession, type HopCompute } from '../../protocols/inference.js';
import { BanList, DRIVER_DEFAULTS, runGeneration, type HolderView, type ModelView } from '../../router/index.js';
import { NeuroShardError } from '../../util/errors.js';
import { TINY_CONFIG } from '../train.js';
import { bundledGenesis } from '../genesis.js';
import { createNodeNetwork, type NodeNetwork } from '../network.js';
import { workerHopCompute } from '../serving.js';

const TUNING = { ephemeralPeerStore: true, inboundConnectionThreshold: 1000, maxIncomingPendingConnections: 100, retryBaseMs: 200, retryMaxMs: 2000, pubsubHeartbeatMs: 300, autonat: false, dcutr: false };

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.floor(p * s.length))]! * 1000) / 1000;
}

async function net(networkId: string, boot: string[], span?: { start: number; end: number }): Promise<NodeNetwork> {
  const n = await createNodeNetwork({
    networkId,
    key: keyFromPrivate(randomBytes(32)),
    options: {
      dataDir: '/nonexistent',
      listen: ['/ip4/127.0.0.1/tcp/0'],
      announce: [],
      bootstrap: boot,
      trackers: [],
      genesis: boot.length === 0,
      mdns: false,
      upnp: false,
      relay: false,
      relayDataLimitMb: 256,
      relayDurationS: 600,
      maxConnections: 200,
      span,
      heartbeatIntervalMs: 1000,
      peerStaleMs: 5000,
      peerDeadMs: 20_000,
    },
    tuning: TUNING,
  });
  await n.start();
  return n;
}

async function tcpRtt(bytes: number, reps: number): Promise<number[]> {
  const server = createServer((s) => s.pipe(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const sock = connect(port, '127.0.0.1');
  sock.setNoDelay(true);
  await new Promise<void>((r) => sock.once('connect', r));
  const buf = Buffer.alloc(bytes, 7);
  const out: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    let got = 0;
    await new Promise<void>((resolve) => {
      const on = (d: Buffer): void => {
        got += d.length;
        if (got >= bytes) {
          sock.off('data', on);
          resolve();
        }
      };
      sock.on('data', on);
      sock.write(buf);
    });
    out.push(performance.now() - t0);
  }
  sock.destroy();
  server.close();
  return out;
}

async function hopRtt(networkId: string, C: number, reps: number): Promise<number[]> {
  const a = await net(networkId, [], { start: 1, end: 2 });
  const e = await net(networkId, [a.p2p.multiaddrs()[0]!]);
  const identity: HopCompute = {
    span: () => ({ start: 1, end: 2 }),
    numLayers: 3,
    hiddenSize: C,
    vocabSize: 10,
    contextLength: 1 << 16,
    kvBytesPerPosition: () => 0,
    open: async () => {},
    step: async (_id, input) => ({ hidden: input.hidden! }),
    close: async () => {},
  };
  const srv = new InferenceHopServer(identity, HOP_LIMIT_DEFAULTS);
  await srv.register(a.rpc);
  try {
    const s = new RemoteHopSession(e.rpc, a.peerId, { start: 1, end: 2 }, { id: 'bench', maxLen: 1 << 16, sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 } }, { hiddenSize: C, vocabSize: 10, wire: 'f32' });
    const x = new Float32Array(C).fill(0.5);
    const ac = new AbortController();
    for (let i = 0; i < 20; i++) await s.step({ hidden: x, chunks: [1] }, ac.signal); // warm-up
    const out: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      await s.step({ hidden: x, chunks: [1] }, ac.signal);
      out.push(performance.now() - t0);
    }
    s.close();
    return out;
  } finally {
    await e.stop();
    await a.stop();
  }
}

interface Chain {
  hops: { net: NodeNetwork; compute: ComputeClient; peerId: string; span: { start: number; end: number } }[];
  entry: NodeNetwork;
  close(): Promise<void>;
}

async function startChain(networkId: string, config: LlamaConfig, spans: { start: number; end: number }[], threads: number): Promise<Chain> {
  const hops: Chain['hops'] = [];
  let boot: string[] = [];
  for (const span of spans) {
    const n = await net(networkId, boot, span);
    if (boot.length === 0) boot = [n.p2p.multiaddrs()[0]!];
    const compute = await ComputeClient.start({ threads });
    await compute.run({ type: 'initModel', config, seed: 0, span });
    await new InferenceHopServer(workerHopCompute(compute, config, () => span), HOP_LIMIT_DEFAULTS).register(n.rpc);
    hops.push({ net: n, compute, peerId: n.peerId, span });
  }
  const entry = await net(networkId, boot);
  return {
    hops,
    entry,
    close: async () => {
      await entry.stop();
      for (const h of hops) {
        await h.net.stop();
        await h.compute.close();
      }
    },
  };
}

/** Greedy generation through `chain` (holders given directly); returns decode tok/s and the driver's stalls. */
async function decode(chain: Chain, config: LlamaConfig, tokens: number, opts: { kill?: { peerId: string; afterTokens: number } } = {}): Promise<{ tokS: number; stalls: number[] }> {
  const model: ModelView = {
    numLayers: config.num_hidden_layers,
    hiddenSize: config.hidden_size,
    contextLength: config.max_position_embeddings,
    eosId: -1, // never stop early: the same number of tokens every run
    encode: () => [1, 5, 9, 13],
    decode: () => '',
  };
  const view: HolderView[] = chain.hops.map((h) => ({ peerId: h.peerId, span: h.span, alive: true, rttMs: 0 }));
  const sessions: RemoteHopSession[] = [];
  const times: number[] = [];
  let n = 0;
  const r = await runGeneration(
    { prompt: '', maxTokens: tokens, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] },
    {
      model,
      holders: () => view,
      opener: {
        open: (hop, spec) => {
          const s = new RemoteHopSession(chain.entry.rpc, hop.peerId, hop.span, spec, { hiddenSize: config.hidden_size, vocabSize: config.vocab_size, wire: 'f32' });
          if (opts.kill?.peerId === hop.peerId) sessions.push(s);
          return s;
        },
      },
      bans: new BanList(),
      now: () => performance.now(),
      random: () => 0,
      newSessionId: () => randomBytes(8).toString('hex'),
      options: { ...DRIVER_DEFAULTS, stepTimeoutMs: 30_000 }, // no timeouts: the bench measures speed; kills are explicit
    },
    {
      onToken: () => {
        times.push(performance.now());
        if (opts.kill !== undefined && ++n === opts.kill.afterTokens) {
          // the hop's stream is reset as a dead peer's would be
          for (const s of sessions) s.close();
          const target = chain.hops.find((h) => h.peerId === opts.kill!.peerId)!;
          void target.net.p2p.hangUp(chain.entry.peerId).catch(() => {});
        }
      },
    },
    new AbortController().signal,
  );
  if (times.length < 2) throw new NeuroShardError('BENCH', 'too few tokens', { fault: 'local' });
  return { tokS: ((times.length - 1) * 1000) / (times.at(-1)! - times[0]!), stalls: r.stallsMs };
}

export const servingSection: BenchSection = {
  name: 'serving',
  keys: ['hop_rtt_ms_p50', 'hop_rtt_ms_p99', 'tcp_rtt_ms_p50', 'chain_decode_tok_s_1', 'chain_decode_tok_s_2', 'chain_decode_tok_s_4', 'chain_ratio_4', 'failover_stall_ms_p50', 'failover_stall_ms_p99'],
  async run({ quick, log }) {
    const networkId = bundledGenesis().networkId;
    const config = quick ? { ...TINY_CONFIG, num_hidden_layers: 4 } : presetConfig('12x768');
    const C = config.hidden_size;
    const reps = quick ? 20 : 300;
    const hop = await hopRtt(networkId, 768, reps);
    const tcp = await tcpRtt(768 * 4, reps);
    log(`hop rtt p50 ${pct(hop, 0.5)} ms p99 ${pct(hop, 0.99)} ms; tcp ${pct(tcp, 0.5)} ms`);
    const L = config.num_hidden_layers;
    const threads = availableParallelism();
    const tokens = quick ? 8 : 48;
    const res: Record<string, number | null> = { hop_rtt_ms_p50: pct(hop, 0.5), hop_rtt_ms_p99: pct(hop, 0.99), tcp_rtt_ms_p50: pct(tcp, 0.5) };
    for (const n of [1, 2, 4]) {
      const spans = Array.from({ length: n }, (_, i) => ({ start: Math.round((i * L) / n), end: Math.round(((i + 1) * L) / n) }));
      const chain = await startChain(networkId, config, spans, threads);
      try {
        await decode(chain, config, 4); // warm-up: connections, buffers
        const tokS = (await decode(chain, config, tokens)).tokS;
        res[`chain_decode_tok_s_${n}`] = Math.round(tokS * 10) / 10;
        log(`${n} hop(s) (${C} wide, ${L} layers): ${tokS.toFixed(1)} tok/s`);
      } finally {
        await chain.close();
      }
    }
    res.chain_ratio_4 = res.chain_decode_tok_s_4 !== undefined && res.chain_decode_tok_s_1 ? Math.round((res.chain_decode_tok_s_4! / res.chain_decode_tok_s_1) * 1000) / 1000 : null;
    // failover stalls: two replicas of each half; the first half's chosen hop is cut after 5 tokens, repeatedly
    const kills = quick ? 3 : 20;
    const half = Math.floor(L / 2);
    const fconfig = quick ? config : { ...config };
    const chain = await startChain(networkId, fconfig, [{ start: 0, end: half }, { start: 0, end: half }, { start: half, end: L }], threads);
    try {
      const stalls: number[] = [];
      for (let i = 0; i < kills; i++) {
        // random: () => 0 picks the first replica by peer id order; cut whichever the driver would choose
        const first = [...chain.hops.slice(0, 2)].sort((a, b) => (a.peerId < b.peerId ? -1 : 1))[0]!;
        const r = await decode(chain, fconfig, 10, { kill: { peerId: first.peerId, afterTokens: 5 } });
        stalls.push(...r.stalls);
      }
      res.failover_stall_ms_p50 = stalls.length > 0 ? pct(stalls, 0.5) : null;
      res.failover_stall_ms_p99 = stalls.length > 0 ? pct(stalls, 0.99) : null;
      log(`failover stalls over ${stalls.length} cuts: p50 ${res.failover_stall_ms_p50} ms, p99 ${res.failover_stall_ms_p99} ms`);
    } finally {
      await chain.close();
    }
    return res;
  },
};

export const benchSections: BenchSection[] = [servingSection];

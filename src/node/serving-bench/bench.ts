/**
 * `npm run bench` sections `serving-*` (issue 8 §5), discovered by scripts/bench.mjs through `benchSections`;
 * `--only serving` runs them all, `--only serving-batch` one:
 *
 * - `serving-hop`: `hop_rtt_ms_p50`/`_p99`: one decode step's activations for the 12x768 preset ([1, 768] fp32,
 *   3 KiB) through one hop on loopback (inference-stream on real libp2p, a hop whose math is the identity: protocol
 *   overhead only), beside `tcp_rtt_ms_p50`, a raw TCP ping-pong of the same bytes, and `hop_tcp_ratio`; the hop
 *   runs on the path a node uses by default (the direct data lane, `rpcLane`, p2p/lane/; libp2p with
 *   NEUROSHARD_RPC_LANE=0), `hop_rtt_lane_ms_p50`/`_p99` the same over the lane and `hop_rtt_libp2p_ms_p50`/`_p99`
 *   over libp2p streams (noise + yamux) whatever the default; `hop_cpu_us` / `hop_cpu_libp2p_us` /
 *   `hop_cpu_lane_us` the process CPU per step (both nodes, background included), `hop_step_cpu_us` /
 *   `hop_step_cpu_lane_us` the same less the nodes' background measured while idle; both paths are set up and warmed
 *   first (6,000 steps: the JIT settles after ~2,000 round trips), then timed in alternating blocks in one process
 *   (hopRttAB); `hop_rtt_warmup_ms_p50` is the p50 of the default path's first 500 steps (before the JIT settles:
 *   what the keys measured until session 22, which warmed 150 steps a path). In one process every µs of either
 *   node's work serialises on one event loop; `hop_rtt_2p_ms_p50`/`_p99`, `tcp_rtt_2p_ms_p50`, `hop_tcp_ratio_2p`
 *   and `hop_cpu_2p_us` (both processes) are the same hop and raw TCP ping-pong with the hop in a child process
 *   (hop-2p.ts), as real nodes run. Every serving section runs on
 *   the node's default path; NEUROSHARD_RPC_LANE=1 or =0 sets it (A/B runs);
 * - `serving-chain`: `chain_decode_tok_s_1`/`_2`/`_4`: greedy decode tokens/s of the 12x768 preset (seeded init)
 *   through chains of 1, 2 and 4 hops on loopback, each hop its own libp2p node and compute worker, driven by an
 *   entry node holding no layers (router/driver.ts), and `chain_ratio_4` = 4 hops ÷ 1 hop, since session 22 the
 *   median of block-by-block ratios with the three chains up together and timed in alternating blocks (paired.ts;
 *   `chain_ratio_4_min`/`_max`/`_pooled`); beside them where a token's time goes (`chain_compute_ms_*`,
 *   `chain_hop_overhead_ms_4`, `chain_cpu_ms_*`, `chain_idle_cpu_ms_s*`, `chain_load`: see the section);
 * - `serving-batch`: `batch8_ratio`: aggregate decode tokens/s of 8 generations at once (while all 8 decode) ÷ 1
 *   alone through one hop holding the whole model (continuous batching in its worker), since session 22 the median
 *   of round-by-round ratios of alternating 1- and 8-stream runs (`batch8_ratio_min`/`_max`/`_pooled`), with `batch1_tok_s`,
 *   `batch8_tok_s` (while all 8 decode: `concurrentTokS`), the earlier span's `batch8_tok_s_span` /
 *   `batch8_ratio_span`, and
 *   `batch8_mean_rows` (the mean batch size a decode step ran in), and the process CPU per token alone and among 8
 *   (`batch1_cpu_ms`, `batch8_cpu_ms`, `batch8_cpu_ratio`: what batching saves, less dependent on the load than
 *   tokens/s) with `batch_load`;
 * - `serving-failover`: `failover_stall_ms_p50`/`_p99`: time from a hop's failure (its stream reset mid-answer)
 *   to the step completing on its replica, over `failover_kills` cuts.
 *
 * --quick uses a tiny config and few samples (same keys, figures meaningless).
 */
import { randomBytes } from 'node:crypto';
import { createServer, connect, type AddressInfo } from 'node:net';
import { availableParallelism, loadavg } from 'node:os';
import type { BenchSection } from '../../compute/bench.js';
import { ComputeClient } from '../../compute/index.js';
import { presetConfig, type LlamaConfig } from '../../model/index.js';
import { HOP_LIMIT_DEFAULTS, InferenceHopServer, RemoteHopSession } from '../../protocols/inference.js';
import { BanList, DRIVER_DEFAULTS, runGeneration, type HolderView, type ModelView } from '../../router/index.js';
import { waitFor } from '../../util/abort.js';
import { NeuroShardError } from '../../util/errors.js';
import { TINY_CONFIG } from '../train.js';
import { bundledGenesis } from '../genesis.js';
import type { NodeNetwork } from '../network.js';
import { workerHopCompute } from '../serving.js';
import { BENCH_LANE, identityHop, net, type Pace } from './bench-node.js';
import { alternate, blockTokS, idleCpuMedian, pairedRatio, pooledTokS, type Block } from './paired.js';
import { hopRtt2p } from './hop-2p.js';


function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.floor(p * s.length))]! * 1000) / 1000;
}




export async function tcpRtt(bytes: number, reps: number): Promise<number[]> {
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

/** One identity hop on loopback (two libp2p nodes, lanes on or off) and a session through it. */
export interface HopRig {
  /** One decode step; resolves when its answer is back. */
  step(): Promise<void>;
  /** True when the session's stream runs on a lane. */
  onLane(): boolean;
  /** Sealed frames the entry's lanes to the hop sent and received so far (0 without a lane). */
  laneFrames(): { out: number; in: number };
  close(): Promise<void>;
}

export async function openHop(networkId: string, C: number, rpcLane: boolean = BENCH_LANE): Promise<HopRig> {
  const a = await net(networkId, [], { start: 1, end: 2 }, 'fast', rpcLane);
  const e = await net(networkId, [a.p2p.multiaddrs()[0]!], undefined, 'fast', rpcLane);
  const identity = identityHop(C);
  const srv = new InferenceHopServer(identity, HOP_LIMIT_DEFAULTS);
  await srv.register(a.rpc);
  const s = new RemoteHopSession(e.rpc, a.peerId, { start: 1, end: 2 }, { id: 'bench', maxLen: 1 << 16, sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 } }, { hiddenSize: C, vocabSize: 10, wire: 'f32' });
  const x = new Float32Array(C).fill(0.5);
  const ac = new AbortController();
  return {
    step: async () => {
      await s.step({ hidden: x, chunks: [1] }, ac.signal);
    },
    // the session's stream ran on a lane when the entry opened one to the hop
    onLane: () => (e.lanes?.stats().streamsOut ?? 0) > 0,
    laneFrames: () => {
      let out = 0;
      let inn = 0;
      for (const l of e.lanes?.lanesOf(a.peerId) ?? []) {
        out += l.stats.framesOut;
        inn += l.stats.framesIn;
      }
      return { out, in: inn };
    },
    close: async () => {
      s.close();
      await e.stop();
      await a.stop();
    },
  };
}

export interface HopTimes {
  times: number[];
  /** Process CPU per step (µs), both nodes and their background. */
  cpuUs: number;
  /**
   * cpuUs less the background of the rigs' four nodes (heartbeats every second, gossip every 300 ms and their
   * signatures: measured while the rigs idle, charged per wall time of the blocks): what the steps themselves cost.
   */
  stepCpuUs: number;
  onLane: boolean;
  /** Sealed lane frames per step, entry → hop and back (0 on libp2p). */
  framesOutPerStep: number;
  framesInPerStep: number;
}

/**
 * The hop's step on libp2p and on the lane in one process, both set up first and warmed, then timed in alternating
 * blocks (A, B, B, A, A, B, ...). Session 18 timed the node's default path first and the other second: the first
 * block of a process pays for the JIT (0.7 ms p50 and ~1 ms of CPU a step on either path, 3 pairs), which made
 * whichever path went first look slower (docs/LIMITS.md "Session 19").
 */
export async function hopRttAB(networkId: string, C: number, reps: number, blocks = 6, warm = Math.max(20, Math.min(300, reps))): Promise<{ libp2p: HopTimes; lane: HopTimes; warmup: { libp2p: number[]; lane: number[] } }> {
  const rigs = { libp2p: await openHop(networkId, C, false), lane: await openHop(networkId, C, true) };
  try {
    // the warm-up steps are timed too (`warmup`): the first few hundred steps of a process run before the JIT settles
    const warmup = { libp2p: [] as number[], lane: [] as number[] };
    for (const w of ['libp2p', 'lane', 'libp2p', 'lane'] as const) {
      for (let i = 0; i < warm / 2; i++) {
        const t0 = performance.now();
        await rigs[w].step();
        warmup[w].push(performance.now() - t0);
      }
    }
    const idle = await idleCpuRate(Math.min(1000, reps * 2)); // ms of CPU per s of wall time
    const acc = { libp2p: { times: [] as number[], cpu: 0, wall: 0, fo: 0, fi: 0 }, lane: { times: [] as number[], cpu: 0, wall: 0, fo: 0, fi: 0 } };
    const per = Math.max(1, Math.ceil(reps / blocks));
    for (let b = 0; b < blocks; b++) {
      const order: ('libp2p' | 'lane')[] = b % 2 === 0 ? ['libp2p', 'lane'] : ['lane', 'libp2p'];
      for (const w of order) {
        const r = rigs[w];
        const f0 = r.laneFrames();
        const c0 = process.cpuUsage();
        const w0 = performance.now();
        for (let i = 0; i < per; i++) {
          const t0 = performance.now();
          await r.step();
          acc[w].times.push(performance.now() - t0);
        }
        const c = process.cpuUsage(c0);
        acc[w].wall += performance.now() - w0;
        const f1 = r.laneFrames();
        acc[w].cpu += c.user + c.system;
        acc[w].fo += f1.out - f0.out;
        acc[w].fi += f1.in - f0.in;
      }
    }
    const done = (w: 'libp2p' | 'lane'): HopTimes => {
      const n = acc[w].times.length;
      return { times: acc[w].times, cpuUs: Math.round(acc[w].cpu / n), stepCpuUs: Math.max(0, Math.round((acc[w].cpu - idle * acc[w].wall) / n)), onLane: rigs[w].onLane(), framesOutPerStep: r3(acc[w].fo / n), framesInPerStep: r3(acc[w].fi / n) };
    };
    return { libp2p: done('libp2p'), lane: done('lane'), warmup };
  } finally {
    await rigs.libp2p.close();
    await rigs.lane.close();
  }
}

export interface Chain {
  hops: { net: NodeNetwork; compute: ComputeClient; server: InferenceHopServer; peerId: string; span: { start: number; end: number } }[];
  entry: NodeNetwork;
  close(): Promise<void>;
}

export async function startChain(networkId: string, config: LlamaConfig, spans: { start: number; end: number }[], threads: number, pace: Pace = 'fast', rpcLane: boolean = BENCH_LANE): Promise<Chain> {
  const hops: Chain['hops'] = [];
  let boot: string[] = [];
  for (const span of spans) {
    const n = await net(networkId, boot, span, pace, rpcLane);
    if (boot.length === 0) boot = [n.p2p.multiaddrs()[0]!];
    const compute = await ComputeClient.start({ threads });
    await compute.run({ type: 'initModel', config, seed: 0, span });
    const server = new InferenceHopServer(workerHopCompute(compute, config, () => span), HOP_LIMIT_DEFAULTS);
    await server.register(n.rpc);
    hops.push({ net: n, compute, server, peerId: n.peerId, span });
  }
  // with pushes (session 29: they go hop to hop) each hop connected to the next, as the entry is to each. Only then:
  // with pushes off the connections carry nothing but their own upkeep on the one shared event loop, and the
  // default figure read lower with them than without (docs/LIMITS.md "Session 29: the lead's fixes")
  if (benchPush()) for (let k = 0; k + 1 < hops.length; k++) await hops[k]!.net.p2p.dial(hops[k + 1]!.net.p2p.multiaddrs()[0]!, { signal: AbortSignal.timeout(60_000) });
  const entry = await net(networkId, boot, undefined, pace, rpcLane);
  // route only once the entry hears every hop's heartbeats, as a node does: a stream opened on a connection that is
  // still being set up or replaced can fail, and the bench would measure a failover instead of a decode
  await waitFor(() => new Set(entry.liveness.snapshot().filter((p) => p.state === 'alive').map((p) => p.peer)).size >= new Set(hops.map((h) => h.peerId)).size, {
    timeoutMs: 300_000,
    intervalMs: 100,
    what: 'the entry hears every hop',
  });
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
export async function decode(chain: Chain, config: LlamaConfig, tokens: number, opts: { kill?: { peerId: string; afterTokens: number }; prompt?: number[]; onStepTimed?: (peer: string, wallMs: number, hopComputeMs: number | undefined) => void; push?: boolean } = {}): Promise<{ tokS: number; stalls: number[]; times: number[]; pushesUsed: number }> {
  const model: ModelView = {
    numLayers: config.num_hidden_layers,
    hiddenSize: config.hidden_size,
    contextLength: config.max_position_embeddings,
    eosId: -1, // never stop early: the same number of tokens every run
    encode: () => opts.prompt ?? [1, 5, 9, 13],
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
          const s = new RemoteHopSession(chain.entry.rpc, hop.peerId, hop.span, spec, { hiddenSize: config.hidden_size, vocabSize: config.vocab_size, wire: 'f32', ...(opts.onStepTimed === undefined ? {} : { onStepTimed: opts.onStepTimed }) });
          if (opts.kill?.peerId === hop.peerId) sessions.push(s);
          return s;
        },
      },
      bans: new BanList(),
      now: () => performance.now(),
      random: () => 0,
      newSessionId: () => randomBytes(8).toString('hex'),
      // no timeouts: the bench measures speed; kills are explicit. Hop-to-hop pushes (session 29) with
      // NEUROSHARD_HOP_PUSH=1, for an A/B in one build
      options: { ...DRIVER_DEFAULTS, stepTimeoutMs: 30_000, push: opts.push ?? benchPush() },
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
  return { tokS: ((times.length - 1) * 1000) / (times.at(-1)! - times[0]!), stalls: r.stallsMs, times, pushesUsed: r.pushes?.used ?? 0 };
}

/** Whether the chain benches drive decode steps hop to hop (session 29, `DriverOptions.push`): NEUROSHARD_HOP_PUSH=1. */
export function benchPush(): boolean {
  return process.env.NEUROSHARD_HOP_PUSH === '1';
}

/** Spans of n hops over L layers, as even as they go. */
export function evenSpans(L: number, n: number): { start: number; end: number }[] {
  return Array.from({ length: n }, (_, i) => ({ start: Math.round((i * L) / n), end: Math.round(((i + 1) * L) / n) }));
}

const r3 = (x: number): number => Math.round(x * 1000) / 1000;

function benchConfig(quick: boolean): LlamaConfig {
  return quick ? { ...TINY_CONFIG, num_hidden_layers: 4 } : presetConfig('12x768');
}

/** hop_rtt_ms_p50/_p99 beside tcp_rtt_ms_p50 (and the overhead ratio). */
export const servingHopSection: BenchSection = {
  name: 'serving-hop',
  keys: [
    'hop_rtt_ms_p50',
    'hop_rtt_ms_p99',
    'tcp_rtt_ms_p50',
    'hop_tcp_ratio',
    'hop_cpu_us',
    'hop_rtt_lane_ms_p50',
    'hop_rtt_lane_ms_p99',
    'hop_cpu_lane_us',
    'hop_rtt_libp2p_ms_p50',
    'hop_rtt_libp2p_ms_p99',
    'hop_cpu_libp2p_us',
    'hop_step_cpu_us',
    'hop_step_cpu_lane_us',
    'hop_rtt_warmup_ms_p50',
    'hop_rtt_2p_ms_p50',
    'hop_rtt_2p_ms_p99',
    'tcp_rtt_2p_ms_p50',
    'hop_tcp_ratio_2p',
    'hop_cpu_2p_us',
  ],
  async run({ quick, log }) {
    const networkId = bundledGenesis().networkId;
    const C = 768; // one decode step of the 12x768 preset: [1, 768] fp32
    const reps = quick ? 20 : 2000;
    // steps per path before timing: the JIT settles after ~2,000 round trips of a process (session 22: p50 0.27 ms
    // for the first 250 steps, 0.15 at 1,000, 0.07 from ~2,500 on; CPU per step 915 → ~100 µs), and a node serves
    // far more than that; the first 500 steps' p50 stays visible as hop_rtt_warmup_ms_p50
    const warm = quick ? 20 : 6000;
    // the path a node uses by default (the direct data lane; NEUROSHARD_RPC_LANE=0 makes it libp2p: noise + yamux),
    // and both paths by name
    // both paths timed in alternating blocks in this one process; the old keys report the node's default path
    const ab = await hopRttAB(networkId, C, reps, 6, warm);
    const hop = BENCH_LANE ? ab.lane : ab.libp2p;
    const lane = ab.lane;
    const warmup = (BENCH_LANE ? ab.warmup.lane : ab.warmup.libp2p).slice(0, 500);
    // the raw TCP ping-pong warmed alike (its first few hundred round trips are slower too), then timed
    await tcpRtt(C * 4, Math.min(warm, 2000));
    const tcp = await tcpRtt(C * 4, reps);
    // the same hop and ping-pong with the hop in a child process (hop-2p.ts): real nodes never share an event loop
    const two = await hopRtt2p(networkId, C, reps, quick ? 20 : 3000, BENCH_LANE);
    const res = {
      hop_rtt_ms_p50: pct(hop.times, 0.5),
      hop_rtt_ms_p99: pct(hop.times, 0.99),
      tcp_rtt_ms_p50: pct(tcp, 0.5),
      hop_tcp_ratio: r3(pct(hop.times, 0.5) / Math.max(1e-3, pct(tcp, 0.5))),
      hop_cpu_us: hop.cpuUs,
      hop_rtt_lane_ms_p50: pct(lane.times, 0.5),
      hop_rtt_lane_ms_p99: pct(lane.times, 0.99),
      hop_cpu_lane_us: lane.cpuUs,
      hop_rtt_libp2p_ms_p50: pct(ab.libp2p.times, 0.5),
      hop_rtt_libp2p_ms_p99: pct(ab.libp2p.times, 0.99),
      hop_cpu_libp2p_us: ab.libp2p.cpuUs,
      hop_step_cpu_us: hop.stepCpuUs,
      hop_step_cpu_lane_us: lane.stepCpuUs,
      hop_rtt_warmup_ms_p50: pct(warmup, 0.5),
      hop_rtt_2p_ms_p50: pct(two.hop, 0.5),
      hop_rtt_2p_ms_p99: pct(two.hop, 0.99),
      tcp_rtt_2p_ms_p50: pct(two.tcp, 0.5),
      hop_tcp_ratio_2p: r3(pct(two.hop, 0.5) / Math.max(1e-3, pct(two.tcp, 0.5))),
      hop_cpu_2p_us: two.hopCpuUs,
    };
    const p = (h: HopTimes): string => `p50 ${pct(h.times, 0.5)} ms p99 ${pct(h.times, 0.99)} ms, ${h.cpuUs} µs CPU per step (${h.stepCpuUs} without the nodes' background)`;
    log(
      `hop rtt ([1, ${C}] fp32, identity hop, alternating blocks; the node's default path is ${BENCH_LANE ? 'the lane' : 'libp2p'}): libp2p ${p(ab.libp2p)}; ` +
        `${lane.onLane ? 'data lane' : 'lane (NO LANE UP)'} ${p(lane)}, sealed frames per step ${lane.framesOutPerStep} out / ${lane.framesInPerStep} in; raw tcp p50 ${res.tcp_rtt_ms_p50} ms (${res.hop_tcp_ratio}x); first 500 steps p50 ${res.hop_rtt_warmup_ms_p50} ms`,
    );
    log(
      `hop rtt, hop in a child process (${two.onLane ? 'data lane' : BENCH_LANE ? 'lane (NO LANE UP)' : 'libp2p'}): p50 ${res.hop_rtt_2p_ms_p50} ms p99 ${res.hop_rtt_2p_ms_p99} ms, ${two.hopCpuUs} µs CPU per step (hop process ${two.hopServerCpuUs}); ` +
        `raw tcp to the same child p50 ${res.tcp_rtt_2p_ms_p50} ms (${res.hop_tcp_ratio_2p}x)`,
    );
    return res;
  },
};

/** Process CPU time (ms) per second of wall time while nothing is asked of the chain: its nodes' background work. */
async function idleCpuRate(ms = 2000): Promise<number> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, ms));
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / (performance.now() - t0);
}

/**
 * Process CPU time (ms) that `f` took, beside its result (every hop and the entry run in this process), less the
 * nodes' background work (heartbeats, gossip and its signatures: `idleMsPerS` of CPU per second of wall time, which
 * would otherwise be charged to every token more the slower the chain runs).
 */
async function withCpu<T>(f: () => Promise<T>, idleMsPerS: number): Promise<{ value: T; cpuMs: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const value = await f();
  const c = process.cpuUsage(c0);
  return { value, cpuMs: Math.max(0, (c.user + c.system) / 1000 - (idleMsPerS * (performance.now() - t0)) / 1000) };
}

/**
 * chain_decode_tok_s_1/_2/_4 and chain_ratio_4, and where a token's time goes (issue 8 §5: "find where the time per
 * hop boundary goes").
 *
 * Paired since session 22 (paired.ts): the 1-, 2- and 4-hop chains are set up together and warmed, then timed in
 * `chain_blocks` rounds of one `chain_block_tokens`-token generation per chain, the order of the chains rotated
 * (paired.ts blockOrder), while the other chains idle. `chain_ratio_4` is the **median of the block-by-block ratios**
 * (4 hops ÷ 1 hop in the same round), `chain_ratio_4_min`/`_max` their spread, `chain_ratio_4_pooled` the pooled
 * tokens/s ratio, `chain_ratio_2` the same median for 2 hops; `chain_decode_tok_s_N` is each chain's pooled tokens/s
 * over all its blocks. Until session 21 the section timed the chains one after another, one 48-token generation each
 * (~0.5 s), and its ratio mixed the chains' cost with the host's memory bandwidth, which moved between the runs (a
 * batch-1 decode is memory-bound).
 *
 * Beside them: `chain_compute_ms_N` is the time the N hops' steps spent in their compute workers per token (summed
 * over the hops, as each hop timed its step: the worker's forward plus the messages to it), and
 * `chain_hop_overhead_ms_4` the rest of a token's time through 4 hops (pooled) per hop: the protocol round trip from
 * the entry (encoding, stream, decoding, commitments) and every wait for a CPU. `chain_cpu_ms_N` is the CPU time of
 * the whole process per token (the entry and every hop run in it) less the nodes' background, measured after the
 * blocks while all the chains idle (`chain_idle_cpu_ms_s`, ms of CPU per s; `chain_idle_cpu_ms_s_1` with only the
 * 1-hop chain left up: the rest is what the idle chains add while another is timed), and `chain_load` the 1-minute
 * load average at the start.
 * NEUROSHARD_CHAIN_BLOCKS / NEUROSHARD_CHAIN_BLOCK_TOKENS override the block count and length (experiments).
 */
export const servingChainSection: BenchSection = {
  name: 'serving-chain',
  keys: [
    'chain_decode_tok_s_1',
    'chain_decode_tok_s_2',
    'chain_decode_tok_s_4',
    'chain_ratio_4',
    'chain_ratio_4_min',
    'chain_ratio_4_max',
    'chain_ratio_4_pooled',
    'chain_ratio_2',
    'chain_compute_ms_1',
    'chain_compute_ms_4',
    'chain_hop_overhead_ms_4',
    'chain_cpu_ms_1',
    'chain_cpu_ms_4',
    'chain_idle_cpu_ms_s',
    'chain_idle_cpu_ms_s_1',
    'chain_blocks',
    'chain_block_tokens',
    'chain_load',
    'chain_push',
  ],
  async run({ quick, log }) {
    const networkId = bundledGenesis().networkId;
    const config = benchConfig(quick);
    const L = config.num_hidden_layers;
    const threads = availableParallelism();
    const blocks = envInt('NEUROSHARD_CHAIN_BLOCKS', quick ? 3 : 12);
    const tokens = envInt('NEUROSHARD_CHAIN_BLOCK_TOKENS', quick ? 8 : 32);
    const res: Record<string, number | null> = { chain_load: Math.round(loadavg()[0]! * 100) / 100, chain_blocks: blocks, chain_block_tokens: tokens, chain_push: benchPush() ? 1 : 0 };
    const arms = [1, 2, 4] as const;
    const chains = new Map<number, Chain>();
    let idle12 = 0;
    try {
      for (const n of arms) {
        const chain = await startChain(networkId, config, evenSpans(L, n), threads, 'deployed');
        chains.set(n, chain);
        await decode(chain, config, 4); // warm-up: connections, buffers
      }
      // a second warm-up round with every chain up
      for (const n of arms) await decode(chains.get(n)!, config, 4);
      const acc = new Map(arms.map((n) => [n, { blocks: [] as Block[], rates: [] as number[], cpuUs: 0, wallMs: 0, tokens: 0, pushes: 0, computeMs: new Array<number>(n).fill(0), steps: new Array<number>(n).fill(0) }]));
      await alternate(arms, blocks, async (n) => {
        const chain = chains.get(n)!;
        const a = acc.get(n)!;
        const before = chain.hops.map((h) => ({ ...h.server.stepStats }));
        const c0 = process.cpuUsage();
        const w0 = performance.now();
        const r = await decode(chain, config, tokens);
        const c = process.cpuUsage(c0);
        a.wallMs += performance.now() - w0;
        a.cpuUs += c.user + c.system;
        chain.hops.forEach((h, k) => {
          a.computeMs[k]! += h.server.stepStats.computeMs - before[k]!.computeMs;
          a.steps[k]! += h.server.stepStats.steps - before[k]!.steps;
        });
        const blk: Block = { intervals: r.times.length - 1, ms: r.times.at(-1)! - r.times[0]! };
        a.blocks.push(blk);
        a.rates.push(blockTokS(blk));
        a.tokens += r.times.length;
        a.pushes += r.pushesUsed;
      });
      // The nodes' background at rest (ms of CPU per s), after the blocks (start-up work done): all chains up, then
      // closing the 4-hop and the 2-hop chain in turn. While one chain is timed the others idle beside it: their
      // part of the background is what the pairing costs that chain (the old section ran one chain at a time).
      // (a closed chain's teardown, its workers' exit and the others' notice of the hang-ups run for a while after
      // close() returns: a settling wait before each window)
      const w = quick ? 400 : 3000; // each the median of 4 windows (paired.ts idleCpuMedian)
      const settle = (): Promise<void> => new Promise((r) => setTimeout(r, quick ? 300 : 3000));
      const idle = await idleCpuMedian(w);
      for (const n of [4, 2]) {
        await chains.get(n)!.close();
        chains.delete(n);
        await settle();
        if (n === 4) idle12 = await idleCpuMedian(w);
      }
      const idle1 = await idleCpuMedian(w);
      const own: Record<number, number> = { 1: idle1, 2: idle12 - idle1, 4: idle - idle12 };
      for (const n of arms) {
        const a = acc.get(n)!;
        const tokS = pooledTokS(a.blocks);
        // per step of each hop (the prompt's prefill and the first decode step are in its steps too, as before)
        const compute = a.computeMs.reduce((x, ms, k) => x + ms / Math.max(1, a.steps[k]!), 0);
        const msPerToken = 1000 / tokS;
        // process CPU per token less every node's background (all chains') over the blocks' wall time
        const cpuMs = Math.max(0, a.cpuUs / 1000 - (idle * a.wallMs) / 1000) / a.tokens;
        res[`chain_decode_tok_s_${n}`] = Math.round(tokS * 10) / 10;
        if (n !== 2) {
          res[`chain_compute_ms_${n}`] = r3(compute);
          res[`chain_cpu_ms_${n}`] = r3(cpuMs);
        }
        if (n === 4) res.chain_hop_overhead_ms_4 = r3((msPerToken - compute) / n);
        log(
          `${n} hop(s) (${config.hidden_size} wide, ${L} layers): ${tokS.toFixed(1)} tok/s pooled over ${blocks} blocks of ${tokens} tokens (blocks ${a.rates.map((x) => x.toFixed(1)).join(' ')}), ` +
            `${msPerToken.toFixed(2)} ms/token of which ${compute.toFixed(2)} ms in the hops' workers, ${((msPerToken - compute) / n).toFixed(2)} ms per hop outside them; process CPU ${cpuMs.toFixed(2)} ms/token; ` +
            `its nodes' background ${own[n]!.toFixed(1)} ms/s, the idle chains' beside it ${(idle - own[n]!).toFixed(1)} ms/s; hop steps on pushed inputs ${a.pushes}`,
        );
      }
      const one = acc.get(1)!;
      const r4 = pairedRatio(acc.get(4)!.rates, one.rates, pooledTokS(acc.get(4)!.blocks), pooledTokS(one.blocks));
      const r2 = pairedRatio(acc.get(2)!.rates, one.rates, pooledTokS(acc.get(2)!.blocks), pooledTokS(one.blocks));
      Object.assign(res, { chain_ratio_4: r3(r4.median), chain_ratio_4_min: r3(r4.min), chain_ratio_4_max: r3(r4.max), chain_ratio_4_pooled: r3(r4.pooled), chain_ratio_2: r3(r2.median), chain_idle_cpu_ms_s: r3(idle), chain_idle_cpu_ms_s_1: r3(idle1) });
      log(
        `chain_ratio_4 ${res.chain_ratio_4} (median of ${blocks} block ratios ${r4.ratios.map((x) => x.toFixed(3)).join(' ')}; pooled ${res.chain_ratio_4_pooled}), chain_ratio_2 ${res.chain_ratio_2}; ` +
          `nodes' background at rest ${idle.toFixed(1)} ms/s with all three chains up, ${idle12.toFixed(1)} with 1 and 2 hops, ${idle1.toFixed(1)} with the 1-hop chain alone (load ${loadavg()[0]!.toFixed(2)})`,
      );
    } finally {
      for (const c of chains.values()) await c.close();
    }
    return res;
  },
};

function envInt(name: string, dflt: number): number {
  const v = process.env[name];
  const n = v === undefined ? NaN : Number(v);
  return Number.isInteger(n) && n > 0 ? n : dflt;
}

/**
 * Decode tokens/s of concurrent streams over the span in which every one of them decodes (issue 8 §5 "aggregate
 * tok/s of 8 concurrent sessions"): from the last stream's first token to the first stream's last token, each
 * stream's rate over its own tokens in that span (whole token-to-token intervals, so no stream is cut mid-step),
 * summed. The span of a 1-stream run (its first token to its last) holds decode steps only; the span from the
 * first stream's first token holds the other streams' session opens and prefills too (each a forward of its own on
 * the hop, none batched: 2-12 % of a 32-token run's span in session 20's runs), which the 1-stream figure never
 * pays.
 * Null when the streams never decode together (fewer than 2 tokens of some stream in the shared span).
 */
export function concurrentTokS(runs: readonly { times: readonly number[] }[]): number | null {
  const t0 = Math.max(...runs.map((r) => r.times[0]!));
  const t1 = Math.min(...runs.map((r) => r.times.at(-1)!));
  let sum = 0;
  for (const r of runs) {
    const inside = r.times.filter((t) => t >= t0 && t <= t1);
    if (inside.length < 2) return null;
    sum += ((inside.length - 1) * 1000) / (inside.at(-1)! - inside[0]!);
  }
  return sum;
}

/**
 * batch8_ratio: aggregate decode tokens/s of 8 generations at once ÷ 1 alone, through one hop holding the whole
 * 12x768 model on loopback (the hop's worker batches the concurrent sessions' decode steps; batcher.ts).
 *
 * Paired since session 22 (paired.ts): `batch_blocks` rounds of one 1-stream run and one 8-stream run, the order
 * alternating (1 8, 8 1, 8 1, 1 8, …); `batch8_ratio` is the **median of the round-by-round ratios** (the 8 streams'
 * `concurrentTokS` ÷ the 1-stream run's tokens/s in the same round), `batch8_ratio_min`/`_max` their spread,
 * `batch8_ratio_pooled` = `batch8_tok_s` ÷ `batch1_tok_s`. `batch1_tok_s` pools the 1-stream runs (every token
 * interval over all their spans), `batch8_tok_s` is the mean of the rounds' `concurrentTokS`. Until session 21 the
 * section pooled one 1-stream run before and one after a single 8-stream run (one 32-token run is ~0.3 s, and on this
 * shared machine its figure alone swung 91-127 tok/s between quiet runs); the memory bandwidth a batch-1 decode is
 * bound by moves within a minute. `batch8_tok_s_span` / `batch8_ratio_span` keep the earlier sessions' figure (every
 * stream's tokens after its first, over the span from the first stream's first token to the last token: the other
 * streams' opens and prefills inside it), averaged over the rounds.
 * NEUROSHARD_BATCH_BLOCKS overrides the number of rounds (experiments).
 */
export const servingBatchSection: BenchSection = {
  name: 'serving-batch',
  keys: [
    'batch1_tok_s',
    'batch8_tok_s',
    'batch8_ratio',
    'batch8_ratio_min',
    'batch8_ratio_max',
    'batch8_ratio_pooled',
    'batch8_tok_s_span',
    'batch8_ratio_span',
    'batch8_mean_rows',
    'batch1_cpu_ms',
    'batch8_cpu_ms',
    'batch8_cpu_ratio',
    'batch_blocks',
    'batch_load',
  ],
  async run({ quick, log }) {
    const networkId = bundledGenesis().networkId;
    const config = benchConfig(quick);
    const L = config.num_hidden_layers;
    const tokens = quick ? 8 : 32;
    const blocks = envInt('NEUROSHARD_BATCH_BLOCKS', quick ? 2 : 8);
    const chain = await startChain(networkId, config, [{ start: 0, end: L }], availableParallelism(), 'deployed');
    try {
      await decode(chain, config, 4); // warm-up
      await Promise.all(Array.from({ length: 8 }, (_, i) => decode(chain, config, 4, { prompt: [1, 5 + i, 9, 13 + i] })));
      const load = Math.round(loadavg()[0]! * 100) / 100;
      const idle = await idleCpuMedian(quick ? 400 : 2000);
      const stats = chain.hops[0]!.server.stepStats;
      const one = { blocks: [] as Block[], rates: [] as number[], cpuMs: 0, tokens: 0 };
      const eight = { aggs: [] as number[], spans: [] as number[], cpuMs: 0, tokens: 0, steps: 0, batched: 0, rows: 0 };
      await alternate(['1', '8'] as const, blocks, async (arm) => {
        if (arm === '1') {
          const { value: r, cpuMs } = await withCpu(() => decode(chain, config, tokens), idle);
          const b: Block = { intervals: r.times.length - 1, ms: r.times.at(-1)! - r.times[0]! };
          one.blocks.push(b);
          one.rates.push(blockTokS(b));
          one.cpuMs += cpuMs;
          one.tokens += r.times.length;
          return;
        }
        const before = { ...stats };
        const { value: all, cpuMs } = await withCpu(() => Promise.all(Array.from({ length: 8 }, (_, i) => decode(chain, config, tokens, { prompt: [1, 5 + i, 9, 13 + i] }))), idle);
        eight.steps += stats.steps - before.steps;
        eight.batched += stats.batched - before.batched;
        eight.rows += stats.rows - before.rows;
        // the earlier figure: every decoded token after each stream's first, over the span from the first first
        // token to the last token
        const first = Math.min(...all.map((r) => r.times[0]!));
        const last = Math.max(...all.map((r) => r.times.at(-1)!));
        const span = (all.reduce((a, r) => a + r.times.length - 1, 0) * 1000) / (last - first);
        eight.spans.push(span);
        eight.aggs.push(concurrentTokS(all) ?? span);
        eight.cpuMs += cpuMs;
        eight.tokens += all.reduce((a, r) => a + r.times.length, 0);
      });
      const one1 = pooledTokS(one.blocks);
      const agg = eight.aggs.reduce((a, x) => a + x, 0) / eight.aggs.length;
      const span = eight.spans.reduce((a, x) => a + x, 0) / eight.spans.length;
      const ratio = pairedRatio(eight.aggs, one.rates, agg, one1);
      const meanRows = eight.steps === 0 ? 0 : (eight.rows + (eight.steps - eight.batched)) / eight.steps;
      // process CPU per generated token (the entry's and the hop's work alike): what batching saves per token, which
      // the tokens/s ratio shows only on a machine whose cores are free for it
      const c1 = one.cpuMs / one.tokens;
      const c8 = eight.cpuMs / eight.tokens;
      const res = {
        batch1_tok_s: Math.round(one1 * 10) / 10,
        batch8_tok_s: Math.round(agg * 10) / 10,
        batch8_ratio: r3(ratio.median),
        batch8_ratio_min: r3(ratio.min),
        batch8_ratio_max: r3(ratio.max),
        batch8_ratio_pooled: r3(ratio.pooled),
        batch8_tok_s_span: Math.round(span * 10) / 10,
        batch8_ratio_span: r3(span / one1),
        batch8_mean_rows: Math.round(meanRows * 100) / 100,
        batch1_cpu_ms: r3(c1),
        batch8_cpu_ms: r3(c8),
        batch8_cpu_ratio: r3(c1 / c8),
        batch_blocks: blocks,
        batch_load: load,
      };
      log(
        `1 stream ${res.batch1_tok_s} tok/s pooled (rounds ${one.rates.map((x) => x.toFixed(1)).join(' ')}); 8 streams ${res.batch8_tok_s} tok/s in all while all 8 decode (rounds ${eight.aggs.map((x) => x.toFixed(1)).join(' ')}); ` +
          `batch8_ratio ${res.batch8_ratio} (median of ${blocks} round ratios ${ratio.ratios.map((x) => x.toFixed(2)).join(' ')}; pooled ${res.batch8_ratio_pooled}; ${res.batch8_tok_s_span} tok/s from the first stream's first token, ${res.batch8_ratio_span}x); ` +
          `${eight.batched} of ${eight.steps} steps batched, ${res.batch8_mean_rows} rows per forward on average; process CPU per token ${res.batch1_cpu_ms} ms alone, ${res.batch8_cpu_ms} ms among 8 (${res.batch8_cpu_ratio}x less; load ${load})`,
      );
      return res;
    } finally {
      await chain.close();
    }
  },
};

/** failover_stall_ms_p50/_p99 over repeated cuts of a hop mid-answer. */
export const servingFailoverSection: BenchSection = {
  name: 'serving-failover',
  keys: ['failover_stall_ms_p50', 'failover_stall_ms_p99', 'failover_kills'],
  async run({ quick, log }) {
    const networkId = bundledGenesis().networkId;
    const config = benchConfig(quick);
    const L = config.num_hidden_layers;
    const threads = availableParallelism();
    // two replicas of the first half; the driver's chosen one is cut after 5 tokens, repeatedly
    const kills = quick ? 3 : 24;
    const half = Math.floor(L / 2);
    const chain = await startChain(networkId, config, [{ start: 0, end: half }, { start: 0, end: half }, { start: half, end: L }], threads);
    try {
      const stalls: number[] = [];
      for (let i = 0; i < kills; i++) {
        // random: () => 0 picks the first replica by peer id order; cut whichever the driver would choose
        const first = [...chain.hops.slice(0, 2)].sort((a, b) => (a.peerId < b.peerId ? -1 : 1))[0]!;
        const r = await decode(chain, config, 10, { kill: { peerId: first.peerId, afterTokens: 5 } });
        stalls.push(...r.stalls);
      }
      const res = { failover_stall_ms_p50: stalls.length > 0 ? pct(stalls, 0.5) : null, failover_stall_ms_p99: stalls.length > 0 ? pct(stalls, 0.99) : null, failover_kills: stalls.length };
      log(`failover stalls over ${stalls.length} cuts: p50 ${res.failover_stall_ms_p50} ms, p99 ${res.failover_stall_ms_p99} ms`);
      return res;
    } finally {
      await chain.close();
    }
  },
};

/** `--only serving` runs them all (scripts/bench.mjs matches a section by its name or the part before its dash). */
export const benchSections: BenchSection[] = [servingHopSection, servingChainSection, servingBatchSection, servingFailoverSection];

/**
 * `npm run bench` section `training-pipeline-net`, key `pipeline_utilization`: the share of stage time spent
 * computing when the nano model trains in a chain of 4 one-layer stages, each a libp2p node on 127.0.0.1 with its
 * own compute worker (1 thread), 8 micro-batches of 1 × 128 under 1F1B, f32 activations on the wire.
 *
 *   utilisation = Σ over stages of the time its worker spent in forward/backward ops
 *                 ÷ (4 × the wall time of the step's forward/backward phase, as the driver saw it)
 *
 * The median over the measured steps (the first allocates activations and is left out). The textbook bound with
 * equal op costs and free transfers is M/(M + S − 1) = 8/11 = 0.727; loopback transfers, and a machine with
 * fewer cores than stages (the 4 workers then share them), lower it.
 */
import { randomBytes } from 'node:crypto';
import { ComputeClient, workerStageTransport } from '../../compute/index.js';
import { keyFromPrivate } from '../../identity/index.js';
import { presetConfig } from '../../model/index.js';
import { TrainStageServer, STAGE_SERVER_DEFAULTS, type StageHost } from '../../protocols/train-stage.js';
import { ChainTrainer, OpStage, type Batch, type ChainHop } from '../../training/index.js';
import { batchOf } from '../../training/pipeline/index.js';
import { waitFor } from '../../util/abort.js';
import { Rng } from '../../util/rng.js';
import { bundledGenesis } from '../genesis.js';
import { createNodeNetwork, type NodeNetwork } from '../network.js';
import { remoteHop, workerStageHost } from '../chain.js';

const S = 4;
const M = 8;

async function run(quick: boolean, log: (s: string) => void): Promise<Record<string, number>> {
  const genesis = bundledGenesis();
  const c = presetConfig('nano');
  if (c.num_hidden_layers !== S) throw new Error(`nano has ${c.num_hidden_layers} layers, the bench wants ${S}`);
  const T = quick ? 16 : 128;
  const nets: NodeNetwork[] = [];
  const workers: ComputeClient[] = [];
  const busy = new Array<number>(S).fill(0);
  const servers: TrainStageServer[] = [];
  try {
    for (let s = 0; s < S; s++) {
      const span = { start: s, end: s + 1 };
      const net = await createNodeNetwork({
        networkId: genesis.networkId,
        key: keyFromPrivate(randomBytes(32)),
        options: {
          dataDir: '/nonexistent', listen: ['/ip4/127.0.0.1/tcp/0'], announce: [], bootstrap: s === 0 ? [] : [nets[0]!.p2p.multiaddrs()[0]!], trackers: [],
          genesis: s === 0, mdns: false, upnp: false, relay: false, relayDataLimitMb: 256, relayDurationS: 600, maxConnections: 200, span,
          heartbeatIntervalMs: 1000, peerStaleMs: 5000, peerDeadMs: 20_000,
        },
        tuning: { ephemeralPeerStore: true, inboundConnectionThreshold: 1000, autonat: false, dcutr: false },
      });
      await net.start();
      nets.push(net);
      const w = await ComputeClient.start({ threads: 1 });
      workers.push(w);
      await w.run({ type: 'initModel', config: c, seed: 0, span });
      const host = workerStageHost(w, c, () => span);
      const timed: StageHost = {
        ...host,
        run: async (o, signal) => {
          const t0 = performance.now();
          const r = await host.run(o, signal);
          if (o.op === 'forward' || o.op === 'backward') busy[s]! += performance.now() - t0;
          return r;
        },
      };
      const server = new TrainStageServer(timed, STAGE_SERVER_DEFAULTS, net.scores);
      await server.register(net.rpc);
      servers.push(server);
    }
    await waitFor(() => nets[0]!.liveness.snapshot().filter((p) => p.state === 'alive').length >= S - 1, { timeoutMs: 120_000, intervalMs: 100, what: 'the chain\'s hops' });
    // the driver's own span, timed the same way
    const localRun = workerStageTransport(workers[0]!);
    const local = new OpStage({ start: 0, end: 1 }, S, async (o, signal) => {
      const t0 = performance.now();
      const r = await localRun(o, signal);
      if (o.op === 'forward' || o.op === 'backward') busy[0]! += performance.now() - t0;
      return r;
    });
    const hops: ChainHop[] = [{ peer: nets[0]!.peerId, span: local.span, stage: local }, ...nets.slice(1).map((n, i) => remoteHop(nets[0]!, n.peerId, { start: i + 1, end: i + 2 }, { chainId: 'bench:1', config: c }))];
    const rng = new Rng(3);
    const ids = Int32Array.from({ length: M * T }, () => rng.int(c.vocab_size));
    const tg = Int32Array.from({ length: M * T }, () => rng.int(c.vocab_size));
    const batch: Batch = batchOf(ids, tg, M, T);
    const trainer = new ChainTrainer({ self: nets[0]!.peerId, local: local as never, data: { next: () => batch, position: () => 0 }, pipeline: { microBatches: M, schedule: '1f1b' }, formChain: () => Promise.resolve(hops) });
    const us: number[] = [];
    for (let step = 0; step < (quick ? 2 : 4); step++) {
      busy.fill(0);
      const r = await trainer.trainStep();
      if (r === null) throw new Error('a bench step was abandoned');
      const u = busy.reduce((a, b) => a + b, 0) / (S * r.ms.forward);
      if (step > 0) us.push(u);
      log(`chain step ${step}: F/B phase ${r.ms.forward.toFixed(0)} ms, stage compute ${busy.map((b) => b.toFixed(0)).join('/')} ms, utilisation ${(100 * u).toFixed(1)} %`);
    }
    const u = us.sort((a, b) => a - b)[Math.floor(us.length / 2)]!;
    log(`pipeline on loopback, nano in ${S} libp2p stages, ${M} micro-batches of 1×${T}, 1F1B: utilisation ${(100 * u).toFixed(1)} % (textbook ${((100 * M) / (M + S - 1)).toFixed(1)} %)`);
    return { pipeline_utilization: Math.round(u * 1000) / 1000 };
  } finally {
    for (const s of servers) s.stop();
    for (const n of nets) await n.stop().catch(() => {});
    for (const w of workers) await w.close().catch(() => {});
  }
}

export const benchSections = [
  {
    name: 'training-pipeline-net',
    keys: ['pipeline_utilization'],
    run: ({ quick, log }: { quick: boolean; log: (s: string) => void }): Promise<Record<string, number>> => run(quick, log),
  },
];

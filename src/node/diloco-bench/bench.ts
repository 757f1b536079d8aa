/**
 * Outer-sync bench section for `npm run bench`:
 *
 *   outer_sync_ms_<none|fp16|int8|sparse>   wall time of one DiLoCo round's outer sync for the nano preset between
 *                                           two replicas on real libp2p nodes on 127.0.0.1 (node/diloco.ts): Δ of
 *                                           every layer compressed, signed, sent, checked and decoded, aggregated,
 *                                           the outer step applied and the per-layer hashes exchanged (the slower
 *                                           replica's closeRound; no inner steps: Δ is random noise)
 *   outer_sync_bytes_<kind>                 bytes one replica's outer sync sent in that round (payloads; the signed
 *                                           envelopes add ~150 bytes per layer, counted in outer_bytes_<kind>)
 *
 * --quick uses the same shape (nano is small); the figures then come from one round as well.
 */
import { randomBytes } from 'node:crypto';
import { keyFromPrivate } from '../../identity/index.js';
import { presetConfig } from '../../model/presets.js';
import { ParamLayout } from '../../model/layout.js';
import { COMPRESSIONS } from '../../training/compression/index.js';
import { Rng } from '../../util/rng.js';
import { startOuterSync } from '../diloco.js';
import { bundledGenesis } from '../genesis.js';
import { createNodeNetwork, type NodeNetwork } from '../network.js';
import { DEFAULTS } from '../options.js';

async function outerSync(log: (s: string) => void): Promise<Record<string, number>> {
  const genesis = bundledGenesis();
  const config = presetConfig('nano');
  const L = config.num_hidden_layers;
  const size = new ParamLayout(config).size;
  const nets: NodeNetwork[] = [];
  const out: Record<string, number> = {};
  const base = {
    dataDir: '/nonexistent',
    listen: ['/ip4/127.0.0.1/tcp/0'],
    announce: [],
    trackers: [],
    mdns: false,
    upnp: false,
    relay: false,
    relayDataLimitMb: 256,
    relayDurationS: 600,
    maxConnections: 100,
    span: { start: 0, end: L },
    heartbeatIntervalMs: 500,
    peerStaleMs: 10_000,
    peerDeadMs: 30_000,
  };
  const tuning = { ephemeralPeerStore: true, autonat: false, dcutr: false, pubsubHeartbeatMs: 300 };
  try {
    const keys = [keyFromPrivate(randomBytes(32)), keyFromPrivate(randomBytes(32))];
    const a = await createNodeNetwork({ networkId: genesis.networkId, key: keys[0]!, options: { ...base, bootstrap: [], genesis: true }, tuning });
    await a.start();
    nets.push(a);
    const b = await createNodeNetwork({ networkId: genesis.networkId, key: keys[1]!, options: { ...base, bootstrap: [a.p2p.multiaddrs()[0]!], genesis: false }, tuning });
    await b.start();
    nets.push(b);
    const until = Date.now() + 120_000;
    while (a.liveness.snapshot().every((p) => p.state !== 'alive') || b.liveness.snapshot().every((p) => p.state !== 'alive')) {
      if (Date.now() > until) throw new Error('the two bench nodes did not see each other');
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const kind of COMPRESSIONS) {
      const rng = new Rng(7);
      const start = new Float32Array(size).map(() => rng.normal() * 0.02);
      const wirings = await Promise.all(
        [a, b].map(async (n, k) => {
          const params = start.slice();
          const w = await startOuterSync({
            rpc: n.rpc,
            scores: n.scores,
            peerId: n.peerId,
            key: keys[k]!,
            networkId: genesis.networkId,
            config,
            span: { start: 0, end: L },
            inner: { getParams: () => Promise.resolve(params.slice()), setParams: (p) => Promise.resolve(void params.set(p)) },
            holders: () => [a.peerId, b.peerId],
            options: { ...DEFAULTS, innerSteps: 1, compress: kind, outerSyncTimeoutMs: 120_000 },
            clock: { now: () => Date.now() },
            pollMs: 20,
          });
          return { w, params, k };
        }),
      );
      const ac = new AbortController();
      await Promise.all(wirings.map(({ w }) => w.sync.enter(ac.signal)));
      for (const { params, k } of wirings) for (let i = 0; i < params.length; i++) params[i] = params[i]! - 1e-3 * (k + 1) * Math.sin(i);
      for (const { w } of wirings) w.sync.innerStep();
      const t0 = performance.now();
      await Promise.all(wirings.map(({ w }) => w.sync.closeRound(ac.signal)));
      const ms = performance.now() - t0;
      const rep = wirings[0]!.w.sync.stats();
      out[`outer_sync_ms_${kind}`] = Math.round(ms);
      out[`outer_sync_bytes_${kind}`] = rep.bytesSent;
      log(`outer sync, nano, 2 replicas on loopback libp2p, ${kind}: ${ms.toFixed(0)} ms per round, ${rep.bytesSent} payload bytes sent per replica, accepted ${rep.lastRound?.accepted ?? 0}`);
      for (const { w } of wirings) await w.stop();
    }
  } finally {
    for (const n of nets.reverse()) await n.stop().catch(() => {});
  }
  return out;
}

export const benchSections = [
  {
    name: 'training-outer-sync',
    keys: COMPRESSIONS.flatMap((k) => [`outer_sync_ms_${k}`, `outer_sync_bytes_${k}`]),
    run: ({ log }: { quick: boolean; log: (s: string) => void }): Promise<Record<string, number>> => outerSync(log),
  },
];

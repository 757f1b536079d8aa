/**
 * Training bench section for `npm run bench` (scripts/bench.mjs discovers `benchSections`):
 *
 *   outer_bytes_<none|fp16|int8|sparse>   bytes one replica uploads per outer round for the nano preset: every
 *                                         layer's encoded Δ (training/compression) in its signed envelope
 *                                         (protocols' TrainingContribution adds ~150 bytes per layer), measured by
 *                                         encoding a real Δ (the sizes are fixed by n, so this is exact)
 *   aggregate_ms_<aggregator>_<4|16>      wall time of one aggregation of 4 and 16 contributions of one decoder
 *                                         layer of the 12x768 preset (6.49 M elements), Gauntlet with a loss
 *                                         callback that costs nothing (its real cost is the held-out evaluations)
 *   pipeline_utilization_sim              nano in 4 one-layer stages, 8 micro-batches of 1 × 128, 1F1B: the share
 *                                         of stage time spent computing with each stage on its own device
 *                                         (measured op times replayed by simulateSchedule; loopback transfers free)
 * --quick shrinks the layer to 16 k elements and the pipeline batch (same keys, figures meaningless).
 */
import { presetConfig } from '../model/presets.js';
import { ParamLayout } from '../model/layout.js';
import { selectBackend } from '../tensor/index.js';
import { Rng } from '../util/rng.js';
import { AGGREGATORS, aggregate, type Contribution } from './aggregation/index.js';
import { COMPRESSIONS, encodeDelta } from './compression/index.js';
import { layerRanges } from './diloco.js';
import { LocalStage, PipelineTrainer, batchOf } from './pipeline/index.js';

/** Envelope bytes of a signed contribution besides the payload (protocols/training-contribution.ts, network id
 * `ns1-` + 32 hex, layer id up to 9 bytes): 1 + 2 + 36 + 8 + 2 + |layer| + 1 + 4 + 4 + 33 + 64. */
function envelope(layerId: string): number {
  return 1 + 2 + 36 + 8 + 2 + Buffer.byteLength(layerId) + 1 + 4 + 4 + 33 + 64;
}

function outerBytes(log: (s: string) => void): Record<string, number> {
  const layout = new ParamLayout(presetConfig('nano'));
  const rng = new Rng(1);
  const out: Record<string, number> = {};
  for (const kind of COMPRESSIONS) {
    let bytes = 0;
    for (const l of layerRanges(layout)) {
      const d = new Float32Array(l.size);
      for (let i = 0; i < d.length; i++) d[i] = rng.normal() * 1e-3;
      bytes += encodeDelta(kind, d).byteLength + envelope(l.id);
    }
    out[`outer_bytes_${kind}`] = bytes;
    log(`outer sync, nano (${layout.size} parameters), ${kind}: ${bytes} bytes per replica per round (${((4 * layout.size) / bytes).toFixed(1)}× smaller than fp32)`);
  }
  return out;
}

function aggregateMs(quick: boolean, log: (s: string) => void): Record<string, number> {
  const c = presetConfig('12x768');
  const n = quick ? 16_384 : new ParamLayout(c, { start: 0, end: 1 }).entries.filter((e) => e.layer === 0).reduce((a, e) => a + e.size, 0);
  const out: Record<string, number> = {};
  for (const k of [4, 16]) {
    const rng = new Rng(k);
    const cs: Contribution[] = [];
    for (let j = 0; j < k; j++) {
      const d = new Float32Array(n);
      for (let i = 0; i < n; i++) d[i] = rng.normal() * 1e-3;
      cs.push({ id: `peer${String(j).padStart(2, '0')}`, delta: d });
    }
    for (const name of AGGREGATORS) {
      const t0 = performance.now();
      aggregate(name, cs, n, { lossAfter: () => 0, baseLoss: 1 });
      const ms = performance.now() - t0;
      out[`aggregate_ms_${name.replace(/-/g, '_')}_${k}`] = Math.round(ms * 10) / 10;
      log(`aggregate ${name}, ${k} contributions of ${n} elements: ${ms.toFixed(1)} ms`);
    }
  }
  return out;
}

async function pipelineUtilization(quick: boolean, log: (s: string) => void): Promise<number> {
  const { backend } = await selectBackend({ threads: 1 });
  const c = presetConfig('nano');
  const M = 8;
  const T = quick ? 16 : 128;
  const stages = [0, 1, 2, 3].map((i) => new LocalStage(c, backend, { start: i, end: i + 1 }));
  const pipe = new PipelineTrainer(stages, { microBatches: M, schedule: '1f1b' });
  const rng = new Rng(3);
  const ids = Int32Array.from({ length: M * T }, () => rng.int(c.vocab_size));
  const tg = Int32Array.from({ length: M * T }, () => rng.int(c.vocab_size));
  const us: number[] = [];
  for (let s = 0; s < (quick ? 2 : 4); s++) {
    await pipe.trainStep(batchOf(ids, tg, M, T));
    if (s > 0) us.push(pipe.lastUtilisation!.utilisation); // the first step allocates the activation pool
  }
  const u = us.sort((a, b) => a - b)[Math.floor(us.length / 2)]!;
  log(`pipeline, nano in 4 stages, ${M} micro-batches of 1×${T}, 1F1B: utilisation ${(100 * u).toFixed(1)} % (textbook ${((100 * M) / (M + 3)).toFixed(1)} %)`);
  return Math.round(u * 1000) / 1000;
}

const aggKeys = AGGREGATORS.flatMap((a) => [4, 16].map((k) => `aggregate_ms_${a.replace(/-/g, '_')}_${k}`));

export const benchSections = [
  {
    name: 'training-outer',
    keys: [...COMPRESSIONS.map((k) => `outer_bytes_${k}`), ...aggKeys],
    run: ({ quick, log }: { quick: boolean; log: (s: string) => void }): Promise<Record<string, number>> => Promise.resolve({ ...outerBytes(log), ...aggregateMs(quick, log) }),
  },
  {
    name: 'training-pipeline',
    keys: ['pipeline_utilization_sim'],
    run: async ({ quick, log }: { quick: boolean; log: (s: string) => void }): Promise<Record<string, number>> => ({ pipeline_utilization_sim: await pipelineUtilization(quick, log) }),
  },
];

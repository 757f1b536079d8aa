/**
 * The pool's view of the registry, built from what this node already knows: the spans peers state in their
 * heartbeats (fresh every few seconds, with liveness alive/stale/dead from LivenessTracker) and the capacity in
 * their signed HolderRecords (tokens/s, memory and weights format; fetched through the layer registry, cached there).
 * Our own holding is added as alive.
 *
 * A holder's weights format (f32 or int8) is the one its signed record states; its heartbeat's `weights` is only a
 * hint used until the record is known (the record wins when both are known: a record is what the holder signed for
 * the registry, the tracker and its proofs, a heartbeat is a gossip message of the moment). The view is plain data for ./placement.ts and for GET /api/layers.
 */
import type { PeerLiveness } from '../protocols/liveness.js';
import type { HolderRecord } from '../protocols/holder-record.js';
import type { PoolHolder, PoolSpan, PoolView } from './placement.js';

export interface SelfHolding {
  peerId: string;
  span: PoolSpan | undefined;
  tokensPerSec: number;
  memoryMb: number;
  weights?: 'f32' | 'int8';
}

export interface ViewInput {
  numLayers: number;
  self: SelfHolding;
  peers: readonly PeerLiveness[];
  /** The peer's current record, when known (a lookup that fails gives undefined: capacity then counts as 0). */
  records: ReadonlyMap<string, HolderRecord>;
}

export function buildView(i: ViewInput): PoolView {
  const holders: PoolHolder[] = [];
  if (i.self.span !== undefined) holders.push({ peerId: i.self.peerId, span: { ...i.self.span }, state: 'alive', tokensPerSec: i.self.tokensPerSec, memoryMb: i.self.memoryMb, ...(i.self.weights === 'int8' ? { weights: 'int8' as const } : {}) });
  for (const p of i.peers) {
    if (p.peer === i.self.peerId) continue;
    const span = p.heartbeat.span;
    if (span === undefined) continue;
    const rec = i.records.get(p.peer);
    // the record's capacity is for the span it names; a record for an older span still tells the node's speed
    const sameSpan = rec !== undefined && rec.span.start === span.start && rec.span.end === span.end;
    const perLayer = rec === undefined ? 0 : rec.capacity.tokensPerSec * (rec.span.end - rec.span.start);
    const tokensPerSec = rec === undefined ? 0 : sameSpan ? rec.capacity.tokensPerSec : perLayer / Math.max(1, span.end - span.start);
    const int8 = rec !== undefined ? rec.weights === 'int8' : p.heartbeat.weights === 'int8';
    holders.push({ peerId: p.peer, span: { start: span.start, end: span.end }, state: p.state, tokensPerSec, memoryMb: rec?.capacity.memoryMb ?? 0, ...(int8 ? { weights: 'int8' as const } : {}) });
  }
  holders.sort((a, b) => (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0));
  return { numLayers: i.numLayers, holders };
}

export interface LayersReport {
  layers: { layer: number; holders: { peerId: string; state: 'alive' | 'stale' | 'dead'; tokensPerSec: number }[] }[];
  replicasMin: number;
  modelHash: string;
}

/** GET /api/layers: per layer its holders as this node sees them (dead ones included), the live minimum, the hash. */
export function layersReport(view: PoolView, modelHash: string): LayersReport {
  const layers: LayersReport['layers'] = [];
  for (let l = 0; l < view.numLayers; l++) {
    const holders = view.holders
      .filter((h) => h.span.start <= l && l < h.span.end)
      .map((h) => ({ peerId: h.peerId, state: h.state, tokensPerSec: Math.round(h.tokensPerSec * 100) / 100 }));
    layers.push({ layer: l, holders });
  }
  const live = layers.map((x) => x.holders.filter((h) => h.state !== 'dead').length);
  return { layers, replicasMin: live.length === 0 ? 0 : Math.min(...live), modelHash };
}

/**
 * One node's side of DiLoCo for the layers it holds, over its flat parameter buffer (plain data, no I/O, so the
 * network wiring only moves bytes):
 *
 *   startRound()         θ_start ← θ (a copy of every held layer) and its per-layer hashes
 *   … H inner steps change θ (SoloTrainer or a pipeline stage) …
 *   contributions()      per layer: Δ = θ_start − θ, compressed with error feedback (kept across rounds)
 *   finishRound(agg)     per layer: θ ← Nesterov outer step from θ_start with the aggregated Δ (or θ_start itself
 *                        when the layer's round was abandoned); returns the new per-layer hashes, which every holder
 *                        of the layer must agree on (the outer step is bit-identical given the same aggregate)
 *
 * Layers are the model hash's layers (model/hash.ts): 'embed', 'layers.<i>', 'head'; each is one contiguous range
 * of the flat buffer (ParamLayout order).
 */
import { layerHash } from '../model/hash.js';
import type { LayerKey, ParamLayout } from '../model/layout.js';
import { InvalidArgumentError } from '../util/errors.js';
import { ErrorFeedback, type CompressionKind, type CompressionOptions } from './compression/index.js';
import { OuterOptimizer, pseudoGradient, type OuterOptions } from './outer.js';

export interface LayerRange {
  /** Wire id: 'embed', 'layers.<i>' or 'head'. */
  id: string;
  key: LayerKey;
  offset: number;
  size: number;
}

export function layerId(key: LayerKey): string {
  return typeof key === 'number' ? `layers.${key}` : key;
}

/** The held layers as contiguous ranges of the flat buffer. */
export function layerRanges(layout: ParamLayout): LayerRange[] {
  return layout.layerKeys().map((key) => {
    const es = layout.entriesOf(key);
    const offset = es[0]!.offset;
    const size = es.reduce((a, e) => a + e.size, 0);
    if (es.some((e, i) => i > 0 && e.offset !== es[i - 1]!.offset + es[i - 1]!.size)) throw new InvalidArgumentError(`layer ${layerId(key)} is not contiguous in the layout`);
    return { id: layerId(key), key, offset, size };
  });
}

export interface LayerContribution {
  layer: string;
  n: number;
  /** Compressed Δ (training/compression format). */
  payload: Uint8Array;
  /** The Δ the payload decodes to (what the aggregate will see of this node). */
  sent: Float32Array;
  /** The uncompressed Δ (for attacks in experiments, and diagnostics). */
  delta: Float32Array;
}

export interface DiLoCoOptions {
  outer: OuterOptions;
  compress: CompressionKind;
  compression?: CompressionOptions;
  /** Error-feedback decay β (1 keeps every dropped bit; 0 disables the feedback). */
  errorFeedbackBeta?: number;
}

export class DiLoCoNode {
  readonly layers: LayerRange[];
  readonly outer: OuterOptimizer;
  readonly feedback: ErrorFeedback;
  private thetaStart: Float32Array | null = null;
  private roundNo = 0;

  constructor(
    readonly layout: ParamLayout,
    readonly params: Float32Array,
    readonly options: DiLoCoOptions,
  ) {
    if (params.length !== layout.size) throw new InvalidArgumentError(`DiLoCoNode: params has ${params.length} elements, the layout ${layout.size}`);
    this.layers = layerRanges(layout);
    this.outer = new OuterOptimizer(options.outer);
    this.feedback = new ErrorFeedback(options.compress, options.compression, options.errorFeedbackBeta ?? 1);
  }

  get round(): number {
    return this.roundNo;
  }

  /** Hex hash of each held layer (model/hash.ts), keyed by wire id. */
  hashes(): Record<string, string> {
    const o: Record<string, string> = {};
    for (const l of this.layers) o[l.id] = Buffer.from(layerHash(this.layout, this.params, l.key)).toString('hex');
    return o;
  }

  startRound(): Record<string, string> {
    this.thetaStart = this.params.slice();
    return this.hashes();
  }

  contributions(): LayerContribution[] {
    const ts = this.thetaStart;
    if (ts === null) throw new InvalidArgumentError('DiLoCoNode.contributions before startRound');
    return this.layers.map((l) => {
      const delta = pseudoGradient(ts.subarray(l.offset, l.offset + l.size), this.params.subarray(l.offset, l.offset + l.size));
      const { payload, sent } = this.feedback.compress(l.id, delta);
      return { layer: l.id, n: l.size, payload, sent, delta };
    });
  }

  /**
   * Applies the aggregated Δ per layer id (null or missing: the layer goes back to θ_start). Layers in `keepLocal`
   * keep θ_local and their momentum (a layer held alone: a one-node chain needs no outer step).
   */
  finishRound(aggregated: ReadonlyMap<string, Float32Array | null>, keepLocal: ReadonlySet<string> = new Set()): Record<string, string> {
    const ts = this.thetaStart;
    if (ts === null) throw new InvalidArgumentError('DiLoCoNode.finishRound before startRound');
    for (const l of this.layers) {
      const start = ts.subarray(l.offset, l.offset + l.size);
      const out = this.params.subarray(l.offset, l.offset + l.size);
      if (keepLocal.has(l.id)) continue;
      const d = aggregated.get(l.id) ?? null;
      if (d === null) out.set(start);
      else this.outer.applyLayer(l.id, start, d, out);
    }
    this.outer.finishRound();
    this.thetaStart = null;
    this.roundNo++;
    return this.hashes();
  }

  /** Replaces a layer's outer momentum (a state downloaded from the layer's holders; null: none yet). */
  setLayerMomentum(layer: string, buf: Float32Array | null): void {
    this.outer.setBuffer(layer, buf);
  }

  /** θ_start of a layer during a round (a view; for Gauntlet scoring and tests). */
  startOf(layer: LayerRange): Float32Array {
    if (this.thetaStart === null) throw new InvalidArgumentError('no round in progress');
    return this.thetaStart.subarray(layer.offset, layer.offset + layer.size);
  }
}

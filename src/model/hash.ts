/**
 * Model hashes, so peers can check that they hold the same weights without sending them:
 *
 *   layer hash = SHA-256 of the layer's tensors, in name order (JavaScript string order), as float32 little-endian
 *                bytes concatenated. The embedding and the head (final norm + LM head) are layers of their own:
 *                'embed' = [model.embed_tokens.weight], 'head' = [lm_head.weight, model.norm.weight] (lm_head.weight
 *                being the embedding matrix when the model ties them).
 *   span hash  = SHA-256 of the concatenated 32-byte hashes of the layers the span holds, in order: 'embed'
 *                (if held), its decoder layers ascending, 'head' (if held).
 *   model hash = the span hash of the span holding everything.
 *
 * So two nodes holding the same span compare one hex string, and a node holding the whole model can compute any
 * span's hash from its layer hashes.
 */
import { createHash } from 'node:crypto';
import { EMBED_NAME, type LayerKey, LM_HEAD_NAME, type ParamLayout } from './layout.js';

export type LayerHashes = Map<LayerKey, Uint8Array>;

function tensorsOf(layout: ParamLayout, flat: Float32Array, key: LayerKey): { name: string; data: Float32Array }[] {
  const out = layout.entriesOf(key).map((e) => ({ name: e.name, data: flat.subarray(e.offset, e.offset + e.size) }));
  if (key === 'head' && layout.config.tie_word_embeddings) out.push({ name: LM_HEAD_NAME, data: layout.view(flat, EMBED_NAME) });
  // plain code-unit order, the same in every language
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** SHA-256 of one layer's tensors. */
export function layerHash(layout: ParamLayout, flat: Float32Array, key: LayerKey): Uint8Array {
  const h = createHash('sha256');
  for (const t of tensorsOf(layout, flat, key)) h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  return new Uint8Array(h.digest());
}

/** Hashes of every layer the layout holds, in span order. */
export function layerHashes(layout: ParamLayout, flat: Float32Array): LayerHashes {
  const m: LayerHashes = new Map();
  for (const k of layout.layerKeys()) m.set(k, layerHash(layout, flat, k));
  return m;
}

/** Span hash from layer hashes given in span order. */
export function spanHashOf(hashes: Iterable<Uint8Array>): string {
  const h = createHash('sha256');
  for (const x of hashes) h.update(x);
  return h.digest('hex');
}

/** The hash of everything `layout` holds (the model hash when it holds the whole model). */
export function spanHash(layout: ParamLayout, flat: Float32Array): string {
  return spanHashOf(layerHashes(layout, flat).values());
}

/** Layer hashes as a JSON-friendly record: keys 'embed', '0', '1', …, 'head'; hex values. */
export function layerHashesToJson(m: LayerHashes): Record<string, string> {
  const o: Record<string, string> = {};
  for (const [k, v] of m) o[String(k)] = Buffer.from(v).toString('hex');
  return o;
}

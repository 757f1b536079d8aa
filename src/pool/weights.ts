/**
 * Span weights as bytes (pure): what the `checkpoint` stream carries and how a receiver checks it.
 *
 * The payload of a span [a, b) is the span's flat float32 parameters in ParamLayout order (embedding if a = 0,
 * layers a..b-1, final norm and LM head if b = L), little-endian. ParamLayout puts the embedding first, then the
 * layers in order, then the head, so the payloads of the one-layer units [a, a+1), …, [b-1, b) concatenate to the
 * payload of [a, b): downloads go unit by unit (in parallel from several holders) and each unit is verified on its
 * own, which tells exactly which holder sent bad bytes.
 */
import { createHash } from 'node:crypto';
import type { LlamaConfig } from '../model/config.js';
import { spanHash } from '../model/hash.js';
import { ParamLayout, subSpanRange, type Span } from '../model/layout.js';
import { InvalidArgumentError } from '../util/errors.js';
import { spanText } from '../util/span-text.js';

/** One-layer units of a span, in order. */
export function spanUnits(span: Span): Span[] {
  const out: Span[] = [];
  for (let i = span.start; i < span.end; i++) out.push({ start: i, end: i + 1 });
  return out;
}

/** Element range of `want` inside the flat buffer of `held` (want ⊆ held): model/layout.ts subSpanRange. */
export const subRange = subSpanRange;

/** A copy of `want`'s parameters out of the flat buffer of `held`. */
export function sliceSpan(config: LlamaConfig, held: Span, flat: Float32Array, want: Span): Float32Array {
  const r = subRange(config, held, want);
  return flat.slice(r.offset, r.offset + r.size);
}

/** Float32 elements → their little-endian bytes (a view; the platforms we run on are little-endian). */
export function paramBytes(p: Float32Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(p.buffer as ArrayBuffer, p.byteOffset, p.byteLength);
}

/** Bytes → float32 (copied into an aligned buffer). */
export function bytesToParams(b: Uint8Array): Float32Array {
  if (b.byteLength % 4 !== 0) throw new InvalidArgumentError(`a weights payload of ${b.byteLength} bytes is not whole float32s`);
  const out = new Float32Array(b.byteLength / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
}

/** The span hash (model/hash.ts) of a span's parameters. */
export function spanHashOfParams(config: LlamaConfig, span: Span, params: Float32Array): string {
  const layout = new ParamLayout(config, span);
  if (params.length !== layout.size) throw new InvalidArgumentError(`span ${spanText(span)} has ${layout.size} parameters, got ${params.length}`);
  return spanHash(layout, params);
}

/** Bytes a span's payload takes. */
export function spanPayloadBytes(config: LlamaConfig, span: Span): number {
  return new ParamLayout(config, span).size * 4;
}

export function sha256(b: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(createHash('sha256').update(b).digest());
}

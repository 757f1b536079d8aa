/**
 * The HolderRecord embedded in a Proof of Neural Work, so the layers a proof claims can be checked from the event
 * itself (issue #4 §2). The record's own canonical encoding and signature belong to `src/protocols/holder-record.ts`;
 * the ledger may not import protocols/, so it declares the record's structure here and checks the signature
 * through the HolderRecordVerifier interface that node/ wires to the protocols implementation.
 *
 * Inside a proof the record travels as its fields in the same layout as the protocols canonical payload, followed by
 * the 64 raw signature bytes:
 *
 *   u8 version = 1 ‖ str networkId ‖ str peerId ‖ u8 n ‖ str multiaddr × n ‖ u32 span.start ‖ u32 span.end ‖
 *   u32 capacity.memoryMb ‖ u32 capacity.tokensPerSec ‖ u64 timestampMs ‖ u64 expiresMs ‖ 64-byte signature
 *
 * An int8 holder's record (`--weights int8`) is version 2, with `u8 weights = 1` after capacity.tokensPerSec; a
 * float32 record stays version 1 with no weights byte (docs/PROTOCOL.md "## HolderRecord").
 *
 * (`str` = u16 length ‖ UTF-8.) `signEmbeddedHolderRecord` and `localHolderRecordVerifier` sign and verify that
 * payload under the domain "neuroshard/holder-record/v1" with identity's signDomain: they are the test double,
 * and equal the protocols implementation as long as the two layouts agree (test/unit/ledger/holder-compat.test.ts).
 */
import { peerIdFromPublicKey, publicKeyViewFromPeerId, signDomain, verifyDomain, type NodeKey } from '../identity/index.js';
import { DecodeError, type Reader, Writer } from './codec.js';
import type { HolderRecordVerifier } from './interfaces.js';

export const HOLDER_RECORD_DOMAIN = 'neuroshard/holder-record/v1';
const VERSION = 1;
/** An int8 holder's record: version 2, one weights byte (= WEIGHTS_INT8) after the capacity. */
const VERSION_INT8 = 2;
const WEIGHTS_INT8 = 1;
const MAX_STR = 128;
const MAX_MULTIADDRS = 16;
const MAX_MULTIADDR = 256;

export interface EmbeddedHolderRecord {
  networkId: string;
  peerId: string;
  multiaddrs: string[];
  /** Layers [start, end), end exclusive. */
  span: { start: number; end: number };
  capacity: { memoryMb: number; tokensPerSec: number };
  /** 'int8' for an int8 holder (a version 2 record); absent (or 'f32'): float32. */
  weights?: 'f32' | 'int8';
  timestampMs: number;
  expiresMs: number;
  /** Padded base64 of the 64-byte compact low-S signature. */
  signature: string;
}

export type HolderRecordFieldsLike = Omit<EmbeddedHolderRecord, 'signature'>;

/** The canonical payload the record's signature covers (same layout as src/protocols/holder-record.ts). */
export function holderRecordPayload(f: HolderRecordFieldsLike): Uint8Array {
  const w = new Writer();
  const int8 = f.weights === 'int8';
  w.u8(int8 ? VERSION_INT8 : VERSION).str(f.networkId, MAX_STR).str(f.peerId, MAX_STR).u8(f.multiaddrs.length);
  for (const a of f.multiaddrs) w.str(a, MAX_MULTIADDR);
  w.u32(f.span.start).u32(f.span.end).u32(f.capacity.memoryMb).u32(f.capacity.tokensPerSec);
  if (int8) w.u8(WEIGHTS_INT8);
  w.u64(f.timestampMs).u64(f.expiresMs);
  return w.finish();
}

/** Writes the embedded form (payload ‖ 64-byte signature) into `w`. */
export function writeHolderRecord(w: Writer, r: EmbeddedHolderRecord): void {
  const sig = Buffer.from(r.signature, 'base64');
  if (sig.byteLength !== 64 || sig.toString('base64') !== r.signature) throw new RangeError('holder record signature must be 64 bytes in padded base64');
  if (r.multiaddrs.length > MAX_MULTIADDRS) throw new RangeError('holder record has more than 16 multiaddrs');
  const p = holderRecordPayload(r);
  w.fixed(p, p.byteLength);
  w.fixed(new Uint8Array(sig), 64);
}

/**
 * The canonical payload of each record readHolderRecord made, with the field values it decoded (issue 11 §4,
 * proof_verify_per_s): the embedded form is the payload followed by the signature, so the payload is the bytes
 * just read, and building it again for the verdict cache's key cost ~5 % of a proof's verification. Used only
 * while every field still holds the value read (an in-process caller may change a record object; then the payload
 * is built from the fields again). A view of the event's private copy (decodeEvent: nothing writes into it).
 */
const readPayloads = new WeakMap<EmbeddedHolderRecord, ReadValues>();

/** The values readHolderRecord read, flat (one object, not copies of the record's objects). */
interface ReadValues {
  networkId: string;
  peerId: string;
  weights: 'int8' | undefined;
  spanStart: number;
  spanEnd: number;
  memoryMb: number;
  tokensPerSec: number;
  timestampMs: number;
  expiresMs: number;
  multiaddrs: string[];
  payload: Uint8Array;
}

/** holderRecordPayload(rec), taken from the decoded bytes when `rec` came from readHolderRecord and is unchanged. */
export function holderRecordPayloadOf(rec: EmbeddedHolderRecord): Uint8Array {
  const d = readPayloads.get(rec);
  if (d !== undefined && sameFields(rec, d)) return d.payload;
  return holderRecordPayload(rec);
}

function sameFields(a: EmbeddedHolderRecord, b: ReadValues): boolean {
  if (a.networkId !== b.networkId || a.peerId !== b.peerId || a.timestampMs !== b.timestampMs || a.expiresMs !== b.expiresMs || a.weights !== b.weights) return false;
  if (a.span.start !== b.spanStart || a.span.end !== b.spanEnd) return false;
  if (a.capacity.memoryMb !== b.memoryMb || a.capacity.tokensPerSec !== b.tokensPerSec) return false;
  const addrs = b.multiaddrs;
  if (!Array.isArray(a.multiaddrs) || a.multiaddrs.length !== addrs.length) return false;
  for (let i = 0; i < addrs.length; i++) if (a.multiaddrs[i] !== addrs[i]) return false;
  return true;
}

/** Reads the embedded form; strict (DecodeError on any violation). */
export function readHolderRecord(r: Reader): EmbeddedHolderRecord {
  const start = r.offset;
  const v = r.u8();
  if (v !== VERSION && v !== VERSION_INT8) throw new DecodeError(`holder record version ${v}`);
  const networkId = r.str(MAX_STR);
  const peerId = r.str(MAX_STR);
  const n = r.u8();
  if (n > MAX_MULTIADDRS) throw new DecodeError('holder record has more than 16 multiaddrs');
  const multiaddrs: string[] = [];
  for (let i = 0; i < n; i++) multiaddrs.push(r.str(MAX_MULTIADDR));
  const span = { start: r.u32(), end: r.u32() };
  const capacity = { memoryMb: r.u32(), tokensPerSec: r.u32() };
  if (v === VERSION_INT8) {
    const b = r.u8();
    if (b !== WEIGHTS_INT8) throw new DecodeError(`holder record weights byte ${b}`);
  }
  const timestampMs = r.u64n();
  const expiresMs = r.u64n();
  // a view of the decoder's private copy when the reader owns it (decodeEvent: nothing writes into it), else a copy
  const payload = r.copy(start, r.offset);
  const sig = r.fixed(64);
  const signature = Buffer.from(sig.buffer, sig.byteOffset, sig.byteLength).toString('base64');
  const weights = v === VERSION_INT8 ? ('int8' as const) : undefined;
  const rec: EmbeddedHolderRecord = weights === undefined ? { networkId, peerId, multiaddrs, span, capacity, timestampMs, expiresMs, signature } : { networkId, peerId, multiaddrs, span, capacity, weights, timestampMs, expiresMs, signature };
  // the values, not the objects: a caller may change rec.span.end or push to rec.multiaddrs
  readPayloads.set(rec, { networkId, peerId, weights, spanStart: span.start, spanEnd: span.end, memoryMb: capacity.memoryMb, tokensPerSec: capacity.tokensPerSec, timestampMs, expiresMs, multiaddrs: multiaddrs.slice(), payload });
  return rec;
}

/** Signs a record with identity's signDomain (test double and tools; the node uses the protocols implementation). */
export function signEmbeddedHolderRecord(key: NodeKey, fields: Omit<HolderRecordFieldsLike, 'peerId'> & { peerId?: string }): EmbeddedHolderRecord {
  const f: HolderRecordFieldsLike = { ...fields, peerId: fields.peerId ?? peerIdFromPublicKey(key.publicKey) };
  const sig = signDomain(key, HOLDER_RECORD_DOMAIN, holderRecordPayload(f));
  return { ...f, signature: Buffer.from(sig).toString('base64') };
}

/**
 * Verifies the record signature against the key inside its peerId, over the layout above. Time validity is not
 * checked here: the ledger checks the record against the proof's own timestamp, never the wall clock.
 */
export const localHolderRecordVerifier: HolderRecordVerifier = {
  verifySignature(r: EmbeddedHolderRecord): boolean {
    let pub: Uint8Array;
    try {
      pub = publicKeyViewFromPeerId(r.peerId); // only read by the check
    } catch {
      return false;
    }
    const sig = Buffer.from(r.signature, 'base64');
    if (sig.byteLength !== 64) return false;
    let payload: Uint8Array;
    try {
      payload = holderRecordPayloadOf(r); // the bytes read, when r came from readHolderRecord unchanged
    } catch {
      return false;
    }
    return verifyDomain(pub, HOLDER_RECORD_DOMAIN, payload, new Uint8Array(sig.buffer, sig.byteOffset, sig.byteLength));
  },
};

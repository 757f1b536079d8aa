/**
 * HolderRecord: the one signed statement "peer P of network N holds layers [start, end) and is reachable at these
 * addresses until T". The tracker, the DHT layer registry and heartbeats all carry it, so it is defined once here.
 *
 * The signature covers a canonical binary encoding of every other field (below), signed with the node key under
 * the domain "neuroshard/holder-record/v1" (identity's signDomain: SHA-256(UTF-8(domain) ‖ 0x00 ‖ payload), 64-byte
 * compact r‖s, low-S). The signer's public key is the one inside `peerId`, so a record cannot be forged for, or
 * replayed under, another peer. docs/PROTOCOL.md "## HolderRecord" documents the encoding with a test vector.
 *
 * Canonical encoding; integers big-endian; `str` = u16 byte length ‖ UTF-8 bytes:
 *
 *   u8   version            = 1 (float32 weights) or 2 (int8 weights)
 *   str  networkId
 *   str  peerId
 *   u8   multiaddr count    (0..16)
 *   str  multiaddr          × count, in record order
 *   u32  span.start
 *   u32  span.end           (exclusive)
 *   u32  capacity.memoryMb
 *   u32  capacity.tokensPerSec
 *   u8   weights            = 1 (int8): version 2 only
 *   u64  timestampMs
 *   u64  expiresMs
 *
 * The weights format (how the holder holds its span: `--weights int8`, or float32) is signed so that placement and
 * route choice can trust it (it used to ride only in heartbeats). A float32 record is encoded exactly as before the
 * field existed (version 1, no weights byte): records of older nodes mean float32 and keep verifying, and older nodes
 * keep reading float32 records. An int8 record is version 2, which older nodes refuse (they then do not see an int8
 * holder at all, rather than taking it for a float32 one). Version 2 with any weights byte but 1 is malformed, so a
 * record has one encoding.
 *
 * The wire bytes (`encodeHolderRecord`, used as a DHT value) are that payload followed by the 64 raw signature
 * bytes. The JSON form (tracker, HTTP) carries the same fields with the signature in padded base64.
 *
 * Parsing is strict: unknown keys are rejected (nothing such as a secret token can ride along), every string is
 * bounded and in canonical form, every number is a bounded integer. A parse failure is a PeerMisbehaviourError
 * with code HOLDER_RECORD_MALFORMED or HOLDER_RECORD_TOO_LARGE; verification returns a typed verdict instead of
 * throwing because a bad signature or an expired record is an ordinary outcome for a receiver.
 */
import { multiaddr } from '@multiformats/multiaddr';
import { type NodeKey, peerIdFromPublicKey, publicKeyFromPeerId, signDomain, verifyDomain } from '../identity/index.js';
import { PeerMisbehaviourError } from '../util/errors.js';

export const HOLDER_RECORD_DOMAIN = 'neuroshard/holder-record/v1';
/** Version of a float32 record (no weights byte); an int8 record is HOLDER_RECORD_VERSION_INT8. */
export const HOLDER_RECORD_VERSION = 1;
export const HOLDER_RECORD_VERSION_INT8 = 2;
/** The weights byte of a version 2 record. */
const WEIGHTS_INT8 = 1;

/** Limits of a record; each one is enforced by the parser and by the binary decoder. */
export const HOLDER_RECORD_LIMITS = {
  maxNetworkIdLength: 128,
  maxPeerIdLength: 128,
  maxMultiaddrs: 16,
  maxMultiaddrLength: 256,
  /** Layers are numbered 0..maxLayer-1; a span end may equal maxLayer. */
  maxLayer: 65_536,
  maxMemoryMb: 0xffff_ffff,
  maxTokensPerSec: 0xffff_ffff,
  /** A record may not claim to be valid for longer than a day; holders re-sign long before that. */
  maxLifetimeMs: 24 * 60 * 60 * 1000,
  /** Upper bound of the binary form: 1 + 2·(2+128) + 1 + 16·(2+256) + 16 + 1 + 16 + 64 = 4,486 bytes, rounded up. */
  maxEncodedBytes: 4608,
  /** Upper bound of the JSON text form. */
  maxJsonBytes: 8192,
} as const;

export const SIGNATURE_BYTES = 64;
const SIGNATURE_B64_LENGTH = 88; // 64 bytes → 88 padded base64 characters

export interface LayerSpan {
  /** First layer held. */
  start: number;
  /** One past the last layer held. */
  end: number;
}

export interface HolderCapacity {
  /** Memory the node offers for layers, in MiB. */
  memoryMb: number;
  /** Measured or estimated throughput, tokens per second (integer). */
  tokensPerSec: number;
}

/** How a holder holds its span's weights: float32, or int8 blocks with scales (`--weights int8`). */
export type HolderWeights = 'f32' | 'int8';

/** Every field of a HolderRecord except the signature: what signHolderRecord takes. */
export interface HolderRecordFields {
  networkId: string;
  peerId: string;
  multiaddrs: string[];
  span: LayerSpan;
  capacity: HolderCapacity;
  /**
   * 'int8' when the holder holds int8 weights; absent: float32 (records of nodes older than the field included).
   * signHolderRecord also takes 'f32' and drops it (a float32 record has no weights field: one record, one form).
   */
  weights?: HolderWeights;
  /** When the holder signed the record, Unix ms. */
  timestampMs: number;
  /** After this instant (Unix ms) the record is void. */
  expiresMs: number;
}

export interface HolderRecord extends HolderRecordFields {
  /** Padded base64 of the 64-byte compact low-S secp256k1 signature. */
  signature: string;
}

export type HolderRecordRejection =
  /** The peerId does not hold a secp256k1 public key. */
  | 'peer_id_invalid'
  /** The signature does not verify against the key inside peerId (forged, tampered, high-S). */
  | 'bad_signature'
  /** expiresMs is not after now. */
  | 'expired'
  /** timestampMs is further in the future than the allowed clock skew. */
  | 'from_future'
  /** timestampMs is older than maxAgeMs. */
  | 'too_old';

export type HolderRecordVerdict =
  | { ok: true; publicKey: Uint8Array }
  | { ok: false; reason: HolderRecordRejection; message: string };

export interface VerifyHolderRecordOptions {
  nowMs: number;
  /** How far in the future timestampMs may be (clock skew between signer and verifier). */
  maxSkewMs: number;
  /** When set, a record signed more than this long ago (minus nothing) is rejected as too old. */
  maxAgeMs?: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Strict parsing from JSON

const FIELDS = ['networkId', 'peerId', 'multiaddrs', 'span', 'capacity', 'timestampMs', 'expiresMs', 'signature'] as const;
/** Keys a record may carry besides FIELDS. */
const OPTIONAL_FIELDS = ['weights'] as const;
const NETWORK_ID_RE = /^[A-Za-z0-9._-]+$/;
const BASE58_RE = /^[1-9A-HJ-NP-Za-km-z]+$/;
const MULTIADDR_CHARS_RE = /^\/[\x21-\x7e]*$/;
const BASE64_RE = /^[A-Za-z0-9+/]{86}==$/;

function malformed(message: string, field?: string): PeerMisbehaviourError {
  return new PeerMisbehaviourError('HOLDER_RECORD_MALFORMED', `holder record: ${message}`, field === undefined ? undefined : { field });
}

function tooLarge(message: string, field: string): PeerMisbehaviourError {
  return new PeerMisbehaviourError('HOLDER_RECORD_TOO_LARGE', `holder record: ${message}`, { field });
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

function exactKeys(o: Record<string, unknown>, keys: readonly string[], where: string, optional: readonly string[] = []): void {
  for (const k of Object.keys(o)) if (!keys.includes(k) && !optional.includes(k)) throw malformed(`unknown field ${JSON.stringify(k.slice(0, 64))} in ${where}`, where);
  for (const k of keys) if (!(k in o)) throw malformed(`missing field ${k} in ${where}`, where);
}

function boundedInt(v: unknown, min: number, max: number, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw malformed(`${field} must be an integer`, field);
  if (v < min || v > max) throw malformed(`${field} must be in ${min}..${max}`, field);
  return v;
}

function checkNetworkId(v: unknown): string {
  if (typeof v !== 'string' || v.length === 0) throw malformed('networkId must be a non-empty string', 'networkId');
  if (v.length > HOLDER_RECORD_LIMITS.maxNetworkIdLength) throw tooLarge('networkId is too long', 'networkId');
  if (!NETWORK_ID_RE.test(v)) throw malformed('networkId may hold only A-Z a-z 0-9 . _ -', 'networkId');
  return v;
}

function checkPeerId(v: unknown): string {
  if (typeof v !== 'string' || v.length === 0) throw malformed('peerId must be a non-empty string', 'peerId');
  if (v.length > HOLDER_RECORD_LIMITS.maxPeerIdLength) throw tooLarge('peerId is too long', 'peerId');
  if (!BASE58_RE.test(v)) throw malformed('peerId must be base58btc', 'peerId');
  return v;
}

/** One multiaddr: bounded, printable, parseable, and in the canonical spelling its parser prints. */
function checkMultiaddr(v: unknown, peerId: string, i: number): string {
  const field = `multiaddrs[${i}]`;
  if (typeof v !== 'string' || v.length === 0) throw malformed(`${field} must be a non-empty string`, field);
  if (v.length > HOLDER_RECORD_LIMITS.maxMultiaddrLength) throw tooLarge(`${field} is longer than ${HOLDER_RECORD_LIMITS.maxMultiaddrLength} characters`, field);
  if (!MULTIADDR_CHARS_RE.test(v)) throw malformed(`${field} must start with "/" and hold printable ASCII only`, field);
  let canonical: string;
  try {
    canonical = multiaddr(v).toString();
  } catch (e) {
    throw malformed(`${field} is not a valid multiaddr: ${(e as Error).message}`, field);
  }
  if (canonical !== v) throw malformed(`${field} is not in canonical form (expected ${JSON.stringify(canonical)})`, field);
  // An address that names a peer at its end must name the signer: never advertise someone else's node as ours.
  const m = /\/p2p\/([^/]+)$/.exec(v);
  if (m !== null && m[1] !== peerId) throw malformed(`${field} ends in /p2p/${m[1]}, not the record's peerId`, field);
  return v;
}

function checkMultiaddrs(v: unknown, peerId: string): string[] {
  if (!Array.isArray(v)) throw malformed('multiaddrs must be an array', 'multiaddrs');
  if (v.length > HOLDER_RECORD_LIMITS.maxMultiaddrs) throw tooLarge(`more than ${HOLDER_RECORD_LIMITS.maxMultiaddrs} multiaddrs`, 'multiaddrs');
  const out = v.map((a: unknown, i) => checkMultiaddr(a, peerId, i));
  if (new Set(out).size !== out.length) throw malformed('multiaddrs must not repeat', 'multiaddrs');
  return out;
}

function checkSpan(v: unknown): LayerSpan {
  if (!isPlainObject(v)) throw malformed('span must be an object', 'span');
  exactKeys(v, ['start', 'end'], 'span');
  const start = boundedInt(v.start, 0, HOLDER_RECORD_LIMITS.maxLayer - 1, 'span.start');
  const end = boundedInt(v.end, 1, HOLDER_RECORD_LIMITS.maxLayer, 'span.end');
  if (end <= start) throw malformed('span.end must be greater than span.start (end is exclusive)', 'span');
  return { start, end };
}

function checkCapacity(v: unknown): HolderCapacity {
  if (!isPlainObject(v)) throw malformed('capacity must be an object', 'capacity');
  exactKeys(v, ['memoryMb', 'tokensPerSec'], 'capacity');
  return {
    memoryMb: boundedInt(v.memoryMb, 0, HOLDER_RECORD_LIMITS.maxMemoryMb, 'capacity.memoryMb'),
    tokensPerSec: boundedInt(v.tokensPerSec, 0, HOLDER_RECORD_LIMITS.maxTokensPerSec, 'capacity.tokensPerSec'),
  };
}

/** 'int8' stays, 'f32' and absent mean float32 (returned as undefined: the record then has no weights field). */
function checkWeights(v: unknown): 'int8' | undefined {
  if (v === undefined || v === 'f32') return undefined;
  if (v === 'int8') return 'int8';
  throw malformed(`weights must be "int8" or "f32" (or absent: float32), got ${typeof v === 'string' ? JSON.stringify(v.slice(0, 16)) : typeof v}`, 'weights');
}

function checkTimes(timestamp: unknown, expires: unknown): { timestampMs: number; expiresMs: number } {
  const timestampMs = boundedInt(timestamp, 1, Number.MAX_SAFE_INTEGER, 'timestampMs');
  const expiresMs = boundedInt(expires, 1, Number.MAX_SAFE_INTEGER, 'expiresMs');
  if (expiresMs <= timestampMs) throw malformed('expiresMs must be after timestampMs', 'expiresMs');
  if (expiresMs - timestampMs > HOLDER_RECORD_LIMITS.maxLifetimeMs) {
    throw malformed(`a record may be valid for at most ${HOLDER_RECORD_LIMITS.maxLifetimeMs} ms`, 'expiresMs');
  }
  return { timestampMs, expiresMs };
}

function checkSignature(v: unknown): string {
  if (typeof v !== 'string') throw malformed('signature must be a string', 'signature');
  if (v.length > SIGNATURE_B64_LENGTH) throw tooLarge('signature is too long', 'signature');
  if (!BASE64_RE.test(v)) throw malformed('signature must be 64 bytes in padded base64', 'signature');
  // Canonical base64 only: the last character before the padding must not carry stray low bits.
  if (Buffer.from(v, 'base64').toString('base64') !== v) throw malformed('signature is not canonical base64', 'signature');
  return v;
}

/** Validates the unsigned fields; shared by the JSON parser, the binary decoder and signHolderRecord. */
function checkFields(o: Record<string, unknown>): HolderRecordFields {
  const networkId = checkNetworkId(o.networkId);
  const peerId = checkPeerId(o.peerId);
  const multiaddrs = checkMultiaddrs(o.multiaddrs, peerId);
  const span = checkSpan(o.span);
  const capacity = checkCapacity(o.capacity);
  const weights = checkWeights(o.weights);
  const { timestampMs, expiresMs } = checkTimes(o.timestampMs, o.expiresMs);
  return { networkId, peerId, multiaddrs, span, capacity, ...(weights === undefined ? {} : { weights }), timestampMs, expiresMs };
}

/**
 * Strictly parses a HolderRecord from a decoded JSON value. Returns a fresh object that shares nothing with the
 * input. Throws PeerMisbehaviourError HOLDER_RECORD_MALFORMED / HOLDER_RECORD_TOO_LARGE. It does not check the
 * signature or the clock: that is verifyHolderRecord.
 */
export function parseHolderRecord(json: unknown): HolderRecord {
  if (!isPlainObject(json)) throw malformed('must be a JSON object');
  exactKeys(json, FIELDS, 'record', OPTIONAL_FIELDS);
  const fields = checkFields(json);
  return { ...fields, signature: checkSignature(json.signature) };
}

/** Parses the JSON text form, bounded in size. */
export function parseHolderRecordJson(text: string): HolderRecord {
  if (text.length > HOLDER_RECORD_LIMITS.maxJsonBytes) throw tooLarge(`JSON text is longer than ${HOLDER_RECORD_LIMITS.maxJsonBytes} characters`, 'record');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw malformed(`not JSON: ${(e as Error).message}`);
  }
  return parseHolderRecord(v);
}

/** The plain JSON object of a record, keys in canonical order (what the tracker stores and serves). */
export function holderRecordToJson(r: HolderRecord): HolderRecord {
  return {
    networkId: r.networkId,
    peerId: r.peerId,
    multiaddrs: [...r.multiaddrs],
    span: { start: r.span.start, end: r.span.end },
    capacity: { memoryMb: r.capacity.memoryMb, tokensPerSec: r.capacity.tokensPerSec },
    ...(r.weights === 'int8' ? { weights: 'int8' as const } : {}),
    timestampMs: r.timestampMs,
    expiresMs: r.expiresMs,
    signature: r.signature,
  };
}

export function serializeHolderRecordJson(r: HolderRecord): string {
  return JSON.stringify(holderRecordToJson(r));
}

// ---------------------------------------------------------------------------------------------------------------
// Canonical binary encoding

const encoder = new TextEncoder();
// ignoreBOM keeps a leading U+FEFF in the string (the field checks then refuse it) instead of silently dropping it,
// which would let "BOM ‖ text" be a second binary form of the same record.
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

class Writer {
  private readonly parts: Uint8Array[] = [];
  private n = 0;
  private push(b: Uint8Array): void {
    this.parts.push(b);
    this.n += b.byteLength;
  }
  u8(v: number): void {
    this.push(Uint8Array.of(v));
  }
  u16(v: number): void {
    const b = new Uint8Array(2);
    new DataView(b.buffer).setUint16(0, v);
    this.push(b);
  }
  u32(v: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v);
    this.push(b);
  }
  u64(v: number): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(v));
    this.push(b);
  }
  str(s: string): void {
    const b = encoder.encode(s);
    if (b.byteLength > 0xffff) throw new RangeError('string longer than 65535 bytes');
    this.u16(b.byteLength);
    this.push(b);
  }
  bytes(b: Uint8Array): void {
    this.push(b);
  }
  finish(): Uint8Array {
    const out = new Uint8Array(this.n);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.byteLength;
    }
    return out;
  }
}

class Reader {
  private o = 0;
  private readonly view: DataView;
  constructor(private readonly b: Uint8Array) {
    this.view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }
  private need(n: number): void {
    if (this.o + n > this.b.byteLength) throw malformed('binary record is truncated');
  }
  u8(): number {
    this.need(1);
    return this.view.getUint8(this.o++);
  }
  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.o);
    this.o += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.o);
    this.o += 4;
    return v;
  }
  u64(): number {
    this.need(8);
    const v = this.view.getBigUint64(this.o);
    this.o += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed('binary record holds a time beyond 2^53');
    return Number(v);
  }
  str(max: number, field: string): string {
    const n = this.u16();
    if (n > max) throw tooLarge(`${field} is longer than ${max} bytes`, field);
    this.need(n);
    let s: string;
    try {
      s = decoder.decode(this.b.subarray(this.o, this.o + n));
    } catch {
      throw malformed(`${field} is not UTF-8`, field);
    }
    this.o += n;
    return s;
  }
  bytes(n: number): Uint8Array {
    this.need(n);
    const v = this.b.slice(this.o, this.o + n);
    this.o += n;
    return v;
  }
  get remaining(): number {
    return this.b.byteLength - this.o;
  }
}

/**
 * The canonical payload that is signed: every field except the signature (see the file comment). The fields are
 * validated first, so only a well-formed record has a canonical encoding.
 */
export function canonicalEncode(fields: HolderRecordFields): Uint8Array {
  return encodeChecked(checkFields(fields as unknown as Record<string, unknown>));
}

function encodeChecked(f: HolderRecordFields): Uint8Array {
  const w = new Writer();
  const int8 = f.weights === 'int8';
  w.u8(int8 ? HOLDER_RECORD_VERSION_INT8 : HOLDER_RECORD_VERSION);
  w.str(f.networkId);
  w.str(f.peerId);
  w.u8(f.multiaddrs.length);
  for (const a of f.multiaddrs) w.str(a);
  w.u32(f.span.start);
  w.u32(f.span.end);
  w.u32(f.capacity.memoryMb);
  w.u32(f.capacity.tokensPerSec);
  if (int8) w.u8(WEIGHTS_INT8);
  w.u64(f.timestampMs);
  w.u64(f.expiresMs);
  return w.finish();
}

/** The binary wire form: canonical payload ‖ 64 raw signature bytes. */
export function encodeHolderRecord(r: HolderRecord): Uint8Array {
  const payload = canonicalEncode(r);
  const sig = Buffer.from(checkSignature(r.signature), 'base64');
  const w = new Writer();
  w.bytes(payload);
  w.bytes(new Uint8Array(sig.buffer, sig.byteOffset, sig.byteLength));
  return w.finish();
}

/** Strictly decodes the binary wire form; the result passes the same checks as parseHolderRecord. */
export function decodeHolderRecord(bytes: Uint8Array): HolderRecord {
  if (!(bytes instanceof Uint8Array)) throw malformed('binary record must be bytes');
  if (bytes.byteLength > HOLDER_RECORD_LIMITS.maxEncodedBytes) {
    throw tooLarge(`binary record is larger than ${HOLDER_RECORD_LIMITS.maxEncodedBytes} bytes`, 'record');
  }
  const r = new Reader(bytes);
  const version = r.u8();
  if (version !== HOLDER_RECORD_VERSION && version !== HOLDER_RECORD_VERSION_INT8) throw malformed(`unknown record version ${version}`, 'version');
  const networkId = r.str(HOLDER_RECORD_LIMITS.maxNetworkIdLength, 'networkId');
  const peerId = r.str(HOLDER_RECORD_LIMITS.maxPeerIdLength, 'peerId');
  const count = r.u8();
  if (count > HOLDER_RECORD_LIMITS.maxMultiaddrs) throw tooLarge(`more than ${HOLDER_RECORD_LIMITS.maxMultiaddrs} multiaddrs`, 'multiaddrs');
  const multiaddrs: string[] = [];
  for (let i = 0; i < count; i++) multiaddrs.push(r.str(HOLDER_RECORD_LIMITS.maxMultiaddrLength, `multiaddrs[${i}]`));
  const span = { start: r.u32(), end: r.u32() };
  const capacity = { memoryMb: r.u32(), tokensPerSec: r.u32() };
  let weights: 'int8' | undefined;
  if (version === HOLDER_RECORD_VERSION_INT8) {
    const b = r.u8();
    // only int8 has a version 2 form: a float32 record is version 1, so any other byte is a second encoding or junk
    if (b !== WEIGHTS_INT8) throw malformed(`unknown weights byte ${b} in a version ${version} record`, 'weights');
    weights = 'int8';
  }
  const timestampMs = r.u64();
  const expiresMs = r.u64();
  const sig = r.bytes(SIGNATURE_BYTES);
  if (r.remaining !== 0) throw malformed(`${r.remaining} trailing bytes after the signature`);
  const fields = checkFields({ networkId, peerId, multiaddrs, span, capacity, weights, timestampMs, expiresMs });
  return { ...fields, signature: Buffer.from(sig).toString('base64') };
}

// ---------------------------------------------------------------------------------------------------------------
// Signing and verification

/**
 * Signs the fields with the node key. The key must be the one inside fields.peerId (checked, so a node cannot
 * publish a record nobody will accept). Throws HOLDER_RECORD_MALFORMED for bad fields.
 */
export function signHolderRecord(key: NodeKey, fields: HolderRecordFields): HolderRecord {
  const f = checkFields(fields as unknown as Record<string, unknown>);
  const pub = publicKeyFromPeerId(f.peerId);
  if (Buffer.compare(Buffer.from(pub), Buffer.from(key.publicKey)) !== 0) {
    throw malformed('peerId is not the id of the signing key', 'peerId');
  }
  const sig = signDomain(key, HOLDER_RECORD_DOMAIN, encodeChecked(f));
  return { ...f, signature: Buffer.from(sig).toString('base64') };
}

/**
 * Checks a parsed record against the clock and its signature. Cheap clock checks run first, so a flood of stale
 * records costs no signature verification. Never throws for a bad record.
 */
export function verifyHolderRecord(rec: HolderRecord, opts: VerifyHolderRecordOptions): HolderRecordVerdict {
  const { nowMs, maxSkewMs } = opts;
  if (rec.expiresMs <= nowMs) return { ok: false, reason: 'expired', message: `record expired ${nowMs - rec.expiresMs} ms ago` };
  if (rec.timestampMs > nowMs + maxSkewMs) {
    return { ok: false, reason: 'from_future', message: `record is signed ${rec.timestampMs - nowMs} ms in the future (allowed skew ${maxSkewMs} ms)` };
  }
  if (opts.maxAgeMs !== undefined && rec.timestampMs < nowMs - opts.maxAgeMs) {
    return { ok: false, reason: 'too_old', message: `record was signed ${nowMs - rec.timestampMs} ms ago (at most ${opts.maxAgeMs} ms allowed)` };
  }
  let pub: Uint8Array;
  try {
    pub = publicKeyFromPeerId(rec.peerId);
  } catch (e) {
    return { ok: false, reason: 'peer_id_invalid', message: (e as Error).message };
  }
  let payload: Uint8Array;
  let sig: Uint8Array;
  try {
    payload = canonicalEncode(rec);
    sig = new Uint8Array(Buffer.from(checkSignature(rec.signature), 'base64'));
  } catch (e) {
    // verifyHolderRecord is meant for parsed records; an unparsed one simply does not verify
    return { ok: false, reason: 'bad_signature', message: (e as Error).message };
  }
  if (!verifyDomain(pub, HOLDER_RECORD_DOMAIN, payload, sig)) {
    return { ok: false, reason: 'bad_signature', message: 'signature does not verify against the key of peerId' };
  }
  return { ok: true, publicKey: pub };
}

/** Whether a record's span covers layer `layer` (start ≤ layer < end). */
export function spanCovers(span: LayerSpan, layer: number): boolean {
  return span.start <= layer && layer < span.end;
}

/** What a node knows about itself when it signs a record; the key supplies peerId, the clock the times. */
export interface HolderRecordContent {
  networkId: string;
  multiaddrs: string[];
  span: LayerSpan;
  capacity: HolderCapacity;
  /** How the node holds its weights (`--weights`); absent or 'f32': a float32 record. */
  weights?: HolderWeights;
}

/** Signs a fresh record valid from `nowMs` for `lifetimeMs`, with the peerId of `key`. */
export function freshHolderRecord(key: NodeKey, content: HolderRecordContent, nowMs: number, lifetimeMs: number): HolderRecord {
  return signHolderRecord(key, {
    networkId: content.networkId,
    peerId: peerIdFromPublicKey(key.publicKey),
    multiaddrs: content.multiaddrs,
    span: content.span,
    capacity: content.capacity,
    ...(content.weights === 'int8' ? { weights: 'int8' as const } : {}),
    timestampMs: nowMs,
    expiresMs: nowMs + lifetimeMs,
  });
}

/**
 * The record's multiaddrs as dial targets: each ends in /p2p/<peerId> (appended where missing), so the dialer
 * checks during the handshake that it reached the signer and not whoever answers at that address.
 */
export function dialAddresses(rec: HolderRecord): string[] {
  const suffix = `/p2p/${rec.peerId}`;
  return rec.multiaddrs.map((a) => (a.endsWith(suffix) ? a : a + suffix));
}

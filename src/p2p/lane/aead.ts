/**
 * The lane's keys and its sealed frames (docs/PROTOCOL.md "Direct data lane").
 *
 * Keys: both ends send an ephemeral X25519 public key over a libp2p stream (noise already authenticated that
 * stream to the peer id); the shared secret goes through HKDF-SHA256 with a salt binding both peer ids, both
 * ephemeral keys and the lane id, and gives one AES-256-GCM key per direction. A man in the middle of the lane's
 * TCP socket holds neither key.
 *
 * Frame on the socket:  u32 big-endian n · ciphertext (n - 16 bytes) · tag (16 bytes)
 * nonce               = 4 zero bytes · u64 big-endian frame counter of that direction (0, 1, 2, ...)
 * additional data     = the 4 length bytes
 *
 * The opener uses the counter it expects, never one taken from the wire: a replayed, reordered, dropped or
 * spliced frame fails its tag (LANE_AUTH) and the lane closes. The tag is checked (`final()`) before the caller
 * sees a byte of the plaintext. Each direction stops after MAX_FRAMES frames (far below GCM's limits); the lane
 * is then closed and a fresh one made with fresh keys.
 *
 * Two implementations of the same bytes (test/unit/p2p/lane-aead.test.ts: NIST vectors, cross-checks): the small
 * `neuroshard_aead` addon (src/tensor/native/aead.cc: OpenSSL's AES-256-GCM, or since session 23 its own VAES-512
 * kernel where the CPU has one, NEUROSHARD_LANE_GCM=openssl to keep OpenSSL's; lane-aead-vaes.test.ts), one
 * context per direction keyed once and given only a new IV per frame (~1 µs of overhead a frame), and Node's
 * `crypto`, a new `createCipheriv` per frame (8-10 µs), used where the addon is not built (NEUROSHARD_SKIP_NATIVE=1
 * at install) or NEUROSHARD_LANE_AEAD=js.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createCipheriv, createDecipheriv, type DecipherGCM, diffieHellman, generateKeyPairSync, hkdfSync, createHash, type KeyObject, createPublicKey } from 'node:crypto';
import { findPackageRoot } from '../../util/package-root.js';
import { LaneError } from './errors.js';

export const CIPHER = 'aes-256-gcm';
export const TAG_BYTES = 16;
export const LENGTH_BYTES = 4;
export const X25519_PUBLIC_BYTES = 32;
/** Frames one direction of one lane may carry (2^32): a lane that used them all is closed and replaced. */
export const MAX_FRAMES = 2 ** 32;
const INFO = Buffer.from('neuroshard lane v1 keys');
const SALT_LABEL = Buffer.from('neuroshard lane v1 salt');
/** DER prefix of an X25519 SubjectPublicKeyInfo (RFC 8410): the raw 32-byte key follows. */
const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

export interface EphemeralKey {
  privateKey: KeyObject;
  /** The raw 32-byte public key. */
  publicRaw: Buffer;
}

export function ephemeralKey(): EphemeralKey {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return { privateKey, publicRaw: Buffer.from(der.subarray(der.length - X25519_PUBLIC_BYTES)) };
}

export interface LaneKeys {
  /** Key of what the dialling end (client) sends. */
  clientToServer: Buffer;
  serverToClient: Buffer;
}

/**
 * The two direction keys. `clientPeer`/`serverPeer` are the libp2p peer ids of the dialler and the listener as
 * each end knows them from its authenticated stream. Throws LANE_HANDSHAKE on a malformed or low-order public key.
 */
export function deriveLaneKeys(
  mine: EphemeralKey,
  theirPublicRaw: Uint8Array,
  binding: { clientPeer: string; serverPeer: string; clientPublic: Uint8Array; serverPublic: Uint8Array; laneId: Uint8Array },
): LaneKeys {
  if (theirPublicRaw.byteLength !== X25519_PUBLIC_BYTES) throw new LaneError('LANE_HANDSHAKE', `x25519 key of ${theirPublicRaw.byteLength} bytes`);
  let shared: Buffer;
  try {
    const pub = createPublicKey({ key: Buffer.concat([X25519_SPKI_PREFIX, theirPublicRaw]), format: 'der', type: 'spki' });
    shared = diffieHellman({ privateKey: mine.privateKey, publicKey: pub });
  } catch (e) {
    throw new LaneError('LANE_HANDSHAKE', `x25519 key agreement failed: ${(e as Error).message}`, undefined, e);
  }
  // a low-order point gives the all-zero secret (RFC 7748 §6.1): refuse it
  if (shared.every((b) => b === 0)) throw new LaneError('LANE_HANDSHAKE', 'x25519 shared secret is zero (low-order key)');
  const h = createHash('sha256');
  const lp = (b: Uint8Array): void => {
    const n = Buffer.alloc(4);
    n.writeUInt32BE(b.byteLength);
    h.update(n);
    h.update(b);
  };
  lp(SALT_LABEL);
  lp(Buffer.from(binding.clientPeer));
  lp(Buffer.from(binding.serverPeer));
  lp(binding.clientPublic);
  lp(binding.serverPublic);
  lp(binding.laneId);
  const salt = h.digest();
  const okm = Buffer.from(hkdfSync('sha256', shared, salt, INFO, 64));
  return { clientToServer: okm.subarray(0, 32), serverToClient: okm.subarray(32, 64) };
}

/** One AES-256-GCM context of the addon (src/tensor/native/aead.cc). */
export interface GcmContext {
  begin(iv: Uint8Array, aad: Uint8Array): void;
  update(src: Uint8Array, dst: Uint8Array, at?: number): void;
  finishEncrypt(dst: Uint8Array, at?: number): void;
  finishDecrypt(tag: Uint8Array, at?: number): boolean;
  /** The kernel this context runs: the addon's own VAES-512 one or OpenSSL's. */
  kernel?(): 'vaes512' | 'openssl';
}
/** `kernel`: 'auto' (default: the VAES-512 kernel where the CPU has it) or 'openssl'. */
export type GcmContextCtor = new (key: Uint8Array, encrypt: boolean, kernel?: 'auto' | 'openssl') => GcmContext;

/**
 * The addon's kernel choice: NEUROSHARD_LANE_GCM=openssl keeps OpenSSL's AES-GCM (A/B runs, or distrust of the
 * addon's own kernel); otherwise the addon uses its VAES-512 kernel where the CPU has VAES, VPCLMULQDQ and AVX-512
 * (aead.cc `vgcm`, session 23) and OpenSSL's elsewhere. The bytes are the same either way.
 */
function gcmKernel(): 'auto' | 'openssl' {
  return process.env.NEUROSHARD_LANE_GCM === 'openssl' ? 'openssl' : 'auto';
}

let gcm: GcmContextCtor | null | undefined;
let gcmWhy = '';

/**
 * The addon's GCM context class, or null (with why: `aeadBackend()`) when it is not built, fails to load or
 * NEUROSHARD_LANE_AEAD=js asks for Node's crypto. Loaded once.
 */
function nativeGcm(ignoreEnv = false): GcmContextCtor | null {
  if (gcm !== undefined) return gcm;
  gcm = null;
  if (!ignoreEnv && process.env.NEUROSHARD_LANE_AEAD === 'js') {
    gcmWhy = 'NEUROSHARD_LANE_AEAD=js';
    return gcm;
  }
  const root = findPackageRoot();
  const path = root === undefined ? undefined : join(root, 'build', 'Release', 'neuroshard_aead.node');
  if (path === undefined || !existsSync(path)) {
    gcmWhy = `${path ?? 'build/Release/neuroshard_aead.node'} does not exist`;
    return gcm;
  }
  try {
    const mod = createRequire(import.meta.url)(path) as { GcmContext?: unknown };
    if (typeof mod.GcmContext !== 'function') throw new Error('no GcmContext export');
    gcm = mod.GcmContext as GcmContextCtor;
  } catch (e) {
    gcmWhy = `${path} failed to load: ${(e as Error).message}`;
  }
  return gcm;
}

/**
 * Which AES-256-GCM the lane's frames use: 'openssl' (the addon, with its kernel: its own VAES-512 one or OpenSSL's)
 * or 'node' (node:crypto), with why when 'node'.
 */
export function aeadBackend(): { backend: 'openssl' | 'node'; kernel?: 'vaes512' | 'openssl'; why?: string } {
  const G = nativeGcm();
  if (G === null) return { backend: 'node', why: gcmWhy };
  return { backend: 'openssl', kernel: new G(Buffer.alloc(32), true, gcmKernel()).kernel?.() ?? 'openssl' };
}

/** Tests: force one implementation (undefined: back to the default choice). */
export function setAeadBackendForTests(b: 'openssl' | 'node' | undefined): void {
  if (b === undefined) {
    gcm = undefined;
    return;
  }
  if (b === 'node') {
    gcm = null;
    gcmWhy = 'forced by a test';
    return;
  }
  gcm = undefined;
  if (nativeGcm(true) === null) throw new Error(`the aead addon is not available: ${gcmWhy}`);
}

/**
 * Largest buffer a sealed frame is written in (the addon's path): a frame larger than this is sealed into several
 * buffers, handed on one after another as each is sealed (./lane.ts writes a large frame's buffers corked into one
 * writev since session 23).
 */
export const SEAL_PIECE_BYTES = 256 * 1024;

/**
 * Spare SEAL_PIECE_BYTES buffers for sealing, shared by every lane of the process (at most MAX_SPARE_PIECES, 4 MiB).
 * A fresh 256 KiB buffer that the cipher fills costs 2-6x the cipher's own work on this machine (page faults and
 * zeroing of new pages, then its unmapping; docs/LIMITS.md "Session 22: 1 MiB on the lane"); a buffer comes back
 * here once the socket has written it (./lane.ts). Only ciphertext ever lies in them.
 */
const spares: Buffer[] = [];
export const MAX_SPARE_PIECES = 16;

/** A SEAL_PIECE_BYTES buffer: a spare one when there is one. */
export function takePiece(): Buffer {
  return spares.pop() ?? Buffer.allocUnsafeSlow(SEAL_PIECE_BYTES);
}

/** Gives back a buffer of `takePiece` that nothing refers to any more (the socket wrote it). */
export function givePiece(b: Buffer): void {
  if (b.length === SEAL_PIECE_BYTES && b.byteOffset === 0 && b.buffer.byteLength === SEAL_PIECE_BYTES && spares.length < MAX_SPARE_PIECES) spares.push(b);
}

/** Spare pieces held now (tests). */
export function sparePieces(): number {
  return spares.length;
}

/**
 * The sizes of the buffers a sealed frame of `total` bytes (length, ciphertext, tag) is written in: SEAL_PIECE_BYTES
 * each, the last one the rest, ≥ TAG_BYTES (so that the tag lies in it: the piece before gives up what is missing).
 */
export function pieceSizes(total: number): number[] {
  const sizes: number[] = [];
  let r = total;
  for (; r > SEAL_PIECE_BYTES; r -= SEAL_PIECE_BYTES) sizes.push(SEAL_PIECE_BYTES);
  if (r < TAG_BYTES && sizes.length > 0) {
    sizes[sizes.length - 1]! -= TAG_BYTES - r;
    r = TAG_BYTES;
  }
  sizes.push(r);
  return sizes;
}

/** Parts below this total are joined before sealing with node:crypto (one cipher update, one write). */
const JOIN_BELOW = 64 * 1024;

function nonceOf(counter: number, iv: Buffer): Buffer {
  iv.writeUInt32BE(0, 0);
  iv.writeUInt32BE(Math.floor(counter / 2 ** 32), 4);
  iv.writeUInt32BE(counter >>> 0, 8);
  return iv;
}

/** Seals the frames of one direction, numbering them 0, 1, 2, ... */
export class Sealer {
  private counter = 0;
  private readonly iv = Buffer.alloc(12);
  private readonly ctx: GcmContext | undefined;

  constructor(private readonly key: Buffer) {
    const G = nativeGcm();
    this.ctx = G === null ? undefined : new G(key, true, gcmKernel());
  }

  get framesSealed(): number {
    return this.counter;
  }

  /** True with the addon's cipher (a frame comes out in buffers of at most SEAL_PIECE_BYTES, each as it is sealed). */
  get native(): boolean {
    return this.ctx !== undefined;
  }

  /**
   * The frame holding `parts` joined (their total must be ≥ 0), as buffers to write in order: with the addon
   * [length, ciphertext, tag] in buffers of at most SEAL_PIECE_BYTES (one for a frame that fits; the cipher writes
   * each part's ciphertext in place, no other copy); with node:crypto [length, ciphertext pieces..., tag], small
   * parts joined first.
   */
  seal(parts: readonly Uint8Array[]): Buffer[] {
    const out: Buffer[] = [];
    this.sealEach(parts, (b) => out.push(b));
    return out;
  }

  /**
   * `seal`, each buffer handed to `emit` as soon as it is sealed (no array of them; the lane hands each to its
   * socket, a large frame's corked into one writev).
   */
  sealEach(parts: readonly Uint8Array[], emit: (b: Buffer) => void): void {
    if (this.counter >= MAX_FRAMES) throw new LaneError('LANE_CLOSED', 'lane used all its frame numbers');
    let n = TAG_BYTES;
    for (const p of parts) n += p.byteLength;
    const iv = nonceOf(this.counter++, this.iv);
    if (this.ctx !== undefined) {
      const ctx = this.ctx;
      // [length · ciphertext · tag] in buffers of at most SEAL_PIECE_BYTES; the tag never straddles two of them
      const sizes = pieceSizes(LENGTH_BYTES + n);
      const alloc = (k: number): Buffer => (k === SEAL_PIECE_BYTES ? takePiece() : Buffer.allocUnsafe(k));
      let piece = alloc(sizes[0]!);
      piece.writeUInt32BE(n, 0);
      ctx.begin(iv, piece.subarray(0, LENGTH_BYTES));
      let pi = 0;
      let at = LENGTH_BYTES;
      for (const p of parts) {
        for (let from = 0; from < p.byteLength; ) {
          if (at === piece.length) {
            emit(piece);
            piece = alloc(sizes[++pi]!);
            at = 0;
          }
          const k = Math.min(p.byteLength - from, piece.length - at);
          ctx.update(k === p.byteLength ? p : p.subarray(from, from + k), piece, at);
          from += k;
          at += k;
        }
      }
      if (pi < sizes.length - 1) {
        // the ciphertext ended exactly where a piece ended: the last piece is the tag alone
        emit(piece);
        piece = alloc(sizes[++pi]!);
        at = 0;
      }
      ctx.finishEncrypt(piece, at);
      emit(piece);
      return;
    }
    const len = Buffer.allocUnsafe(LENGTH_BYTES);
    len.writeUInt32BE(n);
    const c = createCipheriv(CIPHER, this.key, iv, { authTagLength: TAG_BYTES });
    c.setAAD(len);
    emit(len);
    if (n - TAG_BYTES < JOIN_BELOW && parts.length > 1) emit(c.update(Buffer.concat(parts, n - TAG_BYTES)));
    else for (const p of parts) emit(c.update(p));
    c.final();
    emit(c.getAuthTag());
  }
}

/** Opens the frames of one direction in order; any failure is final (the lane closes). */
export class Opener {
  private counter = 0;
  private readonly iv = Buffer.alloc(12);
  private readonly len = Buffer.alloc(LENGTH_BYTES);
  private readonly ctx: GcmContext | undefined;
  /**
   * The frame being opened piece by piece (`begin` … `finish`): where its plaintext goes (`segs`: the buffer `begin`
   * was given or made, then any `continueInto` gave), the one being written (`cur`, from `at`), and the bytes of
   * ciphertext still to come.
   */
  private stream: { segs: Uint8Array[]; cur: Uint8Array; at: number; left: number; decipher?: DecipherGCM } | undefined;

  constructor(private readonly key: Buffer) {
    const G = nativeGcm();
    this.ctx = G === null ? undefined : new G(key, false, gcmKernel());
  }

  get framesOpened(): number {
    return this.counter;
  }

  /**
   * The plaintext of the next frame, given its ciphertext pieces (in order) and tag. Throws LANE_AUTH when the tag
   * does not verify; no plaintext is returned then. `consume` (the lane: it owns its socket's chunks and reads each
   * once) lets the addon decrypt a frame in one piece in place, so that the plaintext returned is that piece and
   * its bytes are no longer ciphertext afterwards; otherwise the pieces are left as they were. Several pieces are
   * decrypted straight into one new buffer (one pass, no join before).
   */
  open(cipherPieces: readonly Uint8Array[], tag: Uint8Array, consume = false): Buffer {
    if (this.counter >= MAX_FRAMES) throw new LaneError('LANE_CLOSED', 'lane used all its frame numbers');
    let n = TAG_BYTES;
    for (const p of cipherPieces) n += p.byteLength;
    this.len.writeUInt32BE(n);
    const iv = nonceOf(this.counter, this.iv);
    if (this.ctx !== undefined) {
      let out: Buffer;
      this.ctx.begin(iv, this.len);
      if (cipherPieces.length === 1 && consume) {
        const p = cipherPieces[0]!;
        out = Buffer.isBuffer(p) ? p : Buffer.from(p.buffer, p.byteOffset, p.byteLength);
        this.ctx.update(p, p);
      } else {
        // one pass: each piece decrypted straight into its place in the joined plaintext
        out = Buffer.allocUnsafe(n - TAG_BYTES);
        let o = 0;
        for (const p of cipherPieces) {
          this.ctx.update(p, out, o);
          o += p.byteLength;
        }
      }
      if (!this.ctx.finishDecrypt(tag)) {
        out.fill(0); // nothing of a forged frame's plaintext stays around
        throw this.authError();
      }
      this.counter++;
      return out;
    }
    const d = createDecipheriv(CIPHER, this.key, iv, { authTagLength: TAG_BYTES });
    d.setAAD(this.len);
    d.setAuthTag(tag);
    const out: Buffer[] = [];
    for (const p of cipherPieces) out.push(d.update(p));
    try {
      d.final();
    } catch {
      throw this.authError();
    }
    this.counter++;
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }

  /**
   * Streaming opening of one frame (the lane's reader, ./reader.ts): `begin` once its length is known, `update` with
   * each piece of ciphertext as the socket delivers it (decrypted at once into the frame's plaintext buffer, the
   * piece itself left untouched), `finish` with the tag. The plaintext is returned only by `finish`, after the tag
   * verified: before that nothing of it may be parsed. On LANE_AUTH it is zeroed first. `body`: n of the frame
   * (ciphertext + tag bytes), ≥ TAG_BYTES.
   *
   * `first` (session 27): where the plaintext goes, possibly only its first bytes: once those are written the caller
   * says where the rest goes (`continueInto`; the lane's reader decrypts a frame's sub-frame header into a small
   * buffer and then, for a DATA that a stream's reader has a place for, the payload straight into that place).
   * Without it, one buffer of the plaintext's size is made.
   */
  begin(body: number, first?: Uint8Array): void {
    if (this.counter >= MAX_FRAMES) throw new LaneError('LANE_CLOSED', 'lane used all its frame numbers');
    if (this.stream !== undefined) throw new Error('Opener.begin inside a frame');
    this.len.writeUInt32BE(body);
    const iv = nonceOf(this.counter, this.iv);
    const left = body - TAG_BYTES;
    if (first !== undefined && first.byteLength > left) throw new RangeError(`a first buffer of ${first.byteLength} bytes for ${left} bytes of plaintext`);
    const cur = first ?? Buffer.allocUnsafe(left);
    if (this.ctx !== undefined) {
      this.ctx.begin(iv, this.len);
      this.stream = { segs: [cur], cur, at: 0, left };
      return;
    }
    const d = createDecipheriv(CIPHER, this.key, iv, { authTagLength: TAG_BYTES });
    d.setAAD(this.len);
    this.stream = { segs: [cur], cur, at: 0, left, decipher: d };
  }

  /** The current buffer is full: the next `dst.byteLength` bytes of plaintext go into `dst`. */
  continueInto(dst: Uint8Array): void {
    const st = this.stream;
    if (st === undefined || st.at !== st.cur.byteLength) throw new Error('Opener.continueInto before the current buffer is full');
    if (dst.byteLength > st.left) throw new RangeError(`a buffer of ${dst.byteLength} bytes for ${st.left} bytes of plaintext`);
    st.segs.push(dst);
    st.cur = dst;
    st.at = 0;
  }

  /** The next piece of the frame's ciphertext (in order; their total is the frame's n − 16). */
  update(piece: Uint8Array): void {
    const st = this.stream;
    if (st === undefined) throw new Error('Opener.update outside a frame');
    if (piece.byteLength > st.left) throw new LaneError('LANE_MALFORMED', 'ciphertext past the frame length');
    if (piece.byteLength > st.cur.byteLength - st.at) throw new Error('Opener.update past its buffer (continueInto first)');
    if (this.ctx !== undefined) this.ctx.update(piece, st.cur, st.at);
    else st.cur.set(st.decipher!.update(piece), st.at);
    st.at += piece.byteLength;
    st.left -= piece.byteLength;
  }

  /**
   * Checks the tag: the frame's plaintext (the first buffer; the caller knows any it gave to `continueInto`), or
   * LANE_AUTH (every buffer of it zeroed, nothing returned).
   */
  finish(tag: Uint8Array): Buffer {
    const st = this.stream;
    if (st === undefined || st.left !== 0) throw new Error('Opener.finish before the whole ciphertext');
    this.stream = undefined;
    let ok: boolean;
    if (this.ctx !== undefined) ok = this.ctx.finishDecrypt(tag);
    else {
      st.decipher!.setAuthTag(tag);
      try {
        st.decipher!.final();
        ok = true;
      } catch {
        ok = false;
      }
    }
    if (!ok) {
      for (const b of st.segs) b.fill(0); // nothing of a forged frame's plaintext stays around
      throw this.authError();
    }
    this.counter++;
    const p = st.segs[0]!;
    return Buffer.isBuffer(p) ? p : Buffer.from(p.buffer, p.byteOffset, p.byteLength);
  }

  private authError(): LaneError {
    return new LaneError('LANE_AUTH', `frame ${this.counter} does not authenticate (tampered, replayed, reordered or another key)`, { frame: this.counter });
  }
}

import { createHash, hash } from 'node:crypto';

/**
 * SHA-256 of bytes or a UTF-8 string. The one-shot crypto.hash (Node >= 20.12) makes no Hash object: about half the
 * cost of createHash for the short inputs of the ledger (ids, account ids, signing digests: several per event).
 */
export function sha256(data: Uint8Array | string): Uint8Array {
  const b = hash('sha256', data, 'buffer');
  // Callers may take the result's .buffer whole, so it must be the digest's alone: Node makes the digest's Buffer with
  // an ArrayBuffer of its own (32 bytes), taken as is; a pooled one (a larger buffer, which would leak) is copied.
  return b.byteOffset === 0 && b.buffer.byteLength === b.byteLength ? new Uint8Array(b.buffer, 0, b.byteLength) : new Uint8Array(b);
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

export function fromHex(s: string): Uint8Array {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) throw new TypeError('invalid hex string');
  return new Uint8Array(Buffer.from(s, 'hex'));
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.byteLength;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Little-endian view of a Float32Array's bytes without copying. */
export function f32Bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

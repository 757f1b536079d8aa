/**
 * A token shard file (format version 1): a 16-byte header, then the token ids as little-endian uint16.
 *
 * | offset | size | field |
 * | --- | --- | --- |
 * | 0 | 4 | magic `NSTK` (0x4e 0x53 0x54 0x4b) |
 * | 4 | 2 | format version, uint16 LE = 1 |
 * | 6 | 2 | bytes per token, uint16 LE = 2 |
 * | 8 | 4 | token count, uint32 LE |
 * | 12 | 4 | vocabulary size, uint32 LE: every id is below it |
 * | 16 | 2·count | token ids, uint16 LE |
 *
 * Integrity comes from the manifest's SHA-256 of the whole file; the header lets a reader reject a truncated or
 * foreign file with a precise message, and `decodeShard` checks every id against the vocabulary size, so a shard
 * can never feed an out-of-range id to an embedding.
 */
import { NeuroShardError, type Fault } from '../util/errors.js';

export const SHARD_MAGIC = 0x4b54534e; // "NSTK" read as uint32 LE
export const SHARD_FORMAT_VERSION = 1;
export const SHARD_HEADER_BYTES = 16;

/** A shard file that does not parse. */
export class ShardFormatError extends NeuroShardError {
  constructor(message: string, fault: Fault, meta?: Record<string, unknown>) {
    super('SHARD_INVALID', message, { fault, meta });
  }
}

/** Size in bytes of a shard file holding `tokens` ids. */
export function shardFileBytes(tokens: number): number {
  return SHARD_HEADER_BYTES + 2 * tokens;
}

/** Serialises token ids (each must be < vocabSize ≤ 65,536). */
export function encodeShard(tokens: ArrayLike<number>, vocabSize: number): Uint8Array {
  if (!Number.isInteger(vocabSize) || vocabSize < 1 || vocabSize > 65_536) throw new RangeError(`vocabSize ${vocabSize} not in [1, 65536]`);
  const out = new Uint8Array(shardFileBytes(tokens.length));
  const dv = new DataView(out.buffer);
  dv.setUint32(0, SHARD_MAGIC, true);
  dv.setUint16(4, SHARD_FORMAT_VERSION, true);
  dv.setUint16(6, 2, true);
  dv.setUint32(8, tokens.length, true);
  dv.setUint32(12, vocabSize, true);
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (!Number.isInteger(t) || t < 0 || t >= vocabSize) throw new RangeError(`token ${t} at ${i} not in [0, ${vocabSize})`);
    dv.setUint16(SHARD_HEADER_BYTES + 2 * i, t, true);
  }
  return out;
}

/**
 * Parses a shard file and checks it against what the manifest promised (token count, vocabulary size). Returns
 * the ids as a fresh Uint16Array. `fault` says whom to blame when it does not parse.
 */
export function decodeShard(bytes: Uint8Array, expect: { tokens: number; vocabSize: number }, fault: Fault = 'peer'): Uint16Array {
  if (bytes.byteLength < SHARD_HEADER_BYTES) throw new ShardFormatError(`shard is ${bytes.byteLength} bytes, shorter than its header`, fault);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dv.getUint32(0, true) !== SHARD_MAGIC) throw new ShardFormatError('shard does not start with NSTK', fault);
  const version = dv.getUint16(4, true);
  if (version !== SHARD_FORMAT_VERSION) throw new ShardFormatError(`shard format version ${version} is not ${SHARD_FORMAT_VERSION}`, fault);
  if (dv.getUint16(6, true) !== 2) throw new ShardFormatError('shard is not 2 bytes per token', fault);
  const count = dv.getUint32(8, true);
  const vocab = dv.getUint32(12, true);
  if (count !== expect.tokens) throw new ShardFormatError(`shard holds ${count} tokens, expected ${expect.tokens}`, fault);
  if (vocab !== expect.vocabSize) throw new ShardFormatError(`shard vocabulary is ${vocab}, expected ${expect.vocabSize}`, fault);
  if (bytes.byteLength !== shardFileBytes(count)) {
    throw new ShardFormatError(`shard is ${bytes.byteLength} bytes, expected ${shardFileBytes(count)}`, fault);
  }
  const out = new Uint16Array(count);
  for (let i = 0; i < count; i++) {
    const t = dv.getUint16(SHARD_HEADER_BYTES + 2 * i, true);
    if (t >= vocab) throw new ShardFormatError(`token ${t} at ${i} is outside the vocabulary of ${vocab}`, fault);
    out[i] = t;
  }
  return out;
}

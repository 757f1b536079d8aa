/**
 * Wallet addresses: bech32m (BIP 350) with human-readable prefix "neuro" over the first 20 bytes of
 * SHA-256(33-byte compressed public key). 44 characters, lower case, e.g. "neuro1…". The checksum catches any
 * single typo and most others, so a mistyped address is rejected instead of burning the money sent to it.
 */
import { bech32m } from '@scure/base';
import { sha256 } from '../util/bytes.js';
import { InvalidAddressError } from './errors.js';
import { PUBLIC_KEY_LENGTH } from './sign.js';

export const ADDRESS_PREFIX = 'neuro';
export const ADDRESS_BYTES = 20;
/** "neuro" + "1" + 32 data characters (20 bytes) + 6 checksum characters. */
export const ADDRESS_LENGTH = 44;

/** The 20-byte account id of a public key: SHA-256(compressed key)[0..20). */
export function accountIdFromPublicKey(pub: Uint8Array): Uint8Array {
  if (pub.byteLength !== PUBLIC_KEY_LENGTH) throw new InvalidAddressError('public key must be 33 bytes (compressed secp256k1)');
  return sha256(pub).subarray(0, ADDRESS_BYTES);
}

/** The bech32m address of a 20-byte account id. */
export function addressFromAccountId(id: Uint8Array): string {
  if (id.byteLength !== ADDRESS_BYTES) throw new InvalidAddressError('account id must be 20 bytes');
  return bech32m.encode(ADDRESS_PREFIX, bech32m.toWords(id));
}

export function addressFromPublicKey(pub: Uint8Array): string {
  return addressFromAccountId(accountIdFromPublicKey(pub));
}

/** Parses a `neuro1…` address into its 20-byte account id; a bad checksum, prefix or length is InvalidAddressError. */
export function parseAddress(addr: string): Uint8Array {
  if (typeof addr !== 'string' || addr.length !== ADDRESS_LENGTH) {
    throw new InvalidAddressError(`an address has ${ADDRESS_LENGTH} characters and starts with "${ADDRESS_PREFIX}1"`, { address: String(addr).slice(0, 100) });
  }
  let decoded: { prefix: string; words: number[] };
  try {
    // bech32 forbids mixed case; an all-upper-case address (QR codes) is valid and means the same.
    decoded = bech32m.decode(addr as `${string}1${string}`, ADDRESS_LENGTH);
  } catch (e) {
    throw new InvalidAddressError(`invalid address (checksum or characters): ${(e as Error).message}`, { address: addr });
  }
  if (decoded.prefix !== ADDRESS_PREFIX) throw new InvalidAddressError(`address prefix must be "${ADDRESS_PREFIX}", got "${decoded.prefix}"`, { address: addr });
  let bytes: Uint8Array;
  try {
    bytes = bech32m.fromWords(decoded.words);
  } catch (e) {
    throw new InvalidAddressError(`invalid address padding: ${(e as Error).message}`, { address: addr });
  }
  if (bytes.byteLength !== ADDRESS_BYTES) throw new InvalidAddressError('address must encode 20 bytes', { address: addr });
  return bytes;
}

/** True when `addr` parses. */
export function isAddress(addr: string): boolean {
  try {
    parseAddress(addr);
    return true;
  } catch {
    return false;
  }
}

/**
 * Mnemonic → key. One BIP39 English mnemonic (24 words when we generate it) yields one secp256k1 key:
 *
 *   seed = BIP39 mnemonicToSeed(mnemonic, passphrase "")           (PBKDF2-HMAC-SHA512, 2048 rounds, 64 bytes)
 *   key  = BIP32 (secp256k1) derive(seed, "m/44'/20051'/0'/0/0")    (20051 = 0x4E53, "NS"; not a SLIP-44 coin)
 *
 * The BIP32 path is standard, so any BIP32 tool reproduces the key from the phrase; the coin type of our own keeps
 * the key apart from the user's other wallets should they reuse a phrase. Test vectors: docs/PROTOCOL.md
 * "## Identity" and test/unit/identity/identity.test.ts.
 */
import { HDKey } from '@scure/bip32';
import { generateMnemonic as bip39Generate, mnemonicToSeedSync, validateMnemonic } from '@scure/bip39';
import { wordlist } from '@scure/bip39/wordlists/english.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { InvalidMnemonicError } from './errors.js';

export const DERIVATION_PATH = "m/44'/20051'/0'/0/0";

/** The node's one key. */
export interface NodeKey {
  /** 32-byte secp256k1 scalar. */
  privateKey: Uint8Array;
  /** 33-byte compressed public key. */
  publicKey: Uint8Array;
}

/** A fresh 24-word English mnemonic (256 bits of entropy from the platform CSPRNG). */
export function generateMnemonic(): string {
  return bip39Generate(wordlist, 256);
}

/**
 * Normalises what a person typed: NFKD, lower case, single spaces, trimmed. BIP39 itself NFKD-normalises, but
 * stray whitespace and capitals would otherwise fail the checksum for no good reason.
 */
export function normalizeMnemonic(mnemonic: string): string {
  return mnemonic.normalize('NFKD').trim().toLowerCase().split(/\s+/).join(' ');
}

/** Throws InvalidMnemonicError unless `mnemonic` is a valid 12-24 word English BIP39 phrase. */
export function checkMnemonic(mnemonic: string): string {
  if (typeof mnemonic !== 'string' || mnemonic.length > 1024) throw new InvalidMnemonicError('mnemonic must be a string of at most 1024 characters');
  const m = normalizeMnemonic(mnemonic);
  const words = m.split(' ');
  if (![12, 15, 18, 21, 24].includes(words.length)) {
    throw new InvalidMnemonicError(`mnemonic must have 12, 15, 18, 21 or 24 words, got ${words.length}`);
  }
  const unknown = words.findIndex((w) => !wordlist.includes(w));
  if (unknown >= 0) throw new InvalidMnemonicError(`word ${unknown + 1} of the mnemonic is not in the BIP39 English list`);
  if (!validateMnemonic(m, wordlist)) throw new InvalidMnemonicError('mnemonic checksum does not match (a word is wrong or out of order)');
  return m;
}

/** Derives the node key from a mnemonic (see the file comment for the exact derivation). */
export function keyFromMnemonic(mnemonic: string): NodeKey {
  const m = checkMnemonic(mnemonic);
  const seed = mnemonicToSeedSync(m, '');
  const child = HDKey.fromMasterSeed(seed).derive(DERIVATION_PATH);
  const privateKey = child.privateKey;
  if (privateKey === null) throw new Error('BIP32 derivation produced no private key'); // unreachable: a master seed always has one
  return keyFromPrivate(new Uint8Array(privateKey));
}

/** Builds a NodeKey from a raw 32-byte scalar (tests, benchmarks). */
export function keyFromPrivate(privateKey: Uint8Array): NodeKey {
  if (privateKey.byteLength !== 32 || !secp256k1.utils.isValidSecretKey(privateKey)) {
    throw new InvalidMnemonicError('private key must be a 32-byte secp256k1 scalar in 1..n-1');
  }
  return { privateKey: new Uint8Array(privateKey), publicKey: secp256k1.getPublicKey(privateKey, true) };
}

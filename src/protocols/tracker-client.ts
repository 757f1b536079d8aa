/**
 * The node's side of the bootstrap tracker: announce our HolderRecord to every tracker every 20 s (sooner when a
 * tracker's ttl is shorter), back off on failure, and fetch the holders the trackers know. On stop, withdraw the
 * record from every tracker we announced to (a signed TrackerWithdrawal, with a short deadline: a dead tracker must
 * not hold up shutdown; the record then lingers there until the tracker's ttl).
 *
 * A tracker is untrusted: every record it returns is parsed strictly and verified here (signature, clock, network),
 * and anything that fails is dropped. Every request has a deadline and follows the client's stop signal; response
 * bodies are read with a size cap. Nothing secret is ever sent: the only bodies are our public, signed record and withdrawal.
 */
import { type AbortOptions, backoffMs, linkSignals, throwIfAborted } from '../util/abort.js';
import { type Clock, systemClock } from '../util/clock.js';
import { AbortedError, InvalidArgumentError, NeuroShardError, TimeoutError, errorMessage } from '../util/errors.js';
import { TypedEmitter } from '../util/events.js';
import { readTextBounded } from '../util/http.js';
import { isPublicIp, multiaddrHost } from '../util/ip.js';
import { type Logger, silentLogger } from '../util/logger.js';
import { dialAddresses, type HolderRecord, holderRecordToJson, parseHolderRecord, spanCovers, verifyHolderRecord } from './holder-record.js';
import { type TrackerWithdrawal, trackerWithdrawalToJson } from './tracker-withdrawal.js';

export interface TrackerClientOptions {
  /** Tracker base URLs (http or https); `announce` and `peers` are resolved relative to each. */
  trackers: string[];
  /** Only records of this network are accepted from trackers, and only this network is asked for. */
  networkId: string;
  /** Re-announce period (the tracker's ttl is 60 s: three chances before a record drops out). */
  announceIntervalMs: number;
  /** Deadline of one HTTP request. */
  requestTimeoutMs: number;
  /** Retry delays after a failure: exponential from base to max, with jitter. */
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Clock skew tolerated when verifying records from a tracker. */
  maxSkewMs: number;
  /** Largest response body read from a tracker. */
  maxResponseBytes: number;
  /** Fetch peers after each successful announce and emit them as `peers:found`. */
  discover: boolean;
  /** `limit` asked of GET /peers when discovering. */
  discoverLimit: number;
  /** Deadline of the withdrawals sent on stop (all trackers in parallel): how long a dead tracker can delay shutdown. */
  withdrawTimeoutMs: number;
}

export const TRACKER_CLIENT_DEFAULTS: Omit<TrackerClientOptions, 'trackers' | 'networkId'> = {
  announceIntervalMs: 20_000,
  requestTimeoutMs: 5_000,
  backoffBaseMs: 1_000,
  backoffMaxMs: 60_000,
  maxSkewMs: 60_000,
  maxResponseBytes: 1 << 20,
  discover: true,
  discoverLimit: 50,
  withdrawTimeoutMs: 2_000,
};

export interface TrackerClientModules {
  /** Builds the record to announce, freshly signed; called before every announce. Omit to only fetch peers. */
  record?: () => HolderRecord | Promise<HolderRecord>;
  /** Builds our withdrawal, freshly signed; called on stop for each tracker we announced to. Omit to not withdraw. */
  withdrawal?: () => TrackerWithdrawal | Promise<TrackerWithdrawal>;
  fetch?: typeof fetch;
  clock?: Clock;
  logger?: Logger;
  rand?: () => number;
}

export interface TrackerClientEvents {
  'announce:ok': { tracker: string; ttlMs: number; nextInMs: number };
  'announce:error': { tracker: string; error: NeuroShardError; attempt: number; retryInMs: number };
  'peers:found': { tracker: string; peers: HolderRecord[] };
  'withdraw:ok': { tracker: string; removed: boolean };
  'withdraw:error': { tracker: string; error: NeuroShardError };
}

/** A tracker refused a request or answered something we cannot use. */
export class TrackerRequestError extends NeuroShardError {
  constructor(
    code: 'TRACKER_UNREACHABLE' | 'TRACKER_REJECTED' | 'TRACKER_BAD_RESPONSE',
    message: string,
    meta: { tracker: string; status?: number; reason?: string },
  ) {
    // A rejection of our own record (4xx but 429) is our mistake; a tracker that is down or garbled is its own.
    const ours = code === 'TRACKER_REJECTED' && meta.status !== undefined && meta.status >= 400 && meta.status < 500 && meta.status !== 429;
    super(code, message, { fault: ours ? 'local' : 'peer', meta });
  }
}

const MAX_URL_LENGTH = 2048;
/** Records looked at from one /peers answer when no limit was asked (the tracker's own cap is 200 by default). */
const MAX_PEERS_PER_ANSWER = 200;

/** Validates a tracker URL; returns it normalised with a trailing slash so relative paths resolve under it. */
export function normalizeTrackerUrl(raw: string): string {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > MAX_URL_LENGTH) {
    throw new InvalidArgumentError(`tracker URL must be 1-${MAX_URL_LENGTH} characters`);
  }
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new InvalidArgumentError(`tracker URL ${JSON.stringify(raw.slice(0, 100))} is not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new InvalidArgumentError(`tracker URL must be http or https: ${raw.slice(0, 100)}`);
  // Credentials in a URL would be a secret sent to (and logged by) whoever runs the tracker.
  if (u.username !== '' || u.password !== '') throw new InvalidArgumentError('tracker URL must not carry a user name or password');
  if (u.search !== '' || u.hash !== '') throw new InvalidArgumentError('tracker URL must not carry a query or fragment');
  if (!u.pathname.endsWith('/')) u.pathname += '/';
  return u.toString();
}

export class TrackerClient extends TypedEmitter<TrackerClientEvents> {
  readonly opts: TrackerClientOptions;
  private readonly trackers: string[];
  /** True when every tracker is on a private network (a LAN or one machine): then private addresses are dialable. */
  readonly allowPrivateAddrs: boolean;
  private readonly fetchFn: typeof fetch;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly rand: () => number;
  private readonly record: (() => HolderRecord | Promise<HolderRecord>) | undefined;
  private readonly withdrawal: (() => TrackerWithdrawal | Promise<TrackerWithdrawal>) | undefined;
  /** Trackers that accepted an announce of ours since start(): they hold our record until we withdraw it. */
  private readonly announced = new Set<string>();
  /** Trackers an announce is on its way to: one aborted by stop() may still have arrived. */
  private readonly announcing = new Map<string, number>();
  private stopper = new AbortController();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly loops = new Set<Promise<void>>();
  private running = false;

  constructor(opts: Partial<TrackerClientOptions> & Pick<TrackerClientOptions, 'trackers' | 'networkId'>, modules: TrackerClientModules = {}) {
    super();
    this.opts = { ...TRACKER_CLIENT_DEFAULTS, ...opts };
    this.trackers = [...new Set(this.opts.trackers.map(normalizeTrackerUrl))];
    this.allowPrivateAddrs = this.trackers.length > 0 && this.trackers.every((t) => privateHost(new URL(t).hostname));
    this.fetchFn = modules.fetch ?? globalThis.fetch;
    this.clock = modules.clock ?? systemClock;
    this.log = modules.logger ?? silentLogger;
    this.rand = modules.rand ?? Math.random;
    this.record = modules.record;
    this.withdrawal = modules.withdrawal;
  }

  /** The normalised tracker URLs. */
  get urls(): readonly string[] {
    return this.trackers;
  }

  /** Starts one announce loop per tracker (when a record provider was given). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.stopper = new AbortController();
    if (this.record === undefined) return;
    for (const t of this.trackers) this.schedule(t, 0, 0);
  }

  /**
   * Stops the loops and aborts requests in flight, then withdraws our record from every tracker that may hold it
   * (within `withdrawTimeoutMs` in all; failures are logged and emitted, never thrown). Resolves once nothing is
   * left running.
   */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    const holders = [...new Set([...this.announced, ...this.announcing.keys()])];
    this.announced.clear();
    this.stopper.abort(new AbortedError('tracker client stopped'));
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await Promise.allSettled([...this.loops]);
    if (this.withdrawal !== undefined && holders.length > 0) await this.withdrawFrom(holders);
  }

  private async withdrawFrom(trackers: string[]): Promise<void> {
    const timeoutMs = Math.min(this.opts.withdrawTimeoutMs, this.opts.requestTimeoutMs);
    await Promise.all(
      trackers.map(async (tracker) => {
        try {
          const { removed } = await this.withdraw(tracker, { timeoutMs });
          this.log.debug('withdrew our record', { tracker, removed });
          this.emit('withdraw:ok', { tracker, removed });
        } catch (e) {
          const error = e instanceof NeuroShardError ? e : new TrackerRequestError('TRACKER_UNREACHABLE', errorMessage(e), { tracker });
          this.log.warn('tracker withdraw failed; our record stays listed until it expires there', { tracker, err: error.message, code: error.code });
          this.emit('withdraw:error', { tracker, error });
        }
      }),
    );
  }

  private schedule(tracker: string, delayMs: number, attempt: number): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      const p = this.cycle(tracker, attempt).finally(() => this.loops.delete(p));
      this.loops.add(p);
    }, delayMs);
    timer.unref();
    this.timers.add(timer);
  }

  /** One announce (+ discovery) round for one tracker, then the next round is scheduled. */
  private async cycle(tracker: string, attempt: number): Promise<void> {
    const signal = this.stopper.signal;
    if (signal.aborted) return;
    try {
      const res = await this.announce(tracker, { signal });
      // Never wait longer than half the tracker's ttl, so one lost announce does not drop us from its list.
      const nextInMs = Math.min(this.opts.announceIntervalMs, Math.floor(res.ttlMs / 2));
      this.emit('announce:ok', { tracker, ttlMs: res.ttlMs, nextInMs });
      if (this.opts.discover) {
        try {
          const peers = await this.fetchPeersFrom(tracker, { limit: this.opts.discoverLimit, signal });
          this.emit('peers:found', { tracker, peers });
        } catch (e) {
          if (signal.aborted) return;
          this.log.debug('tracker peers fetch failed', { tracker, err: errorMessage(e) });
        }
      }
      if (this.running && !signal.aborted) this.schedule(tracker, nextInMs, 0);
    } catch (e) {
      if (signal.aborted) return;
      const error = e instanceof NeuroShardError ? e : new TrackerRequestError('TRACKER_UNREACHABLE', errorMessage(e), { tracker });
      const retryInMs = backoffMs(attempt, this.opts.backoffBaseMs, this.opts.backoffMaxMs, this.rand);
      this.log.warn('tracker announce failed', { tracker, err: error.message, code: error.code, retryInMs });
      this.emit('announce:error', { tracker, error, attempt, retryInMs });
      if (this.running) this.schedule(tracker, retryInMs, attempt + 1);
    }
  }

  /** Announces our current record to one tracker. */
  async announce(tracker: string, opts: AbortOptions = {}): Promise<{ ok: true; ttlMs: number }> {
    if (this.record === undefined) throw new InvalidArgumentError('this tracker client has no record to announce');
    const rec = await this.record();
    const body = JSON.stringify(holderRecordToJson(rec));
    const base = normalizeTrackerUrl(tracker);
    const url = new URL('announce', base).toString();
    this.announcing.set(base, (this.announcing.get(base) ?? 0) + 1);
    let res: { status: number; json: unknown };
    try {
      res = await this.request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body }, opts);
    } finally {
      const n = this.announcing.get(base)! - 1;
      if (n === 0) this.announcing.delete(base);
      else this.announcing.set(base, n);
    }
    if (this.running) this.announced.add(base);
    const v = res.json as Record<string, unknown> | null;
    if (typeof v !== 'object' || v === null || v.ok !== true || typeof v.ttlMs !== 'number' || !Number.isSafeInteger(v.ttlMs) || v.ttlMs < 1000 || v.ttlMs > 86_400_000) {
      throw new TrackerRequestError('TRACKER_BAD_RESPONSE', 'announce answer is not {"ok": true, "ttlMs": <ms>}', { tracker });
    }
    return { ok: true, ttlMs: v.ttlMs };
  }

  /**
   * Withdraws our record from one tracker (`POST /withdraw` with a freshly signed TrackerWithdrawal). `removed` is
   * false when the tracker held no record of ours. stop() calls this for every tracker we announced to.
   */
  async withdraw(tracker: string, opts: AbortOptions & { timeoutMs?: number } = {}): Promise<{ ok: true; removed: boolean }> {
    if (this.withdrawal === undefined) throw new InvalidArgumentError('this tracker client has no withdrawal to send');
    const body = JSON.stringify(trackerWithdrawalToJson(await this.withdrawal()));
    const url = new URL('withdraw', normalizeTrackerUrl(tracker)).toString();
    const res = await this.request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body }, opts);
    const v = res.json as Record<string, unknown> | null;
    if (typeof v !== 'object' || v === null || v.ok !== true || typeof v.removed !== 'boolean') {
      throw new TrackerRequestError('TRACKER_BAD_RESPONSE', 'withdraw answer is not {"ok": true, "removed": <bool>}', { tracker });
    }
    return { ok: true, removed: v.removed };
  }

  /**
   * Fetches holders from one tracker, keeping only records that parse, verify, belong to our network and (when
   * asked) cover `layer`.
   */
  async fetchPeersFrom(tracker: string, q: { layer?: number; limit?: number } & AbortOptions = {}): Promise<HolderRecord[]> {
    const url = new URL('peers', normalizeTrackerUrl(tracker));
    url.searchParams.set('network', this.opts.networkId);
    if (q.layer !== undefined) url.searchParams.set('layer', String(q.layer));
    if (q.limit !== undefined) url.searchParams.set('limit', String(q.limit));
    const res = await this.request(url.toString(), { method: 'GET' }, q);
    const v = res.json as Record<string, unknown> | null;
    if (typeof v !== 'object' || v === null || !Array.isArray(v.peers)) {
      throw new TrackerRequestError('TRACKER_BAD_RESPONSE', 'peers answer is not {"peers": [...]}', { tracker });
    }
    const now = this.clock.now();
    const out: HolderRecord[] = [];
    // Each record costs a signature check: a tracker that answers more than we asked for gets only that many looked
    // at (a 1 MiB answer holds thousands, seconds of CPU per fetch).
    const list = (v.peers as unknown[]).slice(0, q.limit ?? MAX_PEERS_PER_ANSWER);
    let dropped = v.peers.length - list.length;
    for (const raw of list) {
      let rec: HolderRecord;
      try {
        rec = parseHolderRecord(raw);
      } catch {
        dropped++;
        continue;
      }
      if (rec.networkId !== this.opts.networkId || (q.layer !== undefined && !spanCovers(rec.span, q.layer))) {
        dropped++;
        continue;
      }
      const verdict = verifyHolderRecord(rec, { nowMs: now, maxSkewMs: this.opts.maxSkewMs });
      if (!verdict.ok) {
        dropped++;
        continue;
      }
      out.push(rec);
    }
    if (dropped > 0) this.log.debug('dropped records from tracker', { tracker, dropped });
    return out;
  }

  /**
   * Fetches holders from every tracker in parallel and merges them (the freshest record per peer wins). Fails only
   * when every tracker fails.
   */
  async fetchPeers(q: { layer?: number; limit?: number } & AbortOptions = {}): Promise<HolderRecord[]> {
    const results = await Promise.allSettled(this.trackers.map((t) => this.fetchPeersFrom(t, q)));
    const byPeer = new Map<string, HolderRecord>();
    let failures = 0;
    let lastError: unknown;
    for (const r of results) {
      if (r.status === 'rejected') {
        failures++;
        lastError = r.reason;
        continue;
      }
      for (const rec of r.value) {
        const prev = byPeer.get(rec.peerId);
        if (prev === undefined || prev.timestampMs < rec.timestampMs) byPeer.set(rec.peerId, rec);
      }
    }
    if (failures > 0 && failures === this.trackers.length) {
      throw lastError instanceof NeuroShardError ? lastError : new TrackerRequestError('TRACKER_UNREACHABLE', errorMessage(lastError), { tracker: '*' });
    }
    return [...byPeer.values()];
  }

  /**
   * Dial targets for the bootstrapper: the addresses (ending in /p2p/<peerId>) of every verified holder the
   * trackers know, except `exclude` (our own id).
   */
  async candidates(q: { exclude?: string; limit?: number } & AbortOptions = {}): Promise<string[]> {
    const recs = await this.fetchPeers({ limit: q.limit ?? this.opts.discoverLimit, signal: q.signal });
    return recs.filter((r) => r.peerId !== q.exclude).flatMap((r) => this.dialAddresses(r));
  }

  /** The dial targets of a record from a tracker (trackerDialAddresses with this client's private-address rule). */
  dialAddresses(rec: HolderRecord): string[] {
    return trackerDialAddresses(rec, this.allowPrivateAddrs);
  }

  /** One HTTP request with a deadline, the caller's and the client's abort signals, and a bounded body. */
  private async request(url: string, init: RequestInit, opts: AbortOptions & { timeoutMs?: number }): Promise<{ status: number; json: unknown }> {
    const tracker = new URL(url).origin;
    throwIfAborted(opts.signal, 'tracker request');
    const timeoutMs = opts.timeoutMs ?? this.opts.requestTimeoutMs;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = linkSignals(timeout, opts.signal).signal; // not AbortSignal.any (util/abort.ts); detaches when `timeout` fires
    let res: Response;
    let text: string;
    try {
      res = await this.fetchFn(url, { ...init, signal, redirect: 'error' });
      const max = this.opts.maxResponseBytes;
      const status = res.status;
      text = await readTextBounded(res, max, () => new TrackerRequestError('TRACKER_BAD_RESPONSE', `tracker ${tracker} answered more than ${max} bytes`, { tracker, status }));
    } catch (e) {
      if (opts.signal?.aborted === true) throw new AbortedError('tracker request aborted');
      if (timeout.aborted) throw new TimeoutError(`tracker ${tracker} did not answer within ${timeoutMs} ms`, { tracker });
      if (e instanceof NeuroShardError) throw e;
      throw new TrackerRequestError('TRACKER_UNREACHABLE', `tracker ${tracker}: ${errorMessage(e)}`, { tracker });
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new TrackerRequestError('TRACKER_BAD_RESPONSE', `tracker ${tracker} answered ${res.status} with a body that is not JSON`, { tracker, status: res.status });
    }
    if (res.status < 200 || res.status >= 300) {
      const err = (json as { error?: { code?: unknown; message?: unknown } } | null)?.error;
      const reason = typeof err?.code === 'string' ? err.code.slice(0, 64) : undefined;
      const message = typeof err?.message === 'string' ? err.message.slice(0, 300) : `HTTP ${res.status}`;
      throw new TrackerRequestError('TRACKER_REJECTED', `tracker ${tracker} answered ${res.status}${reason ? ' ' + reason : ''}: ${message}`, {
        tracker,
        status: res.status,
        ...(reason === undefined ? {} : { reason }),
      });
    }
    return { status: res.status, json };
  }
}

/** True for a host name or IP literal on a private network or this machine. */
function privateHost(hostname: string): boolean {
  const h = hostname.startsWith('[') ? hostname.slice(1, -1) : hostname;
  if (h === 'localhost' || h.endsWith('.localhost') || h.endsWith('.local')) return true;
  return /^[\d.]+$/.test(h) || h.includes(':') ? !isPublicIp(h) : false;
}

/**
 * Dial targets of a holder record that came from a tracker (issue 11, attack 11): a public tracker must not make us
 * dial into our own network for a stranger, so private, loopback and link-local addresses are dropped unless
 * `allowPrivate` (every tracker is itself private), relay addresses included. DNS names are kept: the tracker
 * checks public IPs against the announcer and refuses names unless configured otherwise.
 */
export function trackerDialAddresses(rec: HolderRecord, allowPrivate: boolean): string[] {
  return dialAddresses(rec).filter((a) => {
    const h = multiaddrHost(a);
    if (h === undefined) return false;
    if (h.kind === 'dns' || allowPrivate) return true;
    return isPublicIp(h.host);
  });
}

/**
 * The bootstrap tracker: an HTTP service where layer holders announce signed HolderRecords and newcomers ask who is
 * out there. It is a convenience, never an authority: clients verify every record they get back, and the tracker
 * only stores what a record's own signature vouches for.
 *
 *   POST /announce                          a HolderRecord (JSON, ≤ 8 KiB)   → {"ok": true, "ttlMs": 60000}
 *   POST /withdraw                          a signed withdrawal (JSON)       → {"ok": true, "removed": bool}
 *   GET  /peers[?network=ID][&layer=N][&limit=50]                            → {"peers": [HolderRecord…]}
 *   GET  /health                                                             → {"ok": true, "entries", "uptimeMs"}
 *
 * Errors are {"error": {"code", "message"}}: 400 malformed, 401 bad_signature, 403 wrong_network, 404 not_found,
 * 409 stale | expired | from_future, 413 too_large, 415 unsupported_media_type, 429 rate_limited | source_full,
 * 503 full. docs/PROTOCOL.md "## Tracker" is the reference.
 *
 * The tracker never receives a secret (the record parser rejects unknown fields) and never returns one (it serves
 * the validator's serialisation of verified records, nothing else).
 */
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { type Clock, systemClock } from '../util/clock.js';
import { type Logger, silentLogger } from '../util/logger.js';
import { isNetworkId, trackerOptions, type TrackerOptions } from './options.js';
import { isPublicIp, multiaddrHost, sameHost } from '../util/ip.js';
import { prefixKey, RateLimiter, sourceKey } from './rate-limit.js';
import { TrackerStore } from './store.js';
import type {
  AnnounceResponse,
  HealthResponse,
  RecordValidator,
  TrackedRecord,
  TrackedWithdrawal,
  TrackerErrorBody,
  TrackerErrorCode,
  VerifyRejection,
  WithdrawalValidator,
  WithdrawResponse,
} from './types.js';

export interface TrackerModules<R extends TrackedRecord, W extends TrackedWithdrawal = TrackedWithdrawal> {
  validator: RecordValidator<R>;
  /** Parses and verifies `POST /withdraw` bodies (node/tracker.ts injects the TrackerWithdrawal one). */
  withdrawal: WithdrawalValidator<W>;
  clock?: Clock;
  logger?: Logger;
}

/** Thrown inside handlers to answer with an error body; anything else becomes a 500 with a generic message. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: TrackerErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const VERIFY_STATUS: Record<VerifyRejection, [number, TrackerErrorCode]> = {
  bad_signature: [401, 'bad_signature'],
  peer_id_invalid: [401, 'bad_signature'],
  expired: [409, 'expired'],
  too_old: [409, 'stale'],
  from_future: [409, 'from_future'],
};

/** How often expired rows are swept (lazily, on requests; no timer keeps the process alive). */
const PURGE_INTERVAL_MS = 5_000;

export class TrackerServer<R extends TrackedRecord, W extends TrackedWithdrawal = TrackedWithdrawal> {
  readonly app: FastifyInstance;
  readonly opts: TrackerOptions;
  private readonly store: TrackerStore;
  private readonly validator: RecordValidator<R>;
  private readonly withdrawalValidator: WithdrawalValidator<W>;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly announceLimiter: RateLimiter;
  private readonly queryLimiter: RateLimiter;
  /** The same limits per prefix (IPv6 /48, IPv4 /24), 8 times wider: 65,536 /64s are not 65,536 budgets. */
  private readonly announcePrefixLimiter: RateLimiter;
  private readonly queryPrefixLimiter: RateLimiter;
  private readonly networks: ReadonlySet<string>;
  private readonly startedMs: number;
  private lastPurgeMs = -Infinity;
  private closed = false;

  constructor(opts: Partial<TrackerOptions>, modules: TrackerModules<R, W>) {
    this.opts = trackerOptions(opts);
    this.validator = modules.validator;
    this.withdrawalValidator = modules.withdrawal;
    this.clock = modules.clock ?? systemClock;
    this.log = modules.logger ?? silentLogger;
    this.networks = new Set(this.opts.networks);
    this.startedMs = this.clock.now();
    this.store = new TrackerStore(this.opts.dbPath);
    this.announceLimiter = new RateLimiter(
      { burst: this.opts.announceBurst, perSec: this.opts.announcePerSec, maxSources: this.opts.maxRateLimitSources },
      this.clock,
    );
    this.queryLimiter = new RateLimiter({ burst: this.opts.queryBurst, perSec: this.opts.queryPerSec, maxSources: this.opts.maxRateLimitSources }, this.clock);
    this.announcePrefixLimiter = new RateLimiter(
      { burst: 8 * this.opts.announceBurst, perSec: 8 * this.opts.announcePerSec, maxSources: this.opts.maxRateLimitSources },
      this.clock,
    );
    this.queryPrefixLimiter = new RateLimiter({ burst: 8 * this.opts.queryBurst, perSec: 8 * this.opts.queryPerSec, maxSources: this.opts.maxRateLimitSources }, this.clock);
    this.app = Fastify({
      bodyLimit: this.opts.maxBodyBytes,
      logger: false,
      // Cap what a slow or idle client can hold open.
      connectionTimeout: 30_000,
      requestTimeout: 10_000,
      keepAliveTimeout: 5_000,
      // close() ends keep-alive connections at once instead of waiting for clients to drop them
      forceCloseConnections: true,
      onProtoPoisoning: 'error',
      onConstructorPoisoning: 'error',
    });
    this.routes();
  }

  private routes(): void {
    const app = this.app;
    // JSON only: fastify also parses text/plain by default, which would let a string body reach the handler.
    app.removeContentTypeParser('text/plain');

    app.addHook('onRequest', async (req, reply) => {
      // both writes share the announce bucket: a withdrawal costs what an announce costs
      const path = req.url.split('?')[0];
      const write = req.method === 'POST' && (path === '/announce' || path === '/withdraw');
      const limiter = write ? this.announceLimiter : this.queryLimiter;
      const prefixLimiter = write ? this.announcePrefixLimiter : this.queryPrefixLimiter;
      const source = sourceKey(req.ip);
      const prefix = prefixKey(req.ip);
      for (const [l, k] of [[prefixLimiter, prefix], [limiter, source]] as const) {
        if (!l.take(k)) {
          const retry = Math.max(1, Math.ceil(l.retryAfterMs(k) / 1000));
          void reply.header('retry-after', String(retry));
          throw new HttpError(429, 'rate_limited', `too many requests from ${k}; retry in ${retry} s`);
        }
      }
    });

    app.setErrorHandler((err: FastifyError | HttpError, req: FastifyRequest, reply: FastifyReply) => {
      if (err instanceof HttpError) return sendError(reply, err.status, err.code, err.message);
      switch (err.code) {
        case 'FST_ERR_CTP_BODY_TOO_LARGE':
          return sendError(reply, 413, 'too_large', `body is larger than ${this.opts.maxBodyBytes} bytes`);
        case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
          return sendError(reply, 415, 'unsupported_media_type', 'send the record as application/json');
        case 'FST_ERR_CTP_INVALID_JSON_BODY':
        case 'FST_ERR_CTP_EMPTY_JSON_BODY':
          return sendError(reply, 400, 'malformed', 'body is not valid JSON');
      }
      const status = typeof err.statusCode === 'number' ? err.statusCode : 500;
      if (status >= 400 && status < 500) {
        // Fastify's own client errors (bad content length, prototype poisoning, …): malformed requests.
        return sendError(reply, status === 413 ? 413 : 400, status === 413 ? 'too_large' : 'malformed', err.message);
      }
      this.log.error('tracker request failed', { method: req.method, url: req.url.slice(0, 200), err: err.message });
      return sendError(reply, 500, 'internal', 'internal error');
    });

    app.setNotFoundHandler((req, reply) => sendError(reply, 404, 'not_found', `no route ${req.method} ${req.url.split('?')[0]!.slice(0, 100)}`));

    app.post('/announce', async (req, reply) => reply.code(200).send(this.announce(req.body, req.ip)));

    app.post('/withdraw', async (req, reply) => reply.code(200).send(this.withdraw(req.body)));

    app.get('/peers', async (req, reply) => {
      const json = this.peers(req.query);
      return reply.code(200).type('application/json; charset=utf-8').send(json);
    });

    app.get('/health', async () => {
      const body: HealthResponse = { ok: true, entries: this.store.count(), uptimeMs: this.clock.now() - this.startedMs };
      return body;
    });
  }

  /** Handles one announce from address `ip`; throws HttpError for every rejection. */
  announce(body: unknown, ip: string): AnnounceResponse {
    const source = sourceKey(ip);
    const prefix = prefixKey(ip);
    const now = this.clock.now();
    this.maybePurge(now);
    const parsed = this.validator.parse(body);
    if (!parsed.ok) throw new HttpError(parsed.reason === 'too_large' ? 413 : 400, parsed.reason, parsed.message);
    const rec = parsed.record;
    if (this.networks.size > 0 && !this.networks.has(rec.networkId)) {
      throw new HttpError(403, 'wrong_network', `this tracker serves ${[...this.networks].join(', ')}, not ${rec.networkId}`);
    }
    if (rec.multiaddrs.length === 0) throw new HttpError(400, 'malformed', 'a record announced to a tracker needs at least one multiaddr');
    this.checkAddresses(rec.multiaddrs, ip);
    const v = this.validator.verify(rec, { nowMs: now, maxSkewMs: this.opts.maxSkewMs, maxAgeMs: this.opts.maxSkewMs });
    if (!v.ok) {
      const [status, code] = VERIFY_STATUS[v.reason];
      throw new HttpError(status, code, v.message);
    }
    const prev = this.store.get(rec.networkId, rec.peerId);
    if (prev !== undefined && rec.timestampMs <= prev.timestampMs) {
      throw new HttpError(409, 'stale', `a record signed at ${prev.timestampMs} or later is already held for this peer`);
    }
    // the record a withdrawal removed (anyone may have copied it from GET /peers) does not come back in its place
    const withdrawnAt = this.store.withdrawnAt(rec.networkId, rec.peerId);
    if (withdrawnAt !== undefined && rec.timestampMs <= withdrawnAt) {
      throw new HttpError(409, 'stale', `this peer withdrew at ${withdrawnAt}; only a record signed after that is accepted`);
    }
    if (prev === undefined) {
      if (this.store.count() >= this.opts.maxEntries) {
        this.purge(now);
        if (this.store.count() >= this.opts.maxEntries) throw new HttpError(503, 'full', `the tracker holds its maximum of ${this.opts.maxEntries} records`);
      }
    }
    if (prev?.source !== source && this.store.countBySource(source) >= this.opts.maxEntriesPerSource) {
      throw new HttpError(429, 'source_full', `at most ${this.opts.maxEntriesPerSource} records may be announced from one address`);
    }
    if (prev?.prefix !== prefix && this.store.countByPrefix(prefix) >= this.opts.maxEntriesPerPrefix) {
      throw new HttpError(429, 'source_full', `at most ${this.opts.maxEntriesPerPrefix} records may be announced from one network (${prefix})`);
    }
    this.store.upsert({
      networkId: rec.networkId,
      peerId: rec.peerId,
      spanStart: rec.span.start,
      spanEnd: rec.span.end,
      timestampMs: rec.timestampMs,
      expiresMs: rec.expiresMs,
      receivedMs: now,
      source,
      prefix,
      json: JSON.stringify(this.validator.toJson(rec)),
    });
    this.log.debug('announce', { peerId: rec.peerId, network: rec.networkId, span: `${rec.span.start}:${rec.span.end}`, source });
    return { ok: true, ttlMs: this.opts.ttlMs };
  }

  /**
   * An announcer may only send newcomers to itself (issue 11, attack 11): every public IP address in the record must
   * be the announcer's own (the same IPv4 address, the same IPv6 /64); a DNS name is refused unless allowDnsAddrs
   * (it can point anywhere); the IP check applies to announcers with a public address. Private, loopback and
   * link-local addresses are let through (a node lists its LAN
   * addresses too); the tracker client drops them unless the tracker itself is on a private network. Relay
   * addresses (p2p-circuit) name the relay's peer id, which the dialer's Noise handshake checks, and are let through.
   */
  private checkAddresses(addrs: readonly string[], ip: string): void {
    for (const a of addrs) {
      const h = multiaddrHost(a);
      if (h === undefined || h.relayed) continue;
      if (h.kind === 'dns') {
        if (this.opts.allowDnsAddrs) continue;
        throw new HttpError(403, 'address_mismatch', `${a.slice(0, 100)}: this tracker accepts IP addresses only (a name could point at anyone)`);
      }
      // an announcer on this machine or the tracker's LAN (a local cluster, tests) cannot be checked this way: its
      // public address, if any, is not what the tracker sees
      if (isPublicIp(ip) && isPublicIp(h.host) && !sameHost(h.host, ip)) {
        throw new HttpError(403, 'address_mismatch', `${a.slice(0, 100)} is not the announcer's address: a record may only name its sender`);
      }
    }
  }

  /**
   * Handles one withdrawal: removes the record held for the signer when it was signed at or before the withdrawal
   * (an older withdrawal never removes a newer announcement: 409 stale). With no record held it answers
   * `removed: false`, so a replayed withdrawal changes nothing. Throws HttpError for every rejection.
   */
  withdraw(body: unknown): WithdrawResponse {
    const now = this.clock.now();
    this.maybePurge(now);
    const parsed = this.withdrawalValidator.parse(body);
    if (!parsed.ok) throw new HttpError(parsed.reason === 'too_large' ? 413 : 400, parsed.reason, parsed.message);
    const w = parsed.record;
    if (this.networks.size > 0 && !this.networks.has(w.networkId)) {
      throw new HttpError(403, 'wrong_network', `this tracker serves ${[...this.networks].join(', ')}, not ${w.networkId}`);
    }
    const v = this.withdrawalValidator.verify(w, { nowMs: now, maxSkewMs: this.opts.maxSkewMs, maxAgeMs: this.opts.maxSkewMs });
    if (!v.ok) {
      const [status, code] = VERIFY_STATUS[v.reason];
      throw new HttpError(status, code, v.message);
    }
    const prev = this.store.get(w.networkId, w.peerId);
    if (prev === undefined) return { ok: true, removed: false };
    if (w.timestampMs < prev.timestampMs) {
      throw new HttpError(409, 'stale', `the record held for this peer was signed at ${prev.timestampMs}, after this withdrawal`);
    }
    // Tombstones are bounded like records: each one needs a removed record, and at most maxEntries are kept. Past
    // that the record is still removed, only its replay is no longer refused (it would linger one ttl at most).
    this.store.withdraw(w.networkId, w.peerId, w.timestampMs, this.store.countTombstones() < this.opts.maxEntries);
    this.log.debug('withdraw', { peerId: w.peerId, network: w.networkId });
    return { ok: true, removed: true };
  }

  /** Handles GET /peers; returns the response JSON text. */
  peers(query: unknown): string {
    const q = this.peersQuery(query);
    const now = this.clock.now();
    this.maybePurge(now);
    const rows = this.store.peers({ ...q, freshAfterMs: now - this.opts.ttlMs, nowMs: now });
    // The rows hold the validator's JSON of verified records: splice them in rather than parse and re-encode.
    return `{"peers":[${rows.join(',')}]}`;
  }

  private peersQuery(query: unknown): { network?: string; layer?: number; limit: number } {
    const q = (typeof query === 'object' && query !== null ? query : {}) as Record<string, unknown>;
    const out: { network?: string; layer?: number; limit: number } = { limit: this.opts.defaultPeersLimit };
    for (const [k, v] of Object.entries(q)) {
      if (typeof v !== 'string') throw new HttpError(400, 'malformed', `query parameter ${k.slice(0, 32)} must appear once`);
      if (k === 'network') {
        if (!isNetworkId(v)) throw new HttpError(400, 'malformed', 'network must be 1-128 characters of A-Z a-z 0-9 . _ -');
        out.network = v;
      } else if (k === 'layer') {
        out.layer = intParam(k, v, 0, 65_535);
      } else if (k === 'limit') {
        out.limit = intParam(k, v, 1, this.opts.maxPeersLimit);
      } else {
        throw new HttpError(400, 'malformed', `unknown query parameter ${JSON.stringify(k.slice(0, 32))}`);
      }
    }
    return out;
  }

  private maybePurge(now: number): void {
    if (now - this.lastPurgeMs >= PURGE_INTERVAL_MS) this.purge(now);
  }

  private purge(now: number): void {
    this.lastPurgeMs = now;
    const n = this.store.purge(now - this.opts.ttlMs, now);
    // a record signed before now - maxSkewMs is refused as too old anyway: tombstones older than that guard nothing
    const t = this.store.purgeTombstones(now - this.opts.maxSkewMs);
    if (n + t > 0) this.log.debug('purged stale records', { n, tombstones: t });
  }

  /** Number of stored records (fresh or not yet purged). */
  get entries(): number {
    return this.store.count();
  }

  /** Number of withdrawal tombstones held (each guards a withdrawn record against being announced again). */
  get tombstones(): number {
    return this.store.countTombstones();
  }

  /** Starts listening; resolves with the bound address (port 0 picks a free port). */
  async listen(): Promise<{ host: string; port: number; url: string }> {
    await this.app.listen({ host: this.opts.host, port: this.opts.port });
    const addr = this.app.server.address();
    if (addr === null || typeof addr === 'string') throw new Error('tracker is not listening on a TCP port');
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    return { host: addr.address, port: addr.port, url: `http://${host}:${addr.port}` };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.app.close();
    } finally {
      this.store.close();
    }
  }
}

function sendError(reply: FastifyReply, status: number, code: TrackerErrorCode, message: string): FastifyReply {
  const body: TrackerErrorBody = { error: { code, message } };
  return reply.code(status).type('application/json; charset=utf-8').send(body);
}

function intParam(name: string, v: string, min: number, max: number): number {
  if (!/^\d{1,9}$/.test(v)) throw new HttpError(400, 'malformed', `${name} must be an integer`);
  const n = Number(v);
  if (n < min || n > max) throw new HttpError(400, 'malformed', `${name} must be in ${min}..${max}`);
  return n;
}

/**
 * The DHT layer registry: who holds which layer.
 *
 * A kad-dht key holds one value, so holders cannot share one record. Instead each holder
 *   1. puts its own signed HolderRecord under /neuroshard/<networkId>/holder/<peerId> (one signer per key), and
 *   2. provides the content key "<networkId>/layer/<i>" for every layer i it holds.
 * "Who holds layer i" = the providers of layer i whose HolderRecord is valid, unexpired and covers i, minus the
 * peers the liveness tracker knows to be dead. A provider's record is asked of the provider itself first (one
 * stream, when `fetchDirect` is wired) and read from the DHT when that fails; both pass the same checks. A provider
 * that does not answer neither holds up the providers after it nor the lookup (fetchRecords), and is asked last,
 * then not at all, in later lookups (`silent`). Records are short-lived (`recordTtlMs`) and re-published well before
 * they expire, so a holder that disappears drops out on its own.
 */
import { createHash, randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import type { P2PNetwork, PeerAddressInfo } from '../p2p/types.js';
import type { NodeKey } from '../identity/index.js';
import type { AbortOptions } from '../util/abort.js';
import { backoffMs, deadlineLink } from '../util/abort.js';
import { systemClock, type Clock } from '../util/clock.js';
import { errorMessage, InvalidArgumentError } from '../util/errors.js';
import { TypedEmitter } from '../util/events.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { checkHolderRecord } from './dht-records.js';
import { encodeHolderRecord, freshHolderRecord, spanCovers, type HolderCapacity, type HolderRecord, type HolderWeights, type LayerSpan } from './holder-record.js';
import { holderKey, layerContentKey } from './ids.js';
import { spanText } from '../util/span-text.js';

export interface LayerRegistryOptions {
  network: P2PNetwork;
  networkId: string;
  key: NodeKey;
  /** Our addresses and capacity at the time of signing (the network's multiaddrs change: relays, UPnP). */
  /** What our record states besides the span; `weights` (absent: float32) is signed into it (holder-record.ts). */
  self: () => { multiaddrs: string[]; capacity: HolderCapacity; weights?: HolderWeights };
  /**
   * Asks a peer for its current record directly (the holder-record RPC); tried before the DHT, whose copy is the
   * fallback. The answer passes the same checks as a DHT record.
   */
  fetchDirect?: (peer: string, signal: AbortSignal) => Promise<Uint8Array | undefined>;
  /** Liveness: peers known dead are left out of lookups. */
  isDead?: (peer: string) => boolean;
  /** Liveness: peers whose heartbeats arrive now come first in lookups. */
  isAlive?: (peer: string) => boolean;
  /**
   * Peers this node has seen serve (measured) whose heartbeats say they hold `layer`: asked for their records before
   * the DHT's providers, and beside them (at most KNOWN_MAX per layer). Why (issue 12): a provider lookup returns at
   * most `maxProviders`, in an order the node does not choose, so a flood of fresh keys providing a layer can fill
   * the whole answer and hide its honest holders (the 1,000-node Sybil scenario: 2–9 % of per-layer lookups had no
   * honest holder among their 64). Holders with history here are not found through that answer.
   */
  known?: (layer: number) => readonly string[];
  /** Lifetime of our record. Default 10 minutes. */
  recordTtlMs?: number;
  /** Re-publish period; must be well below the TTL. Default TTL / 3. */
  republishMs?: number;
  /** Deadline of one DHT operation (put, provide, lookup). Default 15 s. */
  opTimeoutMs?: number;
  /** How long a fetched record is trusted before it is fetched again. Default 30 s. */
  cacheMs?: number;
  /** Most providers considered per layer. Default 64. */
  maxProviders?: number;
  maxSkewMs?: number;
  clock?: Clock;
  log?: Logger;
}

export interface LayerRegistryEvents {
  /** Our record was stored and our layers provided. */
  published: { record: HolderRecord; providedLayers: number; storedAt: number };
  'publish:error': { error: string; retryInMs: number };
}

interface CacheEntry {
  record: HolderRecord | undefined;
  fetchedAt: number;
}

/**
 * Record fetches started at once during one lookup. A fetch that has not answered after SLOW_FETCH_MS stops
 * counting against this (it goes on, to its own deadline), so providers that accept the stream and never answer
 * cannot hold every fetch slot until the lookup's deadline (attack: registry-tarpit).
 */
const FETCH_CONCURRENCY = 8;
/** After this long a record fetch no longer holds its slot (scaled down with a short `opTimeoutMs`). */
const SLOW_FETCH_MS = 250;
/** Most record fetches in flight during one lookup, slow ones included (≥ maxProviders + KNOWN_MAX by default). */
const MAX_FETCHES_IN_FLIGHT = 96;
/** Most known holders (LayerRegistryOptions.known) asked per layer lookup, beside the DHT's providers. */
export const KNOWN_MAX = 16;
/** Deadline of asking a provider for its record directly, before the DHT is asked instead. */
const DIRECT_FETCH_MS = 3000;
/**
 * Deadline of one provider's record during a lookup, the direct ask and the DHT read together (capped at 60 % of
 * `opTimeoutMs`): a silent provider's fetch ends well before the lookup's, so the lookup can ask the providers
 * after it and end early.
 */
const RECORD_FETCH_MS = 9000;
/** How long "no valid record" is remembered. */
const NEGATIVE_CACHE_MS = 2000;
/** Most memoised peer records. */
const MAX_CACHE = 4096;
/**
 * A provider whose direct fetch ran to its deadline with no record from the DHT either is "silent": it is asked
 * last in the lookups of the next SILENT_BASE_MS × 2^(strikes-1) (≤ SILENT_MAX_MS), and not at all once it was
 * silent SILENT_SKIP_STRIKES times in a row. Any answer clears it. An honest provider that was slow once is only
 * asked later; one that hangs every time stops costing a fetch.
 */
const SILENT_BASE_MS = 60_000;
const SILENT_MAX_MS = 10 * 60_000;
const SILENT_SKIP_STRIKES = 3;
const MAX_SILENT = 4096;

interface Silent {
  strikes: number;
  until: number;
}

/** One provider's record as a lookup fetched it. */
interface Fetched {
  record: HolderRecord | undefined;
  /** The provider did not answer before its deadline (and the lookup had not ended). */
  silent: boolean;
}

export class LayerRegistry {
  readonly events = new TypedEmitter<LayerRegistryEvents>();
  private span: LayerSpan | undefined;
  private record: HolderRecord | undefined;
  private readonly provided = new Set<number>();
  private readonly cache = new Map<string, CacheEntry>();
  /** Providers that did not answer (LayerRegistry "silent"), by peer id. */
  private readonly silent = new Map<string, Silent>();
  /** Per-node secret of the lookup order: nobody else can grind a peer id that sorts first here. */
  private readonly orderSecret = randomBytes(16);
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private publishing: Promise<void> | undefined;
  private stopped = false;
  private readonly ttl: number;
  private readonly republishMs: number;
  private readonly opMs: number;
  private readonly cacheMs: number;
  private readonly clock: Clock;
  private readonly log: Logger;

  constructor(private readonly opts: LayerRegistryOptions) {
    this.ttl = opts.recordTtlMs ?? 10 * 60_000;
    this.republishMs = opts.republishMs ?? Math.floor(this.ttl / 3);
    if (!(this.republishMs > 0 && this.republishMs < this.ttl)) throw new InvalidArgumentError('layer registry: republish period must be below the record TTL');
    this.opMs = opts.opTimeoutMs ?? 15_000;
    this.cacheMs = opts.cacheMs ?? 30_000;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? silentLogger;
  }

  /** Our current (last published) record. */
  currentRecord(): HolderRecord | undefined {
    return this.record;
  }

  heldSpan(): LayerSpan | undefined {
    return this.span;
  }

  /**
   * Declares the layers we hold and publishes at once (then every `republishMs`). Resolves after the first
   * publication attempt; failures are retried with backoff and reported as `publish:error`.
   */
  async announce(span: LayerSpan, opts: AbortOptions = {}): Promise<void> {
    if (!(Number.isInteger(span.start) && Number.isInteger(span.end) && span.start >= 0 && span.end > span.start)) {
      throw new InvalidArgumentError(`bad span ${spanText(span)}`);
    }
    this.stopped = false;
    this.span = { start: span.start, end: span.end };
    await this.publishNow(opts);
  }

  /** Publishes our record again now (e.g. after joining the network or a change of address). */
  async publishNow(opts: AbortOptions = {}): Promise<void> {
    if (this.span === undefined || this.stopped) return;
    // one publication at a time; a request during one waits for it and then runs again with fresh data
    while (this.publishing !== undefined) await this.publishing.catch(() => {});
    this.publishing = this.publish(opts).finally(() => {
      this.publishing = undefined;
    });
    await this.publishing;
  }

  /** Stops publishing and stops re-providing our layers; the record expires on its own. */
  async withdraw(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    await this.publishing?.catch(() => {});
    for (const layer of this.provided) {
      await this.opts.network.unprovide(layerContentKey(this.opts.networkId, layer)).catch(() => {});
    }
    this.provided.clear();
    this.span = undefined;
  }

  private async publish(opts: AbortOptions): Promise<void> {
    const span = this.span!;
    const { multiaddrs, capacity, weights } = this.opts.self();
    const now = this.clock.now();
    const rec = freshHolderRecord(this.opts.key, { networkId: this.opts.networkId, multiaddrs: cleanAddrs(multiaddrs, this.opts.network.peerId), span, capacity, ...(weights === undefined ? {} : { weights }) }, now, this.ttl);
    const net = this.opts.network;
    // One deadline for the record and each layer's provide, detached from opts.signal (which lives as long as the
    // registry) when they end; the provides run in parallel on it, one listener each, so its limit is the span's size.
    const put = deadlineLink(this.opMs, opts.signal);
    let prov: ReturnType<typeof deadlineLink> | undefined;
    try {
      const stored = await net.dhtPut(holderKey(this.opts.networkId, net.peerId), encodeHolderRecord(rec), { signal: put.signal }).finally(put.dispose);
      this.record = rec;
      this.cache.set(net.peerId, { record: rec, fetchedAt: now });
      // layers we no longer hold stop being provided; the rest are (re-)provided
      for (const layer of [...this.provided]) {
        if (!spanCovers(span, layer)) {
          await net.unprovide(layerContentKey(this.opts.networkId, layer)).catch(() => {});
          this.provided.delete(layer);
        }
      }
      prov = deadlineLink(this.opMs, opts.signal);
      setMaxListeners(span.end - span.start + 16, prov.signal);
      const provSignal = prov.signal;
      await Promise.all(
        Array.from({ length: span.end - span.start }, async (_, k) => {
          const layer = span.start + k;
          await net.provide(layerContentKey(this.opts.networkId, layer), { signal: provSignal });
          this.provided.add(layer);
        }),
      );
      this.events.emit('published', { record: rec, providedLayers: span.end - span.start, storedAt: stored });
      if (stored === 0) {
        // Nobody else holds our record yet (we know no DHT peer, e.g. right after start): try again soon.
        this.failures++;
        this.schedule(Math.min(this.republishMs, backoffMs(this.failures - 1, 500, 30_000)));
      } else {
        this.failures = 0;
        this.schedule(this.republishMs);
      }
    } catch (e) {
      this.failures++;
      const retry = Math.min(this.republishMs, backoffMs(this.failures - 1, 1000, 60_000));
      this.log.warn('publishing our holder record failed', { error: errorMessage(e), retryInMs: retry });
      this.events.emit('publish:error', { error: errorMessage(e), retryInMs: retry });
      this.schedule(retry);
    } finally {
      put.dispose();
      prov?.dispose();
    }
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.publishNow().catch(() => {});
    }, ms);
    this.timer.unref();
  }

  /**
   * The holders of `layer`: providers whose record is valid, unexpired and covers the layer, minus dead peers,
   * freshest records first.
   */
  async holdersOf(layer: number, opts: AbortOptions = {}): Promise<HolderRecord[]> {
    // detached from opts.signal when the lookup ends (util/abort.ts deadlineLink): callers pass one signal to many
    const { signal, dispose } = deadlineLink(this.opMs, opts.signal);
    // every record fetch in flight links its own deadline to this one (≤ MAX_FETCHES_IN_FLIGHT)
    setMaxListeners(MAX_FETCHES_IN_FLIGHT + 16, signal);
    let records: HolderRecord[];
    try {
      const providers = await this.opts.network.findProviders(layerContentKey(this.opts.networkId, layer), { signal, limit: this.opts.maxProviders ?? 64 });
      const known = (this.opts.known?.(layer) ?? []).slice(0, KNOWN_MAX);
      const seen = new Set(known);
      const all = [...known.map((id) => ({ id, multiaddrs: [] })), ...providers.filter((p) => !seen.has(p.id))];
      const live = all.filter((p) => !(this.opts.isDead?.(p.id) ?? false));
      // providers that were silent lately are asked after the others, and not at all after repeated silence
      const now = this.clock.now();
      const doubt = (id: string): Silent | undefined => {
        const s = this.silent.get(id);
        return s !== undefined && s.until > now ? s : undefined;
      };
      const candidates = [...live.filter((p) => doubt(p.id) === undefined), ...live.filter((p) => (doubt(p.id)?.strikes ?? SILENT_SKIP_STRIKES) < SILENT_SKIP_STRIKES)];
      records = await this.fetchRecords(candidates, signal);
    } finally {
      dispose();
    }
    const now = this.clock.now();
    // The order is not the record's to choose (issue 11, attack 10: a record dated ahead used to sort first): peers
    // whose heartbeats arrive come first, then a per-node keyed hash of the peer id.
    const rank = (r: HolderRecord): string => (this.opts.isAlive?.(r.peerId) === true ? '0' : '1') + createHash('sha256').update(this.orderSecret).update(r.peerId).digest('hex');
    return records
      .filter((r) => r.expiresMs > now && spanCovers(r.span, layer) && !(this.opts.isDead?.(r.peerId) ?? false))
      .map((r) => ({ r, k: rank(r) }))
      .sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0))
      .map((x) => x.r);
  }

  /** The current record of one peer from the DHT (validated), or undefined. */
  async recordOf(peer: string, opts: AbortOptions = {}): Promise<HolderRecord | undefined> {
    return (await this.fetchRecord(peer, Math.min(this.opMs, DIRECT_FETCH_MS), this.opMs, opts.signal)).record;
  }

  /**
   * One peer's record: the cache, else the peer itself within `directMs`, else the DHT; all within `totalMs` of the
   * start (and `signal`).
   */
  private async fetchRecord(peer: string, directMs: number, totalMs: number, outer: AbortSignal | undefined): Promise<Fetched> {
    const now = this.clock.now();
    const hit = this.cache.get(peer);
    // a miss is retried sooner than a hit: the record may simply not have propagated yet
    const fresh = hit !== undefined && now - hit.fetchedAt < (hit.record === undefined ? Math.min(this.cacheMs, NEGATIVE_CACHE_MS) : this.cacheMs);
    if (hit !== undefined && fresh && (hit.record === undefined || hit.record.expiresMs > now)) return { record: hit.record, silent: false };
    if (peer === this.opts.network.peerId) return { record: this.record, silent: false };
    const key = holderKey(this.opts.networkId, peer);
    const check = (value: Uint8Array | undefined, where: string): HolderRecord | undefined => {
      if (value === undefined) return undefined;
      try {
        return checkHolderRecord(key, value, { networkId: this.opts.networkId, maxSkewMs: this.opts.maxSkewMs ?? 60_000, nowMs: now });
      } catch (e) {
        this.log.debug(`invalid holder record from ${where}`, { peer, error: errorMessage(e) });
        return undefined;
      }
    };
    const total = deadlineLink(totalMs, outer);
    let record: HolderRecord | undefined;
    let silent = false;
    try {
      if (this.opts.fetchDirect !== undefined) {
        const d = deadlineLink(Math.min(directMs, totalMs), total.signal);
        let answered = false;
        const direct = await this.opts.fetchDirect(peer, d.signal).then(
          (v) => {
            answered = true;
            return v;
          },
          (e: unknown) => {
            // an error the peer sent (or a refused dial) is an answer; running into the deadline is not
            answered = !d.signal.aborted;
            this.log.debug('direct holder record fetch failed', { peer, error: errorMessage(e) });
            return undefined;
          },
        ).finally(d.dispose);
        silent = !answered;
        record = check(direct, 'the peer');
      }
      if (record === undefined) {
        const value = await this.opts.network.dhtGet(key, { signal: total.signal }).catch(() => undefined);
        record = check(value, 'the DHT');
        if (this.opts.fetchDirect === undefined) silent = value === undefined && total.signal.aborted;
      }
    } finally {
      total.dispose();
    }
    // the lookup's own end is nobody's silence
    silent &&= record === undefined && outer?.aborted !== true;
    this.noteSilence(peer, silent, now);
    if (this.cache.size >= MAX_CACHE) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(peer, { record, fetchedAt: now });
    return { record, silent };
  }

  private noteSilence(peer: string, silent: boolean, now: number): void {
    if (!silent) {
      this.silent.delete(peer);
      return;
    }
    const strikes = (this.silent.get(peer)?.strikes ?? 0) + 1;
    this.silent.delete(peer);
    if (this.silent.size >= MAX_SILENT) this.silent.delete(this.silent.keys().next().value!);
    this.silent.set(peer, { strikes, until: now + Math.min(SILENT_MAX_MS, SILENT_BASE_MS * 2 ** Math.min(strikes - 1, 16)) });
  }

  /** Providers this registry currently doubts (silent lately): peer → strikes. For tests and diagnostics. */
  silentProviders(): Map<string, number> {
    const now = this.clock.now();
    return new Map([...this.silent].filter(([, s]) => s.until > now).map(([p, s]) => [p, s.strikes]));
  }

  /**
   * The records of `providers`, asked in order, FETCH_CONCURRENCY at a time; a fetch that has not answered after
   * the slow mark frees its slot for the next provider and goes on to its own deadline (≤ MAX_FETCHES_IN_FLIGHT in
   * all). Before, 8 workers each waited for their provider up to the lookup's deadline, so 8 silent providers listed
   * first hid every honest holder after them.
   */
  private fetchRecords(providers: PeerAddressInfo[], signal: AbortSignal): Promise<HolderRecord[]> {
    const out: HolderRecord[] = [];
    const slowMs = Math.max(1, Math.min(SLOW_FETCH_MS, Math.floor(this.opMs / 16)));
    const directMs = Math.max(1, Math.min(DIRECT_FETCH_MS, Math.floor(this.opMs / 5)));
    const totalMs = Math.max(directMs, Math.min(RECORD_FETCH_MS, Math.floor(this.opMs * 0.6)));
    return new Promise((resolve) => {
      let next = 0;
      let active = 0;
      let inFlight = 0;
      const pump = (): void => {
        while (!signal.aborted && next < providers.length && active < FETCH_CONCURRENCY && inFlight < MAX_FETCHES_IN_FLIGHT) {
          const p = providers[next++]!;
          active++;
          inFlight++;
          let holding = true;
          const release = (): void => {
            if (!holding) return;
            holding = false;
            active--;
            pump();
          };
          const slow = setTimeout(release, slowMs);
          slow.unref();
          void this.fetchRecord(p.id, directMs, totalMs, signal)
            .then((f) => {
              if (f.record !== undefined) out.push(f.record);
            }, () => {})
            .finally(() => {
              clearTimeout(slow);
              inFlight--;
              if (holding) {
                holding = false;
                active--;
              }
              pump();
            });
        }
        if (inFlight === 0) resolve(out);
      };
      pump();
    });
  }
}

/** Our record's addresses: canonical, de-duplicated, without the /p2p suffix (the record names the peer), ≤ 16. */
function cleanAddrs(addrs: string[], peerId: string): string[] {
  const suffix = `/p2p/${peerId}`;
  const out = new Set<string>();
  for (const a of addrs) {
    const bare = a.endsWith(suffix) ? a.slice(0, -suffix.length) : a;
    // a relayed address keeps its relay's /p2p part; only our own suffix goes
    if (bare.length > 0 && bare.length <= 256) out.add(bare);
    if (out.size === 16) break;
  }
  return [...out];
}

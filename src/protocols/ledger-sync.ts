/**
 * The ledger on the wire: the LedgerNetwork of src/ledger/interfaces.ts over our P2P interface and RPC layer
 * (docs/PROTOCOL.md "## Ledger sync"). The in-memory double is src/ledger/memory-network.ts; this one behaves the
 * same towards the ledger, and adds what a real network needs:
 *
 *   gossip   topic /neuroshard/<networkId>/ledger/1 (gossipsub, StrictSign). A topic validator runs before an
 *            event is delivered or forwarded: bytes that do not decode, events of another network, a bad signature
 *            or a broken field rule are REJECTED (not relayed; the forwarder loses score, since an honest node
 *            never forwards what it did not validate); stale, future-dated (the ledger's live window) and already
 *            stored events are IGNORED (not relayed, no penalty: a clock or a race is no offence).
 *   sync     ledger-range/1.0.0 (a page after an order key), ledger-by-ids/1.0.0 and ledger-status/1.0.0, unary
 *            RPCs with the sizes of LEDGER_SYNC_LIMITS and a 10 s deadline. A page that does not decode, is out of
 *            canonical order, starts at or before the cursor or is longer than asked for, or a by-ids answer with
 *            events nobody asked for, is the serving peer's misbehaviour: its score drops and the call fails with
 *            a PeerMisbehaviourError (LEDGER_SYNC_MALFORMED).
 *
 * The validator re-verifies what the ledger verifies again at ingest (one extra signature check per gossiped
 * event; the embedded HolderRecord's verdict is cached per verifier, so with the ledger's verifier it is shared).
 * `start()` registers the validator and the RPC handlers; `serve()` only points them at a store, so it can stay
 * synchronous as the interface wants.
 */
import { PENALTY, type PeerScoreTable } from '../p2p/peer-score.js';
import type { P2PNetwork, PeerIdString, PubSubMessage, ValidationResult } from '../p2p/types.js';
import { compareBytes, decodeEvent, decodeEvents, MAX_SLASH_BYTES, orderKey, type LedgerEvent } from '../ledger/events.js';
import { LEDGER_SYNC_LIMITS, type DecodedRangePage, type LedgerNetwork, type LedgerSyncHandler } from '../ledger/interfaces.js';
import { MAX_LIVE_AGE_MS, MAX_LIVE_SKEW_MS } from '../ledger/ledger.js';
import type { ReasonCode } from '../ledger/reasons.js';
import { verifyEventBytes, type VerifyConfig } from '../ledger/verify.js';
import { throwIfAborted, type AbortOptions } from '../util/abort.js';
import { fromHex, toHex } from '../util/bytes.js';
import { systemClock, type Clock } from '../util/clock.js';
import { InvalidArgumentError, NeuroShardError, PeerMisbehaviourError, errorMessage } from '../util/errors.js';
import { TypedEmitter } from '../util/events.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { topicId } from './ids.js';
import * as methods from './methods.js';
import type { RpcNode } from './rpc/service.js';

/** The ledger gossip topic of a network: /neuroshard/<networkId>/ledger/1. */
export function ledgerTopic(networkId: string): string {
  return topicId(networkId, 'ledger');
}

/** What a node answers to ledger-status. */
export interface LedgerStatusSummary {
  /** 64 hex characters. */
  stateHash: string;
  events: number;
}

export interface LedgerGossipVerdict {
  /** The peer that signed the gossip message (not necessarily the event's signer). */
  from: PeerIdString;
  /** The peer that forwarded it to us (penalised on a reject). */
  via: PeerIdString;
  result: ValidationResult;
  reason: ReasonCode | 'KNOWN';
}

export interface LedgerP2PEvents {
  /** A gossiped event was rejected or ignored by the topic validator. */
  'ledger:gossip-dropped': LedgerGossipVerdict;
}

export interface LedgerP2PNetworkOptions {
  p2p: P2PNetwork;
  rpc: RpcNode;
  networkId: string;
  /** The stateless rules of the ledger (its network id, model layers and HolderRecord verifier). */
  verify: VerifyConfig;
  /** The ledger's clock: the live window of gossip is measured on it. */
  clock?: Clock;
  /** Penalties for peers that forward or serve garbage. */
  scores?: PeerScoreTable;
  /** Deadline of one sync call (default LEDGER_SYNC_LIMITS.callTimeoutMs; tests shorten it). */
  callTimeoutMs?: number;
  log?: Logger;
}

/** Penalty for a gossiped or served event, by the reason it failed. */
function penaltyFor(reason: ReasonCode): number {
  if (reason === 'BAD_SIGNATURE' || reason.startsWith('HOLDER_RECORD_')) return PENALTY.forged;
  if (reason === 'TOO_LARGE') return PENALTY.oversized;
  return PENALTY.malformed;
}

export class LedgerP2PNetwork implements LedgerNetwork {
  readonly topic: string;
  readonly events = new TypedEmitter<LedgerP2PEvents>();
  /** Gossip validator outcomes (status and tests). */
  readonly stats = { accepted: 0, ignored: 0, rejected: 0 };
  private readonly p2p: P2PNetwork;
  private readonly rpc: RpcNode;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly callTimeoutMs: number;
  private handler: LedgerSyncHandler | undefined;
  private statusSource: (() => LedgerStatusSummary) | undefined;
  private known: ((id: Uint8Array) => boolean) | undefined;
  private stateCheck: ((e: LedgerEvent) => ReasonCode | null) | undefined;
  private started = false;

  constructor(private readonly opts: LedgerP2PNetworkOptions) {
    if (opts.verify.networkId !== opts.networkId) throw new InvalidArgumentError('verify.networkId must equal networkId');
    this.topic = ledgerTopic(opts.networkId);
    this.p2p = opts.p2p;
    this.rpc = opts.rpc;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? silentLogger;
    this.callTimeoutMs = opts.callTimeoutMs ?? LEDGER_SYNC_LIMITS.callTimeoutMs;
  }

  /** Registers the topic validator and the sync RPC handlers. Call before the ledger service starts. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.p2p.setTopicValidator(this.topic, (m) => this.validate(m));
    await this.rpc.handle(methods.ledgerRange, (req) => {
      const h = this.serving();
      const limit = Math.min(req.limit, LEDGER_SYNC_LIMITS.maxRange);
      return { events: h.range(req.after.byteLength === 0 ? null : req.after, limit).slice(0, limit) };
    });
    await this.rpc.handle(methods.ledgerByIds, (req) => {
      const h = this.serving();
      return { events: h.byIds(req.ids.slice(0, LEDGER_SYNC_LIMITS.maxIds)).slice(0, req.ids.length) };
    });
    await this.rpc.handle(methods.ledgerStatus, () => {
      const s = this.statusSource;
      if (s === undefined) throw new NeuroShardError('LEDGER_NOT_SERVING', 'this node serves no ledger', { fault: 'local' });
      const st = s();
      return { stateHash: fromHex(st.stateHash), events: BigInt(st.events) };
    });
  }

  /** Removes the validator and the handlers. */
  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    this.p2p.setTopicValidator(this.topic, undefined);
    for (const m of [methods.ledgerRange, methods.ledgerByIds, methods.ledgerStatus]) {
      await this.rpc.unhandle(m).catch((e: unknown) => this.log.debug('unhandle failed', { method: m.name, error: errorMessage(e) }));
    }
  }

  /** Lets the validator ignore events the ledger already stores (re-publications), without verifying them. */
  setKnownCheck(known: ((id: Uint8Array) => boolean) | undefined): void {
    this.known = known;
  }

  /**
   * Lets the validator ignore (not relay, no penalty) a valid event that the ledger's state rules reject at the tip
   * (issue 11 attack 5: a key with nothing cannot have its spam carried to every node). Ledger.stateVerdict.
   */
  setStateCheck(check: ((e: LedgerEvent) => ReasonCode | null) | undefined): void {
    this.stateCheck = check;
  }

  /** What ledger-status answers; unset, the call fails with LEDGER_NOT_SERVING. */
  serveStatus(source: (() => LedgerStatusSummary) | undefined): void {
    this.statusSource = source;
  }

  private serving(): LedgerSyncHandler {
    if (this.handler === undefined) throw new NeuroShardError('LEDGER_NOT_SERVING', 'this node serves no ledger', { fault: 'local' });
    return this.handler;
  }

  // ───────────────────────────── gossip ─────────────────────────────

  /** The topic validator: the verdict gossipsub acts on before delivering or forwarding. */
  validate(m: PubSubMessage): ValidationResult {
    const v = this.judge(m.data);
    if (v.reason === 'OK') {
      this.stats.accepted++;
      return 'accept';
    }
    if (v.result === 'reject') {
      this.stats.rejected++;
      this.opts.scores?.penalise(m.via, penaltyFor(v.reason as ReasonCode), `ledger gossip: ${v.reason}`);
      this.log.debug('rejected ledger gossip', { from: m.from, via: m.via, reason: v.reason });
    } else {
      this.stats.ignored++;
    }
    this.events.emit('ledger:gossip-dropped', { from: m.from, via: m.via, result: v.result, reason: v.reason });
    return v.result;
  }

  private judge(bytes: Uint8Array): { result: ValidationResult; reason: ReasonCode | 'KNOWN' | 'OK' } {
    if (bytes.byteLength > MAX_SLASH_BYTES) return { result: 'reject', reason: 'TOO_LARGE' };
    let e: LedgerEvent;
    try {
      e = decodeEvent(bytes);
    } catch {
      return { result: 'reject', reason: 'MALFORMED' };
    }
    if (this.known?.(e.id) === true) return { result: 'ignore', reason: 'KNOWN' };
    const now = this.clock.now();
    // The ledger's live window, checked before the signature: a stale copy costs no ECDSA.
    if (e.timestampMs < now - MAX_LIVE_AGE_MS) return { result: 'ignore', reason: 'STALE' };
    if (e.timestampMs > now + MAX_LIVE_SKEW_MS) return { result: 'ignore', reason: 'FUTURE' };
    const v = verifyEventBytes(bytes, this.opts.verify);
    if (!v.ok) return { result: 'reject', reason: v.reason };
    const no = this.stateCheck?.(v.event) ?? null;
    if (no !== null) return { result: 'ignore', reason: no };
    return { result: 'accept', reason: 'OK' };
  }

  async publish(event: Uint8Array, opts: AbortOptions = {}): Promise<void> {
    throwIfAborted(opts.signal, 'ledger publish');
    if (event.byteLength > MAX_SLASH_BYTES) throw new InvalidArgumentError(`ledger event of ${event.byteLength} bytes is over the limit`);
    await this.p2p.publish(this.topic, event);
  }

  subscribe(handler: (event: Uint8Array, from: string) => void): () => void {
    return this.p2p.subscribe(this.topic, (m) => handler(m.data, m.from));
  }

  /** Peers subscribed to the ledger topic (so running a ledger), minus banned ones. */
  syncPeers(): string[] {
    const scores = this.opts.scores;
    return this.p2p.topicPeers(this.topic).filter((p) => p !== this.p2p.peerId && scores?.isBanned(p) !== true);
  }

  // ───────────────────────────── sync ─────────────────────────────

  serve(handler: LedgerSyncHandler): () => void {
    this.handler = handler;
    return () => {
      if (this.handler === handler) this.handler = undefined;
    };
  }

  async fetchRange(peer: string, after: Uint8Array | null, limit: number, opts: AbortOptions): Promise<Uint8Array[]> {
    return (await this.fetchRangeDecoded(peer, after, limit, opts)).events;
  }

  /**
   * fetchRange with the events it decoded to check the page (issue 11 §4): the sync ingests these instead of
   * decoding and hashing every event a second time (LedgerService.syncFrom). The same checks and limits.
   */
  async fetchRangeDecoded(peer: string, after: Uint8Array | null, limit: number, opts: AbortOptions): Promise<DecodedRangePage> {
    if (!Number.isInteger(limit) || limit < 1 || limit > LEDGER_SYNC_LIMITS.maxRange) {
      throw new InvalidArgumentError(`ledger range limit ${limit} not in 1..${LEDGER_SYNC_LIMITS.maxRange}`);
    }
    if (after !== null && after.byteLength !== methods.LEDGER_ORDER_KEY_BYTES) throw new InvalidArgumentError('ledger range cursor must be a 40-byte order key');
    const res = await this.rpc.call(peer, methods.ledgerRange, { after: after ?? new Uint8Array(0), limit }, { signal: opts.signal, timeoutMs: this.callTimeoutMs });
    const events = res.events;
    if (events.length > limit) this.garbage(peer, `sent ${events.length} events for a page of ${limit}`);
    // An honest peer serves its store: decodable events, strictly ascending in canonical order, after the cursor.
    let decoded: (LedgerEvent | Error)[];
    try {
      decoded = decodeEvents(events);
    } catch (err) {
      this.garbage(peer, `sent an undecodable event: ${errorMessage(err)}`);
    }
    let prev = after;
    for (const e of decoded) {
      if (e instanceof Error) this.garbage(peer, `sent an undecodable event: ${errorMessage(e)}`);
      const key = orderKey(e.timestampMs, e.id);
      if (prev !== null && compareBytes(key, prev) <= 0) this.garbage(peer, 'sent events out of canonical order or at or before the cursor');
      prev = key;
    }
    return { events, decoded };
  }

  async fetchByIds(peer: string, ids: Uint8Array[], opts: AbortOptions): Promise<Uint8Array[]> {
    if (ids.length === 0) return [];
    if (ids.length > LEDGER_SYNC_LIMITS.maxIds) throw new InvalidArgumentError(`at most ${LEDGER_SYNC_LIMITS.maxIds} ids per call`);
    for (const id of ids) if (id.byteLength !== methods.LEDGER_ID_BYTES) throw new InvalidArgumentError('an event id is 32 bytes');
    const res = await this.rpc.call(peer, methods.ledgerByIds, { ids }, { signal: opts.signal, timeoutMs: this.callTimeoutMs });
    const wanted = new Set(ids.map(toHex));
    const seen = new Set<string>();
    for (const bytes of res.events) {
      let id: string;
      try {
        id = toHex(decodeEvent(bytes).id);
      } catch (err) {
        this.garbage(peer, `sent an undecodable event: ${errorMessage(err)}`);
      }
      if (!wanted.has(id) || seen.has(id)) this.garbage(peer, 'sent an event that was not asked for');
      seen.add(id);
    }
    return res.events;
  }

  /** A peer's state hash and event count (ledger-status/1.0.0). */
  async fetchStatus(peer: string, opts: AbortOptions = {}): Promise<LedgerStatusSummary> {
    const res = await this.rpc.call(peer, methods.ledgerStatus, {}, { signal: opts.signal, timeoutMs: Math.min(this.callTimeoutMs, methods.ledgerStatus.timeoutMs) });
    const events = Number(res.events);
    if (!Number.isSafeInteger(events)) this.garbage(peer, 'sent an event count out of range');
    return { stateHash: toHex(res.stateHash), events };
  }

  /** Penalises a peer that served garbage and fails the call. */
  private garbage(peer: string, what: string): never {
    this.opts.scores?.penalise(peer, PENALTY.malformed, `ledger sync: ${what}`);
    throw new PeerMisbehaviourError('LEDGER_SYNC_MALFORMED', `peer ${peer} ${what}`, { peer });
  }
}

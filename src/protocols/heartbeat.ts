/**
 * Heartbeats: every node publishes a small signed message every `intervalMs` (5 s) on
 * /neuroshard/<networkId>/heartbeat/1 (gossipsub with StrictSign: libp2p signs it with the node key and every
 * receiver checks the signature before the message is delivered or forwarded). Receivers validate it here before
 * it counts: the peer id inside must be the signer, the timestamp within the allowed skew, the fields in range,
 * and a peer's heartbeats may not go back in time. Invalid heartbeats are rejected (the forwarder is penalised by
 * gossipsub's peer scoring); valid ones feed the LivenessTracker.
 *
 * A node that stops gracefully publishes one last heartbeat with `leaving` set (`leave`): it passes the same checks
 * (only the signer can say it leaves; a replayed one is older than the heartbeats of a node that came back), and
 * receivers mark the peer dead at once instead of after `peerDeadMs` of silence.
 */
import type { P2PNetwork, PubSubMessage, ValidationResult } from '../p2p/types.js';
import { systemClock, type Clock } from '../util/clock.js';
import { errorMessage } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { heartbeatTopic } from './ids.js';
import type { HeartbeatInfo, LivenessTracker } from './liveness.js';
import { Heartbeat } from './pb/node.js';

/** Largest heartbeat message accepted. */
export const MAX_HEARTBEAT_BYTES = 512;

/**
 * Longest `leave` waits for its leaving heartbeat to be handed to the topic's peers: a stop never hangs on a
 * connection that stopped reading (gossipsub's publish only queues on each peer's stream, so this is a bound, not a
 * typical figure: milliseconds on 127.0.0.1).
 */
export const LEAVE_PUBLISH_TIMEOUT_MS = 1000;

export interface HeartbeatSource {
  span(): { start: number; end: number } | undefined;
  /** 0 = idle, 1 = fully busy (may exceed 1 when queued). */
  load(): number;
  freeMemoryMb(): number;
  trainingStep(): bigint;
  /** How the span's weights are held (`--weights`); absent: f32. */
  weights?(): 'f32' | 'int8';
}

export interface HeartbeatOptions {
  network: P2PNetwork;
  networkId: string;
  liveness: LivenessTracker;
  source: HeartbeatSource;
  intervalMs: number;
  /** Largest accepted difference between a heartbeat's timestamp and our clock. Default 60 s. */
  maxSkewMs?: number;
  clock?: Clock;
  log?: Logger;
}

/** Peers whose last heartbeat time is remembered (the replay guard); see `roomFor`. */
export const MAX_REPLAY_ENTRIES = 10_000;

export class HeartbeatService {
  private readonly topic: string;
  private readonly maxSkewMs: number;
  private readonly clock: Clock;
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private seq = 0n;
  /** Timestamp of our last heartbeat published: the leaving one is dated after it (see `leave`). */
  private lastPublishedMs = -Infinity;
  /** Set by `leave`: no heartbeat after the leaving one (an ordinary one would revive us in every view). */
  private left = false;
  /** Timestamp of our leaving heartbeat (-Infinity: none). */
  private leftTs = -Infinity;
  /** Newest heartbeat timestamp per peer, in order of last update (oldest first): the replay guard. */
  private readonly lastTimestamp = new Map<string, number>();
  /**
   * The replay guard of every peer the table forgot inside the skew window (see `roomFor`): a peer not in the table
   * must send a heartbeat dated after it. Never above the clock at the time of a forgetting (a record dated ahead).
   */
  private floorMs = -Infinity;
  /**
   * Heartbeats published and accepted, for status and tests; `crowded`: heartbeats of peers not in the replay table
   * ignored because they were not dated after the floor of the peers it forgot; `forgotten`: entries forgotten
   * inside the skew window to make room.
   */
  stats = { published: 0, accepted: 0, rejected: 0, crowded: 0, forgotten: 0 };

  constructor(private readonly opts: HeartbeatOptions) {
    this.topic = heartbeatTopic(opts.networkId);
    this.maxSkewMs = opts.maxSkewMs ?? 60_000;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? silentLogger;
  }

  start(): void {
    if (this.timer !== undefined) return;
    // started again after a leave (the same service restarted in one process): heartbeats, dated after the leaving
    // one (`leftTs`, see `beat`), make us alive again in every view
    this.left = false;
    const net = this.opts.network;
    net.setTopicValidator(this.topic, (m) => this.validate(m));
    this.unsubscribe = net.subscribe(this.topic, (m) => this.accept(m));
    this.opts.liveness.start();
    void this.beat();
    this.timer = setInterval(() => void this.beat(), this.opts.intervalMs);
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.opts.network.setTopicValidator(this.topic, undefined);
    this.opts.liveness.stop();
  }

  /** Publishes one heartbeat now (nothing once `leave` ran). */
  async beat(): Promise<void> {
    if (this.left) return;
    // after a leave (restarted in this process) dated after the leaving heartbeat: receivers revive only on a newer one
    const ts = Math.max(this.clock.now(), this.leftTs + 1);
    this.lastPublishedMs = Math.max(this.lastPublishedMs, ts);
    await this.publish(this.encode(ts, false));
  }

  /**
   * Says we are leaving: stops the periodic heartbeats and publishes one heartbeat with `leaving` set, waiting at most
   * `timeoutMs` for it to be handed to the topic's peers. Resolves true when it went to at least one peer; false at
   * once when no peer subscribes to the topic (nobody to tell: a lone node stops as fast as before) or on a second
   * call. Never rejects. Its timestamp is after every heartbeat we published, so a receiver's replay guard drops a
   * late copy of an earlier ordinary heartbeat instead of reviving us (same-millisecond beats included).
   */
  async leave(timeoutMs = LEAVE_PUBLISH_TIMEOUT_MS): Promise<boolean> {
    if (this.left) return false;
    this.left = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    let peers: number;
    try {
      peers = this.opts.network.topicPeers(this.topic).length;
    } catch {
      return false; // the network is stopping already: nobody to tell through it
    }
    if (peers === 0) return false;
    const ts = Math.max(this.clock.now(), this.lastPublishedMs + 1);
    this.lastPublishedMs = ts;
    this.leftTs = ts;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    try {
      return await Promise.race([this.publish(this.encode(ts, true)), timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  private encode(ts: number, leaving: boolean): Uint8Array {
    const s = this.opts.source;
    return Heartbeat.encode({
      peerId: this.opts.network.peerId,
      span: s.span(),
      load: Math.max(0, s.load()),
      freeMemoryMb: BigInt(Math.max(0, Math.floor(s.freeMemoryMb()))),
      trainingStep: s.trainingStep(),
      timestampMs: BigInt(ts),
      seq: ++this.seq,
      weights: s.weights?.() === 'int8' ? 'int8' : '',
      leaving,
    });
  }

  /** Publishes; true when at least one peer was sent it. Never rejects. */
  private async publish(msg: Uint8Array): Promise<boolean> {
    try {
      const n = await this.opts.network.publish(this.topic, msg);
      this.stats.published++;
      return n > 0;
    } catch (e) {
      this.log.debug('heartbeat publish failed', { error: errorMessage(e) });
      return false;
    }
  }

  /** Decodes and checks a heartbeat; undefined when it must be rejected. */
  parse(m: PubSubMessage): HeartbeatInfo | undefined {
    if (m.data.byteLength > MAX_HEARTBEAT_BYTES) return undefined;
    let hb: Heartbeat;
    try {
      hb = Heartbeat.decode(m.data);
    } catch {
      return undefined;
    }
    // StrictSign guarantees `from` signed the message; the payload must speak for the signer only.
    if (hb.peerId !== m.from) return undefined;
    const ts = Number(hb.timestampMs);
    if (!Number.isSafeInteger(ts) || Math.abs(ts - this.clock.now()) > this.maxSkewMs) return undefined;
    if (hb.span !== undefined && !(hb.span.start < hb.span.end && hb.span.end <= 65536)) return undefined;
    if (!Number.isFinite(hb.load) || hb.load < 0 || hb.load > 1e6) return undefined;
    const freeMemoryMb = Number(hb.freeMemoryMb);
    if (!Number.isSafeInteger(freeMemoryMb)) return undefined;
    if (hb.weights !== '' && hb.weights !== 'f32' && hb.weights !== 'int8') return undefined;
    return { peerId: hb.peerId, span: hb.span, load: hb.load, freeMemoryMb, trainingStep: hb.trainingStep, timestampMs: ts, seq: hb.seq, ...(hb.weights === 'int8' ? { weights: 'int8' as const } : {}), ...(hb.leaving ? { leaving: true as const } : {}) };
  }

  private validate(m: PubSubMessage): ValidationResult {
    const hb = this.parse(m);
    if (hb === undefined) {
      this.stats.rejected++;
      return 'reject';
    }
    // An older heartbeat than one we already have is a replay or a late copy: drop it quietly.
    const last = this.lastTimestamp.get(m.from);
    if (last !== undefined && hb.timestampMs < last) return 'ignore';
    if (last === undefined && !this.admits(hb.timestampMs)) return 'ignore';
    return 'accept';
  }

  /** Whether a heartbeat of a peer not in the table is dated after the floor of the forgotten peers. */
  private admits(ts: number): boolean {
    if (ts > this.floorMs) return true;
    this.stats.crowded++;
    return false;
  }

  /**
   * Makes room in the replay table for a new peer: forgets the entry updated longest ago. One older than the skew
   * window guards nothing (the clock check refuses its peer's older heartbeats anyway). One still inside the window
   * raises the floor to its timestamp (capped at the clock now): a peer not in the table is admitted only with a
   * heartbeat dated after the floor, so the forgotten peer's older heartbeats stay refused (fresh ids cannot clear
   * the table and reopen replays of everyone else's heartbeats, issue 11 item 13).
   *
   * Before, while the oldest entry was inside the window no new peer was admitted at all: 10,000 fresh keys each
   * heartbeating once a minute (170 small messages a second) kept the table full for good, every joiner's heartbeats
   * were ignored and it never came alive in any view (the liveness tracker's rotation of unproven peers, issue 12,
   * never saw them; test/attacks/liveness-sybil.test.ts). Now such a flood only raises the floor to about the time
   * its oldest entry was refreshed, which an honest joiner's fresh heartbeat is dated after.
   */
  private roomFor(now: number): void {
    if (this.lastTimestamp.size < MAX_REPLAY_ENTRIES) return;
    const oldest = this.lastTimestamp.entries().next();
    if (oldest.done === true) return;
    this.lastTimestamp.delete(oldest.value[0]);
    if (oldest.value[1] >= now - this.maxSkewMs) {
      this.floorMs = Math.max(this.floorMs, Math.min(oldest.value[1], now));
      this.stats.forgotten++;
    }
  }

  private accept(m: PubSubMessage): void {
    const hb = this.parse(m);
    if (hb === undefined) return; // the validator rejected it already; double-checked for in-memory networks
    const last = this.lastTimestamp.get(m.from);
    if (last !== undefined && hb.timestampMs < last) return;
    if (last === undefined) {
      if (!this.admits(hb.timestampMs)) return;
      this.roomFor(this.clock.now());
    }
    this.lastTimestamp.delete(m.from); // re-inserted at the end: the map stays in order of last update
    this.lastTimestamp.set(m.from, hb.timestampMs);
    this.stats.accepted++;
    this.opts.liveness.observe(m.from, hb);
  }
}

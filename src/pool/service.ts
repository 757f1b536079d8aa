/**
 * The pool at run time: measures this node's capacity, takes a span (pinned, none, or chosen by ./placement.ts
 * from the live view), gets its weights (locally on the genesis node, else from peers over the checkpoint stream,
 * ./transfer.ts), loads them into the compute worker, announces the span, serves its weights to others, and every
 * tick re-plans: a node named in the plan (a restoring move after a holder died, or a throughput move past the
 * margin and its backoff) drains, fetches the new span's weights, swaps them in and re-announces.
 *
 * A move is made once STABLE_TICKS consecutive rounds planned it, so that the pool does not act on a view still
 * settling. A holder's death (liveness `peer:dead`: its signed leaving heartbeat, or `peerDeadMs` of silence) asks
 * for an early round (./early-round.ts: `earlyMs` after it, coalesced, at most one per `earlyMs`), and a restoring
 * move whose layers a dead holder held needs RESTORE_STABLE_TICKS rounds, the second again `earlyMs` after the first:
 * its layers are re-covered seconds after a leave instead of the two to three ticks (20-30 s) of before.
 *
 * Everything that decides is pure (placement.ts, view.ts); this class only gathers inputs and acts.
 */
import type { ComputeClient } from '../compute/client.js';
import type { LlamaConfig } from '../model/config.js';
import type { HolderRecord } from '../protocols/holder-record.js';
import type { LivenessTracker, PeerLiveness } from '../protocols/liveness.js';
import * as methods from '../protocols/methods.js';
import type { RpcNode } from '../protocols/rpc/service.js';
import { deadlineLink } from '../util/abort.js';
import { systemClock, type Clock } from '../util/clock.js';
import { errorMessage, InvalidArgumentError } from '../util/errors.js';
import { TypedEmitter } from '../util/events.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { extraWeightBytes, layerMb, layersFor, noLayerMessage, type WeightsFormat } from './capacity.js';
import { measureCapacity, type MeasuredCapacity } from './measure.js';
import { chooseSpan, coverage, restoresConfirmedDeath, shouldRebalance, spanTokensPerSec, type PoolHolder, type PoolSpan, type PoolView } from './placement.js';
import { EARLY_ROUND_MS, earlyRoundAt, type EarlyRoundState } from './early-round.js';
import { workerHeldRange } from './held-range.js';
import { HeldHash } from './held-hash.js';
import type { ModelFileSet } from './model-files.js';
import { checkpointHandler, downloadSpan, fetchConfig, WeightsUnavailableError, type PenaltySink, type RoundWeights } from './transfer.js';
import { buildView, layersReport, type LayersReport } from './view.js';
import { sliceSpan, spanPayloadBytes } from './weights.js';

export type SpanMode = 'auto' | 'none' | PoolSpan;

/** Consecutive planning rounds that must name the same move before a node makes it. */
export const STABLE_TICKS = 3;

/**
 * The rounds a restoring move needs when a holder the view knows as dead held its layers (placement.ts
 * restoresConfirmedDeath). The rounds exist for a view still settling: a holder that only looks gone (stale counts
 * as live, so it is not planned around) and others' moves not visible yet. Dead is settled: a signed leaving
 * heartbeat or `peerDeadMs` of silence, undone only by a heartbeat dated after it; every node computes the same
 * plan, so only the nodes it names move. One round would act on a single snapshot; the second, `earlyMs` later,
 * has refreshed every holder's record and lets a peer that died and came back at once (a restart) show up alive,
 * and the plan (then without the move) drops it. Not 3: a third round adds `earlyMs` and sees nothing the second did
 * not.
 */
export const RESTORE_STABLE_TICKS = 2;

export interface PoolNetwork {
  readonly peerId: string;
  readonly rpc: RpcNode;
  readonly scores: PenaltySink;
  readonly liveness: LivenessTracker;
  /** The peer's current signed record (cached by the registry), undefined when unknown. */
  recordOf(peer: string, signal: AbortSignal): Promise<HolderRecord | undefined>;
  /** Announces (DHT, heartbeats, trackers) the span we hold now. */
  holdSpan(span: PoolSpan): Promise<void>;
  /** True when this node founded the network. */
  isGenesis(): boolean;
  /** The layer registry's signed, unexpired records of `layer`'s holders (a DHT lookup); optional. */
  holdersOf?(layer: number, signal: AbortSignal): Promise<HolderRecord[]>;
}

/** Registry lookups in flight at once while a joiner places itself. */
const REGISTRY_LOOKUPS = 8;

/** Loads this node's own copy of a span (the genesis model: a checkpoint directory or the seeded initialisation). */
export type LocalLoader = (span: PoolSpan) => Promise<{ hash: string }>;

export interface PoolServiceOptions {
  mode: SpanMode;
  /** The network's model config as this node knows it at start (a joiner replaces it with its holders'). */
  config: LlamaConfig;
  /** True when the config came from a local checkpoint (genesis): it is not fetched from peers. */
  configIsLocal: boolean;
  /**
   * The config verified against the network id (./model-files.ts), when this node fetched the model files: a joiner
   * then takes it instead of asking a holder for one.
   */
  verifiedConfig?: LlamaConfig;
  /** The network's model files this node serves to others (./model-files.ts); undefined: none. */
  modelFiles?: () => ModelFileSet | undefined;
  memoryMb: number | undefined;
  /**
   * How this node holds weights (`--weights`, default f32): sizes its layers for placement; an int8 node keeps no
   * float32 copy, so it serves no weights to joiners and downloads its whole new span when it moves.
   */
  weights?: WeightsFormat;
  compute: ComputeClient;
  network: PoolNetwork;
  /**
   * Weights this node may create itself: the genesis node's checkpoint or seed. Undefined: only from peers (a node
   * on a network founded from a checkpoint it does not have: seeded weights would be another model). Such a node
   * waits until live holders cover its span rather than take it locally.
   */
  loadLocal?: LocalLoader;
  /** Re-plan period (ms). */
  tickMs: number;
  /**
   * How soon after a holder's death a round runs, and the least time between two such early rounds (ms; default
   * EARLY_ROUND_MS, at most tickMs): ./early-round.ts.
   */
  earlyMs?: number;
  /** How long a joiner listens to heartbeats before it chooses (ms). */
  settleMs: number;
  /** When true, the span is chosen and announced but its weights are loaded by someone else (the solo trainer). */
  externalWeights?: (span: PoolSpan, config: LlamaConfig) => boolean;
  /**
   * Drains sessions before a move (the router's hop sessions: new ones refused, live ones given a bounded time to
   * finish, the rest evicted so that their entries fail over); afterMove is called once the move ended, moved or not.
   */
  beforeMove?: () => Promise<void>;
  afterMove?: () => void;
  /**
   * A training node's weights after its last closed outer rounds (the outer sync's snapshots): served to joiners
   * instead of the weights that move with every inner step (./transfer.ts). Undefined or empty: the held weights.
   */
  roundWeights?: () => readonly RoundWeights[];
  /** A joiner downloading the weights after a closed round pins it here (./transfer.ts WeightsSource.pin). */
  pinRound?: (peer: string, round: number) => void;
  /** How often the held weights' hash is read again (ms; default HELD_HASH_REFRESH_MS, ./held-hash.ts). */
  hashRefreshMs?: number;
  /** Capacity measurement override (tests). */
  capacity?: MeasuredCapacity;
  clock?: Clock;
  log?: Logger;
}

export interface PoolEvents {
  /** We hold (and announced) a span, with its weights loaded and verified. */
  'span:held': { span: PoolSpan; hash: string; source: 'local' | 'peers' | 'external'; ms: number; round?: number };
  'span:error': { error: string };
}

export class PoolService {
  readonly events = new TypedEmitter<PoolEvents>();
  private config: LlamaConfig;
  private capacityFigures: MeasuredCapacity | undefined;
  private held: PoolSpan | undefined;
  /** The hash of the weights held now, as this node names it everywhere (./held-hash.ts). */
  private readonly heldHash: HeldHash;
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private stopped = false;
  private readonly moves: number[] = [];
  private readonly records = new Map<string, HolderRecord>();
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly ac = new AbortController();
  private readonly handler;
  private startedAt = 0;
  /** When this joiner first heard a heartbeat naming a holder: the settle period counts from here. */
  private firstHolderAt: number | undefined;
  private pendingMove: { key: string; ticks: number } | undefined;
  /** When the pending timer fires (clock ms). */
  private timerAt = 0;
  private early: EarlyRoundState = { lastMs: undefined, dueMs: undefined };
  /** The last round planned a restore after a death that one more round confirms: run it early. */
  private confirmSoon = false;
  private readonly earlyMs: number;
  private offDead: (() => void) | undefined;
  private swapping = false;
  private lastWaitLog = 0;

  constructor(private readonly o: PoolServiceOptions) {
    this.config = o.config;
    this.clock = o.clock ?? systemClock;
    this.log = o.log ?? silentLogger;
    const early = o.earlyMs ?? EARLY_ROUND_MS;
    if (!Number.isFinite(early) || early < 0) throw new InvalidArgumentError(`pool: earlyMs must be a non-negative number, got ${early}`);
    this.earlyMs = Math.min(early, o.tickMs);
    // while the worker's weights are being swapped, `held` and the worker disagree: serve nothing then. The held
    // weights are read by range in the worker (./held-range.ts), never copied whole to this thread (issue 12 §2)
    const range = workerHeldRange(o.compute, () => (this.swapping ? undefined : this.held));
    this.heldHash = new HeldHash({ read: () => o.compute.run({ type: 'modelHash' }), readable: () => this.held !== undefined && !this.swapping });
    this.handler = checkpointHandler({
      config: () => (this.held === undefined || this.swapping ? undefined : this.config),
      held: () => (this.swapping ? undefined : this.held),
      // an int8 node keeps no float32 copy: a typed refusal (not a fault) that the downloader skips (./transfer.ts)
      notServed: () => (this.o.weights === 'int8' ? 'this node holds int8 weights and keeps no float32 copy to serve' : undefined),
      // every argument forwarded, the stream's signal included: a caller's reset drops the queued worker job and
      // ends the handler, freeing its slot for the caller's retry (./transfer.ts checkpointHandler)
      heldRange: range,
      modelFiles: () => this.o.modelFiles?.(),
      rounds: () => (this.swapping ? [] : (this.o.roundWeights?.() ?? [])),
      pin: (peer, round) => this.o.pinRound?.(peer, round),
    });
  }

  /** Measures capacity (unless given) and registers the checkpoint handler; placement runs in the background. */
  async start(): Promise<void> {
    this.startedAt = this.clock.now();
    await this.o.network.rpc.handle(methods.checkpoint, this.handler);
    // a holder's weights move while it trains (inner steps, outer rounds): the hash it names follows them
    if (this.o.mode !== 'none') this.heldHash.start(this.o.hashRefreshMs);
    if (this.o.mode === 'none') {
      this.capacityFigures = this.o.capacity ?? { memoryMb: 0, maxLayers: 0, layerMb: 0, layerDecodeMs: 0, layerPrefillMs: 0, layerTokensPerSec: 0 };
      // an entry node holds nothing but still keeps holders' records fresh: route choice weighs them by their speed
      this.schedule(0);
      return;
    }
    this.capacityFigures = this.o.capacity ?? (await measureCapacity(this.o.compute, this.config, { ...(this.o.memoryMb === undefined ? {} : { memoryMb: this.o.memoryMb }), weights: this.o.weights ?? 'f32' }));
    // figures for people: times to the µs, rates to 0.1 (the record keeps the exact ones)
    this.log.info('capacity measured', Object.fromEntries(Object.entries(this.capacityFigures).map(([k, v]) => [k, k.endsWith('Ms') ? Math.round(v * 1000) / 1000 : Number.isInteger(v) ? v : Math.round(v * 10) / 10])));
    const none = this.o.mode === 'auto' ? noLayerMessage(this.config, this.capacityFigures.maxLayers, this.capacityFigures.memoryMb, this.o.memoryMb, this.o.weights ?? 'f32') : undefined;
    if (none !== undefined) this.log.warn(none, { memoryMb: this.capacityFigures.memoryMb });
    // only an auto node moves: a pinned or entry node has nothing to plan early
    if (this.o.mode === 'auto') this.offDead = this.o.network.liveness.events.on('peer:dead', (p) => this.onPeerDead(p));
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    this.offDead?.();
    this.offDead = undefined;
    this.heldHash.stop();
    this.ac.abort();
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  modelConfig(): LlamaConfig {
    return this.config;
  }

  span(): PoolSpan | undefined {
    return this.held;
  }

  /**
   * The span hash of the weights held now ('' while none, or while a trainer has not loaded them yet): lags them by
   * at most HELD_HASH_REFRESH_MS (./held-hash.ts).
   */
  modelHash(): string {
    return this.heldHash.current();
  }

  /**
   * The held weights changed (training started, an outer round replaced them): read their hash now rather than at
   * the next refresh. Resolves with the hash named after it.
   */
  refreshHash(): Promise<string> {
    return this.heldHash.refresh();
  }

  capacity(): MeasuredCapacity | undefined {
    return this.capacityFigures;
  }

  /** What our HolderRecord states: memory offered and tokens/s through the span held (0 when none). */
  recordCapacity(): { memoryMb: number; tokensPerSec: number } {
    const c = this.capacityFigures;
    if (c === undefined) return { memoryMb: 0, tokensPerSec: 0 };
    const len = this.held === undefined ? 1 : this.held.end - this.held.start;
    return { memoryMb: c.memoryMb, tokensPerSec: Math.floor(spanTokensPerSec(c.layerTokensPerSec, len)) };
  }

  /** The view this node has now (records of peers refreshed in the background). */
  view(): PoolView {
    const cap = this.recordCapacity();
    return buildView({
      numLayers: this.config.num_hidden_layers,
      self: { peerId: this.o.network.peerId, span: this.held, tokensPerSec: cap.tokensPerSec, memoryMb: cap.memoryMb, weights: this.o.weights ?? 'f32' },
      peers: this.o.network.liveness.snapshot(),
      records: this.records,
    });
  }

  layers(): LayersReport {
    return layersReport(this.view(), this.heldHash.current());
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerAt = this.clock.now() + ms;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // the early round asked for is this one once it is due (a regular tick that comes first leaves it due)
      // (by the time it was set for: a timer may fire a millisecond before the clock says so)
      if (this.early.dueMs !== undefined && this.early.dueMs <= this.timerAt) this.early = { lastMs: this.clock.now(), dueMs: undefined };
      void this.tick().finally(() => this.scheduleNext());
    }, ms);
    this.timer.unref();
  }

  /** After a round: the next one at the tick, or sooner when an early round is due. */
  private scheduleNext(): void {
    if (this.confirmSoon) {
      this.confirmSoon = false;
      this.askEarly();
    }
    const due = this.early.dueMs;
    this.schedule(due === undefined ? this.o.tickMs : Math.min(this.o.tickMs, Math.max(0, due - this.clock.now())));
  }

  /** A peer went dead: when it held layers, this node (an auto holder) may have to restore them; plan soon. */
  private onPeerDead(p: PeerLiveness): void {
    if (this.stopped || this.held === undefined || p.heartbeat.span === undefined) return;
    this.askEarly();
  }

  /** Asks for an early round (coalesced: ./early-round.ts). */
  private askEarly(): void {
    const now = this.clock.now();
    const at = earlyRoundAt(this.early, now, this.earlyMs);
    if (at === undefined) return;
    this.early = { lastMs: this.early.lastMs, dueMs: at };
    // while a round runs there is no timer: it schedules the next one when it ends (scheduleNext)
    if (this.timer !== undefined && this.timerAt > at) this.schedule(at - now);
  }

  private async refreshRecords(): Promise<void> {
    const peers = this.o.network.liveness.snapshot().filter((p) => p.state !== 'dead' && p.heartbeat.span !== undefined);
    // not AbortSignal.any: this.ac lives as long as the pool (util/abort.ts); detached when the lookups end, not 5 s
    // later (one listener per tick stayed on this.ac for the whole deadline)
    const { signal, dispose } = deadlineLink(5000, this.ac.signal);
    try {
      await Promise.all(
        peers.map(async (p) => {
          const r = await this.o.network.recordOf(p.peer, signal).catch(() => undefined);
          if (r !== undefined) this.records.set(p.peer, r);
        }),
      );
    } finally {
      dispose();
    }
    if (this.records.size > 10_000) this.records.clear();
  }

  /** One planning round; never throws. */
  async tick(): Promise<void> {
    if (this.busy || this.stopped) return;
    this.busy = true;
    try {
      await this.refreshRecords();
      if (this.o.mode === 'none') return;
      if (this.held === undefined) await this.place();
      else if (this.o.mode === 'auto') await this.rebalance();
    } catch (e) {
      if (!this.stopped) {
        this.log.warn('layer pool round failed', { error: errorMessage(e) });
        this.events.emit('span:error', { error: errorMessage(e) });
      }
    } finally {
      this.busy = false;
    }
  }

  /**
   * Whether this node may download weights from holder `h` of its view: alive (heard in heartbeats) and known by a
   * signed HolderRecord it fetched and verified (the registry checks the signature, network id and expiry). A holder
   * heard only in heartbeats, or named only by the registry, counts as a replica but serves us nothing yet: a joiner
   * that took weights before it knew the holders' records placed on guessed formats and speeds (issue 8).
   */
  private isSource(h: PoolHolder): boolean {
    return h.peerId !== this.o.network.peerId && h.state === 'alive' && this.records.has(h.peerId);
  }

  /** The view marked with the holders that are no weight source for us (placement.ts PoolHolder.noSource). */
  private markSources(view: PoolView): PoolView {
    return { numLayers: view.numLayers, holders: view.holders.map((h) => (h.peerId === this.o.network.peerId || this.isSource(h) ? h : { ...h, noSource: true as const })) };
  }

  private liveHoldersOf(layer: number): string[] {
    return this.view()
      .holders.filter((h) => this.isSource(h) && h.span.start <= layer && layer < h.span.end)
      .sort((a, b) => b.tokensPerSec - a.tokensPerSec || (a.peerId < b.peerId ? -1 : 1))
      .map((h) => h.peerId);
  }

  /** The first placement. */
  private async place(): Promise<void> {
    const genesis = this.o.network.isGenesis();
    const others = this.view();
    const someoneHolds = others.holders.some((h) => h.peerId !== this.o.network.peerId && h.state !== 'dead');
    if (!genesis && !someoneHolds) {
      // a joiner waits for heartbeats naming holders; on a network nobody serves yet, a pinned span is seeded and a
      // node given --checkpoint (a restarted genesis node no longer founds the network) serves its checkpoint
      if (this.clock.now() - this.startedAt < this.o.settleMs) return;
      const cap = this.capacityFigures!;
      const own =
        this.o.loadLocal === undefined ? undefined : typeof this.o.mode === 'object' ? this.o.mode : this.o.configIsLocal ? chooseSpan(others, { maxLayers: cap.maxLayers, layerTokensPerSec: cap.layerTokensPerSec }) : undefined;
      if (own !== undefined) await this.takeLocal(own);
      else {
        const peers = this.o.network.liveness.snapshot();
        this.logWaiting('waiting for heartbeats that name a holder', { peers: peers.length, alive: peers.filter((p) => p.state === 'alive').length });
      }
      return;
    }
    // hear from more holders first. The settle period counts from the first holder heard, not from start: a joiner
    // hears its bootstrap peer's own heartbeats at once (it publishes to every peer), but others' heartbeats only
    // once that peer has grafted us into its gossip mesh, and the capacity measurement (seconds on a busy machine)
    // can use up a settle period counted from start before that happens (two joiners then took the same half)
    this.firstHolderAt ??= this.clock.now();
    const waited = this.clock.now() - this.firstHolderAt;
    if (!genesis && waited < this.o.settleMs) return;
    // the placement weighs holders by their recorded speed: wait (a bounded while) for every live holder's record
    const unknown = others.holders.filter((h) => h.peerId !== this.o.network.peerId && h.state === 'alive' && !this.records.has(h.peerId));
    if (!genesis && unknown.length > 0 && waited < 3 * this.o.settleMs) return;
    if (!genesis && !this.o.configIsLocal) {
      const holders = others.holders.filter((h) => h.state === 'alive').map((h) => h.peerId);
      this.config = this.o.verifiedConfig ?? (await fetchConfig({ rpc: this.o.network.rpc, log: this.log }, holders, this.ac.signal));
      const cap = this.capacityFigures!;
      this.capacityFigures = { ...cap, maxLayers: layersFor(this.config, cap.memoryMb, this.o.weights ?? 'f32') };
    }
    let span: PoolSpan | undefined;
    // an auto joiner places on the heartbeats plus what the registry names, a pinned one on the heartbeats; either
    // counts as weight sources only the holders it may download from (alive, record verified: isSource). Before, the
    // span was chosen on one view and its sources checked on another (heartbeats only): a span covered only by
    // holders the registry named was then seeded locally, other weights than the network's
    // (test/integration/pool/registry-first.test.ts)
    const seen = genesis ? others : this.markSources(typeof this.o.mode === 'object' ? others : await this.withRegistry(others));
    // what the placement saw, so that a doubled span can be traced (a joiner that heard too few holders)
    this.log.info('placing on the view', { holders: seen.holders.filter((h) => h.peerId !== this.o.network.peerId).map((h) => `${h.peerId.slice(-8)}@${h.span.start}:${h.span.end}/${h.state}/${Math.round(h.tokensPerSec)}`) });
    if (typeof this.o.mode === 'object') span = this.o.mode;
    // tieBreak: joiners that see the same holders (typically the genesis node alone) spread over the windows
    // instead of all taking the first one (placement.ts, ChooseOptions.tieBreak)
    // requireCovered: only windows whose every layer a live float32 holder serves (int8 holders serve no weights)
    else span = chooseSpan(seen, { maxLayers: this.capacityFigures!.maxLayers, layerTokensPerSec: this.capacityFigures!.layerTokensPerSec }, { requireCovered: !genesis, tieBreak: this.o.network.peerId, weights: this.o.weights ?? 'f32' });
    if (span === undefined) {
      const c = coverage({ numLayers: seen.numLayers, holders: seen.holders.filter((h) => h.peerId !== this.o.network.peerId) }, this.o.weights ?? 'f32');
      this.log.info('the layer pool found no span for this node yet', { maxLayers: this.capacityFigures!.maxLayers, replicas: c.replicas.join(','), sources: c.sources.join(',') });
      return;
    }
    if (span.end > this.config.num_hidden_layers) throw new InvalidArgumentError(`span ${span.start}:${span.end} is past the model's ${this.config.num_hidden_layers} layers`);
    const held = coverage({ numLayers: this.config.num_hidden_layers, holders: seen.holders.filter((h) => h.peerId !== this.o.network.peerId) }, this.o.weights ?? 'f32');
    const allHeld = held.replicas.slice(span.start, span.end).every((r) => r > 0);
    const allServed = held.sources.slice(span.start, span.end).every((r) => r > 0);
    if (!allHeld && this.o.loadLocal === undefined) {
      // only peers have this model's weights: wait for holders of every layer of the span (next tick)
      this.logWaiting('waiting for live holders of every layer of the span', { span: `${span.start}:${span.end}`, replicas: held.replicas.slice(span.start, span.end).join(',') });
      return;
    }
    if (!genesis && allHeld && !allServed) {
      // a pinned span whose layers are held, some only by holders we cannot download from (int8 holders serve no
      // weights; others are not alive in heartbeats or their record is not verified yet): downloading would fail and
      // seeding would load other weights than the network's; wait (placement never picks such a span: chooseSpan
      // requireCovered)
      this.logWaiting('waiting for a weight source of every layer of the span (a live float32 holder whose record is verified)', { span: `${span.start}:${span.end}`, sources: held.sources.slice(span.start, span.end).join(',') });
      return;
    }
    if (!genesis && !allHeld && typeof this.o.mode !== 'object') {
      // an auto joiner never seeds: the network's weights come from its holders (chooseSpan requireCovered picks
      // only windows they serve, so this is a guard, not a path)
      this.logWaiting('waiting for live holders of every layer of the span', { span: `${span.start}:${span.end}`, replicas: held.replicas.slice(span.start, span.end).join(',') });
      return;
    }
    if (genesis || !allHeld) await this.takeLocal(span);
    else await this.takeFromPeers(span);
  }

  /**
   * The view plus holders that the layer registry names but whose heartbeats have not reached us yet (as 'stale'):
   * a joiner hears its bootstrap peer at once but others only once gossip has meshed, and on a busy machine a
   * holder's heartbeats can lapse for seconds; placing on heartbeats alone then doubled a span that was already
   * held twice. Peers that liveness knows (dead ones included) keep their liveness state.
   */
  private async withRegistry(view: PoolView): Promise<PoolView> {
    const lookup = this.o.network.holdersOf;
    if (lookup === undefined) return view;
    const self = this.o.network.peerId;
    const known = new Set([self, ...this.o.network.liveness.snapshot().map((p) => p.peer), ...view.holders.map((h) => h.peerId)]);
    // not AbortSignal.any: this.ac lives as long as the pool (util/abort.ts); detached when the lookups end
    const { signal, dispose } = deadlineLink(10_000, this.ac.signal);
    const found = new Map<string, HolderRecord>();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < view.numLayers) {
        const layer = next++;
        const records = await lookup.call(this.o.network, layer, signal).catch(() => [] as HolderRecord[]);
        for (const r of records) {
          if (known.has(r.peerId)) continue;
          const had = found.get(r.peerId);
          if (had === undefined || had.timestampMs < r.timestampMs) found.set(r.peerId, r);
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(REGISTRY_LOOKUPS, view.numLayers) }, worker));
    } finally {
      dispose();
    }
    if (found.size === 0) return view;
    const extra = [...found.values()].map((r) => ({ peerId: r.peerId, span: { start: r.span.start, end: r.span.end }, state: 'stale' as const, tokensPerSec: r.capacity.tokensPerSec, memoryMb: r.capacity.memoryMb, ...(r.weights === 'int8' ? { weights: 'int8' as const } : {}) }));
    this.log.info('the registry names holders not heard from yet', { holders: extra.map((h) => `${h.peerId.slice(-8)}@${h.span.start}:${h.span.end}`) });
    const holders = [...view.holders, ...extra].sort((a, b) => (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0));
    return { numLayers: view.numLayers, holders };
  }

  /** An info line at most every 30 s while the first placement waits. */
  private logWaiting(msg: string, meta: Record<string, unknown>): void {
    if (this.clock.now() - this.lastWaitLog <= 30_000) return;
    this.lastWaitLog = this.clock.now();
    this.log.info(msg, meta);
  }

  private async takeLocal(span: PoolSpan): Promise<void> {
    const t0 = this.clock.now();
    if (this.o.externalWeights?.(span, this.config) === true) {
      await this.adopt(span, '', 'external', t0);
      return;
    }
    if (this.o.loadLocal === undefined) throw new InvalidArgumentError(`span ${span.start}:${span.end}: this node can only take weights from peers`);
    const { hash } = await this.o.loadLocal(span);
    await this.adopt(span, hash, 'local', t0);
  }

  private async takeFromPeers(span: PoolSpan, keep?: { span: PoolSpan; params: Float32Array }): Promise<void> {
    const t0 = this.clock.now();
    // layers we hold already are copied, not downloaded
    const overlap = keep === undefined ? undefined : { start: Math.max(span.start, keep.span.start), end: Math.min(span.end, keep.span.end) };
    const parts: Float32Array[] = [];
    const pieces: PoolSpan[] =
      overlap !== undefined && overlap.start < overlap.end
        ? [
            { start: span.start, end: overlap.start },
            overlap,
            { start: overlap.end, end: span.end },
          ].filter((s) => s.start < s.end)
        : [span];
    let sources: string[] = [];
    let round: number | undefined;
    for (const piece of pieces) {
      if (overlap !== undefined && piece === overlap) {
        parts.push(sliceSpan(this.config, keep!.span, keep!.params, piece));
        continue;
      }
      // the embedding / head travel with the unit at the model's edge, so piece payloads concatenate exactly
      const d = await downloadSpan(
        { rpc: this.o.network.rpc, scores: this.o.network.scores, log: this.log },
        { config: this.config, span: piece, holdersOf: (l) => this.liveHoldersOf(l), signal: this.ac.signal },
      );
      sources = [...sources, ...d.sources];
      round ??= d.round;
      parts.push(d.params);
    }
    const size = parts.reduce((s, p) => s + p.length, 0);
    const params = new Float32Array(size);
    let off = 0;
    for (const p of parts) {
      params.set(p, off);
      off += p.length;
    }
    if (this.stopped) return;
    this.swapping = true;
    let hash: string;
    try {
      await this.o.compute.run({ type: 'initModel', config: this.config, span, params });
      hash = (await this.o.compute.run({ type: 'modelHash' })).hash;
      this.held = { start: span.start, end: span.end };
      this.handler.clearCache();
    } finally {
      this.swapping = false;
    }
    // round: the holders' closed outer round these weights are the state after (undefined: nobody trains them)
    this.log.info('weights fetched from peers and verified', { span: `${span.start}:${span.end}`, sources: [...new Set(sources)].length, hash, round: round ?? null });
    await this.adopt(span, hash, 'peers', t0, round);
  }

  private async adopt(span: PoolSpan, hash: string, source: 'local' | 'peers' | 'external', t0: number, round?: number): Promise<void> {
    this.held = { start: span.start, end: span.end };
    // '' for weights someone else loads (the solo trainer): read from the worker once it has (refreshHash, the timer)
    this.heldHash.set(hash);
    this.handler.clearCache();
    await this.o.network.holdSpan(this.held);
    this.events.emit('span:held', { span: { ...this.held }, hash, source, ms: this.clock.now() - t0, ...(round === undefined ? {} : { round }) });
  }

  private async rebalance(): Promise<void> {
    const view = this.view();
    // plan only on a complete view: a holder whose record (speed, memory) we lack would look idle, and two nodes
    // with different gaps in their views would both think they are the one to move
    if (view.holders.some((h) => h.peerId !== this.o.network.peerId && h.state === 'alive' && !this.records.has(h.peerId))) {
      this.pendingMove = undefined;
      return;
    }
    // every holder's memory in layers of its own format (heartbeats say which), the same figures on every node: with
    // this node's own layer size for everyone, an int8 node and a float32 one planned different moves
    const d = shouldRebalance(view, this.o.network.peerId, { movesMs: this.moves }, this.clock.now(), { layerMb: layerMb(this.config, 'f32'), layerMbInt8: layerMb(this.config, 'int8'), extraMb: extraWeightBytes(this.config) / (1 << 20) });
    if (!d.move) {
      this.pendingMove = undefined;
      return;
    }
    // a move must be planned on STABLE_TICKS consecutive rounds (the view has settled, others' moves are visible);
    // a restore of layers a dead holder held, on RESTORE_STABLE_TICKS, the next of them early
    const key = `${d.span.start}:${d.span.end}/${d.plan.reason}`;
    const afterDeath = restoresConfirmedDeath(view, d.plan);
    this.pendingMove = this.pendingMove?.key === key ? { key, ticks: this.pendingMove.ticks + 1 } : { key, ticks: 1 };
    if (this.pendingMove.ticks < (afterDeath ? RESTORE_STABLE_TICKS : STABLE_TICKS)) {
      this.confirmSoon = afterDeath;
      return;
    }
    this.pendingMove = undefined;
    // an attempt counts for the backoff whether or not it succeeds: a failing move is not retried in a loop
    this.moves.push(this.clock.now());
    while (this.moves.length > 32) this.moves.shift();
    this.log.info('layer pool: moving', { from: `${this.held!.start}:${this.held!.end}`, to: `${d.span.start}:${d.span.end}`, reason: d.plan.reason, ...(afterDeath ? { afterDeath } : {}) });
    await this.o.beforeMove?.();
    try {
      const keep = this.o.weights === 'int8' ? undefined : { span: this.held!, params: await this.heldParams() };
      await this.takeFromPeers(d.span, keep);
    } finally {
      this.o.afterMove?.();
    }
  }

  /** A copy of the held weights (a move keeps the layers it holds already). */
  private async heldParams(): Promise<Float32Array> {
    if (this.held === undefined) throw new WeightsUnavailableError('this node holds no layers');
    if (this.o.weights === 'int8') throw new WeightsUnavailableError('this node holds int8 weights and keeps no float32 copy');
    const held = { ...this.held };
    const { params } = await this.o.compute.run({ type: 'getParams' });
    // the worker must still hold exactly this span (a swap may have started meanwhile)
    if (this.swapping || this.held === undefined || this.held.start !== held.start || this.held.end !== held.end || params.length * 4 !== spanPayloadBytes(this.config, held)) {
      throw new WeightsUnavailableError('the held weights are being replaced');
    }
    return params;
  }
}

/**
 * Chain training, wired (issue 9 §1): a node that holds a span serves the train-stage RPC on its own compute worker
 * (protocols/train-stage.ts over a `stage` job per op); a node whose span starts at layer 0 without covering the
 * whole model drives a chain (training/chain.ts): it forms one from the live holders in its view (spans that line
 * up, the fewest hops), trains on batches of its own genesis shards (the corpus's per-node assignment), and
 * re-forms the chain when a hop fails. A node holding the whole model trains solo as before (a one-node chain:
 * node/train.ts), so none of this runs on a lone genesis node.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { batchSource, workerStage, workerStageTransport, type ComputeClient } from '../compute/index.js';
import { openCorpus } from '../data/index.js';
import { NEUROLLM_BATCH, type LlamaConfig } from '../model/index.js';
import type { PoolService } from '../pool/index.js';
import { releaseStage, remoteStageTransport, STAGE_SERVER_DEFAULTS, TrainStageServer, type StageHost, type StageServerLimits, type WireStageOp } from '../protocols/train-stage.js';
import { ChainTrainer, driverGone, HopInnerLoop, innerLoopParams, NoChainError, OpStage, TrainStepsReachedError, planChain, runOuterRounds, type BatchSource, type ChainCandidate, type ChainHop, type InnerLoop, type LastRoundReport, type PipelineOptions, type StageOp, type TrainStepResult } from '../training/index.js';
import { layerRanges } from '../training/diloco.js';
import type { NodeKey } from '../identity/index.js';
import { ParamLayout } from '../model/layout.js';
import type { Clock } from '../util/clock.js';
import { pause } from '../util/abort.js';
import { errorMessage } from '../util/errors.js';
import { holdersFromView, startOuterSync, TrainingEndpoint, type OuterSyncInit, type OuterSyncWiring } from './diloco.js';

import { silentLogger, type Logger } from '../util/logger.js';
import type { NodeNetwork } from './network.js';
import type { NodeOptions } from './options.js';
import { spanText } from '../util/span-text.js';

export interface Span {
  start: number;
  end: number;
}

/**
 * The hop side of train-stage over this node's compute worker; with `network`, a lease's driver that this node's
 * view says no longer drives (moved off layer 0, or dead: training/chain.ts driverGone) frees the hop.
 */
export function workerStageHost(compute: ComputeClient, config: LlamaConfig, span: () => Span | undefined, network?: Pick<NodeNetwork, 'liveness'>): StageHost {
  const run = workerStageTransport(compute);
  const L = config.num_hidden_layers;
  return {
    span,
    numLayers: L,
    hiddenSize: config.hidden_size,
    vocabSize: config.vocab_size,
    contextLength: config.max_position_embeddings,
    run: (o, signal) => run(o, signal),
    ...(network === undefined
      ? {}
      : {
          driverGone: (peer: string) => {
            const p = network.liveness.get(peer);
            return driverGone(p === undefined ? undefined : { state: p.state, span: p.heartbeat.span }, L);
          },
        }),
  };
}

/** A hop of a chain on a peer: an OpStage over train-stage/1.0.0. */
export function remoteHop(network: NodeNetwork, peer: string, span: Span, o: { chainId: string; config: LlamaConfig; timeoutMs?: number }): ChainHop {
  const transport = remoteStageTransport(network.rpc, peer, {
    chainId: o.chainId,
    span,
    numLayers: o.config.num_hidden_layers,
    hiddenSize: o.config.hidden_size,
    scores: network.scores,
    ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
  });
  return { peer, span, stage: new OpStage(span, o.config.num_hidden_layers, transport), release: () => releaseStage(network.rpc, peer, { chainId: o.chainId, span }) };
}

/** Live holders in this node's view (heartbeats naming a span; banned peers left out). */
export function holderCandidates(network: NodeNetwork): ChainCandidate[] {
  return network.liveness
    .snapshot()
    .filter((p) => p.state === 'alive' && p.heartbeat.span !== undefined && !network.scores.isBanned(p.peer))
    .map((p) => ({ peer: p.peer, span: { start: p.heartbeat.span!.start, end: p.heartbeat.span!.end } }));
}

export interface NodeChainInit {
  compute: ComputeClient;
  network: NodeNetwork;
  config: LlamaConfig;
  /** The span this node holds now (the pool's). */
  span(): Span | undefined;
  limits?: Partial<StageServerLimits>;
  log?: Logger;
}

/** The hop side of a node: the train-stage server, and the passive inner loop over it. */
export class NodeChainHop {
  readonly server: TrainStageServer;
  readonly inner: HopInnerLoop | undefined;

  private constructor(server: TrainStageServer, inner: HopInnerLoop | undefined) {
    this.server = server;
    this.inner = inner;
  }

  static async start(i: NodeChainInit): Promise<NodeChainHop> {
    const host = workerStageHost(i.compute, i.config, i.span, i.network);
    const server = new TrainStageServer(host, { ...STAGE_SERVER_DEFAULTS, ...i.limits }, i.network.scores, i.log ?? silentLogger);
    await server.register(i.network.rpc);
    const span = i.span();
    return new NodeChainHop(server, span === undefined ? undefined : hopInnerLoop(i.compute, server, span, i.config.num_hidden_layers));
  }

  stop(): void {
    this.server.stop();
    this.inner?.close();
  }
}

/** A passive hop's inner loop over `span` of this node's worker: it counts the steps the server applies. */
export function hopInnerLoop(compute: ComputeClient, server: TrainStageServer, span: Span, numLayers: number): HopInnerLoop {
  return new HopInnerLoop({
    local: workerStage(compute, span, numLayers),
    onApplied: (fn) => server.events.on('step:applied', (e) => fn({ step: e.step, peer: e.peer })),
    pause: () => server.pause(),
    resume: () => server.resume(),
    askedWhilePaused: (peer) => server.askedWhilePaused(peer),
  });
}

export interface NodeChainDriverInit {
  compute: ComputeClient;
  network: NodeNetwork;
  config: LlamaConfig;
  /** Our span (starts at 0). */
  span: Span;
  data: BatchSource;
  pipeline: PipelineOptions;
  /** --train-steps: the driver runs no step past it (ChainTrainer's stepLimit). */
  stepLimit?: number;
  /** Deadline of one stage op on a peer (ms). */
  stepTimeoutMs?: number;
  /** Holders to choose from (default: the live view). */
  candidates?: () => ChainCandidate[];
  excludeMs?: number;
  retryMs?: number;
  log?: Logger;
}

/** The driver's ChainTrainer over this node's worker and its peers' train-stage servers. */
export function nodeChainDriver(i: NodeChainDriverInit): ChainTrainer {
  const log = i.log ?? silentLogger;
  const local = workerStage(i.compute, i.span, i.config.num_hidden_layers);
  const self = i.network.peerId;
  const candidates = i.candidates ?? (() => holderCandidates(i.network));
  // chain ids '<nonce>:<seq>': a hop refuses a begin from an older chain of this driver (a late message of a chain
  // already re-formed must not take the lease back)
  const nonce = randomBytes(8).toString('hex');
  let seq = 0;
  const trainer = new ChainTrainer({
    self,
    local,
    data: i.data,
    pipeline: i.pipeline,
    ...(i.excludeMs === undefined ? {} : { excludeMs: i.excludeMs }),
    ...(i.retryMs === undefined ? {} : { retryMs: i.retryMs }),
    ...(i.stepLimit === undefined ? {} : { stepLimit: i.stepLimit }),
    formChain: (exclude) => {
      const plan = planChain({ peer: self, span: i.span }, candidates(), i.config.num_hidden_layers, exclude);
      if (plan === null) return Promise.reject(new NoChainError(`no live holders line up from layer ${i.span.end} to ${i.config.num_hidden_layers}`));
      // a new chain id per chain: a hop's lease belongs to one chain, and a re-formed chain starts clean
      const chainId = `${nonce}:${++seq}`;
      return Promise.resolve(
        plan.map((c) => (c.peer === self ? { peer: self, span: i.span, stage: local } : remoteHop(i.network, c.peer, c.span, { chainId, config: i.config, ...(i.stepTimeoutMs === undefined ? {} : { timeoutMs: i.stepTimeoutMs }) }))),
      );
    },
  });
  trainer.events.on('chain', ({ hops }) => log.info('training chain formed', { hops: hops.map((h) => `${h.peer.slice(-8)}[${spanText(h.span)}]`).join(' → ') }));
  trainer.events.on('abandoned', (a) => log.warn('training step abandoned on every hop; re-forming the chain', { step: a.step, hop: a.peer?.slice(-8) ?? null, error: a.error }));
  return trainer;
}


export interface NodeChainTrainingInit {
  opts: NodeOptions;
  config: LlamaConfig;
  compute: ComputeClient;
  network: NodeNetwork;
  /** The layer pool: the span held (and its changes, 'span:held'), and the view that names each layer's holders. */
  pool: Pick<PoolService, 'events' | 'span' | 'view'>;
  /**
   * Every step this node's chain applied or skipped (counters, telemetry). `discarded`: a step driven while the driver
   * waited to enter the outer rounds (its update to our span was replaced: not our training); `counted`: the driver's
   * steps that count toward --train-steps so far (ChainTrainer's events).
   */
  onStep?(r: TrainStepResult & { discarded: boolean; counted: number }): void;
  /**
   * DiLoCo between partial holders: with these, every holder of a span that trains (`--train`) runs outer rounds
   * for its layers with the other holders of those layers (training/chain-outer.ts).
   */
  outer?: { key: NodeKey; networkId: string; clock: Clock; onRound?(r: LastRoundReport): void; receipts?: OuterSyncInit['receipts']; pollMs?: number; firstRound?: number };
  /** A driver's batches (default: its genesis shards of `--corpus`); tests give a synthetic stream. */
  data?: () => Promise<BatchSource>;
  /** train-stage limits (tests: a shorter lease). */
  limits?: Partial<StageServerLimits>;
  log?: Logger;
}

/**
 * What this node trains over one held span: the passive hop's inner loop over it, a driver when it starts at layer
 * 0, the outer sync of its layers, and the loop that runs them. A pool move ends it and starts another (leave).
 */
interface SpanSession {
  span: Span;
  readonly ac: AbortController;
  hopInner: HopInnerLoop;
  driver?: ChainTrainer;
  outer?: OuterSyncWiring;
  loop: Promise<void>;
}

/**
 * A node's part in chain training: the train-stage server over its span (any holder), and, when its span starts at
 * layer 0 without covering the model, a driver that trains chains on its own genesis shards until `--train-steps`
 * or close. `inner()` is what DiLoCo's outer sync calls (training/inner.ts).
 *
 * A pool move (issue 9: restoring replicas after a holder died, a rebalance) moves the node's membership in the outer
 * rounds with its span: before the weights are swapped, `leave()` ends the old span's session (its rounds stop, its
 * outer sync stops answering: the old layers' holders get `not_held` for their Δ and a status listing other layers,
 * so they neither wait for it nor count it: training/membership.ts), and the new span's `span:held` starts a new
 * session whose outer sync enters the new layers' rounds as a joiner does (at a boundary that counts it, with the
 * state of a closed round downloaded and verified). A move that failed (the span did not change) re-enters the old
 * layers' rounds the same way (`resume()`).
 */
export class NodeChainTraining {
  private stageServer: TrainStageServer | undefined;
  private serverStarting: Promise<TrainStageServer> | undefined;
  private session: SpanSession | undefined;
  /** Span changes are handled one at a time, in order. */
  private switching: Promise<void> = Promise.resolve();
  private stream: Promise<BatchSource> | undefined;
  /** The outer-sync RPCs, registered at the first session's outer sync and kept across sessions (a move's gap). */
  private endpoint: Promise<TrainingEndpoint> | undefined;
  private readonly stop$ = new AbortController();
  private readonly off: () => void;
  private readonly log: Logger;

  constructor(private readonly i: NodeChainTrainingInit) {
    this.log = i.log ?? silentLogger;
    this.off = i.pool.events.on('span:held', ({ span }) => this.onSpan(span));
    const held = i.pool.span();
    if (held !== undefined) this.onSpan(held);
  }

  /** The inner loop of this node (a driver's chain trainer, or the passive hop's), once it holds a span. */
  inner(): InnerLoop | undefined {
    return this.session?.driver ?? this.session?.hopInner;
  }

  /** The outer sync of this node's span (GET /api/training), once it started. */
  outerSync(): OuterSyncWiring | undefined {
    return this.session?.outer;
  }

  /** The train-stage server (tests, status). */
  server(): TrainStageServer | undefined {
    return this.stageServer;
  }

  /** The span whose rounds this node is in (or entering), if any. */
  trainingSpan(): Span | undefined {
    return this.session?.span;
  }

  /**
   * Before a pool move swaps the weights: leave the held span's rounds (the loop stops between steps, the outer sync
   * stops answering for those layers). Resolves once the session has ended.
   */
  leave(): Promise<void> {
    return (this.switching = this.switching.then(() => this.endSession('the pool moves our span')));
  }

  /** After a move, moved or not: a node without a session (the move failed) re-enters its span's rounds. */
  resume(): void {
    const held = this.i.pool.span();
    if (held !== undefined && this.session === undefined) this.onSpan(held);
  }

  private onSpan(span: Span): void {
    this.switching = this.switching.then(() => this.switchTo(span)).catch((e: unknown) => this.log.warn('chain training could not start', { error: errorMessage(e) }));
  }

  private async switchTo(span: Span): Promise<void> {
    const i = this.i;
    if (this.stop$.signal.aborted) return;
    // a `--no-train` holder serves its layers for inference only: it neither drives, nor serves train-stage, nor
    // takes part in the outer rounds (other holders leave it out of their rounds: training/sync.ts)
    if (!i.opts.train) return;
    const cur = this.session;
    if (cur !== undefined && cur.span.start === span.start && cur.span.end === span.end) return;
    if (cur !== undefined) await this.endSession(`span ${span.start}:${span.end} held now`);
    this.serverStarting ??= NodeChainHop.start({ compute: i.compute, network: i.network, config: i.config, span: () => i.pool.span(), ...(i.limits === undefined ? {} : { limits: i.limits }), log: this.log.child('stage') }).then((h) => h.server);
    this.stageServer = await this.serverStarting;
    const L = i.config.num_hidden_layers;
    const partial = span.start > 0 || span.end < L;
    const driving = span.start === 0 && span.end < L;
    const s: SpanSession = { span: { start: span.start, end: span.end }, ac: new AbortController(), hopInner: hopInnerLoop(i.compute, this.stageServer, span, L), loop: Promise.resolve() };
    this.session = s;
    if (driving) s.driver = await this.newDriver(span);
    if (partial && i.outer !== undefined) s.outer = await this.startOuter(s);
    const signal = s.ac.signal;
    const inner: InnerLoop = s.driver ?? s.hopInner;
    const driver = s.driver;
    if (s.outer !== undefined) s.loop = this.rounds(s, inner, driver === undefined ? () => false : () => driver.stepsLeft() <= 0);
    else if (driver !== undefined) s.loop = this.drive(driver, signal);
    s.loop = s.loop.catch((e: unknown) => {
      if (!signal.aborted) this.log.error('chain training stopped', { error: errorMessage(e) });
    });
  }

  /** Ends the current session: its loop stops between steps, its outer sync stops answering. */
  private async endSession(why: string): Promise<void> {
    const s = this.session;
    if (s === undefined) return;
    this.session = undefined;
    s.ac.abort();
    // the loop stops between steps; a hop's pause waits for a driver's step in flight, so a move does not wait for it
    // past a bound (the outer sync stops answering for the old layers anyway)
    const ended = await Promise.race([s.loop.then(() => true, () => true), new Promise<false>((res) => setTimeout(() => res(false), LEAVE_WAIT_MS).unref())]);
    if (!ended) this.log.warn('the old span\'s round loop did not stop in time; leaving it', { span: `${s.span.start}:${s.span.end}`, waitedMs: LEAVE_WAIT_MS });
    // our chain's hops are free for other drivers at once (each would refuse them as busy until our lease lapsed)
    if (s.driver !== undefined) await s.driver.release();
    await s.outer?.stop().catch(() => {});
    s.hopInner.close();
    if (s.outer !== undefined) this.log.info('left the outer rounds of our span', { span: `${s.span.start}:${s.span.end}`, round: s.outer.sync.round, why });
  }

  private async newDriver(span: Span): Promise<ChainTrainer> {
    const i = this.i;
    // one stream of this node's genesis shards for its whole life: a driver after a move goes on where it was
    this.stream ??= (i.data ?? (() => this.corpusStream()))().catch((e: unknown) => {
      this.stream = undefined;
      throw e;
    });
    const data = await this.stream;
    const batchSize = NEUROLLM_BATCH.batchSize;
    const microBatches = batchSize % i.opts.microBatches === 0 ? i.opts.microBatches : 1;
    if (microBatches !== i.opts.microBatches) this.log.warn('--micro-batches does not divide the batch size: one micro-batch per step', { microBatches: i.opts.microBatches, batchSize });
    const driver = nodeChainDriver({
      compute: i.compute,
      network: i.network,
      config: i.config,
      span,
      data,
      pipeline: { microBatches, schedule: i.opts.pipelineSchedule, trainer: { decaySteps: Math.max(1, i.opts.trainSteps) } },
      stepLimit: i.opts.trainSteps,
      stepTimeoutMs: i.opts.stageTimeoutMs,
      log: this.log,
    });
    driver.events.on('step', (r) => i.onStep?.(r));
    this.log.info('driving a training chain', { span: `${span.start}:${span.end}`, microBatches, schedule: i.opts.pipelineSchedule });
    return driver;
  }

  private async corpusStream(): Promise<BatchSource> {
    const i = this.i;
    const signal = this.stop$.signal;
    const corpus = await openCorpus(i.opts.corpus, { cacheDir: join(i.opts.dataDir, 'corpus'), signal, logger: this.log });
    const seqLen = Math.min(NEUROLLM_BATCH.seqLen, i.config.max_position_embeddings);
    // this node's genesis shards (the corpus's per-node assignment)
    return batchSource(await corpus.trainStream({ nodeId: i.network.peerId, batchSize: NEUROLLM_BATCH.batchSize, seqLen, seed: 0, signal }));
  }

  /** The outer sync over a session's span (the pool's holders of each layer). */
  private async startOuter(s: SpanSession): Promise<OuterSyncWiring> {
    const i = this.i;
    const o = i.outer!;
    const layout = new ParamLayout(i.config, s.span);
    const layers = layerRanges(layout);
    this.endpoint ??= TrainingEndpoint.start(i.network.rpc, i.config.num_hidden_layers).catch((e: unknown) => {
      this.endpoint = undefined;
      throw e;
    });
    const endpoint = await this.endpoint;
    const w = await startOuterSync({
      endpoint,
      rpc: i.network.rpc,
      scores: i.network.scores,
      peerId: i.network.peerId,
      key: o.key,
      networkId: o.networkId,
      config: i.config,
      span: s.span,
      inner: innerLoopParams(s.driver ?? s.hopInner, layers, layout.size),
      holders: (layer) => holdersFromView(i.pool.view(), layer),
      options: i.opts,
      clock: o.clock,
      log: this.log.child('diloco'),
      ...(o.onRound === undefined ? {} : { onRound: o.onRound }),
      ...(o.receipts === undefined ? {} : { receipts: o.receipts }), // issue 11 §2: co-signed training records
      ...(o.pollMs === undefined ? {} : { pollMs: o.pollMs }),
      ...(o.firstRound === undefined ? {} : { firstRound: o.firstRound }),
    });
    this.log.info('outer rounds over our span', { span: `${s.span.start}:${s.span.end}`, layers: layers.length, innerSteps: i.opts.innerSteps });
    return w;
  }

  /** Outer rounds over a session's inner loop until it ends; a failure (no chain for long) is retried after a pause. */
  private async rounds(s: SpanSession, inner: InnerLoop, done: () => boolean): Promise<void> {
    const signal = s.ac.signal;
    const o = this.i.outer;
    while (!signal.aborted && !done()) {
      try {
        const driver = s.driver;
        // --train-steps holds for every step the driver runs, those driven while it waits to enter included
        // (ChainTrainer's stepLimit; runOuterRounds begins no round that would pass it)
        await runOuterRounds({ inner, sync: s.outer!.sync, innerSteps: this.i.opts.innerSteps, signal, done, ...(o?.onRound === undefined ? {} : { onRound: o.onRound }), ...(driver === undefined ? {} : { stepsLeft: () => driver.stepsLeft(), drives: (sig) => driver.innerSteps(driver.stepsLeft(), sig) }) });
        return;
      } catch (e) {
        if (signal.aborted || e instanceof TrainStepsReachedError) return;
        this.log.warn('outer rounds wait for the chain', { error: errorMessage(e) });
        await pause(5000, signal, { unref: true });
      }
    }
  }

  /** A driver without outer rounds (the span alone, or none configured): steps until --train-steps. */
  private async drive(driver: ChainTrainer, signal: AbortSignal): Promise<void> {
    while (!signal.aborted && driver.stepsLeft() > 0) {
      try {
        await driver.innerSteps(1, signal);
      } catch (e) {
        if (signal.aborted || e instanceof TrainStepsReachedError) break;
        // no chain for a long while (holders missing): wait and try again; the node keeps serving meanwhile
        this.log.warn('chain training waits for holders', { error: errorMessage(e) });
        await pause(5000, signal, { unref: true });
      }
    }
  }

  async stop(): Promise<void> {
    this.stop$.abort();
    this.off();
    await this.switching.catch(() => {});
    await this.endSession('the node stops');
    await (await this.endpoint?.catch(() => undefined))?.close();
    this.stageServer?.stop();
  }
}

/** How long a leave waits for the old span's round loop to stop (ms). */
const LEAVE_WAIT_MS = 15_000;

/**
 * protocols/train-stage.ts keeps a structural copy of training's StageOp (protocols may not import training): the
 * build fails here if the two drift apart.
 */
type SameType<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
export const STAGE_OPS_AGREE: SameType<StageOp, WireStageOp> = true;

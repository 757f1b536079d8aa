/**
 * Wiring of DiLoCo between replicas (src/training/sync.ts) onto the node's network: the three outer-sync RPCs
 * (protocols/training-sync.ts), signing and checking contributions (protocols/training-contribution.ts), penalties
 * for bad ones (the peer score), and the holders of each layer from the layer pool's view.
 *
 * A whole-model holder that trains wraps its inner stepper (the solo trainer in the compute worker) in a
 * DiLoCoStepper: every H inner steps the outer round closes. Pipeline-chain holders run their outer rounds through
 * `runOuterRounds` in node/chain.ts.
 */
import { join } from 'node:path';
import type { TrainingReport } from '../api/training.js';
import { openCorpus, type Batch as DataBatch } from '../data/index.js';
import { NEUROLLM_BATCH } from '../model/index.js';
import type { ComputeClient } from '../compute/index.js';
import { publicKeyFromPeerId, type NodeKey } from '../identity/index.js';
import { ParamLayout } from '../model/layout.js';
import type { LlamaConfig } from '../model/config.js';
import { PENALTY, type PeerScoreTable } from '../p2p/index.js';
import type { PoolView, RoundWeights } from '../pool/index.js';
import { decodeContribution, encodeContribution, peekContribution } from '../protocols/training-contribution.js';
import { decodeLayerState, encodeLayerState, trainingContribution, trainingLayer, trainingStatus, type LayerRequest, type TrainingStatusMessage, type WireVerdict } from '../protocols/training-sync.js';
import type { RpcNode, UnaryHandler } from '../protocols/rpc/service.js';
import { decodeDelta, type CompressionKind } from '../training/compression/index.js';
import type { AggregatorName } from '../training/aggregation/index.js';
import { contributionRoundCheck } from '../training/rounds.js';
import { isModelLayer } from '../training/membership.js';
import { DiLoCoStepper, OuterSync, PeerNotTrainingError, STATUS_HISTORY, type InnerParams, type LastRoundReport, type SyncStats, type SyncTransport } from '../training/sync.js';
import type { TrainStepper } from '../training/index.js';
import type { Clock } from '../util/clock.js';
import { errorMessage, NeuroShardError, PeerMisbehaviourError } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import type { NodeOptions } from './options.js';
import { startTrainingReceipts, type TrainingReceipts, type TrainingReceiptsInit } from './training-receipts.js';

/** Points per refused contribution, by its code (a forged signature weighs most). */
const PENALTY_BY_CODE: Record<string, number> = {
  CONTRIBUTION_BAD_SIGNATURE: PENALTY.forged,
  CONTRIBUTION_WRONG_SENDER: PENALTY.forged,
  CONTRIBUTION_TOO_LARGE: PENALTY.oversized,
};

export interface OuterSyncWiring {
  readonly sync: OuterSync;
  /** The training-record exchange and receipt submission, when `receipts` was given. */
  readonly receipts?: TrainingReceipts;
  /** The span whose layers this sync trains (its layout). */
  readonly span: { start: number; end: number };
  /** Wraps the inner stepper: enter at a boundary, close a round every H steps. */
  stepper(inner: TrainStepper, signal: AbortSignal): TrainStepper;
  stop(): Promise<void>;
}

export interface OuterSyncInit {
  rpc: RpcNode;
  scores: PeerScoreTable;
  peerId: string;
  key: NodeKey;
  networkId: string;
  config: LlamaConfig;
  span: { start: number; end: number };
  inner: InnerParams;
  /** Live holders of a layer id, ourselves included. */
  holders: (layer: string) => string[];
  options: Pick<NodeOptions, 'innerSteps' | 'outerLr' | 'outerMomentum' | 'aggregator' | 'compress' | 'outerQuorum' | 'outerSyncTimeoutMs'>;
  clock: Clock;
  log?: Logger;
  onRound?: (r: LastRoundReport) => void;
  pollMs?: number;
  /**
   * Issue 11 §2: co-sign each closed round's training record with the other members and submit receipts
   * (node/training-receipts.ts); absent = no records (a node without a ledger).
   */
  receipts?: Pick<TrainingReceiptsInit, 'tokensPerContribution' | 'submit' | 'precheck' | 'collectMs' | 'pollMs'>;
  /** Gauntlet's held-out loss (training/sync.ts); see workerHeldOutLoss. */
  heldOutLoss?: (round: number, params: Float32Array, signal: AbortSignal) => Promise<number>;
  /** The first round's number when nobody is ahead (training/sync.ts; default 0): tests drift layer groups apart with it. */
  firstRound?: number;
  /**
   * The node's outer-sync RPC handlers, kept across sessions (a chain holder's span moves: node/chain.ts). Absent: this
   * outer sync registers its own and removes them at stop (a whole-model replica's single session).
   */
  endpoint?: TrainingEndpoint;
}

/** What one outer sync answers on the three outer-sync RPCs. */
interface TrainingHandlers {
  contribution: UnaryHandler<Uint8Array, { verdict: WireVerdict }>;
  status: () => TrainingStatusMessage;
  layer: UnaryHandler<LayerRequest, Uint8Array>;
}

/**
 * The three outer-sync RPCs of a node, registered once and answered by the current session's outer sync. Between two
 * sessions (a pool move: the old span's session ended, the new one not started yet) it answers as a node that trains
 * none of the layers: a status with `layers: []` (the holders leave it out of their rounds: training/membership.ts),
 * `not_held` to a contribution for a model layer, no state. Before, the handlers went with the session: in the gap the
 * node did not speak the protocols, its peers took it for a `--no-train` holder (no round member until asked again)
 * and their RPC layer for an older node without reusable streams (a stream per call for 10 min).
 */
export class TrainingEndpoint {
  private current: TrainingHandlers | undefined;
  private constructor(
    private readonly rpc: RpcNode,
    private readonly numLayers: number,
  ) {}

  static async start(rpc: RpcNode, numLayers: number): Promise<TrainingEndpoint> {
    const ep = new TrainingEndpoint(rpc, numLayers);
    await rpc.handle(trainingContribution, (bytes, ctx) => ep.current?.contribution(bytes, ctx) ?? ep.gapVerdict(bytes));
    await rpc.handle(trainingStatus, () => ep.current?.status() ?? { round: -1, phase: 'entering', members: [], closed: [], layers: [] });
    await rpc.handle(trainingLayer, (req, ctx) => {
      // The gap between two sessions (a pool move) is this node's state, not the caller's fault: an honest joiner
      // asking then gets a typed answer and no penalty (it was PeerMisbehaviourError before session 23).
      if (ep.current === undefined) throw new NeuroShardError('TRAINING_NOT_ATTACHED', `no state of ${req.layer} after round ${req.round} here (between training sessions)`, { fault: 'local' });
      return ep.current.layer(req, ctx);
    });
    return ep;
  }

  /** Whether a session answers now (false: the gap between two). */
  get attached(): boolean {
    return this.current !== undefined;
  }

  attach(h: TrainingHandlers): void {
    this.current = h;
  }

  /** The session `h` ended: answer the gap (a later session's attach is not undone by an older one's detach). */
  detach(h: TrainingHandlers): void {
    if (this.current === h) this.current = undefined;
  }

  async close(): Promise<void> {
    this.current = undefined;
    for (const m of [trainingContribution, trainingStatus, trainingLayer]) await this.rpc.unhandle(m).catch(() => {});
  }

  private gapVerdict(bytes: Uint8Array): { verdict: WireVerdict } {
    const head = peekContribution(bytes);
    // no penalty in the gap: we train no layer now (an honest race with our move); a sender stops waiting for us
    return { verdict: head !== undefined && isModelLayer(head.layer, this.numLayers) ? 'not_held' : 'rejected' };
  }
}

/** The flat buffer of a compute worker's model as the outer sync's parameters. */
export function workerParams(compute: ComputeClient): InnerParams {
  return {
    getParams: async () => (await compute.run({ type: 'getParams' })).params,
    setParams: async (params) => {
      await compute.run({ type: 'setParams', params: params.slice() });
    },
  };
}

/** Held-out batches Gauntlet scores on: GAUNTLET_HELD_OUT of them, the batch of round r is r mod their count. */
export const GAUNTLET_HELD_OUT = 4;

/**
 * Gauntlet's held-out loss on a whole-model replica's compute worker (`--aggregator gauntlet`): the candidate
 * parameters are written into the worker (the outer sync writes the round's result back after it aggregated) and
 * the loss of the round's held-out batch is evaluated. `batches` must give every node the same batches (the corpus's
 * stream of a fixed pseudo-node id: corpusHeldOut), so that holders score alike and keep the same contributions.
 */
export function workerHeldOutLoss(compute: ComputeClient, batches: () => Promise<readonly DataBatch[]>): (round: number, params: Float32Array, signal: AbortSignal) => Promise<number> {
  return async (round, params, signal) => {
    const bs = await batches();
    if (bs.length === 0) throw new NeuroShardError('GAUNTLET_NO_DATA', 'no held-out batch to score contributions on', { fault: 'local' });
    const b = bs[round % bs.length]!;
    await compute.run({ type: 'setParams', params: params.slice() }, { signal });
    return (await compute.run({ type: 'evalLoss', inputs: b.inputs.slice(), targets: b.labels.slice(), B: b.batchSize, T: b.seqLen }, { signal })).loss;
  };
}

/**
 * The held-out batches of a node's corpus: the first GAUNTLET_HELD_OUT batches of the stream the corpus assigns to the
 * pseudo-node 'gauntlet-held-out' (seed 0), as scripts/experiments/diloco.mjs scores. The same on every node: the
 * assignment depends on the corpus, the id and the seed only. Loaded once, on first use.
 */
export function corpusHeldOut(opts: Pick<NodeOptions, 'corpus' | 'dataDir'>, config: LlamaConfig, log: Logger): () => Promise<readonly DataBatch[]> {
  let p: Promise<DataBatch[]> | undefined;
  return () =>
    (p ??= (async () => {
      const corpus = await openCorpus(opts.corpus, { cacheDir: join(opts.dataDir, 'corpus'), logger: log });
      const seqLen = Math.min(NEUROLLM_BATCH.seqLen, config.max_position_embeddings);
      const stream = await corpus.trainStream({ nodeId: 'gauntlet-held-out', batchSize: NEUROLLM_BATCH.batchSize, seqLen, seed: 0 });
      return Array.from({ length: GAUNTLET_HELD_OUT }, () => stream.next());
    })().catch((e: unknown) => {
      p = undefined; // tried again at the next round
      throw e;
    }));
}

/**
 * Live holders of each layer id in the pool's view ('embed' with layer 0, 'head' with the last layer): alive or
 * stale (a busy holder's heartbeats run late; only dead ones are left out, so membership does not flap).
 */
export function holdersFromView(view: PoolView, layer: string): string[] {
  const L = view.numLayers;
  const i = layer === 'embed' ? 0 : layer === 'head' ? L - 1 : Number(layer.slice('layers.'.length));
  return view.holders.filter((h) => h.state !== 'dead' && h.span.start <= i && i < h.span.end).map((h) => h.peerId);
}

export async function startOuterSync(i: OuterSyncInit): Promise<OuterSyncWiring> {
  const log = i.log ?? silentLogger;
  const compress = i.options.compress as CompressionKind;
  const layout = new ParamLayout(i.config, i.span);
  let receipts: TrainingReceipts | undefined;
  const transport: SyncTransport = {
    send: async (peer, c, signal) => {
      const bytes = encodeContribution(i.key, { networkId: i.networkId, round: c.round, layer: c.layer, compression: c.compression, n: c.n, payload: c.payload });
      return (await i.rpc.call(peer, trainingContribution, bytes, { signal })).verdict;
    },
    status: async (peer, signal) => {
      try {
        return await i.rpc.call(peer, trainingStatus, {}, { signal });
      } catch (e) {
        // a holder that does not serve the status RPC does not train (`--no-train`): no round member
        if (e instanceof NeuroShardError && e.code === 'RPC_UNAVAILABLE' && e.meta?.reason === 'unsupported-protocol') throw new PeerNotTrainingError(peer);
        throw e;
      }
    },
    fetchLayer: async (peer, round, layer, signal) => decodeLayerState(await i.rpc.call(peer, trainingLayer, { round, layer }, { signal })),
  };
  const sync = new OuterSync({
    self: i.peerId,
    layout,
    inner: i.inner,
    round: { innerSteps: i.options.innerSteps, quorum: i.options.outerQuorum, syncTimeoutMs: i.options.outerSyncTimeoutMs },
    aggregator: i.options.aggregator as AggregatorName,
    compress,
    outerLr: i.options.outerLr,
    outerMomentum: i.options.outerMomentum,
    holders: i.holders,
    transport,
    clock: i.clock,
    log,
    ...(i.pollMs === undefined ? {} : { pollMs: i.pollMs }),
    onClosed: (r) => receipts?.onClosed(r, sync.status().closed),
    ...(i.heldOutLoss === undefined ? {} : { heldOutLoss: i.heldOutLoss }),
    ...(i.firstRound === undefined ? {} : { firstRound: i.firstRound }),
  });
  if (i.receipts !== undefined) {
    receipts = await startTrainingReceipts({ rpc: i.rpc, key: i.key, networkId: i.networkId, span: i.span, clock: i.clock, log: log.child('receipts'), ...i.receipts });
  }

  const refuse = (peer: string, code: string, points: number): { verdict: WireVerdict } => {
    i.scores.penalise(peer, points, `training-contribution: ${code}`);
    sync.refused(peer, code);
    log.info('contribution refused', { peer, code });
    return { verdict: 'rejected' };
  };
  const contribution: TrainingHandlers['contribution'] = (bytes, ctx) => {
    const head = peekContribution(bytes);
    if (head === undefined) return refuse(ctx.peer, 'CONTRIBUTION_MALFORMED', PENALTY.malformed);
    const n = sync.layerSize(head.layer);
    // a layer of the model we do not train: the sender's view still lists us as a holder after the pool moved us
    // (an honest race, no penalty; it stops waiting for us: training/membership.ts); anything else is refused
    if (n === undefined) return isModelLayer(head.layer, i.config.num_hidden_layers) ? { verdict: 'not_held' as const } : refuse(ctx.peer, 'CONTRIBUTION_WRONG_LAYER', PENALTY.malformed);
    // past rounds are answered without a penalty (an honest race with a joiner), and so are future ones from a
    // holder of the layer (round numbers skip forward); far future ones from anyone else are refused
    // (training/rounds.ts contributionRoundCheck)
    const check = contributionRoundCheck(head.round, sync.round, STATUS_HISTORY, sync.holds(ctx.peer, head.layer));
    if (check === 'refuse') return refuse(ctx.peer, 'CONTRIBUTION_WRONG_ROUND', PENALTY.malformed);
    if (check !== 'take') return { verdict: check };
    let delta: Float32Array | undefined;
    try {
      decodeContribution(bytes, {
        networkId: i.networkId,
        round: head.round,
        layer: head.layer,
        n,
        compression: compress,
        sender: publicKeyFromPeerId(ctx.peer),
        validatePayload: (k, m, p) => {
          delta = decodeDelta(k, m, p);
        },
      });
    } catch (e) {
      if (e instanceof PeerMisbehaviourError) return refuse(ctx.peer, e.code, PENALTY_BY_CODE[e.code] ?? PENALTY.malformed);
      log.warn('contribution check failed', { peer: ctx.peer, error: errorMessage(e) });
      return { verdict: 'rejected' };
    }
    return { verdict: sync.receive(ctx.peer, head.round, head.layer, delta!, bytes.byteLength) };
  };
  const handlers: TrainingHandlers = {
    contribution,
    status: () => sync.status(),
    // the joiner's download pins the round here (OuterSync.serveLayer): its later layers find it kept
    layer: (req, ctx) => {
      const s = sync.serveLayer(ctx.peer, req.round, req.layer);
      if (s === undefined) throw new PeerMisbehaviourError('TRAINING_LAYER_UNKNOWN', `no state of ${req.layer} after round ${req.round} here`);
      return encodeLayerState(s);
    },
  };
  const endpoint = i.endpoint ?? (await TrainingEndpoint.start(i.rpc, i.config.num_hidden_layers));
  endpoint.attach(handlers);
  return {
    sync,
    ...(receipts === undefined ? {} : { receipts }),
    span: { start: i.span.start, end: i.span.end },
    stepper: (inner, signal) => new DiLoCoStepper(inner, sync, i.options.innerSteps, signal, i.onRound),
    stop: async () => {
      // a shared endpoint answers the gap until the next session attaches; our own goes with us
      if (i.endpoint !== undefined) i.endpoint.detach(handlers);
      else await endpoint.close();
      await receipts?.stop();
    },
  };
}

/** The weights after an outer sync's kept closed rounds, as the layer pool serves them to joiners. */
export function roundWeightsOf(w: OuterSyncWiring | undefined): RoundWeights[] {
  if (w === undefined) return [];
  return w.sync.closedWeights().map((c) => ({ round: c.round, span: w.span, params: c.params }));
}

/** GET /api/training's body from the node's counters and the outer sync. */
export function trainingReport(sync: SyncStats | undefined, c: { innerStep: number; trainLoss: number | null; valLoss: number | null; tokensPerSec: number }): TrainingReport {
  const last = sync?.lastRound ?? null;
  return {
    round: sync?.round ?? null,
    innerStep: c.innerStep,
    trainLoss: c.trainLoss,
    valLoss: c.valLoss,
    tokensPerSec: c.tokensPerSec,
    outerSync: {
      bytesSent: sync?.bytesSent ?? 0,
      bytesReceived: sync?.bytesReceived ?? 0,
      lastRound:
        last === null
          ? null
          : { round: last.round, accepted: last.accepted, rejected: last.rejected, late: last.late, refused: last.refused.slice(0, 64), repaired: last.repaired, diverged: last.diverged, syncMs: last.syncMs },
      kept: sync?.kept ?? { rounds: [], bytes: 0 },
    },
    layerHashes: sync?.hashes ?? {},
  };
}

/**
 * Chain training, wired (issue 9 §1): a node that holds a span serves the train-stage RPC on its own compute worker
 * (protocols/train-stage.ts over a `stage` job per op); a node whose span starts at layer 0 without covering the
 * whole model drives a chain (training/chain.ts): it forms one from the live holders in its view (spans that line
 * up, the fewest hops), trains on batches of its own genesis shards (the corpus's per-node assignment), and
 * re-forms the chain when a hop fails. A node holding the whole model trains solo as before (a one-node chain:
 * node/train.ts), so none of this runs on a lone genesis node.
 */
import { randomBytes } from 'node:crypto';
import { workerStage, workerStageTransport, type ComputeClient } from '../compute/index.js';
import type { LlamaConfig } from '../model/index.js';
import { remoteStageTransport, STAGE_SERVER_DEFAULTS, TrainStageServer, type StageHost, type StageServerLimits } from '../protocols/train-stage.js';
import { ChainTrainer, HopInnerLoop, NoChainError, OpStage, planChain, type BatchSource, type ChainCandidate, type ChainHop, type PipelineOptions } from '../training/index.js';

import { silentLogger, type Logger } from '../util/logger.js';
import type { NodeNetwork } from './network.js';

export interface Span {
  start: number;
  end: number;
}

/** The hop side of train-stage over this node's compute worker. */
export function workerStageHost(compute: ComputeClient, config: LlamaConfig, span: () => Span | undefined): StageHost {
  const run = workerStageTransport(compute);
  return {
    span,
    numLayers: config.num_hidden_layers,
    hiddenSize: config.hidden_size,
    vocabSize: config.vocab_size,
    contextLength: config.max_position_embeddings,
    run: (o, signal) => run(o, signal),
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
  return { peer, span, stage: new OpStage(span, o.config.num_hidden_layers, transport) };
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
    const host = workerStageHost(i.compute, i.config, i.span);
    const server = new TrainStageServer(host, { ...STAGE_SERVER_DEFAULTS, ...i.limits }, i.network.scores, i.log ?? silentLogger);
    await server.register(i.network.rpc);
    const span = i.span();
    const inner =
      span === undefined
        ? undefined
        : new HopInnerLoop({
            local: workerStage(i.compute, span, i.config.num_hidden_layers),
            onApplied: (fn) => server.events.on('step:applied', () => fn()),
            pause: () => server.pause(),
            resume: () => server.resume(),
          });
    return new NodeChainHop(server, inner);
  }

  stop(): void {
    this.server.stop();
    this.inner?.close();
  }
}

export interface NodeChainDriverInit {
  compute: ComputeClient;
  network: NodeNetwork;
  config: LlamaConfig;
  /** Our span (starts at 0). */
  span: Span;
  data: BatchSource;
  pipeline: PipelineOptions;
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
  const trainer = new ChainTrainer({
    self,
    local,
    data: i.data,
    pipeline: i.pipeline,
    ...(i.excludeMs === undefined ? {} : { excludeMs: i.excludeMs }),
    ...(i.retryMs === undefined ? {} : { retryMs: i.retryMs }),
    formChain: (exclude) => {
      const plan = planChain({ peer: self, span: i.span }, candidates(), i.config.num_hidden_layers, exclude);
      if (plan === null) return Promise.reject(new NoChainError(`no live holders line up from layer ${i.span.end} to ${i.config.num_hidden_layers}`));
      // a new chain id per chain: a hop's lease belongs to one chain, and a re-formed chain starts clean
      const chainId = `${self.slice(-12)}-${randomBytes(6).toString('hex')}`;
      return Promise.resolve(
        plan.map((c) => (c.peer === self ? { peer: self, span: i.span, stage: local } : remoteHop(i.network, c.peer, c.span, { chainId, config: i.config, ...(i.stepTimeoutMs === undefined ? {} : { timeoutMs: i.stepTimeoutMs }) }))),
      );
    },
  });
  trainer.events.on('chain', ({ hops }) => log.info('training chain formed', { hops: hops.map((h) => `${h.peer.slice(-8)}[${h.span.start}:${h.span.end})`).join(' → ') }));
  trainer.events.on('abandoned', (a) => log.warn('training step abandoned on every hop; re-forming the chain', { step: a.step, hop: a.peer?.slice(-8) ?? null, error: a.error }));
  return trainer;
}


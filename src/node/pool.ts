/**
 * Wiring of the layer pool (src/pool/) into a node: the genesis model (a `--checkpoint` directory, ours or a Hugging
 * Face Llama one, or the seeded initialisation), how the node loads its own copy of a span, and the PoolService
 * over the node's network and compute worker.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ComputeClient } from '../compute/index.js';
import { CHECKPOINT_FILES, loadHfModel } from '../model/checkpoint.js';
import { parseHfConfig, type LlamaConfig } from '../model/config.js';
import type { RpcNode } from '../protocols/rpc/service.js';
import { EARLY_ROUND_MS, PoolService, type MeasuredCapacity, type ModelFileSet, type PoolSpan, type RoundWeights, type SpanMode } from '../pool/index.js';
import { selectBackend } from '../tensor/index.js';
import type { Clock } from '../util/clock.js';
import { ConfigError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import type { NodeNetwork } from './network.js';
import type { NodeOptions } from './options.js';

/** The seed of the genesis initialisation (the training default). */
export const GENESIS_SEED = 0;

/** Pool timing that is not a user option (tests shorten it). */
export interface PoolTuning {
  /** Re-plan period. */
  tickMs: number;
  /** How long a joiner listens to heartbeats before it picks a span. */
  settleMs: number;
  /** Skip the measurement and use these figures (tests that need exact memory arithmetic). */
  capacity?: MeasuredCapacity;
  /** How long a moving node lets its live hop sessions finish before it evicts them (they fail over). */
  drainMs: number;
  /** How soon after a holder's death the pool plans (pool/early-round.ts), and the least gap between such rounds. */
  earlyMs: number;
}

export const POOL_TUNING_DEFAULTS: PoolTuning = { tickMs: 10_000, settleMs: 12_000, drainMs: 30_000, earlyMs: EARLY_ROUND_MS };

/** The model config of a checkpoint directory (config.json), or the bundled genesis config. */
export function genesisModelConfig(checkpoint: string | undefined, bundled: LlamaConfig): LlamaConfig {
  if (checkpoint === undefined) return bundled;
  const file = join(checkpoint, CHECKPOINT_FILES.config);
  if (!existsSync(file)) throw new ConfigError(`--checkpoint ${checkpoint}: no ${CHECKPOINT_FILES.config} there`, { checkpoint });
  return parseHfConfig(readFileSync(file, 'utf8'), file);
}

/** Loads this node's own copy of `span` into the worker: from the checkpoint when given, else the seeded init. */
export function localLoader(compute: ComputeClient, config: LlamaConfig, checkpoint: string | undefined): (span: PoolSpan) => Promise<{ hash: string }> {
  return async (span) => {
    if (checkpoint === undefined) {
      await compute.run({ type: 'initModel', config, seed: GENESIS_SEED, span });
    } else if (existsSync(join(checkpoint, CHECKPOINT_FILES.manifest))) {
      await compute.run({ type: 'loadCheckpoint', dir: checkpoint, span });
    } else {
      // a Hugging Face directory: read on this thread with the reference backend (only to parse), then handed over
      const { backend } = await selectBackend({ backend: 'reference' });
      const { model } = loadHfModel(checkpoint, { backend, span });
      await compute.run({ type: 'initModel', config, span, params: model.params });
    }
    return await compute.run({ type: 'modelHash' });
  };
}

export interface NodePoolInit {
  opts: NodeOptions;
  config: LlamaConfig;
  /** The config verified against the network id (node/network-model.ts), when fetched from peers. */
  verifiedConfig?: LlamaConfig;
  /** The network's model files this node serves. */
  modelFiles?: () => ModelFileSet | undefined;
  compute: ComputeClient;
  network: NodeNetwork;
  /** The RPC the pool's downloads go through (default network.rpc; the node passes one that meters them). */
  rpc?: RpcNode;
  tuning: PoolTuning;
  /** Called when the pool takes the whole model locally and the solo trainer should own the weights. */
  startTraining: () => void;
  beforeMove?: () => Promise<void>;
  afterMove?: () => void;
  /** A training node's weights after its last closed outer rounds (served to joiners instead of the moving ones). */
  roundWeights?: () => readonly RoundWeights[];
  /** A joiner downloading a closed round's weights pins it on our outer sync (training/keep.ts). */
  pinRound?: (peer: string, round: number) => void;
  clock: Clock;
  log: Logger;
}

export function createNodePool(i: NodePoolInit): PoolService {
  const { opts, network } = i;
  const mode: SpanMode = opts.span;
  return new PoolService({
    mode,
    config: i.config,
    configIsLocal: opts.checkpoint !== undefined,
    ...(i.verifiedConfig === undefined ? {} : { verifiedConfig: i.verifiedConfig }),
    ...(i.modelFiles === undefined ? {} : { modelFiles: i.modelFiles }),
    memoryMb: opts.memoryMb,
    weights: opts.weights,
    compute: i.compute,
    network: {
      peerId: network.peerId,
      rpc: i.rpc ?? network.rpc,
      scores: network.scores,
      liveness: network.liveness,
      recordOf: (peer, signal) => network.registry.recordOf(peer, { signal }),
      holdSpan: (s) => network.holdSpan(s),
      isGenesis: () => network.genesis,
      holdersOf: (layer, signal) => network.registry.holdersOf(layer, { signal }),
    },
    // a node that fetched the network's model files has neither its checkpoint nor its seed: weights from peers only
    ...(i.verifiedConfig === undefined ? { loadLocal: localLoader(i.compute, i.config, opts.checkpoint) } : {}),
    tickMs: i.tuning.tickMs,
    // the pool subscribes to the liveness `peer:dead` event itself: a holder's death asks for an early round
    earlyMs: i.tuning.earlyMs,
    settleMs: i.tuning.settleMs,
    // the genesis node without a checkpoint trains the whole model: the solo trainer loads (or resumes) it
    externalWeights: (span, config) => {
      const whole = span.start === 0 && span.end === config.num_hidden_layers;
      // an int8 node never trains (inference only): it loads and quantizes the weights like any span
      if (!(opts.train && opts.checkpoint === undefined && whole && opts.weights === 'f32')) return false;
      i.startTraining();
      return true;
    },
    ...(i.beforeMove === undefined ? {} : { beforeMove: i.beforeMove }),
    ...(i.afterMove === undefined ? {} : { afterMove: i.afterMove }),
    ...(i.roundWeights === undefined ? {} : { roundWeights: i.roundWeights }),
    ...(i.pinRound === undefined ? {} : { pinRound: i.pinRound }),
    ...(i.tuning.capacity === undefined ? {} : { capacity: i.tuning.capacity }),
    clock: i.clock,
    log: i.log,
  });
}

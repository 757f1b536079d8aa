/**
 * A whole-model replica for the outer-sync integration tests (outer-sync, gauntlet-sync, training-receipt): a
 * loopback training node (startTrainingNet), its own compute worker with the test's tiny model, and the node's
 * outer-sync wiring (node/diloco.ts startOuterSync) around the worker's solo trainer. The holders of every layer are
 * the test's replica set (as the pool's view would give it; on a loaded machine heartbeat liveness flaps, which is the
 * pool's concern, not the outer sync's).
 */
import { randomBytes } from 'node:crypto';
import { ComputeClient, WorkerTrainStepper } from '../../src/compute/index.js';
import { keyFromPrivate, type NodeKey } from '../../src/identity/index.js';
import type { LlamaConfig } from '../../src/model/index.js';
import { startOuterSync, workerParams, type OuterSyncInit, type OuterSyncWiring } from '../../src/node/diloco.js';
import type { NodeNetwork } from '../../src/node/network.js';
import type { InnerParams, LastRoundReport, TrainStepper } from '../../src/training/index.js';
import { createLogger } from '../../src/util/logger.js';
import { xorshift } from './learnable-stream.js';
import { startTrainingNet } from './network.js';

export interface WholeReplica {
  name: string;
  key: NodeKey;
  net: NodeNetwork;
  compute: ComputeClient;
  wiring: OuterSyncWiring;
  /** The worker's trainer inside the outer rounds (a round closes every H steps). */
  stepper: TrainStepper;
  /** Aborts the stepper's outer rounds. */
  ac: AbortController;
  rounds: LastRoundReport[];
  /** Per-layer model hashes after each round (stats at the boundary). */
  hashes: Map<number, Record<string, string>>;
  /** The replica's own batch stream's generator (test/utils/learnable-stream.ts). */
  rand: () => number;
}

export interface WholeReplicaInit {
  name: string;
  networkId: string;
  config: LlamaConfig;
  options: OuterSyncInit['options'];
  /** Addresses to bootstrap from (none: the first node). */
  boot: string[];
  /** The replica set: the new replica's peer id is added, and every layer's holders are read from it. */
  holders: Set<string>;
  /** Seeds the replica's batch stream (xorshift(seed · 7919)). */
  seed: number;
  /** Default: a fresh key (a restarted replica passes its old one). */
  key?: NodeKey;
  /** The outer sync's view of the worker's weights (default workerParams; a Byzantine replica wraps it). */
  inner?(compute: ComputeClient): InnerParams;
  /** More of the outer sync's wiring (Gauntlet's held-out loss, receipts), once the node and worker run. */
  more?(r: { net: NodeNetwork; key: NodeKey; compute: ComputeClient }): Partial<OuterSyncInit> | Promise<Partial<OuterSyncInit>>;
}

export async function startWholeReplica(i: WholeReplicaInit): Promise<WholeReplica> {
  const key = i.key ?? keyFromPrivate(randomBytes(32));
  const L = i.config.num_hidden_layers;
  const net = await startTrainingNet(i.networkId, key, { start: 0, end: L }, i.boot);
  i.holders.add(net.peerId);
  const compute = await ComputeClient.start({ threads: 1 });
  await compute.run({ type: 'initModel', config: i.config, seed: 0, trainer: { lr: 1e-2, warmupSteps: 0 } });
  const r = { name: i.name, key, net, compute, rounds: [], hashes: new Map(), rand: xorshift(i.seed * 7919), ac: new AbortController() } as unknown as WholeReplica;
  const more = (await i.more?.({ net, key, compute })) ?? {};
  r.wiring = await startOuterSync({
    rpc: net.rpc,
    scores: net.scores,
    peerId: net.peerId,
    key,
    networkId: i.networkId,
    config: i.config,
    span: { start: 0, end: L },
    inner: i.inner?.(compute) ?? workerParams(compute),
    holders: () => [...i.holders],
    options: i.options,
    clock: { now: () => Date.now() },
    pollMs: 100,
    ...(process.env.SYNC_TEST_LOG === undefined ? {} : { log: createLogger({ level: 'debug', module: i.name }) }),
    ...more,
    onRound: (rep) => {
      r.rounds.push(rep);
      r.hashes.set(rep.round, r.wiring.sync.stats().hashes);
    },
  });
  r.stepper = r.wiring.stepper(new WorkerTrainStepper(compute), r.ac.signal);
  return r;
}

/**
 * Stops the replica's rounds, its outer sync, its node and its worker (errors ignored: it may be dead already);
 * `beforeNetwork` stops what must stop before the node's network (a ledger service).
 */
export async function stopWholeReplica(r: WholeReplica, beforeNetwork?: () => Promise<void>): Promise<void> {
  r.ac.abort();
  await r.wiring.stop().catch(() => {});
  await beforeNetwork?.().catch(() => {});
  await r.net.stop().catch(() => {});
  await r.compute.close().catch(() => {});
}

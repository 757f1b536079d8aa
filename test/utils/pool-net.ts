/**
 * Setup shared by the layer-pool integration tests (test/integration/pool/pool.test.ts, int8-net.test.ts): real
 * NeuroShardNodes on 127.0.0.1 (libp2p, compute workers, ledgers) with fast heartbeats and pool ticks, each in its
 * own temporary data directory, and the fixed genesis checkpoint they start from. Each test keeps its own
 * assertions; only the way nodes are started, waited on and cleaned up lives here.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ComputeClient } from '../../src/compute/index.js';
import type { LlamaConfig } from '../../src/model/index.js';
import { NeuroShardNode } from '../../src/node/node.js';
import { loadOptions } from '../../src/node/options.js';
import { createLogger } from '../../src/util/logger.js';
import { LOOPBACK_TUNING } from './network.js';

/**
 * Heartbeats every 300 ms, stale after 1.5 s, dead after 4 s: liveness settles within seconds on loopback. No route
 * exploration (`--route-explore 0`): the tests compare answers across nodes, each on the usual near-best route.
 */
export const POOL_NODE_FLAGS = Object.freeze({ listen: ['/ip4/127.0.0.1/tcp/0'], apiPort: 0, mdns: false, upnp: false, train: false, threads: 1, heartbeatIntervalMs: 300, peerStaleMs: 1500, peerDeadMs: 4000, routeExplore: 0 });

export interface PoolNetOptions {
  /** Prefix of the temporary directories (`ns-<prefix>-<name>-…`). */
  prefix: string;
  /** The pool's re-plan period and a joiner's listening time before it places itself (ms). */
  tickMs: number;
  settleMs: number;
}

export interface PoolNet {
  /** Every node started and not yet closed, in start order. */
  readonly nodes: NeuroShardNode[];
  /** A fresh temporary directory, removed by close(). */
  tmp(name: string): string;
  /**
   * Starts a node with POOL_NODE_FLAGS and its own data directory; `flags` override them (CLI option names). Set
   * POOL_TEST_LOG=debug|info to see each node's log on stderr.
   */
  start(name: string, flags: Record<string, unknown>): Promise<NeuroShardNode>;
  /** Closes the nodes started so far (a test that builds a second network first drops the first). */
  closeNodes(): Promise<void>;
  /** Closes every node and removes every temporary directory. */
  close(): Promise<void>;
}

export function poolNet(o: PoolNetOptions): PoolNet {
  const dirs: string[] = [];
  const nodes: NeuroShardNode[] = [];
  const tmp = (name: string): string => {
    const d = mkdtempSync(join(tmpdir(), `ns-${o.prefix}-${name}-`));
    dirs.push(d);
    return d;
  };
  const closeNodes = async (): Promise<void> => {
    for (const n of nodes.splice(0)) await n.close().catch(() => {});
  };
  return {
    nodes,
    tmp,
    async start(name, flags) {
      const opts = loadOptions({ flags: { dataDir: tmp(name), ...POOL_NODE_FLAGS, ...flags }, env: {} });
      const level = process.env.POOL_TEST_LOG;
      const log = level === undefined ? undefined : createLogger({ level: level as 'debug', module: name });
      const n = await NeuroShardNode.init(opts, {
        ...(log === undefined ? {} : { log }),
        networkTuning: { ...LOOPBACK_TUNING, recordTtlMs: 60_000, republishMs: 5_000 },
        poolTuning: { tickMs: o.tickMs, settleMs: o.settleMs },
      });
      nodes.push(n);
      return n;
    },
    closeNodes,
    async close() {
      await closeNodes();
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    },
  };
}

/** Polls `cond` every 200 ms until it holds; fails the test naming `what` after `ms`. */
export async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`timed out after ${ms} ms waiting for ${what}`);
}

/** A node's dialable addresses, each ending in /p2p/<its id>: what a joiner passes as `bootstrap`. */
export function bootAddrs(n: NeuroShardNode): string[] {
  return n.network.p2p.multiaddrs().map((a) => (a.includes('/p2p/') ? a : `${a}/p2p/${n.network.peerId}`));
}

/** The fixed genesis checkpoint of the pool tests: `config` from `seed`, saved under `root`; its flat weights too. */
export async function genesisCheckpoint(config: LlamaConfig, seed: number, root: string): Promise<{ dir: string; params: Float32Array }> {
  const c = await ComputeClient.start({ threads: 1 });
  try {
    await c.run({ type: 'initModel', config, seed });
    const params = (await c.run({ type: 'getParams' })).params;
    const dir = (await c.run({ type: 'saveCheckpoint', root, step: 0 })).dir;
    return { dir, params };
  } finally {
    await c.close();
  }
}

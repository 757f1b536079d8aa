/**
 * The dashboard's feed (api/events.ts `DashboardFeed`), filled from the node's parts: identity, network status and
 * liveness, the compute engine, training events, the ledger, and the log ring. The node calls `onTrainEvent` from
 * its training loop; everything else is read when a tick or a snapshot is built (once per second while a dashboard
 * is open, never otherwise).
 *
 * Training points are one per second of training at most (mean loss of the steps in that second, tokens/s over it)
 * in a ThinningSeries, so a whole run's curve fits in bounded memory at an even spacing.
 */
import { existsSync } from 'node:fs';
import { freemem, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CoverageView, DashboardFeed, DashboardSnapshot, DashboardState, DashboardTick, EvalPoint, LogLine, MarketView, NodeView, PeerView, TrainPoint, TrainingView, WalletEntry, WalletView } from '../api/index.js';
import { addressFromPublicKey, accountIdFromPublicKey } from '../identity/index.js';
import { formatAmount } from '../ledger/index.js';
import { PACKAGE_VERSION } from '../params/index.js';
import type { Clock } from '../util/clock.js';
import { ThinningSeries } from '../util/series.js';
import type { NodeLedgerService } from './ledger.js';
import type { NodeLog } from './logs.js';
import type { NodeNetwork } from './network.js';
import type { TrainEvent } from './train.js';

export interface TelemetrySources {
  network: NodeNetwork;
  publicKey: Uint8Array;
  totalLayers: number;
  engine: () => string;
  apiUrl: () => string;
  ledger: () => NodeLedgerService | undefined;
  log?: NodeLog;
  clock: Clock;
  startedAtMs: number;
  /** Layers per holder from the layer pool, when it runs (replaces the heartbeat-derived coverage). */
  poolCoverage?: () => number[] | undefined;
  /** The compute worker's last memory report (ComputeClient.workerMemory; issue 12). */
  workerMemory?: () => { heapUsedBytes: number; heapTotalBytes: number; externalBytes: number; arrayBuffersBytes: number } | undefined;
}

const TRAIN_POINTS = 2048;
const EVAL_POINTS = 512;
const LOGS_IN_SNAPSHOT = 200;
const LOGS_PER_TICK = 200;
const HISTORY_SHOWN = 25;
/** A train point covers at least this long (ms). */
const POINT_MS = 1000;

export class NodeTelemetry implements DashboardFeed {
  private readonly trainSeries = new ThinningSeries<TrainPoint>(TRAIN_POINTS);
  private readonly evalSeries = new ThinningSeries<EvalPoint>(EVAL_POINTS);
  private readonly training: TrainingView = {
    active: false,
    step: 0,
    targetStep: null,
    tokens: 0,
    tokensPerS: 0,
    lastLoss: null,
    lastValLoss: null,
    outerRounds: null,
    unigramBaseline: null,
    paramCount: null,
  };
  // the point being accumulated
  private acc = { steps: 0, lossSum: 0, tokens: 0, since: 0 };
  // what the previous tick sent
  private sent = { train: 0, trainGen: 0, eval: 0, evalGen: 0, log: 0 };

  constructor(private readonly s: TelemetrySources) {
    this.sent.log = s.log?.ring.seq ?? 0;
  }

  onTrainEvent(e: TrainEvent): void {
    const now = this.s.clock.now();
    switch (e.type) {
      case 'start':
        this.training.active = true;
        this.training.step = e.step;
        this.training.targetStep = e.targetStep;
        this.training.unigramBaseline = e.unigramBaseline;
        this.training.paramCount = e.paramCount;
        this.acc = { steps: 0, lossSum: 0, tokens: 0, since: now };
        break;
      case 'step': {
        this.training.step = e.step;
        this.training.tokens += e.tokens;
        if (!Number.isFinite(e.loss)) break;
        this.training.lastLoss = e.loss;
        this.acc.steps++;
        this.acc.lossSum += e.loss;
        this.acc.tokens += e.tokens;
        const dt = now - this.acc.since;
        // the first step is plotted at once, later ones once a second
        if (dt >= POINT_MS || this.trainSeries.length === 0) {
          const tokensPerS = dt > 0 ? (this.acc.tokens * 1000) / dt : 0;
          this.training.tokensPerS = tokensPerS;
          this.trainSeries.push({ step: e.step, loss: this.acc.lossSum / this.acc.steps, tokensPerS, t: now });
          this.acc = { steps: 0, lossSum: 0, tokens: 0, since: now };
        }
        break;
      }
      case 'eval':
        this.training.lastValLoss = e.loss;
        this.evalSeries.push({ step: e.step, loss: e.loss, t: now });
        break;
      case 'checkpoint':
        if (e.reason !== 'periodic') this.training.active = false;
        break;
    }
  }

  snapshot(): DashboardSnapshot {
    const state = this.state();
    const logs = this.logsSince(0, LOGS_IN_SNAPSHOT);
    return { ...state, trainPoints: this.trainSeries.toArray(), evalPoints: this.evalSeries.toArray(), logs };
  }

  tick(): DashboardTick {
    const state = this.state();
    const reset = this.trainSeries.generation !== this.sent.trainGen || this.evalSeries.generation !== this.sent.evalGen;
    const train = this.trainSeries.toArray();
    const evals = this.evalSeries.toArray();
    const trainPoints = reset ? train : train.slice(this.sent.train);
    const evalPoints = reset ? evals : evals.slice(this.sent.eval);
    const logs = this.logsSince(this.sent.log, LOGS_PER_TICK);
    this.sent = { train: train.length, trainGen: this.trainSeries.generation, eval: evals.length, evalGen: this.evalSeries.generation, log: this.s.log?.ring.seq ?? 0 };
    return { ...state, trainPoints, evalPoints, resetSeries: reset, logs };
  }

  private logsSince(from: number, max: number): LogLine[] {
    const ring = this.s.log?.ring;
    if (ring === undefined) return [];
    const start = Math.max(from, ring.seq - max);
    const { items } = ring.since(start);
    const first = ring.seq - items.length;
    return items.map((line, i) => ({ seq: first + i, line }));
  }

  state(): DashboardState {
    const net = this.s.network.status();
    const connected = new Set(this.s.network.p2p.connectedPeers());
    const now = this.s.clock.now();
    const mem = process.memoryUsage();
    const node: NodeView = {
      peerId: net.peerId,
      address: addressFromPublicKey(this.s.publicKey),
      networkId: net.networkId,
      version: PACKAGE_VERSION,
      addresses: net.addresses,
      span: net.span === undefined ? null : { start: net.span.start, end: net.span.end },
      totalLayers: this.s.totalLayers,
      engine: this.s.engine(),
      memory: { rssBytes: mem.rss, heapUsedBytes: mem.heapUsed, systemTotalBytes: totalmem(), systemFreeBytes: freemem(), heapTotalBytes: mem.heapTotal, externalBytes: mem.external, arrayBuffersBytes: mem.arrayBuffers },
      uptimeMs: Math.max(0, now - this.s.startedAtMs),
      apiUrl: this.s.apiUrl(),
    };
    const wm = this.s.workerMemory?.();
    if (wm !== undefined) node.memory.worker = { heapUsedBytes: wm.heapUsedBytes, heapTotalBytes: wm.heapTotalBytes, externalBytes: wm.externalBytes, arrayBuffersBytes: wm.arrayBuffersBytes };
    const peers: PeerView[] = net.peers.map((p) => ({
      peerId: p.peer,
      span: p.heartbeat.span === undefined ? null : { start: p.heartbeat.span.start, end: p.heartbeat.span.end },
      liveness: p.state,
      lastSeenMs: p.lastSeenMs,
      connected: connected.has(p.peer),
    }));
    const { wallet, market } = this.ledgerViews();
    return { node, peers, coverage: this.coverage(node, peers), training: { ...this.training }, wallet, market, at: now };
  }

  private coverage(node: NodeView, peers: PeerView[]): CoverageView {
    const pool = this.s.poolCoverage?.();
    if (pool !== undefined) return { totalLayers: this.s.totalLayers, replicas: pool, source: 'pool' };
    return { totalLayers: this.s.totalLayers, replicas: replicasPerLayer(this.s.totalLayers, [node.span, ...peers.filter((p) => p.liveness === 'alive').map((p) => p.span)]), source: 'heartbeats' };
  }

  private ledgerViews(): { wallet: WalletView | null; market: MarketView | null } {
    const l = this.s.ledger();
    if (l === undefined) return { wallet: null, market: null };
    const status = l.status();
    const account = l.ledger.account(accountIdFromPublicKey(this.s.publicKey));
    const history = l.ledger.history(accountIdFromPublicKey(this.s.publicKey), HISTORY_SHOWN);
    let rewards = 0n;
    const entries: WalletEntry[] = history.map((h) => {
      const e: WalletEntry = { kind: String(h.kind), status: h.status };
      const moved = typeof h.moved === 'string' ? h.moved : typeof h.amount === 'string' ? h.amount : undefined;
      if (moved !== undefined) e.amount = moved;
      if (typeof h.timestampMs === 'number') e.timestampMs = h.timestampMs;
      if (typeof h.id === 'string') e.id = h.id;
      if (h.kind === 'proof' && typeof h.moved === 'string') rewards += parseDecimal(h.moved);
      return e;
    });
    return {
      wallet: {
        address: status.address,
        balance: formatAmount(account.balance),
        staked: formatAmount(account.staked),
        rewards: formatAmount(rewards),
        proofs: { emitted: status.proofs.emitted, lastEpoch: status.proofs.lastEpoch, lastStatus: status.proofs.last?.status ?? null },
        history: entries,
        ledger: { events: status.events, stateHash: status.stateHash, minted: formatAmount(status.minted), burned: formatAmount(status.burned) },
      },
      market: { pricePerMillion: formatAmount(status.marketPricePerMillion) },
    };
  }
}

/** Holders per layer: each span [start, end) adds one to its layers (spans past the model are clipped). */
export function replicasPerLayer(totalLayers: number, spans: ({ start: number; end: number } | null)[]): number[] {
  const out = new Array<number>(totalLayers).fill(0);
  for (const s of spans) {
    if (s === null) continue;
    for (let i = Math.max(0, s.start); i < Math.min(totalLayers, s.end); i++) out[i]!++;
  }
  return out;
}

/**
 * Coverage from the layer pool's GET /api/layers view (`api/layers.ts` LayersView, typed structurally here): live
 * (alive or stale) holders per layer, as the pool counts replicas. Wire it as `poolCoverage` once the node runs a pool.
 */
export function replicasFromLayersView(view: { layers: { layer: number; holders: { state: string }[] }[] }, totalLayers: number): number[] {
  const out = new Array<number>(totalLayers).fill(0);
  for (const l of view.layers) {
    if (!Number.isInteger(l.layer) || l.layer < 0 || l.layer >= totalLayers) continue;
    out[l.layer] = l.holders.filter((h) => h.state === 'alive' || h.state === 'stale').length;
  }
  return out;
}

/** formatAmount's inverse for the sums shown here (18 decimals). */
function parseDecimal(s: string): bigint {
  const m = /^(\d+)(?:\.(\d{1,18}))?$/.exec(s);
  if (m === null) return 0n;
  return BigInt(m[1]!) * 10n ** 18n + BigInt((m[2] ?? '').padEnd(18, '0'));
}

/** dist/ui/ of this package (built by scripts/build-ui.mjs), found from this file whether run from dist/ or src/. */
export function dashboardDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json'))) return join(dir, 'dist', 'ui');
    dir = dirname(dir);
  }
  return join(process.cwd(), 'dist', 'ui');
}

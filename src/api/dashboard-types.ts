/**
 * The shapes of the dashboard's live feed (GET /api/events, events.ts). Type-only and import-free but for status
 * types, so the browser bundle (src/ui/) can use them.
 */
import type { Liveness, SpanView } from './status.js';

export interface NodeView {
  peerId: string;
  /** The node's neuro1… wallet address. */
  address: string;
  networkId: string | null;
  version: string;
  addresses: string[];
  span: SpanView | null;
  /** Layers of the whole model. */
  totalLayers: number;
  /** e.g. "native AVX-512 (own GEMM), 2 threads". */
  engine: string;
  memory: {
    rssBytes: number;
    heapUsedBytes: number;
    systemTotalBytes: number;
    systemFreeBytes: number;
    /** V8's committed JS heap, memory outside it that JS objects hold (Buffers, ArrayBuffers): where RSS grows (issue 12). */
    heapTotalBytes?: number;
    externalBytes?: number;
    arrayBuffersBytes?: number;
    /** The compute worker thread's own isolate (its last report; issue 12): JS heap used / committed, external, array buffers. */
    worker?: { heapUsedBytes: number; heapTotalBytes: number; externalBytes: number; arrayBuffersBytes: number };
  };
  uptimeMs: number;
  /** Base URL of the local API (and dashboard). */
  apiUrl: string;
}

export interface PeerView {
  peerId: string;
  span: SpanView | null;
  liveness: Liveness;
  lastSeenMs: number | null;
  /** An open libp2p connection to it right now ("who this node talks to"). */
  connected: boolean;
}

/** Replicas of each layer among this node and its alive peers; a layer with 0 holders is a gap. */
export interface CoverageView {
  totalLayers: number;
  replicas: number[];
  /** Where the numbers come from: 'heartbeats' (own span + alive peers' heartbeats) or 'pool' (GET /api/layers). */
  source: 'heartbeats' | 'pool';
}

export interface TrainPoint {
  step: number;
  loss: number;
  tokensPerS: number;
  /** Unix ms. */
  t: number;
}

export interface EvalPoint {
  step: number;
  loss: number;
  t: number;
}

export interface TrainingView {
  active: boolean;
  step: number;
  targetStep: number | null;
  tokens: number;
  tokensPerS: number;
  lastLoss: number | null;
  lastValLoss: number | null;
  /** Outer (averaging) rounds, once distributed training exists; null until then. */
  outerRounds: number | null;
  unigramBaseline: number | null;
  paramCount: number | null;
}

export interface WalletEntry {
  kind: string;
  status: string;
  /** Decimal NEURO, when the event moves an amount. */
  amount?: string;
  timestampMs?: number;
  id?: string;
}

export interface WalletView {
  address: string;
  balance: string;
  staked: string;
  /** Decimal NEURO minted to us by proofs of work (over the history shown). */
  rewards: string;
  proofs: { emitted: number; lastEpoch: number; lastStatus: string | null };
  history: WalletEntry[];
  ledger: { events: number; stateHash: string; minted: string; burned: string };
}

export interface MarketView {
  /** Decimal NEURO per million tokens. */
  pricePerMillion: string;
}

export interface LogLine {
  seq: number;
  line: string;
}

/** Everything but the series: sent in full every tick (small: a few KB for tens of peers). */
export interface DashboardState {
  node: NodeView;
  peers: PeerView[];
  coverage: CoverageView;
  training: TrainingView;
  wallet: WalletView | null;
  market: MarketView | null;
  /** Server time of this state, Unix ms. */
  at: number;
}

export interface DashboardSnapshot extends DashboardState {
  trainPoints: TrainPoint[];
  evalPoints: EvalPoint[];
  logs: LogLine[];
}

export interface DashboardTick extends DashboardState {
  /** New since the previous tick. When `resetSeries` is true the series thinned: replace, do not append. */
  trainPoints: TrainPoint[];
  evalPoints: EvalPoint[];
  resetSeries: boolean;
  logs: LogLine[];
}

/** Filled by the node. `snapshot()` for a new subscriber; `tick()` once per interval while anyone listens. */
export interface DashboardFeed {
  snapshot(): DashboardSnapshot | Promise<DashboardSnapshot>;
  tick(): DashboardTick | Promise<DashboardTick>;
}

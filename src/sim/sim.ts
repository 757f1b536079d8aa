/**
 * A discrete-event simulation of a NeuroShard swarm (issue 12 §1). It runs the project's own decision code on a
 * virtual clock: the layer pool's placement (src/pool/placement.ts: chooseSpan on join, planMoves for restoration
 * and rebalancing), the router's route choice and ban list (src/router/route.ts), the liveness tracker
 * (src/protocols/liveness.ts, fed the nodes' heartbeats), and the DHT record rules (src/protocols/dht-records.ts:
 * every holder record is a real signed HolderRecord, and every lookup runs the real namespace validator/selector).
 *
 * What is modelled rather than run (docs/SCALE.md "What is modelled"): the transport (messages are events with a
 * link latency, bandwidth and loss; no libp2p), Kademlia routing (a record lives on the k closest live nodes by XOR
 * distance at put time; a lookup takes ⌈log₈ N⌉ + 1 rounds of α = 3 parallel requests, a dead contact costs a
 * timeout), gossipsub (a mesh of degree D = 6, repaired every 5 s, plus lazy gossip: IHAVE to D_lazy = 6 random
 * non-mesh peers at the next 1 s gossip heartbeat, answered by IWANT), and the ledger (a node's ledger is the set of
 * tracked proof ids and its state hash a hash of that set; after a partition nodes reconcile with one random peer
 * every 30 s and pull what they miss, as node/ledger.ts does with status + sync).
 */
import { createHash } from 'node:crypto';
import { keyFromPrivate, peerIdFromPublicKey, type NodeKey } from '../identity/index.js';
import { coverage, chooseSpan, holderCapacity, planMoves, spanTokensPerSec, type PoolHolder, type PoolSpan, type PoolView } from '../pool/placement.js';
import { BlockQuota, recordBlock } from '../protocols/address-block.js';
import { holderRecordNamespace } from '../protocols/dht-records.js';
import { encodeHolderRecord, freshHolderRecord } from '../protocols/holder-record.js';
import { holderKey } from '../protocols/ids.js';
import { KNOWN_MAX } from '../protocols/layer-registry.js';
import { LivenessTracker } from '../protocols/liveness.js';
import { DRIVER_DEFAULTS } from '../router/driver.js';
import { LatencyTable } from '../router/measure.js';
import { BanList, chooseRouteAvoiding, isQuiet, planFailover, type ChainHop, type FailoverPlan, type HolderView } from '../router/route.js';
import { InvalidArgumentError } from '../util/errors.js';
import { CONTINENTS, EventQueue, LAN_SHARE, LINK_CLASSES, MACHINE_MIX, Rng, SESSION, exponential, logNormal, modelFor, pick } from './world.js';

export type Scenario = 'steady' | 'churn' | 'mass-failure' | 'partition' | 'sybil';
export const SCENARIOS: readonly Scenario[] = ['steady', 'churn', 'mass-failure', 'partition', 'sybil'];

export interface SimOptions {
  nodes: number;
  minutes: number;
  scenario: Scenario;
  seed: number;
  /** Keep time series for plots (one sample per `sampleMs`). */
  series?: boolean;
  /** Route choice's exploration share (router/route.ts `explore`); undefined: the node's default. */
  explore?: number;
  /**
   * Sybil scenario: the flood's keys serve the span they claim (an attacker with the public weights on a few strong
   * hosts, each key at SIM.sybilServeSpeed) while claiming 10⁶ tokens/s and a stated compute time of 0, instead of
   * serving nothing. What the measured weighting of route choice is about: a key that served once is no longer
   * unproven, and its claims then met the draw.
   */
  sybilServe?: boolean;
  /**
   * Route choice sees the measured step time of served holders (router/measure.ts LatencyTable.stepMs, as the node
   * wires it). false: the view without it, i.e. the rule before (capacity weight = the claimed tokens/s), for a
   * before/after comparison.
   */
  measuredWeight?: boolean;
  /** Address blocks the Sybil flood comes from (default SIM.sybilBlocks). */
  sybilBlocks?: number;
  /** Sybil keys generated, signed and put in the DHT (default SIM.sybilSignedKeys). */
  sybilSignedKeys?: number;
  /** Storing nodes apply the per-block quota on holder records (default true; false: the figure without it). */
  dhtBlockQuota?: boolean;
  /**
   * Route choice sees each holder's bond (router/route.ts `HolderView.bonded`, as node/serving.ts wires the ledger's
   * stakes): SIM.honestBondedShare of the honest nodes have locked the bond, Sybil keys nothing (default true;
   * false: route choice without stakes, the rule before).
   */
  stakes?: boolean;
}

/** Timing constants, the node defaults (src/node/options.ts) where the node has them. */
export const SIM = {
  heartbeatMs: 5_000,
  staleMs: 15_000,
  deadMs: 60_000,
  /** How often each view runs planMoves (the pool's rebalance check). */
  planEveryMs: 60_000,
  /** Views (liveness trackers + planners); node i follows view i mod views (2 above 300 nodes: planMoves is O(N²)). */
  views: 4,
  viewsLarge: 2,
  dhtK: 20,
  dhtAlpha: 3,
  dhtTimeoutMs: 1_000,
  recordLifetimeMs: 3 * 3_600_000,
  republishMs: 10 * 60_000,
  /** DHT routing tables refresh: contacts that left within this window may still be tried. */
  routingRefreshMs: 10 * 60_000,
  meshDegree: 6,
  meshRepairMs: 5_000,
  /** Gossipsub's heartbeat (p2p/libp2p-node.ts: 1 s) and D_lazy (its default, 6): IHAVE goes to this many non-mesh peers. */
  gossipHeartbeatMs: 1_000,
  gossipLazy: 6,
  reconcileMs: 30_000,
  proofBytes: 600,
  /** Tracked proofs per simulated minute (each node publishes one per 60 s window; a sample is followed). */
  trackedProofsPerMin: 4,
  routeEveryMs: 1_000,
  hopTimeoutMs: 2_000,
  lookupEveryMs: 2_000,
  sampleMs: 5_000,
  /** Coverage is scored from here on (the swarm forms over the first 2 minutes). */
  warmupMs: 10 * 60_000,
  maxProviders: 64,
  sybilFactor: 10,
  /** Sybil keys actually generated and signed (key generation is ~5 ms here); the rest reuse their verdicts. */
  sybilSignedKeys: 200,
  /**
   * Address blocks (/24) the Sybil flood's keys come from (an attacker with a few hosting subnets; keys are free,
   * blocks are not). Honest nodes: each its own block, except nodes of one LAN site, which share the site's.
   */
  sybilBlocks: 16,
  /** Speed of a serving Sybil key (`sybilServe`), relative to a 16 GB desktop: a gaming GPU's. */
  sybilServeSpeed: 6,
  /** Distinct peers per address block whose holder records a DHT node stores (protocols/dht-records.ts). */
  dhtRecordsPerBlock: 64,
  /** A newcomer counts in `newcomers` once it has held a span this long (enough routes for a 5 % share to reach it). */
  newcomerHeldMs: 10 * 60_000,
  /**
   * Honest nodes that have locked the bond (ledger MIN_REWARD_BOND), drawn per node; the rest (nodes before their
   * first stake) and every Sybil key have none (`stakes`).
   */
  honestBondedShare: 0.75,
} as const;

export interface SimResult {
  nodes: number;
  sim_minutes: number;
  coverage_min: number;
  coverage_2rep_share: number;
  route_success: number;
  dht_lookup_success: number;
  dht_lookup_ms_p99: number;
  proof_propagation_s_p99: number;
  ledger_converge_s: number | null;
  wall_s: number;
  scenario: Scenario;
  seed: number;
  model: string;
  replicas_mean: number;
  routes: number;
  lookups: number;
  /**
   * Share of per-layer holder lookups with no honest live holder: the DHT's provider answer (at most maxProviders,
   * drawn at random) together with the holders the lookup's view has seen serve (the registry's `known`, as the
   * node wires it). `sybil_eclipsed_dht_only`: the provider answer alone (a node that has seen nobody serve yet).
   */
  sybil_eclipsed_layer_lookups: number | null;
  sybil_eclipsed_dht_only: number | null;
  signatures: { signed: number; verified_lookups: number };
  /**
   * Failed routes by cause: no_chain = no chain of holders in the view for the range or, after a failover, for the
   * failed hop's layers (layers nobody usable holds), hops = more hop failures than the driver's failover limit; partitioned = failures while the partition was on,
   * forming = failures before scoring starts (routes are sent from 150 s on and all of them count in route_success).
   */
  route_failures: { no_chain: number; hops: number; partitioned: number; forming: number };
  /**
   * The views' liveness tables at the end: heartbeats of new peers refused because the table was full, live peers
   * not kept that made room for a new one (both summed over views), and the share of the honest nodes up that view 0 tracks (a full table of Sybils hides honest joiners).
   */
  liveness: { refused: number; rotated: number; honest_tracked_share: number };
  /**
   * Honest nodes that joined after the warm-up (churn's replacements), were up at the end and had held a span for
   * `SIM.newcomerHeldMs`: how many, and the share of them that some view's router measured serving a hop (route
   * choice's exploration is what routes to a holder nobody measured while measured holders cover its layers);
   * routes_share: the share of routes scored after the warm-up one of whose hops a newcomer (an honest node that
   * joined after the warm-up) served.
   */
  newcomers: { held: number; served_share: number | null; routes_share: number };
  /**
   * Sybil scenario: routes (requests) whose chain took a Sybil hop at least once (first choice or failover), their
   * share of all routes, and the share of hops served by Sybils (only with `sybilServe`).
   */
  sybil_routes: { routes: number; share: number; hops_served_share: number } | null;
  /**
   * Holder-record puts (record × storing node) that the storing node's per-block quota (protocols/address-block.ts
   * BlockQuota, SIM.dhtRecordsPerBlock) admitted or refused, honest and Sybil; Sybil blocks: how many.
   */
  dht_block_quota: { sybil_blocks: number; sybil_signed: number; sybil_stored: number; sybil_refused: number; honest_stored: number; honest_refused: number; sybil_records_stored_per_node_max: number } | null;
  events: number;
}

export interface SimSeries {
  tMin: number[];
  coveredLayers: number[];
  minReplicas: number[];
  replicasPerLayer: number[];
  routeSuccess: number[];
  lookupSuccess: number[];
  lookupP99Ms: number[];
  ledgerAgree: number[];
}

interface SimNode {
  idx: number;
  peerId: string;
  key: NodeKey | undefined;
  dhtId: number;
  continent: number;
  site: number;
  machine: (typeof MACHINE_MIX)[number];
  up: boolean;
  sybil: boolean;
  span: PoolSpan | undefined;
  loading: PoolSpan | undefined;
  leftAtMs: number;
  mesh: Set<number>;
  ledger: Set<number>;
  movesMs: number[];
  recordBytes: Uint8Array | undefined;
  /** The address its record names (its block's). */
  recordAddr?: string;
  /** Sybil: the fake span claimed. */
  claim: PoolSpan | undefined;
  /** Address block (SIM.sybilBlocks). */
  block: string;
  /** When it last began to hold a span (−1: never). */
  heldSinceMs: number;
  /** It has locked the bond (`SimOptions.stakes`). */
  bonded: boolean;
  joinedAtMs: number;
}

function hash32(s: string): number {
  return createHash('sha256').update(s).digest().readUInt32BE(0);
}

/** A deterministic uniform in (0,1) from two integers (link properties never consume the run's RNG). */
function pairUniform(a: number, b: number, salt: number): number {
  let h = (Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + salt, 0xc2b2ae35)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return (((h ^ (h >>> 16)) >>> 0) + 0.5) / 4294967296;
}

function p99(xs: number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(0.99 * s.length))]!;
}

const NETWORK_ID = 'ns1-sim';
/** Above every node's peer-id rank in the route step's sort keys (a run creates far fewer than 2²¹ nodes). */
const RANK_SPAN = 2 ** 21;

export function runSim(opts: SimOptions, onProgress?: (simMin: number) => void): { result: SimResult; series: SimSeries } {
  const wall0 = performance.now();
  if (!Number.isInteger(opts.nodes) || opts.nodes < 2 || opts.nodes > 5_000) throw new InvalidArgumentError('sim: nodes must be 2..5000');
  if (!(opts.minutes > 0 && opts.minutes <= 24 * 60)) throw new InvalidArgumentError('sim: minutes must be in (0, 1440]');
  if (!SCENARIOS.includes(opts.scenario)) throw new InvalidArgumentError(`sim: unknown scenario ${opts.scenario}`);
  const rng = new Rng(opts.seed);
  const q = new EventQueue();
  const sybilBlocks = opts.sybilBlocks ?? SIM.sybilBlocks;
  const sybilSigned = opts.sybilSignedKeys ?? SIM.sybilSignedKeys;
  if (!(Number.isInteger(sybilBlocks) && sybilBlocks >= 1 && sybilBlocks <= 65_536)) throw new InvalidArgumentError('sim: sybilBlocks must be 1..65536');
  if (!(Number.isInteger(sybilSigned) && sybilSigned >= 0)) throw new InvalidArgumentError('sim: sybilSignedKeys must be a whole number');
  const measuredWeight = opts.measuredWeight ?? true;
  const stakes = opts.stakes ?? true;
  const endMs = opts.minutes * 60_000;
  const model = modelFor(opts.nodes);
  const L = model.layers;
  // scoring and churn start once the swarm has formed (10 min; a quarter of a short run)
  const warmupMs = Math.min(SIM.warmupMs, endMs / 4);
  const nodes: SimNode[] = [];
  const ns = holderRecordNamespace({ networkId: NETWORK_ID, clock: q });
  let signed = 0;
  let verifiedLookups = 0;

  // --- partition state: nodes of continent 0 vs the rest, while `partitioned`
  let partitioned = false;
  const side = (n: SimNode): number => (n.continent === 0 ? 0 : 1);
  const reachable = (a: SimNode, b: SimNode): boolean => !partitioned || side(a) === side(b);

  const linkClass = (a: SimNode, b: SimNode): keyof typeof LINK_CLASSES => (a.site === b.site && a.site >= 0 ? 'lan' : a.continent === b.continent ? 'continent' : 'intercontinental');
  const latencyMs = (a: SimNode, b: SimNode): number => {
    if (a === b) return 0;
    const c = LINK_CLASSES[linkClass(a, b)];
    const lo = Math.min(a.idx, b.idx);
    const hi = Math.max(a.idx, b.idx);
    const z = Math.sqrt(-2 * Math.log(pairUniform(lo, hi, 1))) * Math.cos(2 * Math.PI * pairUniform(lo, hi, 2));
    return c.medianMs * Math.exp(c.sigma * z);
  };
  const lost = (a: SimNode, b: SimNode): boolean => rng.next() < LINK_CLASSES[linkClass(a, b)].loss;
  const sendMs = (a: SimNode, b: SimNode, bytes: number): number => latencyMs(a, b) * (0.9 + 0.2 * rng.next()) + (bytes * 8) / (Math.min(a.machine.upMbps, b.machine.upMbps) * 1000);

  // --- every node's place among the peer ids in route choice's order (router/route.ts `usable` sorts its holders by
  // span, then peer id with `<`): the route step hands route choice its holders already in that order, so each of
  // its sorts is one pass (V8 sorts with TimSort, which finds an ordered run in n − 1 comparisons), and its own
  // sort is numeric. Route choice's answer does not depend on the order it is given (every step sorts or builds
  // sets), only the time to find it: at 1,000 nodes each request sorted 11,000 holders several times.
  const byId: SimNode[] = [];
  const rankOf: number[] = []; // node idx → place in byId
  let unranked: SimNode[] = [];
  const idCmp = (a: SimNode, b: SimNode): number => (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0);
  const rankIds = (): void => {
    if (unranked.length === 0) return;
    if (unranked.length > 64) {
      byId.push(...unranked);
      byId.sort(idCmp);
    } else {
      for (const n of unranked) {
        let lo = 0;
        let hi = byId.length;
        while (lo < hi) {
          const mid = (lo + hi) >>> 1;
          if (idCmp(byId[mid]!, n) < 0) lo = mid + 1;
          else hi = mid;
        }
        byId.splice(lo, 0, n);
      }
    }
    unranked = [];
    if (byId.length >= RANK_SPAN) throw new InvalidArgumentError('sim: too many nodes for the route step\'s sort keys');
    for (let i = 0; i < byId.length; i++) rankOf[byId[i]!.idx] = i;
  };

  // --- node creation
  let nextSite = 0;
  const newNode = (sybil: boolean, signKey: boolean): SimNode => {
    const idx = nodes.length;
    let key: NodeKey | undefined;
    let peerId: string;
    if (signKey) {
      const priv = new Uint8Array(32);
      for (let i = 0; i < 32; i += 4) new DataView(priv.buffer).setUint32(i, rng.nextU32());
      priv[0] = priv[0]! & 0x7f; // below the curve order
      priv[31] = priv[31]! | 1; // never zero
      key = keyFromPrivate(priv);
      peerId = peerIdFromPublicKey(key.publicKey);
    } else {
      peerId = `sybil-${idx}`;
    }
    const continent = CONTINENTS.indexOf(pick(rng, CONTINENTS));
    const site = rng.next() < LAN_SHARE ? nextSite++ % Math.max(1, Math.floor(opts.nodes / 20)) : -1;
    const n: SimNode = {
      idx,
      peerId,
      key,
      dhtId: hash32(peerId),
      continent,
      site,
      machine: pick(rng, MACHINE_MIX),
      up: false,
      sybil,
      span: undefined,
      loading: undefined,
      leftAtMs: -1,
      mesh: new Set(),
      ledger: new Set(),
      movesMs: [],
      recordBytes: undefined,
      claim: undefined,
      block: sybil ? `sybil-${idx % sybilBlocks}` : site >= 0 ? `site-${site}` : `node-${idx}`,
      heldSinceMs: -1,
      joinedAtMs: -1,
      // drawn from the node's index, not the run's RNG (the option then changes nothing else)
      bonded: !sybil && pairUniform(idx, idx, 7) < SIM.honestBondedShare,
    };
    nodes.push(n);
    unranked.push(n);
    return n;
  };
  const upHonest = (): SimNode[] => nodes.filter((n) => n.up && !n.sybil);

  const maxLayers = (n: SimNode): number => Math.min(L, Math.floor(n.machine.offerMb / model.layerMb));
  // tokens/s through one layer: 40 × speed on the 100-node model, scaled by layer size
  const layerTps = (n: SimNode): number => (40 * n.machine.speed * 226) / model.layerMb;
  // the throughput a holder's record claims for its span (a Sybil: 10⁶)
  const claimedTps = (n: SimNode, span: PoolSpan): number => (n.sybil ? 1e6 : spanTokensPerSec(layerTps(n), span.end - span.start));
  const holderOf = (n: SimNode, state: PoolHolder['state'], span: PoolSpan): PoolHolder => {
    return {
      peerId: n.peerId,
      span,
      state,
      tokensPerSec: claimedTps(n, span),
      memoryMb: n.sybil ? 1e6 : n.machine.offerMb,
    };
  };

  // --- views: a liveness tracker fed by every node's heartbeats, and the pool view built from it
  const viewCount = Math.min(opts.nodes > 300 ? SIM.viewsLarge : SIM.views, opts.nodes);
  const views = Array.from({ length: viewCount }, () => new LivenessTracker({ staleMs: SIM.staleMs, deadMs: SIM.deadMs, clock: q, checkIntervalMs: 1_000 }));
  const viewHome: SimNode[] = [];
  // a node's view: its own (i mod views) unless a partition cuts it off, then the next one it can reach
  const viewOf = (n: SimNode): number => {
    for (let k = 0; k < viewCount; k++) {
      const v = (n.idx + k) % viewCount;
      if (reachable(n, viewHome[v]!)) return v;
    }
    return n.idx % viewCount;
  };
  const byPeer = new Map<string, SimNode>();
  const withdrawn = new Set<string>(); // graceful goodbye: the holder withdrew its record
  const poolView = (v: number): PoolView => {
    const holders: PoolHolder[] = [];
    // Sybils enter the view as they would (signed records, heartbeats), but to keep planMoves (O(N²)) tractable
    // they are folded into at most 2 holders per claimed span with summed throughput, marked stale so they are
    // never planned as movers. The pool's decisions depend on replicas only through min(replicas, MIN_REPLICAS) and
    // on summed throughput, so the fold changes no decision.
    const folded = new Map<number, PoolHolder[]>(); // by span (start·1024 + end)
    views[v]!.forEach((p) => {
      const n = byPeer.get(p.peer);
      if (n === undefined || p.heartbeat.span === undefined || withdrawn.has(p.peer)) return;
      const span = p.heartbeat.span;
      if (!n.sybil || p.state === 'dead') {
        holders.push(holderOf(n, p.state, span));
        return;
      }
      const key = span.start * 1024 + span.end;
      let f = folded.get(key);
      if (f === undefined) folded.set(key, (f = []));
      // f[1] is this fold's own object: it sums in place (in the same order as before)
      if (f.length < 2) f.push(holderOf(n, 'stale', span));
      else f[1]!.tokensPerSec += claimedTps(n, span);
    });
    for (const f of folded.values()) holders.push(...f);
    holders.sort((a, b) => (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0));
    return { numLayers: L, holders };
  };

  // --- DHT: records on the k closest live nodes (XOR of 32-bit ids)
  const store = new Map<number, Map<string, Uint8Array>>(); // node idx → subject → record bytes
  const keyId = new Map<string, number>();
  const closest = (subject: string, from: SimNode): SimNode[] => {
    let kid = keyId.get(subject);
    if (kid === undefined) keyId.set(subject, (kid = hash32(`holder/${subject}`)));
    const best: { d: number; n: SimNode }[] = [];
    for (const n of nodes) {
      if (!n.up || n.sybil || !reachable(from, n)) continue;
      const d = (n.dhtId ^ kid) >>> 0;
      if (best.length < SIM.dhtK) best.push({ d, n });
      else if (d < best[best.length - 1]!.d) best[best.length - 1] = { d, n };
      else continue;
      best.sort((a, b) => a.d - b.d);
    }
    return best.map((b) => b.n);
  };
  // every storing node's per-block quota on holder records (the real BlockQuota and recordBlock, as
  // protocols/dht-records.ts validates a put; the signature itself is checked at lookup)
  const quotas = new Map<number, BlockQuota>();
  const quotaFig = { sybil_stored: 0, sybil_refused: 0, honest_stored: 0, honest_refused: 0 };
  const putRecord = (n: SimNode): void => {
    if (n.recordBytes === undefined || n.recordAddr === undefined) return;
    for (const s of closest(n.peerId, n)) {
      let quota = quotas.get(s.idx);
      if (quota === undefined) quotas.set(s.idx, (quota = new BlockQuota({ perBlock: SIM.dhtRecordsPerBlock, maxEntries: 65_536 })));
      const ok = quota.admit(recordBlock([n.recordAddr]), n.peerId, q.nowMs + SIM.recordLifetimeMs, q.nowMs) || opts.dhtBlockQuota === false;
      if (n.sybil) quotaFig[ok ? 'sybil_stored' : 'sybil_refused']++;
      else quotaFig[ok ? 'honest_stored' : 'honest_refused']++;
      if (!ok) continue;
      let m = store.get(s.idx);
      if (m === undefined) store.set(s.idx, (m = new Map()));
      m.set(n.peerId, n.recordBytes);
    }
  };
  const signRecord = (n: SimNode, span: PoolSpan): void => {
    if (n.key === undefined) return;
    // honest nodes each in a /24 of their own; the flood's keys share their blocks' /24s (172.16.b.0/24)
    const b = n.sybil ? Number(n.block.slice('sybil-'.length)) : -1;
    n.recordAddr = n.sybil ? `/ip4/172.${16 + (b >> 8)}.${b & 255}.${1 + (n.idx % 250)}/tcp/4001` : `/ip4/10.${n.idx >> 8 & 255}.${n.idx & 255}.1/tcp/4001`;
    const rec = freshHolderRecord(n.key, { networkId: NETWORK_ID, multiaddrs: [n.recordAddr], span, capacity: { memoryMb: n.machine.offerMb, tokensPerSec: Math.max(1, Math.round(layerTps(n))) } }, q.now(), SIM.recordLifetimeMs);
    n.recordBytes = encodeHolderRecord(rec);
    signed++;
  };

  // --- metrics
  let samples = 0;
  const layerCovered = new Array<number>(L).fill(0);
  let twoRepLayerSamples = 0;
  let replicaSum = 0;
  let routesOk = 0;
  let routesAll = 0;
  const routeFailures = { no_chain: 0, hops: 0, partitioned: 0, forming: 0 };
  let lookupsOk = 0;
  let lookupsAll = 0;
  const lookupMs: number[] = [];
  const propagationS: number[] = [];
  let ledgerConvergeS: number | null = null;
  let eclipsed = 0;
  let eclipsedDhtOnly = 0;
  let eclipseChecks = 0;
  const series: SimSeries = { tMin: [], coveredLayers: [], minReplicas: [], replicasPerLayer: [], routeSuccess: [], lookupSuccess: [], lookupP99Ms: [], ledgerAgree: [] };
  let winRoutes = [0, 0];
  let winLookups = [0, 0];
  let winLookupMs: number[] = [];

  // --- joining, loading, leaving
  const downloadMs = (n: SimNode, layers: number): number => {
    // weights from peers over the checkpoint stream: the joiner's downlink ≈ 4 × its uplink, parallel sources
    const mbps = Math.min(4 * n.machine.upMbps, 1000);
    return (layers * model.layerMb * 8) / mbps * 1000 + 500;
  };
  const beginHold = (n: SimNode, span: PoolSpan, genesis: boolean): void => {
    const have = n.span;
    let fresh = span.end - span.start;
    if (have !== undefined) fresh -= Math.max(0, Math.min(have.end, span.end) - Math.max(have.start, span.start));
    n.loading = span;
    q.after(genesis ? 0 : downloadMs(n, fresh), () => {
      if (!n.up || n.loading !== span) return;
      n.loading = undefined;
      if (n.span === undefined) n.heldSinceMs = q.nowMs; // a move keeps the first hold's time
      n.span = span;
      signRecord(n, span);
      putRecord(n);
    });
  };
  const join = (n: SimNode, genesis: boolean): void => {
    n.up = true;
    n.joinedAtMs = q.nowMs;
    n.leftAtMs = -1;
    n.span = undefined;
    n.loading = undefined;
    n.ledger = new Set(genesis ? [] : bestLedger(n));
    withdrawn.delete(n.peerId);
    const view = poolView(viewOf(n));
    const cap = { maxLayers: maxLayers(n), layerTokensPerSec: layerTps(n) };
    // as the node's pool does (pool/service.ts place): full ties broken by the joiner's peer id
    const span = chooseSpan(view, cap, { requireCovered: view.holders.length > 0, tieBreak: n.peerId });
    if (span !== undefined) beginHold(n, span, genesis);
    // mesh: D random live peers on our side
    graft(n);
    heartbeat(n, genesis ? 0 : rng.next() * SIM.heartbeatMs);
  };
  const leave = (n: SimNode, crash: boolean): void => {
    if (!n.up) return;
    n.up = false;
    n.leftAtMs = q.nowMs;
    if (!crash) withdrawn.add(n.peerId);
    n.span = undefined;
    n.loading = undefined;
    for (const m of n.mesh) nodes[m]!.mesh.delete(n.idx);
    n.mesh.clear();
    store.delete(n.idx);
  };
  const bestLedger = (n: SimNode): Set<number> => {
    // a joiner syncs its ledger from one live peer first
    const peers = nodes.filter((p) => p.up && !p.sybil && p !== n && reachable(n, p));
    return peers.length === 0 ? new Set() : peers[rng.int(peers.length)]!.ledger;
  };

  // --- heartbeats: every node to every view (delivery latency ≪ the 15 s stale threshold; loss applies)
  const heartbeat = (n: SimNode, delay: number): void => {
    q.after(delay, () => {
      if (!n.up) return;
      const span = n.sybil ? n.claim : n.span;
      for (let v = 0; v < viewCount; v++) {
        const home = viewHome[v]!;
        if (!reachable(n, home) || lost(n, home)) continue;
        views[v]!.observe(n.peerId, { peerId: n.peerId, span, load: 0, freeMemoryMb: n.machine.offerMb, trainingStep: 0n, timestampMs: q.now(), seq: 0n });
      }
      heartbeat(n, SIM.heartbeatMs);
    });
  };

  // --- gossip mesh and proof propagation
  const graft = (n: SimNode): void => {
    const cands = nodes.filter((p) => p.up && !p.sybil && p !== n && !n.mesh.has(p.idx) && reachable(n, p));
    while (n.mesh.size < SIM.meshDegree && cands.length > 0) {
      const p = cands.splice(rng.int(cands.length), 1)[0]!;
      n.mesh.add(p.idx);
      p.mesh.add(n.idx);
    }
  };
  const repairMesh = (): void => {
    for (const n of nodes) {
      if (!n.up || n.sybil) continue;
      for (const m of [...n.mesh]) if (!reachable(n, nodes[m]!)) n.mesh.delete(m);
      if (n.mesh.size < SIM.meshDegree) graft(n);
    }
    q.after(SIM.meshRepairMs, repairMesh);
  };
  const proofs: { id: number; t0: number; last: number; origin: SimNode; need: Set<number>; done: boolean; acrossPartition: boolean }[] = [];
  const deliver = (n: SimNode, id: number, from: SimNode | undefined): void => {
    if (!n.up || n.ledger.has(id)) return;
    n.ledger.add(id);
    const p = proofs[id]!;
    p.need.delete(n.idx);
    p.last = q.nowMs;
    if (!p.done && p.need.size === 0) {
      p.done = true;
      if (!p.acrossPartition) propagationS.push((q.nowMs - p.t0) / 1000);
    }
    for (const m of n.mesh) {
      const peer = nodes[m]!;
      if (peer === from || !reachable(n, peer) || lost(n, peer)) continue;
      q.after(sendMs(n, peer, SIM.proofBytes), () => deliver(peer, id, n));
    }
    lazyGossip(n, id);
  };
  // Lazy gossip, as gossipsub does it: at its next heartbeat a node sends IHAVE with the ids it saw in the gossip
  // window to D_lazy random subscribed peers outside its mesh; one that misses a message asks for it (IWANT) and gets
  // it: three one-way trips. Without it a mesh that stayed split after a partition healed (each side's nodes still
  // have D mesh peers on their own side, so nothing re-grafts) carried proofs across only through the 30 s ledger
  // reconciliation: the 100-node partition's proof p99 was 18 s.
  const lazyGossip = (n: SimNode, id: number): void => {
    q.after(rng.next() * SIM.gossipHeartbeatMs, () => {
      if (!n.up) return;
      for (let k = 0; k < SIM.gossipLazy; k++) {
        const c = nodes[rng.int(nodes.length)]!;
        if (!c.up || c.sybil || c === n || n.mesh.has(c.idx) || c.ledger.has(id) || !reachable(n, c) || lost(n, c) || lost(c, n)) continue;
        q.after(2 * latencyMs(n, c) + sendMs(n, c, SIM.proofBytes), () => deliver(c, id, n));
      }
    });
  };
  const publishProof = (): void => {
    const live = upHonest();
    if (live.length > 0) {
      const origin = live[rng.int(live.length)]!;
      const id = proofs.length;
      const need = new Set(live.filter((x) => reachable(origin, x)).map((x) => x.idx));
      proofs.push({ id, t0: q.nowMs, last: q.nowMs, origin, need, done: false, acrossPartition: partitioned });
      deliver(origin, id, undefined);
    }
    q.after(60_000 / SIM.trackedProofsPerMin, publishProof);
  };
  // drop from `need` the nodes that left (a proof is propagated when every node still up has it)
  const settleProofs = (): void => {
    for (const p of proofs) {
      if (p.done) continue;
      for (const i of p.need) if (!nodes[i]!.up) p.need.delete(i);
      if (p.need.size === 0) {
        // the remaining nodes left: the proof was complete at its last delivery
        p.done = true;
        if (!p.acrossPartition) propagationS.push((p.last - p.t0) / 1000);
      }
    }
  };
  // reconciliation: pull from one random live peer (status + sync), every reconcileMs per node
  const reconcile = (n: SimNode): void => {
    q.after(SIM.reconcileMs, () => {
      if (!n.up) return;
      // a random connected peer (not only the gossip mesh, which may still be one-sided after a heal)
      let p: SimNode | undefined;
      for (let t = 0; t < 8 && p === undefined; t++) {
        const c = nodes[rng.int(nodes.length)]!;
        if (c.up && !c.sybil && c !== n && reachable(n, c)) p = c;
      }
      if (p !== undefined) {
        const missing = [...p.ledger].filter((id) => !n.ledger.has(id));
        const from = p;
        if (missing.length > 0) q.after(2 * latencyMs(n, from) + sendMs(from, n, missing.length * SIM.proofBytes), () => missing.forEach((id) => deliver(n, id, from)));
      }
      reconcile(n);
    });
  };
  const ledgerHashesEqual = (): boolean => {
    let ref: string | undefined;
    for (const n of nodes) {
      if (!n.up || n.sybil) continue;
      const h = `${n.ledger.size}:${[...n.ledger].reduce((a, b) => (a ^ Math.imul(b + 1, 0x9e3779b1)) >>> 0, 0)}`;
      if (ref === undefined) ref = h;
      else if (ref !== h) return false;
    }
    return true;
  };

  // --- pool planning per view: restoration and rebalancing (only the nodes the plan names move)
  const plan = (): void => {
    for (let v = 0; v < viewCount; v++) {
      const view = poolView(v);
      if (view.holders.length === 0) continue;
      for (const mv of planMoves(view, { layerMb: model.layerMb })) {
        const n = byPeer.get(mv.peerId);
        if (n === undefined || n.sybil || !n.up || viewOf(n) !== v || n.span === undefined || n.loading !== undefined) continue;
        if (mv.reason === 'throughput' && n.movesMs.length > 0 && q.nowMs - n.movesMs[n.movesMs.length - 1]! < 120_000) continue;
        n.movesMs.push(q.nowMs);
        beginHold(n, mv.to, false);
      }
    }
    q.after(SIM.planEveryMs, plan);
  };

  // --- requests through the router: route choice + ban list, failover by re-routing
  const bans = Array.from({ length: viewCount }, () => new BanList());
  // the round trips a router measured (router/measure.ts LatencyTable, kept per view like the ban lists): a holder
  // with none is `unproven` (route.ts hopCost), as the node's holderViews marks it; only a served hop adds one
  const measured = Array.from({ length: viewCount }, () => new LatencyTable());
  // one decode step's compute through a span on the node (a serving Sybil key at SIM.sybilServeSpeed)
  const computeMs = (n: SimNode, span: PoolSpan): number => ((span.end - span.start) * 1000) / (n.sybil ? (40 * SIM.sybilServeSpeed * 226) / model.layerMb : layerTps(n));
  let sybilRoutes = 0;
  let scoredRoutes = 0;
  let newcomerRoutes = 0;
  let hopsServed = 0;
  let sybilHopsServed = 0;
  // as the node wires it (node/serving.ts): peers a view measured serving keep their place in its full liveness table
  for (let v = 0; v < viewCount; v++) views[v]!.setKeep((peer) => measured[v]!.samples(peer) > 0);
  // the route step's scratch: sort keys (span, then peer-id rank) and holder views by rank
  let sortKeys = new Float64Array(0);
  const byRank: HolderView[] = [];
  const route = (): void => {
    const clients = upHonest();
    if (clients.length > 0) {
      const c = clients[rng.int(clients.length)]!;
      const v = viewOf(c);
      rankIds();
      const tracked = views[v]!.size;
      if (sortKeys.length < tracked) sortKeys = new Float64Array(2 * tracked);
      let k = 0;
      views[v]!.forEach((p) => {
        const n = byPeer.get(p.peer);
        if (n === undefined || p.state === 'dead' || p.heartbeat.span === undefined || withdrawn.has(p.peer)) return;
        // quiet as router/measure.ts holderViews marks it (stale, or a heartbeat late by half an interval)
        const quiet = p.state === 'stale' || isQuiet(q.nowMs - p.lastSeenMs, SIM.heartbeatMs);
        const unproven = measured[v]!.samples(p.peer) === 0;
        const stale = p.state === 'stale' ? 50 : 0;
        const span = p.heartbeat.span;
        // what a node's holderViews builds: speed from the record's claim (msPerLayerOf), a round trip net of the
        // stated compute time (a serving Sybil states 0, so its compute lands in its round trip), and the measured
        // wall time of its steps once it served
        const claimTps = claimedTps(n, span);
        const msPerLayer = n.sybil ? 1000 / (claimTps * (span.end - span.start)) : 1000 / layerTps(n);
        const rttMs = 2 * latencyMs(c, n) + (n.sybil ? computeMs(n, span) : 0) + stale;
        const stepMs = measuredWeight ? measured[v]!.stepMs(p.peer) : undefined;
        const h: HolderView = { peerId: p.peer, span, alive: true, rttMs, msPerLayer, tokensPerSec: claimTps, block: n.block };
        if (stakes) h.bonded = n.bonded;
        if (stepMs !== undefined) h.stepMs = stepMs + stale;
        if (quiet) h.quiet = quiet;
        if (unproven) h.unproven = unproven;
        const rank = rankOf[n.idx]!;
        byRank[rank] = h;
        // span, then peer id (RANK_SPAN > every rank; spans end at most at 1,024 layers)
        sortKeys[k++] = (span.start * 1024 + span.end) * RANK_SPAN + rank;
      });
      const keys = sortKeys.subarray(0, k).sort();
      const hv: HolderView[] = new Array<HolderView>(k);
      for (let i = 0; i < k; i++) hv[i] = byRank[keys[i]! % RANK_SPAN]!;
      // as the driver does (router/driver.ts runGeneration): one chain for the whole range; a hop that does not
      // serve is banned and replaced, with the window of hops around it that route.ts planFailover chooses (fewest
      // unproven hops, then its own layers first; banned peers only when nobody else covers them, this request's
      // failures never), up to the driver's failover limit
      const failed = new Set<string>();
      const bl = bans[v]!;
      const planOpts = (): Parameters<typeof chooseRouteAvoiding>[2] => ({ random: () => rng.next(), banned: bl.banned(q.nowMs), failed, ...(opts.explore === undefined ? {} : { explore: opts.explore }) });
      const plan = (range: PoolSpan): ChainHop[] | undefined => {
        try {
          return chooseRouteAvoiding(hv, range, planOpts());
        } catch {
          return undefined;
        }
      };
      let ok = false;
      let noChain = false;
      let viaSybil = false;
      let viaNewcomer = false;
      const chain = plan({ start: 0, end: L });
      if (chain === undefined) noChain = true;
      else {
        ok = true;
        let failovers = 0;
        for (let i = 0; i < chain.length; ) {
          const hop = chain[i]!;
          const n = byPeer.get(hop.peerId)!;
          if (n.sybil) viaSybil = true;
          const held = n.sybil ? (opts.sybilServe === true ? n.claim : undefined) : n.span;
          const serves = n.up && held !== undefined && held.start === hop.span.start && held.end === hop.span.end && reachable(c, n);
          if (serves) {
            bl.succeed(hop.peerId);
            // the entry times the step (round trip + compute) and the hop states its compute (a Sybil: 0)
            const compute = computeMs(n, hop.span);
            measured[v]!.observeStep(hop.peerId, 2 * latencyMs(c, n) + compute, n.sybil ? 0 : compute);
            hopsServed++;
            if (n.sybil) sybilHopsServed++;
            else if (n.joinedAtMs > warmupMs) viaNewcomer = true;
            i++;
            continue;
          }
          bl.fail(hop.peerId, q.nowMs);
          failed.add(hop.peerId);
          if (++failovers > DRIVER_DEFAULTS.maxFailovers) {
            ok = false;
            break;
          }
          let fp: FailoverPlan;
          try {
            fp = planFailover(hv, chain, i, planOpts());
          } catch {
            ok = false;
            noChain = true;
            break;
          }
          // the replacement's hops are tried from the window's start (the driver replays the window's inputs there)
          chain.splice(fp.j, fp.k - fp.j + 1, ...fp.sub);
          i = fp.j;
        }
      }
      routesAll++;
      if (viaSybil) sybilRoutes++;
      if (q.nowMs >= warmupMs) {
        scoredRoutes++;
        if (viaNewcomer) newcomerRoutes++;
      }
      winRoutes[1]!++;
      if (ok) {
        routesOk++;
        winRoutes[0]!++;
      } else {
        if (noChain) routeFailures.no_chain++;
        else routeFailures.hops++;
        if (partitioned) routeFailures.partitioned++;
        if (q.nowMs < warmupMs) routeFailures.forming++;
      }
    }
    q.after(SIM.routeEveryMs, route);
  };

  // --- DHT lookups of current holders' records, through the real validator/selector
  const everKnown = (): SimNode[] => nodes.filter((n) => !n.sybil && (n.up || (n.leftAtMs >= 0 && q.nowMs - n.leftAtMs < SIM.routingRefreshMs)));
  const lookup = (): void => {
    const live = upHonest();
    const targets = live.filter((n) => n.recordBytes !== undefined && n.span !== undefined);
    if (live.length > 0 && targets.length > 0) {
      const from = live[rng.int(live.length)]!;
      const target = targets[rng.int(targets.length)]!;
      const known = everKnown();
      const rounds = Math.ceil(Math.log(Math.max(2, live.length)) / Math.log(8)) + 1;
      let ms = 0;
      for (let r = 0; r < rounds; r++) {
        let best = Infinity;
        for (let a = 0; a < SIM.dhtAlpha; a++) {
          const c = known[rng.int(known.length)]!;
          const t = !c.up || !reachable(from, c) ? SIM.dhtTimeoutMs : lost(from, c) ? 2 * latencyMs(from, c) + 200 : 2 * latencyMs(from, c);
          best = Math.min(best, t);
        }
        ms += best;
      }
      const values: Uint8Array[] = [];
      for (const [idx, m] of store) {
        const s = nodes[idx]!;
        const v = m.get(target.peerId);
        if (v !== undefined && s.up && reachable(from, s)) values.push(v);
      }
      let ok = false;
      if (values.length > 0) {
        verifiedLookups++;
        ok = ns.select(holderKey(NETWORK_ID, target.peerId), values.slice(0, SIM.dhtK)) >= 0;
      }
      lookupsAll++;
      winLookups[1]!++;
      if (ok) {
        lookupsOk++;
        winLookups[0]!++;
        lookupMs.push(ms);
        winLookupMs.push(ms);
      }
    }
    q.after(SIM.lookupEveryMs, lookup);
  };

  // --- sampling: ground-truth coverage (nodes that are up and have their span loaded)
  const sample = (): void => {
    settleProofs();
    const holders: PoolHolder[] = nodes.filter((n) => n.up && !n.sybil && n.span !== undefined).map((n) => holderOf(n, 'alive', n.span!));
    const c = coverage({ numLayers: L, holders });
    if (q.nowMs >= warmupMs) samples++;
    for (let i = 0; i < L && q.nowMs >= warmupMs; i++) {
      if (c.replicas[i]! > 0) layerCovered[i]!++;
      if (c.replicas[i]! >= 2) twoRepLayerSamples++;
      replicaSum += c.replicas[i]!;
    }
    if (opts.series === true) {
      series.tMin.push(q.nowMs / 60_000);
      series.coveredLayers.push(L - c.missing.length);
      series.minReplicas.push(c.replicasMin);
      series.replicasPerLayer.push(c.replicas.reduce((a, b) => a + b, 0) / L);
      series.routeSuccess.push(winRoutes[1]! === 0 ? 1 : winRoutes[0]! / winRoutes[1]!);
      series.lookupSuccess.push(winLookups[1]! === 0 ? 1 : winLookups[0]! / winLookups[1]!);
      series.lookupP99Ms.push(p99(winLookupMs));
      series.ledgerAgree.push(ledgerHashesEqual() ? 1 : 0);
    }
    winRoutes = [0, 0];
    winLookups = [0, 0];
    winLookupMs = [];
    q.after(SIM.sampleMs, sample);
  };
  const watchViews = (): void => {
    for (const v of views) v.check();
    q.after(1_000, watchViews);
  };

  // --- start: nodes join over the first 2 minutes (the first one holds the genesis model)
  for (let i = 0; i < opts.nodes; i++) {
    const n = newNode(false, true);
    byPeer.set(n.peerId, n);
  }
  // view homes spread over the continents (so both sides of the partition keep a view)
  for (let v = 0; v < viewCount; v++) {
    const home = nodes.find((n) => n.continent === v % CONTINENTS.length && !viewHome.includes(n)) ?? nodes.find((n) => !viewHome.includes(n))!;
    viewHome.push(home);
  }
  const isHome = (n: SimNode): boolean => viewHome.includes(n);
  join(nodes[0]!, true);
  // the genesis node holds what its memory allows; the whole model is seeded to it for the start
  nodes[0]!.loading = undefined;
  nodes[0]!.span = { start: 0, end: L };
  signRecord(nodes[0]!, nodes[0]!.span);
  putRecord(nodes[0]!);
  for (let i = 1; i < opts.nodes; i++) q.at(((i / opts.nodes) * 120_000) | 0, () => join(nodes[i]!, false));
  // the genesis node trims to what it can hold once others cover the model (a throughput/restore move)
  q.at(180_000, () => {
    const g = nodes[0]!;
    if (g.up && g.span !== undefined && g.span.end - g.span.start > maxLayers(g)) {
      const view = poolView(0);
      const others = { numLayers: L, holders: view.holders.filter((h) => h.peerId !== g.peerId) };
      const s = chooseSpan(others, holderCapacity(holderOf(g, 'alive', g.span), model.layerMb, L), { requireCovered: true });
      if (s !== undefined) {
        g.span = s;
        signRecord(g, s);
        putRecord(g);
      }
    }
  });
  q.at(1_000, watchViews);
  q.at(5_000, repairMesh);
  q.at(SIM.planEveryMs, plan);
  q.at(150_000, route);
  q.at(150_000, lookup);
  q.at(0, sample);
  q.at(150_000, publishProof);
  for (const n of nodes) q.at(rng.next() * SIM.reconcileMs, () => reconcile(n));
  const republish = (): void => {
    for (const n of nodes) if (n.up && !n.sybil && n.span !== undefined) putRecord(n);
    q.after(SIM.republishMs, republish);
  };
  q.at(SIM.republishMs, republish);

  // --- scenario
  const churnStart = warmupMs;
  const scheduleDeparture = (n: SimNode): void => {
    const sessionMs = logNormal(rng, SESSION.medianMin, SESSION.sigma) * 60_000;
    const crash = rng.next() < SESSION.crashShare;
    q.after(sessionMs, () => {
      if (!n.up || isHome(n)) return; // the view homes stay (they stand for observers)
      leave(n, crash);
      // a replacement arrives after an exponential gap, keeping the population steady
      q.after(exponential(rng, 60_000), () => {
        const fresh = newNode(false, true);
        byPeer.set(fresh.peerId, fresh);
        join(fresh, false);
        reconcile(fresh);
        scheduleDeparture(fresh);
      });
    });
  };
  if (opts.scenario === 'churn' || opts.scenario === 'sybil') {
    q.at(churnStart, () => {
      for (const n of nodes) if (n.up && !n.sybil) scheduleDeparture(n);
    });
  }
  let failAt = -1;
  if (opts.scenario === 'mass-failure') {
    failAt = Math.min(20 * 60_000, endMs / 3);
    q.at(failAt, () => {
      const live = upHonest().filter((n) => !isHome(n));
      rng.shuffle(live);
      for (const n of live.slice(0, Math.floor(0.3 * (live.length + viewCount)))) leave(n, true);
    });
  }
  let healAt = -1;
  if (opts.scenario === 'partition') {
    const cutAt = Math.min(20 * 60_000, endMs / 3);
    healAt = Math.min(cutAt + 10 * 60_000, (2 * endMs) / 3);
    q.at(cutAt, () => {
      partitioned = true;
      // proofs still spreading when the cut comes reach the far side only after the heal: they are scored by
      // ledger_converge_s, not by the propagation p99
      for (const p of proofs) if (!p.done) p.acrossPartition = true;
    });
    q.at(healAt, () => {
      partitioned = false;
      const check = (): void => {
        if (ledgerHashesEqual()) ledgerConvergeS = (q.nowMs - healAt) / 1000;
        else q.after(1_000, check);
      };
      check();
    });
  }
  if (opts.scenario === 'sybil') {
    // 10× the honest nodes as fresh keys: each announces a holder record for a span it does not serve, with huge
    // claimed capacity, and heartbeats like a live holder
    q.at(Math.min(15 * 60_000, endMs / 4), () => {
      const count = SIM.sybilFactor * opts.nodes;
      // the attacker concentrates on a few spans (an eclipse needs many claimants per layer)
      const attackSpans = Array.from({ length: 8 }, () => {
        const len = Math.max(1, Math.min(L, 1 + rng.int(Math.max(1, L >> 2))));
        const start = rng.int(L - len + 1);
        return { start, end: start + len };
      });
      // serving Sybils want routes: they claim spans honest holders hold (drawn from the holders up at the flood),
      // which tile with the rest of a chain; a random span that fits no chain is never routed to
      const held = upHonest().filter((n) => n.span !== undefined);
      if (opts.sybilServe === true && held.length > 0) for (let k = 0; k < attackSpans.length; k++) attackSpans[k] = { ...held[rng.int(held.length)]!.span! };
      for (let i = 0; i < count; i++) {
        const s = newNode(true, i < sybilSigned);
        byPeer.set(s.peerId, s);
        s.claim = attackSpans[rng.int(attackSpans.length)]!;
        s.up = true;
        if (s.key !== undefined) {
          signRecord(s, s.claim);
          putRecord(s);
        }
        heartbeat(s, rng.next() * SIM.heartbeatMs);
      }
    });
    // eclipse check: a per-layer provider lookup returns at most maxProviders records in arrival order (here:
    // random); a layer is eclipsed for that lookup when none of them is an honest live holder
    const eclipseCheck = (): void => {
      const claimers: SimNode[][] = Array.from({ length: L }, () => []);
      for (const n of nodes) {
        if (!n.up) continue;
        const s = n.sybil ? n.claim : n.span;
        if (s !== undefined) for (let i = s.start; i < s.end; i++) claimers[i]!.push(n);
      }
      for (let i = 0; i < L; i++) {
        const all = claimers[i]!;
        const got = all.length <= SIM.maxProviders ? all : rng.shuffle([...all]).slice(0, SIM.maxProviders);
        eclipseChecks++;
        if (got.some((n) => !n.sybil)) continue;
        eclipsedDhtOnly++;
        // the node's registry also asks the holders it has seen serve (node/network.ts `known`: the view's
        // liveness.keptHolders); a layer stays eclipsed only when none of them is an honest live holder either
        const known = views[i % viewCount]!.keptHolders(i, KNOWN_MAX).map((p) => byPeer.get(p)!);
        if (!known.some((n) => n !== undefined && n.up && !n.sybil && n.span !== undefined && n.span.start <= i && i < n.span.end)) eclipsed++;
      }
      q.after(60_000, eclipseCheck);
    };
    q.at(Math.min(16 * 60_000, endMs / 4 + 60_000), eclipseCheck);
  }

  const livenessFigures = (): SimResult['liveness'] => {
    const up = upHonest();
    const tracked = up.filter((n) => views[0]!.state(n.peerId) !== undefined).length;
    return { refused: views.reduce((a, v) => a + v.refused, 0), rotated: views.reduce((a, v) => a + v.rotated, 0), honest_tracked_share: round(up.length === 0 ? 1 : tracked / up.length, 4) };
  };

  // --- run
  for (let m = 1; m <= Math.ceil(opts.minutes); m++) {
    q.runUntil(Math.min(endMs, m * 60_000));
    onProgress?.(m);
  }
  settleProofs();
  if (opts.scenario !== 'partition') {
    // without a partition: how long after the last tracked proof was published until every ledger agreed
    ledgerConvergeS = ledgerHashesEqual() ? p99(propagationS) : null;
  }
  const cov = samples === 0 ? 0 : Math.min(...layerCovered.map((c) => c / samples));
  function newcomerFigures(): SimResult['newcomers'] {
    const held = nodes.filter((n) => !n.sybil && n.up && n.span !== undefined && n.joinedAtMs > warmupMs && n.heldSinceMs >= 0 && q.nowMs - n.heldSinceMs >= SIM.newcomerHeldMs);
    const served = held.filter((n) => measured.some((t) => t.samples(n.peerId) > 0)).length;
    return { held: held.length, served_share: held.length === 0 ? null : round(served / held.length, 4), routes_share: round(scoredRoutes === 0 ? 0 : newcomerRoutes / scoredRoutes, 5) };
  }
  const result: SimResult = {
    nodes: opts.nodes,
    sim_minutes: opts.minutes,
    coverage_min: round(cov, 5),
    coverage_2rep_share: round(samples === 0 ? 0 : twoRepLayerSamples / (samples * L), 5),
    route_success: round(routesAll === 0 ? 0 : routesOk / routesAll, 5),
    dht_lookup_success: round(lookupsAll === 0 ? 0 : lookupsOk / lookupsAll, 5),
    dht_lookup_ms_p99: round(p99(lookupMs), 1),
    proof_propagation_s_p99: round(p99(propagationS), 3),
    ledger_converge_s: ledgerConvergeS === null ? null : round(ledgerConvergeS, 1),
    wall_s: round((performance.now() - wall0) / 1000, 1),
    scenario: opts.scenario,
    seed: opts.seed,
    model: `${L}L x ${model.hidden}H (${model.layerMb} MiB/layer)`,
    replicas_mean: round(samples === 0 ? 0 : replicaSum / (samples * L), 2),
    routes: routesAll,
    lookups: lookupsAll,
    sybil_eclipsed_layer_lookups: opts.scenario === 'sybil' ? (eclipseChecks === 0 ? 0 : round(eclipsed / eclipseChecks, 5)) : null,
    sybil_eclipsed_dht_only: opts.scenario === 'sybil' ? (eclipseChecks === 0 ? 0 : round(eclipsedDhtOnly / eclipseChecks, 5)) : null,
    signatures: { signed, verified_lookups: verifiedLookups },
    route_failures: routeFailures,
    liveness: livenessFigures(),
    newcomers: newcomerFigures(),
    sybil_routes: opts.scenario === 'sybil' ? { routes: sybilRoutes, share: round(routesAll === 0 ? 0 : sybilRoutes / routesAll, 5), hops_served_share: round(hopsServed === 0 ? 0 : sybilHopsServed / hopsServed, 5) } : null,
    dht_block_quota: opts.scenario === 'sybil' ? { sybil_blocks: sybilBlocks, sybil_signed: Math.min(sybilSigned, SIM.sybilFactor * opts.nodes), ...quotaFig, sybil_records_stored_per_node_max: Math.max(0, ...[...store.values()].map((m) => [...m.keys()].filter((k) => byPeer.get(k)?.sybil === true).length)) } : null,
    events: q.ran,
  };
  return { result, series };
}

function round(x: number, d: number): number {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}

/**
 * Route choice: which peers run which layers for one request. Pure functions over plain data (a view of the
 * holders, their measured latency and speed, a ban list), so that they can be tested and simulated at scale.
 *
 * A chain is a sequence of (peer, span) whose spans tile the wanted layer range [a, b) exactly (a hop runs the
 * whole span it holds). Its cost is the sum over hops of
 *
 *   rtt(peer) + layers(span) × msPerLayer(peer)
 *
 * (defaults for what was not measured yet: DEFAULT_RTT_MS and DEFAULT_MS_PER_LAYER). The cheapest cost is found by
 * dynamic programming over layer boundaries, among the chains with the fewest unproven hops (holders this node
 * never measured serving: `HolderView.unproven`); then every such chain within `slack` of it (cost ≤ best·(1+slack) +
 * slackMs, at most `maxCandidates`, enumerated in a fixed order: by cost, then peer ids) is a candidate, and one is
 * drawn with probability proportional to its capacity (the smallest tokens/s along it; unknown counts as 1), so
 * that load spreads over near-equal replicas while a clearly slower chain is never picked. The draw uses the
 * caller's random source, so the same inputs and the same random number give the same route.
 *
 * Peers that are not alive (liveness from heartbeats) or banned after a recent failure are skipped.
 *
 * Exploration (`chooseRouteAvoiding`, `explore`): a share of fresh requests takes one unproven holder into its chain
 * (`exploreRoute`), drawn per address block, so that an honest newcomer gets measured and then competes on its
 * figures; without it a holder nobody has measured is never routed to while measured holders cover its layers.
 */
import { NeuroShardError } from '../util/errors.js';
import { spanText } from '../util/span-text.js';

export interface HolderView {
  peerId: string;
  /** Layers held, [start, end). */
  span: { start: number; end: number };
  /** Liveness from heartbeats; only `alive` holders are routed to. */
  alive: boolean;
  /** Measured round-trip time to the peer (ms); undefined until measured. */
  rttMs?: number;
  /** Measured (or announced) compute time of one layer for one decode step (ms). */
  msPerLayer?: number;
  /**
   * Announced throughput (tokens/s). A claim: where `stepMs` is known the capacity weight is the measured figure
   * (at most this one); without either it counts as 1.
   */
  tokensPerSec?: number;
  /**
   * Measured wall time of one step this node sent through the holder (ms, moving average: round trip and the hop's
   * compute together, router/measure.ts LatencyTable.stepMs). Unlike `msPerLayer` and `tokensPerSec` (the holder's
   * claims) and `rttMs` (wall time minus the compute time the hop states), nothing the holder says can lower it.
   * Route choice prices the hop at no less than it and weighs it by 1000 / stepMs tokens/s (`capacityOf`).
   */
  stepMs?: number;
  /**
   * Alive, but its heartbeats are late (silent for more than QUIET_AFTER_HEARTBEATS intervals, see `isQuiet`): route
   * choice uses it only when no chain avoids it (`chooseRouteAvoiding`).
   */
  quiet?: boolean;
  /**
   * No step of it was ever measured by this node (router/measure.ts `holderViews`: no round trip in its
   * LatencyTable). Its stated speed and capacity are claims nobody here has checked: a fresh key can announce any
   * span at any speed. Route choice prices it as UNPROVEN_RTT_MS slower, at no better than the default speed and
   * with capacity 1, so measured holders come first and unproven ones are tried only where no measured holder
   * covers the layers (see `hopCost`).
   */
  unproven?: boolean;
  /**
   * The holder's address block (an IPv4 /24 or IPv6 /48 of the address it is reached at), when known. Exploration
   * draws a block first and a holder inside it second, so a flood of keys from a few blocks gets the exploration
   * share of those few blocks, not of its key count. Unset: the holder is a block of its own.
   */
  block?: string;
  /**
   * Whether the holder's locked stake reaches the bond the caller asks for (router/measure.ts `holderViews` looks it
   * up in a map of peer → locked stake that the node builds from its ledger state, ledger/stakes.ts). false: a key
   * with nothing at stake, which a flood of fresh keys is; route choice weighs it UNBONDED_WEIGHT in the draw among
   * near-best chains and explores it after bonded newcomers (EXPLORE_UNBONDED_SHARE). Unset: not known (no stake
   * lookup), weighed as bonded.
   */
  bonded?: boolean;
  /**
   * 'int8' when the holder holds int8 weights (`--weights int8`, from its signed HolderRecord); absent: float32. Route choice
   * prefers chains of one format, float32 first (`chooseRouteAvoiding`).
   */
  weights?: 'int8';
}

export interface ChainHop {
  peerId: string;
  span: { start: number; end: number };
}

export interface RouteChoiceOptions {
  /** A number in [0, 1) (the caller's random source). */
  random: () => number;
  /** Peers not to use (banned, failed in this session, or the caller's own exclusions). */
  exclude?: ReadonlySet<string>;
  /** Relative and absolute slack that makes a chain "near-best". */
  slack?: number;
  slackMs?: number;
  maxCandidates?: number;
  /**
   * The share of fresh requests (no failure yet) whose chain takes one unproven holder (`exploreRoute`); 0 turns
   * exploration off. Only `chooseRouteAvoiding` explores.
   */
  explore?: number;
}

export const DEFAULT_RTT_MS = 2;
export const DEFAULT_MS_PER_LAYER = 1;
/**
 * `explore` 0.05: 1 request in 20 carries a newcomer (or a Sybil: the hop then fails over like any failed hop, a
 * round trip and a ban, paid by that request alone); at 1 in 20, a holder draws traffic within minutes on a network
 * that routes a request a second (docs/SCALE.md, "Session 9": exploration).
 */
export const ROUTE_DEFAULTS = Object.freeze({ slack: 0.25, slackMs: 1, maxCandidates: 32, explore: 0.05 });

/**
 * The capacity weight of a hop whose holder is not bonded (`HolderView.bonded` false), relative to a bonded one of
 * the same measured speed: an unbonded holder is still routed to (an honest node before its first stake), ten
 * times less often among equal replicas. Why (issue 12 §3): a key costs nothing and a bond does, so what a flood
 * of keys can draw should depend on what it put at stake, not on how many keys it made.
 */
export const UNBONDED_WEIGHT = 0.1;
/**
 * The share of explorations that go to an unbonded newcomer while bonded ones wait to be measured too (when only
 * one kind waits, it gets them all): bonded newcomers are measured first, unbonded ones still get some traffic.
 */
export const EXPLORE_UNBONDED_SHARE = 0.2;

/** No chain of live, unbanned holders covers the range; `missing` names layers nobody usable holds (or the first gap). */
export class LayersUncoveredError extends NeuroShardError {
  constructor(range: { start: number; end: number }, missing: number[]) {
    super('LAYERS_UNCOVERED', `no chain of live peers covers layers ${spanText(range)}; ${missing.length > 0 ? `layer${missing.length > 1 ? 's' : ''} ${compact(missing)} missing` : 'spans do not tile'}`, {
      fault: 'local',
      meta: { missing, range: [range.start, range.end] },
    });
  }
}

function compact(xs: number[]): string {
  if (xs.length <= 8) return xs.join(', ');
  return `${xs.slice(0, 8).join(', ')}, … (${xs.length})`;
}

/**
 * Added to an unproven holder's round trip (ms). It orders chains with the same number of unproven hops; it is not
 * what keeps unproven hops out while measured holders cover the layers: `candidateChains` ranks chains by their
 * unproven hops first (a flat penalty is small against a chain of slow layers, seconds on a 1,000-node model).
 */
export const UNPROVEN_RTT_MS = 1_000;

/**
 * Why (issue 12, Sybil flood at 1,000 nodes): 10× the honest nodes as fresh keys announced spans with a huge
 * claimed tokens/s; priced by their claims they were the cheapest and heaviest candidates, every replacement drew
 * another one, and 4.6 % of routes ran out of the driver's 8 failovers (route_success 0.954). A claim is only
 * believed once this node has measured the holder serving a step.
 */
export function hopCost(h: HolderView): number {
  const layers = h.span.end - h.span.start;
  if (h.unproven === true) return (h.rttMs ?? DEFAULT_RTT_MS) + UNPROVEN_RTT_MS + layers * Math.max(h.msPerLayer ?? DEFAULT_MS_PER_LAYER, DEFAULT_MS_PER_LAYER);
  // a served holder is never cheaper than its measured step: a claimed speed (msPerLayer) and a stated compute
  // time (subtracted from rttMs) could otherwise price it at nothing
  return Math.max((h.rttMs ?? DEFAULT_RTT_MS) + layers * (h.msPerLayer ?? DEFAULT_MS_PER_LAYER), validMs(h.stepMs) ?? 0);
}

function validMs(x: number | undefined): number | undefined {
  return x !== undefined && Number.isFinite(x) && x > 0 ? x : undefined;
}

export function chainCost(chain: readonly HolderView[]): number {
  return chain.reduce((s, h) => s + hopCost(h), 0);
}

/**
 * The capacity weight of a hop in the draw among near-best chains: its measured tokens/s (1000 / stepMs), capped by
 * what it claims; 1 while unproven (a claim is not believed before it was measured); × UNBONDED_WEIGHT for a
 * holder that is not bonded.
 *
 * Why (issue 12, Sybil side): the weight was the claimed tokens/s. A key that served one step (an exploration
 * draw, a real cheap host) and claimed 10⁶ tokens/s then took nearly every draw among the near-best chains of its
 * span, against honest holders weighing 10-100: claiming was enough to attract routes. Measured, a hop weighs what
 * this node saw it deliver.
 */
function capacityOf(h: HolderView): number {
  const bond = h.bonded === false ? UNBONDED_WEIGHT : 1;
  if (h.unproven === true) return bond;
  const claim = h.tokensPerSec !== undefined && h.tokensPerSec > 0 && Number.isFinite(h.tokensPerSec) ? h.tokensPerSec : undefined;
  const step = validMs(h.stepMs);
  if (step !== undefined) return bond * Math.min(claim ?? Infinity, 1000 / step);
  return bond * (claim ?? 1);
}

/** Holders usable for [a, b): alive, not excluded, a span inside the range; sorted by start, then peer id. */
function usable(holders: readonly HolderView[], range: { start: number; end: number }, exclude: ReadonlySet<string> | undefined): HolderView[] {
  return holders
    .filter((h) => h.alive && exclude?.has(h.peerId) !== true && h.span.start >= range.start && h.span.end <= range.end && h.span.start < h.span.end)
    .sort((x, y) => x.span.start - y.span.start || x.span.end - y.span.end || (x.peerId < y.peerId ? -1 : x.peerId > y.peerId ? 1 : 0));
}

/** The layers of [a, b) that no usable holder covers; when all are covered but nothing tiles, the first layer past the reachable boundary. */
export function missingLayers(holders: readonly HolderView[], range: { start: number; end: number }, exclude?: ReadonlySet<string>): number[] {
  const hs = usable(holders, range, exclude);
  const missing: number[] = [];
  for (let l = range.start; l < range.end; l++) if (!hs.some((h) => h.span.start <= l && l < h.span.end)) missing.push(l);
  if (missing.length > 0) return missing;
  const reach = reachable(hs, range);
  if (reach.has(range.end)) return [];
  return [Math.max(...reach)];
}

function reachable(hs: HolderView[], range: { start: number; end: number }): Set<number> {
  const reach = new Set<number>([range.start]);
  for (const h of hs) if (reach.has(h.span.start)) reach.add(h.span.end); // hs sorted by start
  return reach;
}

/**
 * Every chain within the slack of the cheapest, cheapest first (ties: lexicographic by peer ids), at most
 * `maxCandidates`. Empty when nothing tiles the range.
 */
export function candidateChains(holders: readonly HolderView[], range: { start: number; end: number }, opts: Omit<RouteChoiceOptions, 'random'> = {}): HolderView[][] {
  const hs = usable(holders, range, opts.exclude);
  const slack = opts.slack ?? ROUTE_DEFAULTS.slack;
  const slackMs = opts.slackMs ?? ROUTE_DEFAULTS.slackMs;
  const maxCandidates = opts.maxCandidates ?? ROUTE_DEFAULTS.maxCandidates;
  // Chains are ranked first by their unproven hops, then by cost: fewest[s] is the fewest unproven hops from
  // boundary s to range.end, best[s] the cheapest cost among the chains with that many (Infinity when none). A
  // flat penalty alone (UNPROVEN_RTT_MS) did not keep unproven hops out of the near-best set: with slow layers a
  // 64-layer chain costs seconds, its 25 % slack exceeded the penalty, and at 1,000 nodes chains through Sybils
  // were drawn beside measured ones (issue 12). A failed Sybil hop's failover is planned for exactly its claimed
  // span, which few honest spans tile, so the replacements were Sybils too until the driver's limit.
  const best = new Map<number, number>([[range.end, 0]]);
  const fewest = new Map<number, number>([[range.end, 0]]);
  const byStart = new Map<number, HolderView[]>();
  for (const h of hs) {
    const list = byStart.get(h.span.start) ?? [];
    list.push(h);
    byStart.set(h.span.start, list);
  }
  const unprovenOf = (h: HolderView): number => (h.unproven === true ? 1 : 0);
  const starts = [...new Set(hs.map((h) => h.span.start))].sort((x, y) => y - x);
  for (const s of starts) {
    let b = Infinity;
    let k = Infinity;
    for (const h of byStart.get(s)!) {
      const rest = best.get(h.span.end) ?? Infinity;
      if (!Number.isFinite(rest)) continue;
      const u = unprovenOf(h) + fewest.get(h.span.end)!;
      const c = hopCost(h) + rest;
      if (u < k || (u === k && c < b)) {
        k = u;
        b = c;
      }
    }
    best.set(s, b);
    fewest.set(s, k);
  }
  const total = best.get(range.start) ?? Infinity;
  if (!Number.isFinite(total)) return [];
  const target = fewest.get(range.start)!;
  // the flat penalty of the unproven hops every candidate has is left out of the relative slack, or it would widen
  // "near-best" around every chain that needs one unproven hop to include far or slow measured replicas
  const penalty = target * UNPROVEN_RTT_MS;
  const bound = penalty + (total - penalty) * (1 + slack) + slackMs;
  const out: { chain: HolderView[]; cost: number }[] = [];
  // depth-first over boundaries, pruned by the exact lower bound best[]; enumeration stops after enough chains
  const limit = maxCandidates * 8;
  // a candidate has exactly `target` unproven hops: a partial chain with u of them goes on only where the rest can
  // be done with target − u, i.e. with fewest[end] (then best[end] is its exact lower bound)
  const walk = (s: number, chain: HolderView[], cost: number, u: number): void => {
    if (out.length >= limit) return;
    if (s === range.end) {
      out.push({ chain: [...chain], cost });
      return;
    }
    for (const h of byStart.get(s) ?? []) {
      const rest = best.get(h.span.end) ?? Infinity;
      const uh = u + unprovenOf(h);
      if (!Number.isFinite(rest) || uh + fewest.get(h.span.end)! !== target) continue;
      const c = cost + hopCost(h);
      if (c + rest > bound + 1e-9) continue;
      chain.push(h);
      walk(h.span.end, chain, c, uh);
      chain.pop();
    }
  };
  walk(range.start, [], 0, 0);
  const key = (c: HolderView[]): string => c.map((h) => `${h.peerId}@${h.span.start}`).join('|');
  out.sort((x, y) => x.cost - y.cost || (key(x.chain) < key(y.chain) ? -1 : key(x.chain) > key(y.chain) ? 1 : 0));
  return out.slice(0, maxCandidates).map((o) => o.chain);
}

/** Chooses a chain for [a, b): capacity-weighted among the near-best. Throws LayersUncoveredError. */
export function chooseRoute(holders: readonly HolderView[], range: { start: number; end: number }, opts: RouteChoiceOptions): ChainHop[] {
  const cands = candidateChains(holders, range, opts);
  if (cands.length === 0) throw new LayersUncoveredError(range, missingLayers(holders, range, opts.exclude));
  const weights = cands.map((c) => Math.min(...c.map(capacityOf)));
  const sum = weights.reduce((a, b) => a + b, 0);
  let u = Math.min(Math.max(opts.random(), 0), 1 - Number.EPSILON) * sum;
  let pick = cands.length - 1;
  for (let i = 0; i < cands.length; i++) {
    if (u < weights[i]) {
      pick = i;
      break;
    }
    u -= weights[i];
  }
  return cands[pick].map((h) => ({ peerId: h.peerId, span: { start: h.span.start, end: h.span.end } }));
}

const unit = (u: number): number => Math.min(Math.max(u, 0), 1 - Number.EPSILON);

/**
 * A chain for `range` through one unproven holder: a block drawn uniformly among the blocks of the usable unproven
 * holders that are not quiet (`HolderView.block`, else the peer alone), a holder drawn uniformly inside it, and the
 * rest of the range ([start, its start) and [its end, end)) by the usual near-best draw, over measured holders where
 * they tile the rest, else over on-time holders with the fewest unproven hops. Bonded holders first: where some of
 * the candidates are bonded (`HolderView.bonded`) and some are not, one draw picks the unbonded ones with
 * probability EXPLORE_UNBONDED_SHARE, else the bonded ones. Undefined when there is no such holder or nothing tiles
 * the rest (the caller then routes as usual). Draws from `random`: the bond draw (only when both kinds wait), the
 * block, the holder, then the rest's.
 *
 * Why (issue 12, Sybil/eclipse side): route choice ranks chains by their unproven hops first, so while measured
 * holders cover the layers a holder nobody measured is never drawn, and never gets measured: an honest newcomer got
 * no traffic (and no payment) for as long as the old holders stayed. Drawing per block bounds what a flood of fresh
 * keys takes of this share by the address blocks it has, not by its key count.
 *
 * Why the rest may take unproven hops (issue 12 §2): a hop runs exactly the span it holds (the hop protocol answers
 * WRONG_SPAN to any other, protocols/inference.ts), so the explored holder needs neighbours whose spans end where
 * its own starts and start where it ends. At 1,000 nodes (3-41-layer spans) the few holders a router has measured
 * almost never did: no route reached any of the 347 honest newcomers of the one-hour run. The on-time holders of
 * the whole view nearly always tile; the failover of a hop that then fails is the usual one (banned, replanned).
 */
export function exploreRoute(holders: readonly HolderView[], range: { start: number; end: number }, opts: RouteChoiceOptions): ChainHop[] | undefined {
  let fresh = usable(holders, range, opts.exclude).filter((h) => h.unproven === true && h.quiet !== true);
  if (fresh.length === 0) return undefined;
  const unbonded = fresh.filter((h) => h.bonded === false);
  if (unbonded.length > 0 && unbonded.length < fresh.length) fresh = opts.random() < EXPLORE_UNBONDED_SHARE ? unbonded : fresh.filter((h) => h.bonded !== false);
  const blocks = new Map<string, HolderView[]>();
  for (const h of fresh) {
    const k = h.block === undefined ? `peer ${h.peerId}` : `block ${h.block}`;
    const list = blocks.get(k);
    if (list === undefined) blocks.set(k, [h]);
    else list.push(h);
  }
  const keys = [...blocks.keys()].sort();
  const inBlock = blocks.get(keys[Math.floor(unit(opts.random()) * keys.length)]!)!;
  const pick = inBlock[Math.floor(unit(opts.random()) * inBlock.length)]!; // `usable` order: by span, then peer id
  // the rest: measured, on-time holders where they tile it (a second unknown hop makes the request likelier to fail
  // over); else any on-time holder but the pick, fewest unproven hops first (candidateChains ranks them so)
  const late = holders.filter((h) => h.quiet === true).map((h) => h.peerId);
  const measuredOnly = new Set([...(opts.exclude ?? []), ...late, ...holders.filter((h) => h.unproven === true).map((h) => h.peerId)]);
  const onTime = new Set([...(opts.exclude ?? []), ...late, pick.peerId]);
  const part = (r: { start: number; end: number }): ChainHop[] | undefined => {
    if (r.start >= r.end) return [];
    for (const exclude of [measuredOnly, onTime]) {
      try {
        return chooseRoute(holders, r, { ...opts, exclude });
      } catch (e) {
        if (!(e instanceof LayersUncoveredError)) throw e;
      }
    }
    return undefined;
  };
  const before = part({ start: range.start, end: pick.span.start });
  const after = before === undefined ? undefined : part({ start: pick.span.end, end: range.end });
  if (before === undefined || after === undefined) return undefined;
  return [...before, { peerId: pick.peerId, span: { start: pick.span.start, end: pick.span.end } }, ...after];
}

/**
 * Route choice under a ban list: banned peers are avoided while the range can be covered without them, and used
 * when it cannot. A ban is a preference for other replicas, not a verdict that the peer is gone (liveness says
 * that): in the chaos run the genesis node was the only holder of layers 2:4, every generation during its 11 s
 * outage failed on it and doubled its ban, and the ban (5 s, 10 s, 20 s, …) outlasted the restart, so entries
 * answered 503 layers_uncovered while the node served again. `failed` (this generation's own failures) is always
 * excluded, so a generation never retries a peer that failed it; the driver's failover limit bounds the retries.
 */
export function chooseRouteAvoiding(holders: readonly HolderView[], range: { start: number; end: number }, opts: RouteChoiceOptions & { banned: ReadonlySet<string>; failed: ReadonlySet<string>; format?: 'f32' | 'int8' }): ChainHop[] {
  // one weights format per chain, float32 first: a greedy answer through float32 hops is token for token what one
  // machine with the checkpoint gives, one through int8 hops is the int8 model's, and a mix of both is neither. A
  // chain of the other format, or a mixed one, only when no chain of one format covers the range (or avoids the
  // banned peers of that format); the generation's own failures stay excluded throughout. `format` puts that format
  // first: a failover re-plans part of a running chain and keeps the chain's format (an int8 chain whose hop died
  // gets an int8 replacement where one exists, not a float32 one that would leave a mixed chain)
  if (holders.some((h) => h.weights === 'int8') && holders.some((h) => h.weights !== 'int8')) {
    for (const int8 of opts.format === 'int8' ? [true, false] : [false, true]) {
      const same = holders.filter((h) => (h.weights === 'int8') === int8 && !opts.banned.has(h.peerId));
      try {
        return chooseRouteOneFormat(same, range, opts);
      } catch (e) {
        if (!(e instanceof LayersUncoveredError)) throw e;
      }
    }
  }
  return chooseRouteOneFormat(holders, range, opts);
}

/** A failover's plan: the hops route[j..k] (j ≤ i ≤ k, i the failed hop) are replaced by `sub`, which tiles their layers. */
export interface FailoverPlan {
  j: number;
  k: number;
  sub: ChainHop[];
  /** Hops of `sub` whose holder is unproven (`HolderView.unproven`: this node never had a step answered by it). */
  unproven: number;
}

/**
 * Where a failover of hop `i` of `route` goes: the window route[j..k] around it and the chain that replaces that
 * window (`chooseRouteAvoiding` over the window's layers, with `opts`: this generation's failures excluded, banned
 * peers only where nothing else covers, the chain's weights format first). Windows are ranked by how many hops of
 * their replacement are unproven (never answered this node), then by size (the hop's own layers first: a replica, or
 * holders whose spans tile them), then leftmost; the first window whose replacement is all proven ends the search, so
 * a failover that a proven replica can take plans exactly as before. Throws LayersUncoveredError (the first window's)
 * when no window can be planned. Draws from `opts.random` once per window planned, in the order above.
 *
 * Why (issue 12, Sybil flood at 1,000 nodes): a failed hop's own layers were replanned first, and a Sybil claims a
 * span few honest spans tile, so its replacement was often another fresh key claiming the same span, which failed
 * too; a window one hop wider is covered by proven holders. Ranked by unproven hops, a failover prefers the window
 * that proven holders cover (route_success 0.99768 → 1 in the 1,000-node sybil run, docs/SCALE.md).
 */
export function planFailover(
  holders: readonly HolderView[],
  route: readonly ChainHop[],
  i: number,
  opts: RouteChoiceOptions & { banned: ReadonlySet<string>; failed: ReadonlySet<string>; format?: 'f32' | 'int8' },
): FailoverPlan {
  if (!Number.isInteger(i) || i < 0 || i >= route.length) throw new RangeError(`hop ${i} is not in a route of ${route.length}`);
  const unprovenPeers = new Set<string>();
  for (const h of holders) if (h.unproven === true) unprovenPeers.add(h.peerId);
  let best: FailoverPlan | undefined;
  let firstError: unknown;
  for (let size = 0; size < route.length; size++) {
    for (let j = Math.max(0, i - size); j <= i && j + size < route.length; j++) {
      const k = j + size;
      let sub: ChainHop[];
      try {
        sub = chooseRouteAvoiding(holders, { start: route[j].span.start, end: route[k].span.end }, opts);
      } catch (e) {
        if (!(e instanceof LayersUncoveredError)) throw e;
        firstError ??= e;
        continue;
      }
      let unproven = 0;
      for (const hop of sub) if (unprovenPeers.has(hop.peerId)) unproven++;
      // strictly fewer: among equals the window found first (smaller, then further left) stays
      if (best === undefined || unproven < best.unproven) best = { j, k, sub, unproven };
      if (unproven === 0) return best;
    }
  }
  if (best === undefined) throw firstError;
  return best;
}

function chooseRouteOneFormat(holders: readonly HolderView[], range: { start: number; end: number }, opts: RouteChoiceOptions & { banned: ReadonlySet<string>; failed: ReadonlySet<string> }): ChainHop[] {
  const usual = chooseRouteUsual(holders, range, opts);
  // exploration: a fresh request (a failover replans with the usual rule) whose usual chain has no unproven hop,
  // one more draw to decide
  const { banned, failed, ...rest } = opts;
  const share = opts.explore ?? ROUTE_DEFAULTS.explore;
  if (share > 0 && failed.size === 0) {
    // one pass over the holders, no set of every unproven one (10,000 fresh keys per request in the 1,000-node Sybil
    // simulation: 9 % of its CPU): is any holder unproven, and is one of them in the usual chain
    const inUsual = new Set(usual.map((hop) => hop.peerId));
    let anyUnproven = false;
    let usualUnproven = false;
    for (const h of holders) {
      if (h.unproven !== true) continue;
      anyUnproven = true;
      if (inUsual.has(h.peerId)) {
        usualUnproven = true;
        break;
      }
    }
    if (anyUnproven && !usualUnproven && opts.random() < share) {
      const explored = exploreRoute(holders, range, { ...rest, exclude: new Set([...banned, ...failed]) });
      if (explored !== undefined) return explored;
    }
  }
  return usual;
}

function chooseRouteUsual(holders: readonly HolderView[], range: { start: number; end: number }, opts: RouteChoiceOptions & { banned: ReadonlySet<string>; failed: ReadonlySet<string> }): ChainHop[] {
  const { banned, failed, ...rest } = opts;
  const exclude = new Set([...banned, ...failed]);
  // quiet holders (late heartbeats) come after every on-time one: at a partition the far side's holders stay
  // "alive" until their stale timeout (15 s) and "stale" until dead (60 s), and the near-best draw picked them
  // about as often as reachable replicas, so a request failed over hop after hop across the cut (issue 12: every
  // remaining failure of the 1,000-node partition run fell in the cut's first minute). A missed heartbeat is a
  // cheap, early sign of a cut; it is only a preference, so a quiet peer is still used when nothing else covers.
  const quiet = holders.filter((h) => h.quiet === true && !exclude.has(h.peerId)).map((h) => h.peerId);
  if (quiet.length > 0) {
    try {
      return chooseRoute(holders, range, { ...rest, exclude: new Set([...exclude, ...quiet]) });
    } catch (e) {
      if (!(e instanceof LayersUncoveredError)) throw e;
    }
  }
  try {
    return chooseRoute(holders, range, { ...rest, exclude });
  } catch (e) {
    if (!(e instanceof LayersUncoveredError) || banned.size === 0) throw e;
    return chooseRoute(holders, range, { ...rest, exclude: failed });
  }
}

/** Heartbeat intervals a holder may be silent before it counts as quiet (one lost or late heartbeat, and a half). */
export const QUIET_AFTER_HEARTBEATS = 1.5;

/** Whether a holder silent for `silentMs` (since its last heartbeat) is quiet, with heartbeats every `heartbeatIntervalMs`. */
export function isQuiet(silentMs: number, heartbeatIntervalMs: number): boolean {
  return heartbeatIntervalMs > 0 && silentMs > QUIET_AFTER_HEARTBEATS * heartbeatIntervalMs;
}

/**
 * Peers that failed recently: a failure bans a peer for base·2^(n−1) ms (n: failures in a row, capped at maxMs);
 * a success clears its record. Time is passed in, so the table is pure and testable.
 */
export class BanList {
  private readonly entries = new Map<string, { failures: number; until: number }>();

  constructor(
    readonly baseMs = 5_000,
    readonly maxMs = 300_000,
    readonly maxEntries = 10_000,
  ) {}

  fail(peer: string, nowMs: number): number {
    const e = this.entries.get(peer) ?? { failures: 0, until: 0 };
    e.failures++;
    const ms = Math.min(this.maxMs, this.baseMs * 2 ** Math.min(30, e.failures - 1));
    e.until = nowMs + ms;
    this.entries.delete(peer);
    this.entries.set(peer, e);
    // bounded: the oldest entries go first
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    return ms;
  }

  succeed(peer: string): void {
    this.entries.delete(peer);
  }

  isBanned(peer: string, nowMs: number): boolean {
    const e = this.entries.get(peer);
    return e !== undefined && e.until > nowMs;
  }

  /** The peers banned at `nowMs`. */
  banned(nowMs: number): Set<string> {
    const s = new Set<string>();
    for (const [p, e] of this.entries) if (e.until > nowMs) s.add(p);
    return s;
  }
}

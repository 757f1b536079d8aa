/**
 * Layer placement: which contiguous span of layers a node holds. Pure functions over plain data (a view of the
 * registry: who holds what, in which liveness state, how fast, with how much memory), so that the rule can be
 * unit-tested and simulated at 1,000 nodes; `src/node/` only feeds them the live view and acts on the answer.
 *
 * The rule (docs/ARCHITECTURE.md "## Layer pool"), after Petals' block selection (anchors §1.2):
 *
 *   Every layer i gets a key (min(liveReplicas_i, MIN_REPLICAS), throughput_i), where liveReplicas_i counts the
 *   holders of i that are not dead (alive or stale) and throughput_i sums their tokens/s. Smaller keys are weaker.
 *   A node that can hold k layers (k = min(its capacity, L)) looks at every window [s, s+k) of the L layers, sorts
 *   the window's layer keys ascending, and takes the window whose sorted keys are lexicographically smallest: the
 *   window with the weakest weakest layer, then the weakest second-weakest, and so on. So layers with fewer than two
 *   live holders are filled first (a missing layer before a once-held one), then the layers of lowest total
 *   throughput. Throughput is a measured figure, and equal machines measured up to 3.4× apart on a busy host (load 25)
 *   (the nano model's per-layer decode step is ~0.05 ms, under the noise of one IPC round trip): two windows whose
 *   sorted throughputs lie pairwise within THROUGHPUT_TOLERANCE of each other count as equally fast, and the window
 *   with fewer live replicas in all wins (four equal joiners then split 2/2 instead of following noise 3/1); a
 *   clearer difference (a GPU node beside CPU nodes) still decides by throughput. Remaining ties go to the smaller
 *   sorted keys, then to the lowest start, or (ChooseOptions.tieBreak, which a joining node passes) to a window of
 *   the tiling grid drawn by a hash of the node's peer id, so that joiners that see the same view do not herd onto
 *   one window. The answer depends only on the view (and that string), so every node that sees the same registry
 *   computes the same placement for a given node.
 *
 * Weight sources: a node that takes layers it does not hold downloads them from live holders, and only float32
 * holders serve weights (an int8 holder keeps no float32 copy: CHECKPOINT_NOT_SERVED; it serves no int8 blocks either,
 * since a joiner verifies what it gets against the float32 span hash). So the windows a joiner may take, and the
 * spans a move may go to, are those whose every layer has a live float32 holder (`sources`) or is held by the mover
 * already (a float32 mover keeps them; an int8 mover re-downloads its whole span, so its own layers do not count).
 * The rule is the same for an int8 joiner: it quantizes float32 weights it downloaded (`servesWeightsTo`). Layers
 * held only by int8 holders still count as replicas (routing uses them).
 *
 * The network's health (what "raises the bottleneck" measures) is the triple (missing layers, replica deficit =
 * Σ max(0, MIN_REPLICAS − liveReplicas_i), bottleneck = min_i throughput_i); fewer missing, then smaller deficit,
 * then higher bottleneck is better.
 */
import { InvalidArgumentError } from '../util/errors.js';
import type { WeightsFormat } from './capacity.js';

/** Live holders every layer should have. */
export const MIN_REPLICAS = 2;

/** Throughputs within this factor of each other count as equal when a node chooses its span (measurement noise). */
export const THROUGHPUT_TOLERANCE = 4;

/** A throughput move must raise the bottleneck by this fraction (Petals moves when current/optimal < 0.75 ≈ +33 %). */
export const REBALANCE_MIN_GAIN = 0.25;
/** Backoff between two throughput moves of one node: base × 2^(moves in the last window), capped. */
export const REBALANCE_BACKOFF_BASE_MS = 120_000;
export const REBALANCE_BACKOFF_MAX_MS = 30 * 60_000;
export const REBALANCE_WINDOW_MS = 60 * 60_000;
/** A restoring move (it lowers the replica deficit) waits only this long after the node's previous move. */
export const RESTORE_COOLDOWN_MS = 5_000;

export type HolderState = 'alive' | 'stale' | 'dead';

export interface PoolSpan {
  start: number;
  /** Exclusive. */
  end: number;
}

export interface PoolHolder {
  peerId: string;
  span: PoolSpan;
  state: HolderState;
  /** Tokens per second through the holder's whole span (its HolderRecord's capacity.tokensPerSec). */
  tokensPerSec: number;
  /** Memory the holder offers for layers (MiB); unknown = 0 (it is then assumed to fit only its current span). */
  memoryMb: number;
  /** 'int8' when it holds int8 weights (its signed HolderRecord says so; pool/view.ts): its memory holds ~3.5x more layers. Absent: f32. */
  weights?: 'int8';
  /**
   * True when the node placing itself cannot download from this holder (yet): no signed HolderRecord of it is
   * known, or it is not alive in heartbeats (a holder the registry names but that was not heard from: the download
   * asks only live holders). It still counts as a replica; it is no weight source (`servesWeightsTo`). Set only on
   * the view a joiner places itself on (pool/service.ts), never in records or heartbeats.
   */
  noSource?: true;
}

export interface PoolView {
  /** L: the model's transformer layers. */
  numLayers: number;
  holders: readonly PoolHolder[];
}

/** What one node can take on. */
export interface PoolCapacity {
  /** Most layers it can hold (from memory). */
  maxLayers: number;
  /**
   * Tokens/s through ONE layer; a span of k layers runs at layerTokensPerSec / k (a token crosses all of them).
   */
  layerTokensPerSec: number;
}

export interface Coverage {
  numLayers: number;
  /** Not-dead holders per layer. */
  replicas: number[];
  /** Sum of the not-dead holders' tokens/s per layer. */
  throughput: number[];
  /** Layers nobody live holds. */
  missing: number[];
  /** Layers with fewer than MIN_REPLICAS live holders (missing ones included). */
  underReplicated: number[];
  /** Live holders per layer that serve its weights to a joiner of the format asked (`servesWeightsTo`). */
  sources: number[];
  /** min over layers of `replicas` (0 when L = 0). */
  replicasMin: number;
}

export interface Health {
  missing: number;
  deficit: number;
  bottleneck: number;
}

function checkView(view: PoolView): void {
  if (!Number.isInteger(view.numLayers) || view.numLayers < 0 || view.numLayers > 65_536) throw new InvalidArgumentError(`pool: bad layer count ${view.numLayers}`);
}

function isLive(h: PoolHolder): boolean {
  return h.state !== 'dead';
}

/** Clamps a holder's span to the model; a span entirely outside counts for nothing. */
function clampSpan(s: PoolSpan, L: number): PoolSpan | undefined {
  const start = Math.max(0, Math.floor(s.start));
  const end = Math.min(L, Math.floor(s.end));
  return end > start ? { start, end } : undefined;
}

/**
 * Whether holder `h` serves its weights to a node that will hold them in `format`. Only float32 holders do, for
 * either format: an int8 holder keeps no float32 copy (it answers CHECKPOINT_NOT_SERVED), and int8 blocks could not
 * be verified against the span hash, which is the float32 weights' (an int8 joiner quantizes what it downloaded).
 */
export function servesWeightsTo(h: Pick<PoolHolder, 'weights' | 'noSource'>, format: WeightsFormat = 'f32'): boolean {
  void format; // the same answer for both formats today; the parameter keeps the question explicit at call sites
  return h.weights !== 'int8' && h.noSource !== true;
}

function finiteRate(x: number): number {
  return Number.isFinite(x) && x > 0 ? x : 0;
}

/**
 * Replicas and throughput per layer, missing and under-replicated layers, and the weight sources per layer for a node
 * that holds weights in `format` (default f32): the one place that counts which holders serve which layers.
 */
export function coverage(view: PoolView, format: WeightsFormat = 'f32'): Coverage {
  checkView(view);
  const L = view.numLayers;
  const replicas = new Array<number>(L).fill(0);
  const throughput = new Array<number>(L).fill(0);
  const sources = new Array<number>(L).fill(0);
  const seen = new Set<string>();
  for (const h of view.holders) {
    // one peer counts once, with its first record (callers pass one record per peer)
    if (seen.has(h.peerId) || !isLive(h)) continue;
    seen.add(h.peerId);
    const s = clampSpan(h.span, L);
    if (s === undefined) continue;
    const serves = servesWeightsTo(h, format);
    for (let i = s.start; i < s.end; i++) {
      replicas[i]!++;
      throughput[i]! += finiteRate(h.tokensPerSec);
      if (serves) sources[i]!++;
    }
  }
  const missing: number[] = [];
  const underReplicated: number[] = [];
  for (let i = 0; i < L; i++) {
    if (replicas[i] === 0) missing.push(i);
    if (replicas[i]! < MIN_REPLICAS) underReplicated.push(i);
  }
  return { numLayers: L, replicas, throughput, missing, underReplicated, sources, replicasMin: L === 0 ? 0 : Math.min(...replicas) };
}

export function health(c: Coverage): Health {
  let deficit = 0;
  let bottleneck = Infinity;
  for (let i = 0; i < c.numLayers; i++) {
    deficit += Math.max(0, MIN_REPLICAS - c.replicas[i]!);
    bottleneck = Math.min(bottleneck, c.throughput[i]!);
  }
  return { missing: c.missing.length, deficit, bottleneck: c.numLayers === 0 ? 0 : bottleneck };
}

/** < 0 when a is healthier than b, > 0 when b is, 0 when equal. */
export function compareHealth(a: Health, b: Health): number {
  if (a.missing !== b.missing) return a.missing - b.missing;
  if (a.deficit !== b.deficit) return a.deficit - b.deficit;
  return b.bottleneck - a.bottleneck;
}

type LayerKey = [number, number];

function layerKeys(c: Pick<Coverage, 'replicas' | 'throughput'>): LayerKey[] {
  return c.replicas.map((r, i) => [Math.min(r, MIN_REPLICAS), c.throughput[i]!]);
}

function cmpKey(a: LayerKey, b: LayerKey): number {
  return a[0] - b[0] || a[1] - b[1];
}

/** Lexicographic comparison of two equally long sorted key lists. */
function cmpSorted(a: LayerKey[], b: LayerKey[]): number {
  for (let i = 0; i < a.length; i++) {
    const d = cmpKey(a[i]!, b[i]!);
    if (d !== 0) return d;
  }
  return 0;
}

/** The layers a node with `maxLayers` holds: min(maxLayers, L). */
export function spanLength(maxLayers: number, numLayers: number): number {
  return Math.max(0, Math.min(Math.floor(maxLayers), numLayers));
}

export interface ChooseOptions {
  /**
   * Only windows whose every layer has a live holder that serves its weights (`servesWeightsTo`: a float32 holder;
   * a layer held only by int8 holders cannot be downloaded): a joining node that is not the genesis node. Layers
   * inside `have` count as covered (the node holds them already and keeps them).
   */
  requireCovered?: boolean;
  have?: PoolSpan;
  /** The format the choosing node holds weights in (default f32); decides which holders are sources for it. */
  weights?: WeightsFormat;
  /**
   * Breaks a full tie (windows equal in every key) by this string, normally the choosing node's peer id, instead of
   * by the lowest start. Without it, joiners that place while only the same holders are visible (the genesis node
   * alone, before any joiner has loaded and announced its span) all compute the same answer and herd onto the
   * first window: in the chaos run every joiner took layers 0:2 and a kill of the genesis node left 2:4 uncovered
   * (57 % of generations 503), and at 1,000 nodes every joiner started at layer 0 and the last layers had 5
   * holders. Among tied windows it prefers those of the tiling grid (start a multiple of the span length, or the
   * last window), so that joiners of one size tile the model, and among those the one whose hash with this string
   * is smallest: an independent uniform draw per node, the same answer every time for one node and one view.
   */
  tieBreak?: string;
}

/**
 * The span a node should take given the others' holdings (the view must not include the node itself). Undefined
 * when it can hold no layer, the model has none, or (requireCovered) no window is fully held.
 */
export function chooseSpan(view: PoolView, cap: PoolCapacity, opts: ChooseOptions = {}): PoolSpan | undefined {
  // sources for this node's format (servesWeightsTo)
  return chooseSpanIn(coverage(view, opts.weights ?? 'f32'), cap, opts);
}

/** chooseSpan over the view's per-layer replicas and throughput (planMoves derives them without a full coverage). */
function chooseSpanIn(c: Pick<Coverage, 'numLayers' | 'replicas' | 'throughput' | 'sources'>, cap: PoolCapacity, opts: ChooseOptions): PoolSpan | undefined {
  const k = spanLength(cap.maxLayers, c.numLayers);
  if (k === 0) return undefined;
  const keys = layerKeys(c);
  // c.sources: holders per layer that serve weights to this node's format (the caller derives them)
  const sources = c.sources;
  const fetchable = (i: number): boolean => sources[i]! > 0 || (opts.have !== undefined && opts.have.start <= i && i < opts.have.end);
  let best: WindowKey | undefined;
  for (let s = 0; s + k <= c.numLayers; s++) {
    if (opts.requireCovered === true) {
      let ok = true;
      for (let i = s; i < s + k && ok; i++) ok = fetchable(i);
      if (!ok) continue;
    }
    const sorted = keys.slice(s, s + k).sort(cmpKey);
    let replicas = 0;
    for (let i = s; i < s + k; i++) replicas += c.replicas[i]!;
    const w: WindowKey = { start: s, sorted, replicas };
    // strict "<": on a tie the earlier (lower) start stays, unless the caller breaks ties (opts.tieBreak)
    const d = best === undefined ? -1 : cmpWindow(w, best);
    if (d < 0 || (d === 0 && opts.tieBreak !== undefined && tieRank(w.start, k, c.numLayers, opts.tieBreak) < tieRank(best!.start, k, c.numLayers, opts.tieBreak))) best = w;
  }
  return best === undefined ? undefined : { start: best.start, end: best.start + k };
}

/** FNV-1a, 32 bits: a cheap, stable hash (no crypto needed: it only spreads ties). */
function fnv1a(str: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < str.length; i++) {
    h ^= str.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // final avalanche (FNV's low bits vary little between strings that differ only at the end)
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  return h >>> 0;
}

/** Order among fully tied windows of length k (smaller first): grid windows first, then by hash with `salt`. */
export function tieRank(start: number, k: number, numLayers: number, salt: string): number {
  const grid = start % k === 0 || start === numLayers - k;
  return (grid ? 0 : 2 ** 32) + fnv1a(`${salt}:${start}`);
}

interface WindowKey {
  start: number;
  /** The window's layer keys, ascending. */
  sorted: LayerKey[];
  /** Live replicas summed over its layers. */
  replicas: number;
}

/**
 * < 0 when window a should be taken before b: replica levels (weakest layer first), then throughputs where they
 * differ clearly (weakest first, beyond THROUGHPUT_TOLERANCE), then fewer live replicas in all, then the exact keys.
 */
function cmpWindow(a: WindowKey, b: WindowKey): number {
  for (let i = 0; i < a.sorted.length; i++) {
    const d = a.sorted[i]![0] - b.sorted[i]![0];
    if (d !== 0) return d;
  }
  for (let i = 0; i < a.sorted.length; i++) {
    const x = a.sorted[i]![1];
    const y = b.sorted[i]![1];
    if (Math.max(x, y) > Math.min(x, y) * THROUGHPUT_TOLERANCE) return x - y;
  }
  if (a.replicas !== b.replicas) return a.replicas - b.replicas;
  return cmpSorted(a.sorted, b.sorted);
}

/** Tokens/s of a span of `len` layers on a node whose one layer runs at `layerTokensPerSec`. */
export function spanTokensPerSec(layerTokensPerSec: number, len: number): number {
  return len <= 0 ? 0 : finiteRate(layerTokensPerSec) / len;
}

/**
 * A holder's capacity as the pool infers it from its record: memory (minus the embedding and head, `extraMb`, which
 * every node budgets for) → layers, span throughput → per layer.
 */
export function holderCapacity(h: PoolHolder, layerMb: number, numLayers: number, extraMb = 0): PoolCapacity {
  // the layers held are the capacity's floor: a whole-model holder (which trains with an outer sync over the whole
  // model that does not follow a move, docs/TRAINING.md) is never planned onto a partial span
  const held = Math.max(1, h.span.end - h.span.start);
  const byMemory = layerMb > 0 ? Math.floor(Math.max(0, h.memoryMb - extraMb) / layerMb) : 0;
  return { maxLayers: Math.min(numLayers, Math.max(held, byMemory)), layerTokensPerSec: finiteRate(h.tokensPerSec) * held };
}

export interface Move {
  peerId: string;
  from: PoolSpan;
  to: PoolSpan;
  /** restore: lowers missing layers or the replica deficit; throughput: raises the bottleneck by ≥ the margin. */
  reason: 'restore' | 'throughput';
  before: Health;
  after: Health;
}

export interface PlanOptions {
  /** MiB one float32 layer takes; converts a float32 holder's memoryMb into layers. */
  layerMb: number;
  /**
   * MiB one int8 layer takes (capacity.ts layerMb(config, 'int8')), for holders whose `weights` is 'int8'. Default
   * `layerMb`. Every node plans with both sizes, whatever its own format, so that all compute the same plan.
   */
  layerMbInt8?: number;
  /** MiB every holder budgets for the embedding and head besides its layers. Default 0. */
  extraMb?: number;
  /** Fraction the bottleneck must rise for a throughput move. Default REBALANCE_MIN_GAIN. */
  minGain?: number;
  /** Most moves planned (restoration of many layers may take several). Default 64. */
  maxMoves?: number;
}

function withHolder(view: PoolView, peerId: string, h: PoolHolder | undefined): PoolView {
  const holders = view.holders.filter((x) => x.peerId !== peerId);
  if (h !== undefined) holders.push(h);
  return { numLayers: view.numLayers, holders };
}

function sameSpan(a: PoolSpan, b: PoolSpan): boolean {
  return a.start === b.start && a.end === b.end;
}

/** health() of a coverage's per-layer replicas and throughput (its missing layers are those with no replica). */
function healthOf(replicas: readonly number[], throughput: readonly number[]): Health {
  let missing = 0;
  let deficit = 0;
  let bottleneck = Infinity;
  for (let i = 0; i < replicas.length; i++) {
    if (replicas[i] === 0) missing++;
    deficit += Math.max(0, MIN_REPLICAS - replicas[i]!);
    bottleneck = Math.min(bottleneck, throughput[i]!);
  }
  return { missing, deficit, bottleneck: replicas.length === 0 ? 0 : bottleneck };
}

/**
 * The per-layer figures of a view, and those of the view without one peer, equal to coverage()'s: a peer counts
 * once (its first live record with a span inside the model), and each layer's throughput is summed in view order.
 */
function layerRates(view: PoolView): { coverage: Coverage; without(peerId: string): { numLayers: number; replicas: number[]; throughput: number[]; sources: number[] } } {
  const L = view.numLayers;
  const c = coverage(view);
  // per layer, the counted holders' rates in view order, and each counted peer's span
  const onLayer: { peerId: string; rate: number }[][] = Array.from({ length: L }, () => []);
  const counted = new Map<string, PoolSpan>();
  const serving = new Set<string>();
  for (const h of view.holders) {
    if (counted.has(h.peerId) || !isLive(h)) continue;
    const s = clampSpan(h.span, L);
    counted.set(h.peerId, s ?? { start: 0, end: 0 });
    if (servesWeightsTo(h)) serving.add(h.peerId);
    if (s === undefined) continue;
    for (let i = s.start; i < s.end; i++) onLayer[i]!.push({ peerId: h.peerId, rate: finiteRate(h.tokensPerSec) });
  }
  return {
    coverage: c,
    without(peerId) {
      const replicas = c.replicas.slice();
      const throughput = c.throughput.slice();
      const sources = c.sources.slice();
      const s = counted.get(peerId);
      if (s !== undefined) {
        const serves = serving.has(peerId);
        for (let i = s.start; i < s.end; i++) {
          replicas[i]!--;
          if (serves) sources[i]!--;
          let t = 0;
          for (const x of onLayer[i]!) if (x.peerId !== peerId) t += x.rate;
          throughput[i] = t;
        }
      }
      return { numLayers: L, replicas, throughput, sources };
    },
  };
}

/**
 * Plans moves over the whole view, deterministically, so that every node computes the same plan and only the
 * nodes named in it move (no stampede of every spare node onto one hole):
 *
 *   1. Restoration, repeated: for every live holder (in peerId order) the span chooseSpan gives it against the
 *      others; the move that makes the network healthiest is taken if it lowers (missing, deficit) and never adds a
 *      missing layer; ties go to the lower peerId. The plan's view is updated and the step repeats.
 *   2. Then at most one throughput move: the one that raises the bottleneck most, taken only when the rise is at
 *      least `minGain` (relative) and replica health does not get worse, and only when every live holder's speed is
 *      known (tokensPerSec > 0).
 *
 * Only alive holders move (a stale one may be gone); dead ones only leave holes. A move goes only onto layers that
 * some live float32 node holds (weights come from peers; `servesWeightsTo`) or that a float32 mover holds already.
 */
export function planMoves(view: PoolView, opts: PlanOptions): Move[] {
  checkView(view);
  const minGain = opts.minGain ?? REBALANCE_MIN_GAIN;
  const maxMoves = opts.maxMoves ?? 64;
  const L = view.numLayers;
  const moves: Move[] = [];
  let cur: PoolView = { numLayers: L, holders: [...view.holders] };
  const moved = new Set<string>();
  // A candidate's "others" (the view without it) and "next" (the view with it moved) differ from `cur` only on the
  // layers of its old and new span, so they are derived from cur's per-layer figures instead of two full coverages
  // per holder (O(N²·L) per call: 64 % of a 1,000-node simulation, issue 12). The throughput sums are formed in the
  // same order as coverage() forms them (holders in view order, the moved holder last), so every figure, and so
  // every plan, is bit for bit the one of coverage(withHolder(...)).
  type Candidate = { peerId: string; h: PoolHolder; to: PoolSpan; before: Health; after: Health; moved: PoolHolder };
  const candidates = (): Candidate[] => {
    const base = layerRates(cur);
    const before = health(base.coverage);
    const out: Candidate[] = [];
    const movers = cur.holders.filter((h) => h.state === 'alive' && !moved.has(h.peerId)).sort((a, b) => (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0));
    for (const h of movers) {
      const cap = holderCapacity(h, h.weights === 'int8' ? (opts.layerMbInt8 ?? opts.layerMb) : opts.layerMb, L, opts.extraMb ?? 0);
      const others = base.without(h.peerId);
      // a move may only go where weights can be fetched from a float32 holder, or onto layers the mover holds and
      // keeps: a float32 mover keeps them, an int8 one (no float32 copy) downloads its whole new span. others.sources
      // are the sources for either format while only float32 holders serve (servesWeightsTo ignores the format).
      const int8 = h.weights === 'int8';
      const to = chooseSpanIn(others, cap, { requireCovered: true, weights: int8 ? 'int8' : 'f32', ...(int8 ? {} : { have: h.span }) });
      if (to === undefined || sameSpan(to, h.span)) continue;
      const mh = { ...h, span: to, tokensPerSec: spanTokensPerSec(cap.layerTokensPerSec, to.end - to.start) };
      // coverage(next): the others, then the moved holder last (withHolder appends it)
      for (let i = to.start; i < to.end; i++) {
        others.replicas[i]!++;
        others.throughput[i]! += finiteRate(mh.tokensPerSec);
      }
      out.push({ peerId: h.peerId, h, to, before, after: healthOf(others.replicas, others.throughput), moved: mh });
    }
    return out;
  };
  // 1. restoration
  while (moves.length < maxMoves) {
    let best: ReturnType<typeof candidates>[number] | undefined;
    for (const c of candidates()) {
      if (c.after.missing > c.before.missing) continue;
      const better = c.after.missing < c.before.missing || c.after.deficit < c.before.deficit;
      if (!better) continue;
      if (best === undefined || compareHealth(c.after, best.after) < 0) best = c;
    }
    if (best === undefined) break;
    moves.push({ peerId: best.peerId, from: best.h.span, to: best.to, reason: 'restore', before: best.before, after: best.after });
    moved.add(best.peerId);
    cur = withHolder(cur, best.peerId, best.moved);
  }
  // 2. one throughput move, only when every live holder's speed is known: a holder whose record has not been fetched
  // yet counts 0 tokens/s, so the layers it holds would look like a bottleneck that a move lifts (the service plans
  // only once every record is in; this keeps the rule safe on its own, e.g. in the simulator)
  const speedsKnown = cur.holders.every((h) => !isLive(h) || finiteRate(h.tokensPerSec) > 0);
  if (speedsKnown && moves.length < maxMoves) {
    let best: ReturnType<typeof candidates>[number] | undefined;
    for (const c of candidates()) {
      if (c.after.missing > c.before.missing || c.after.deficit > c.before.deficit) continue;
      if (!(c.after.bottleneck >= c.before.bottleneck * (1 + minGain) && c.after.bottleneck > c.before.bottleneck)) continue;
      if (best === undefined || c.after.bottleneck > best.after.bottleneck) best = c;
    }
    if (best !== undefined) moves.push({ peerId: best.peerId, from: best.h.span, to: best.to, reason: 'throughput', before: best.before, after: best.after });
  }
  return moves;
}

/**
 * Whether a restoring move `move` (planned over `view`) restores layers that a holder the view knows as dead held:
 * some layer of its target span has fewer than MIN_REPLICAS live holders in the view, and a dead holder's span
 * covers it. Such a move needs fewer confirming rounds (pool/service.ts RESTORE_STABLE_TICKS): `dead` is a state the
 * view reaches only on a signed leaving heartbeat or after `peerDeadMs` of silence, and it stays until a heartbeat
 * dated after it, so the hole is not a view still settling. A throughput move, or a restore of layers nobody dead
 * held (a young network short of holders), is not.
 */
export function restoresConfirmedDeath(view: PoolView, move: Pick<Move, 'reason' | 'to'>): boolean {
  if (move.reason !== 'restore') return false;
  const c = coverage(view);
  const L = view.numLayers;
  for (const h of view.holders) {
    if (h.state !== 'dead') continue;
    const s = clampSpan(h.span, L);
    if (s === undefined) continue;
    const start = Math.max(s.start, move.to.start);
    const end = Math.min(s.end, move.to.end);
    for (let i = start; i < end; i++) if (c.replicas[i]! < MIN_REPLICAS) return true;
  }
  return false;
}

/** What a node remembers of its own moves, for the backoff. */
export interface MoveHistory {
  /** Unix ms of this node's past moves, oldest first (only the last REBALANCE_WINDOW_MS matter). */
  movesMs: readonly number[];
}

/** How long after its last move a node waits before another throughput move. */
export function rebalanceBackoffMs(history: MoveHistory, nowMs: number): number {
  const recent = history.movesMs.filter((t) => nowMs - t < REBALANCE_WINDOW_MS).length;
  if (recent === 0) return 0;
  return Math.min(REBALANCE_BACKOFF_MAX_MS, REBALANCE_BACKOFF_BASE_MS * 2 ** (recent - 1));
}

export type RebalanceDecision = { move: false; reason: 'not-in-plan' | 'backoff' | 'not-holding'; waitMs?: number } | { move: true; span: PoolSpan; plan: Move };

/**
 * Should node `self` move now? Yes when the plan over the view names it and its backoff allows: restoring moves
 * wait RESTORE_COOLDOWN_MS after its previous move, throughput moves rebalanceBackoffMs. The caller drains the
 * node's sessions before it actually changes span.
 */
export function shouldRebalance(view: PoolView, self: string, history: MoveHistory, nowMs: number, opts: PlanOptions): RebalanceDecision {
  if (!view.holders.some((h) => h.peerId === self && h.state !== 'dead')) return { move: false, reason: 'not-holding' };
  const plan = planMoves(view, opts).find((m) => m.peerId === self);
  if (plan === undefined) return { move: false, reason: 'not-in-plan' };
  const last = history.movesMs.length === 0 ? undefined : history.movesMs[history.movesMs.length - 1]!;
  const wait = plan.reason === 'restore' ? RESTORE_COOLDOWN_MS : rebalanceBackoffMs(history, nowMs);
  if (last !== undefined && nowMs - last < wait) return { move: false, reason: 'backoff', waitMs: wait - (nowMs - last) };
  return { move: true, span: plan.to, plan };
}

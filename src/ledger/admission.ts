/**
 * Admission: which events a node lets into its store at all, by the way they arrive and their date, before any
 * signature check. Pure functions over plain data; the ledger (ledger.ts) applies them on every ingress path.
 *
 * The state rules (apply.ts) take "now" from the event's own timestamp, as they must to be deterministic, so the
 * per-window and daily reward caps, stake locks and slashes are only as good as the dates the ledger lets in. An
 * event's date is therefore trusted only as far as this node could have seen the event itself:
 *
 *   - every path: not more than MAX_LIVE_SKEW_MS (60 s) after our clock (FUTURE);
 *   - live paths (gossip, a local submission, the wallet outbox): not more than MAX_LIVE_AGE_MS (5 min) before our
 *     clock (STALE);
 *   - sync paths (range pages, by-id fetches): history is admitted only from periods this node did not watch
 *     after it first caught up. A node records the intervals during which it was caught up with at least one peer
 *     (`WatchInterval`); anything honest dated inside one reached it by gossip or by the periodic tail sync within
 *     `horizonMs`, and anything dated before the first one it took with the complete sync that made it caught up.
 *     An event dated before `now − horizonMs` that is before the first interval or inside one (less its last
 *     `horizonMs`) is one the network did not have when it was due: a backdated event, refused (STALE). A node
 *     offline, or isolated, between two intervals watched nothing then and admits that gap's history from sync.
 *
 * What remains (weak subjectivity, narrowed by signed checkpoints: ledger.ts refuses an event dated before a
 * finalized checkpoint, FINALIZED; issue 11 §3): a node that never watched a period
 * (a new node, or one offline then) cannot tell backdated events of that period from history, and a partition
 * longer than the horizon with peers on both sides leaves each side refusing the other's events of that period.
 */
export type Ingress = 'gossip' | 'submit' | 'sync' | 'fetch';

/** Live gossip (and local submissions) older than this are not admitted. */
export const MAX_LIVE_AGE_MS = 5 * 60_000;
/** No event further in the future than this is admitted, whatever the path. */
export const MAX_LIVE_SKEW_MS = 60_000;
/** Default horizon of the sync rule: twice the tail sync window of the node (15 min). */
export const DEFAULT_SYNC_HORIZON_MS = 30 * 60_000;
/** Watched intervals kept; beyond this the two closest are merged (the gap between them counts as watched). */
export const MAX_WATCH_INTERVALS = 64;
/** A mark this long after the previous one starts a new interval (the node was away in between). */
export const WATCH_GAP_MS = 2 * 60_000;

export interface WatchInterval {
  fromMs: number;
  toMs: number;
}

export interface AdmissionContext {
  ingress: Ingress;
  /** This node's clock. */
  nowMs: number;
  /** Intervals this node watched the network (ascending, disjoint). */
  watched: readonly WatchInterval[];
  horizonMs: number;
}

/** Why an event dated `timestampMs` is not admitted by this path now, or null when it is. */
export function admissionVerdict(timestampMs: number, ctx: AdmissionContext): 'STALE' | 'FUTURE' | null {
  if (timestampMs > ctx.nowMs + MAX_LIVE_SKEW_MS) return 'FUTURE';
  if (ctx.ingress === 'gossip' || ctx.ingress === 'submit') {
    return timestampMs < ctx.nowMs - MAX_LIVE_AGE_MS ? 'STALE' : null;
  }
  if (timestampMs >= ctx.nowMs - ctx.horizonMs || ctx.watched.length === 0) return null;
  // Before the first watch: the node took the whole history then (it is caught up only after a complete sync).
  if (timestampMs < ctx.watched[0]!.fromMs) return 'STALE';
  for (const w of ctx.watched) {
    if (timestampMs >= w.fromMs && timestampMs <= w.toMs - ctx.horizonMs) return 'STALE';
  }
  return null;
}

/**
 * True for an event a wallet hands the node's endpoint that is older than the live window: every peer would drop it
 * as STALE while this node would store it before its tip, and a wallet signs just before it sends, so only a replay
 * of an old event looks like that (the endpoint answers STALE unless the ledger holds the event already).
 */
export function submitTooOld(timestampMs: number, nowMs: number): boolean {
  return timestampMs < nowMs - MAX_LIVE_AGE_MS;
}

/** The watch record after marking `nowMs` as watched: extends the last interval or starts a new one. */
export function markWatched(list: readonly WatchInterval[], nowMs: number, max = MAX_WATCH_INTERVALS): WatchInterval[] {
  const out = list.map((w) => ({ ...w }));
  const last = out[out.length - 1];
  if (last !== undefined && nowMs <= last.toMs) return out; // a clock step back: nothing new
  if (last !== undefined && nowMs - last.toMs <= WATCH_GAP_MS) last.toMs = nowMs;
  else out.push({ fromMs: nowMs, toMs: nowMs });
  while (out.length > max) {
    let best = 0;
    for (let i = 1; i < out.length - 1; i++) {
      if (out[i + 1]!.fromMs - out[i]!.toMs < out[best + 1]!.fromMs - out[best]!.toMs) best = i;
    }
    out.splice(best, 2, { fromMs: out[best]!.fromMs, toMs: out[best + 1]!.toMs });
  }
  return out;
}

/** Parses a stored watch record; anything malformed reads as "watched nothing" (admits more, refuses nothing). */
export function parseWatched(text: string | undefined): WatchInterval[] {
  if (text === undefined) return [];
  try {
    const v = JSON.parse(text) as unknown;
    if (!Array.isArray(v)) return [];
    const out: WatchInterval[] = [];
    for (const w of v as unknown[]) {
      const o = w as { fromMs?: unknown; toMs?: unknown };
      if (typeof o?.fromMs === 'number' && typeof o.toMs === 'number' && Number.isFinite(o.fromMs) && o.fromMs <= o.toMs) out.push({ fromMs: o.fromMs, toMs: o.toMs });
    }
    return out.sort((a, b) => a.fromMs - b.fromMs).slice(-MAX_WATCH_INTERVALS);
  } catch {
    return [];
  }
}

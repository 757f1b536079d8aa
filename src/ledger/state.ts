/**
 * The balance sheet: a few typed tables of immutable records, held in memory and mirrored row by row into SQLite
 * (`state(k, v)`, k = "<table>:<key>", v = canonical JSON with bigints as decimal strings).
 *
 * Records are never mutated in place, only replaced, so a snapshot is a shallow copy of the maps and restoring one
 * is cheap; the ledger uses snapshots to rewind when an event arrives that sorts before events already applied.
 * Every change marks its row dirty; the ledger writes the dirty rows in the same transaction as the event.
 *
 * State hash = SHA-256("neuroshard/ledger-state/v1" ‖ 0x00 ‖ for each row in ascending k: k ‖ 0x00 ‖ v ‖ 0x0a).
 * Keys are ASCII, so JavaScript's string order equals SQLite's BINARY order and a reader can compute the same hash
 * from the database alone.
 */
import { createHash } from 'node:crypto';

export interface Unbonding {
  amount: bigint;
  releaseAt: number;
}

export interface Account {
  /** Spendable NEURO. */
  readonly balance: bigint;
  /** Locked stake (counts for the stake multiplier, slashable). */
  readonly staked: bigint;
  /** Event time before which the stake cannot be unstaked. */
  readonly unlocksAt: number;
  /** Unstaked amounts cooling down (still slashable), ascending releaseAt. */
  readonly unbonding: readonly Unbonding[];
  /** UTC day (floor(ts / 86,400,000)) of mintedDay. */
  readonly day: number;
  /** Minted to this account by proofs on `day`. */
  readonly mintedDay: bigint;
  /** Epoch of the last accepted proof; -1 for none. */
  readonly lastEpoch: number;
}

export interface MarketRequest {
  readonly requester: string;
  readonly escrow: bigint;
  /** Price per million tokens locked at submission. */
  readonly price: bigint;
  readonly maxTokens: number;
  readonly expiresAt: number;
  readonly claimer: string | null;
}

export interface Capacity {
  readonly tokensPerSec: bigint;
  readonly lastSeen: number;
}

export interface Totals {
  readonly minted: bigint;
  readonly burned: bigint;
  /** Locked stake plus stake cooling down. */
  readonly staked: bigint;
  readonly escrowed: bigint;
  readonly applied: number;
  readonly rejected: number;
  readonly void: number;
}

export interface Market {
  readonly price: bigint;
  readonly updatedAt: number;
}

export const EMPTY_ACCOUNT: Account = Object.freeze({ balance: 0n, staked: 0n, unlocksAt: 0, unbonding: [], day: 0, mintedDay: 0n, lastEpoch: -1 });
export const EMPTY_TOTALS: Totals = Object.freeze({ minted: 0n, burned: 0n, staked: 0n, escrowed: 0n, applied: 0, rejected: 0, void: 0 });

type TableName = 'a' | 'r' | 'c' | 'x' | 'g';

interface Tables {
  a: Map<string, Account>;
  r: Map<string, MarketRequest>;
  c: Map<string, Capacity>;
  /** Offences already slashed (evidence key hex → 1). */
  x: Map<string, number>;
  /** Globals: "totals", "market". */
  g: Map<string, Totals | Market>;
}

export type StateSnapshot = Readonly<Tables>;

const TABLES: TableName[] = ['a', 'r', 'c', 'x', 'g'];

/** Canonical JSON: object keys sorted, bigints as decimal strings (one text per value, whatever built it). */
function jsonOf(v: unknown): string {
  if (typeof v === 'bigint') return '"' + v.toString() + '"';
  if (Array.isArray(v)) return '[' + v.map(jsonOf).join(',') + ']';
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return '{' + Object.keys(o).sort().map((k) => JSON.stringify(k) + ':' + jsonOf(o[k])).join(',') + '}';
  }
  return JSON.stringify(v);
}

/** Field names holding bigints, per record type, so decoding restores them. */
const BIGINTS: Record<string, readonly string[]> = {
  a: ['balance', 'staked', 'mintedDay'],
  r: ['escrow', 'price'],
  c: ['tokensPerSec'],
  totals: ['minted', 'burned', 'staked', 'escrowed'],
  market: ['price'],
};

function decodeRow(table: TableName, key: string, v: string): unknown {
  const o = JSON.parse(v) as Record<string, unknown>;
  if (table === 'x') return o;
  const fields = table === 'g' ? BIGINTS[key] : BIGINTS[table];
  for (const f of fields ?? []) o[f] = BigInt(o[f] as string);
  if (table === 'a') o.unbonding = (o.unbonding as { amount: string; releaseAt: number }[]).map((u) => ({ amount: BigInt(u.amount), releaseAt: u.releaseAt }));
  return o;
}

export class LedgerState {
  private t: Tables = { a: new Map(), r: new Map(), c: new Map(), x: new Map(), g: new Map() };
  private dirty = new Set<string>();
  private hashCache: string | null = null;
  /** Smallest expiresAt among pending requests; undefined when unknown (recomputed by scanning). */
  private nextExpiry: number | null | undefined = null;

  // ---- typed access ----
  account(id: string): Account {
    return this.t.a.get(id) ?? EMPTY_ACCOUNT;
  }
  setAccount(id: string, a: Account): void {
    this.put('a', id, a);
  }
  request(id: string): MarketRequest | undefined {
    return this.t.r.get(id);
  }
  setRequest(id: string, r: MarketRequest): void {
    this.put('r', id, r);
    if (this.nextExpiry !== undefined && (this.nextExpiry === null || r.expiresAt < this.nextExpiry)) this.nextExpiry = r.expiresAt;
  }
  deleteRequest(id: string): void {
    this.del('r', id);
    this.nextExpiry = undefined;
  }
  /** Pending requests with expiresAt < ts, in key order (deterministic). */
  expiredRequests(ts: number): [string, MarketRequest][] {
    if (this.nextExpiry === undefined) {
      let m: number | null = null;
      for (const r of this.t.r.values()) if (m === null || r.expiresAt < m) m = r.expiresAt;
      this.nextExpiry = m;
    }
    if (this.nextExpiry === null || this.nextExpiry >= ts) return [];
    const out: [string, MarketRequest][] = [];
    for (const e of this.t.r) if (e[1].expiresAt < ts) out.push(e);
    return out.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  }
  pendingDemand(): bigint {
    let d = 0n;
    for (const r of this.t.r.values()) d += BigInt(r.maxTokens);
    return d;
  }
  capacities(): IterableIterator<Capacity> {
    return this.t.c.values();
  }
  setCapacity(id: string, c: Capacity): void {
    this.put('c', id, c);
  }
  slashed(key: string): boolean {
    return this.t.x.has(key);
  }
  markSlashed(key: string): void {
    this.put('x', key, 1);
  }
  totals(): Totals {
    return (this.t.g.get('totals') as Totals | undefined) ?? EMPTY_TOTALS;
  }
  setTotals(v: Totals): void {
    this.put('g', 'totals', v);
  }
  market(): Market | undefined {
    return this.t.g.get('market') as Market | undefined;
  }
  setMarket(m: Market): void {
    this.put('g', 'market', m);
  }
  accounts(): IterableIterator<[string, Account]> {
    return this.t.a.entries();
  }
  requests(): IterableIterator<[string, MarketRequest]> {
    return this.t.r.entries();
  }

  private put<K extends TableName>(table: K, key: string, v: Tables[K] extends Map<string, infer V> ? V : never): void {
    (this.t[table] as Map<string, unknown>).set(key, v);
    this.dirty.add(`${table}:${key}`);
    this.hashCache = null;
  }

  private del(table: TableName, key: string): void {
    if ((this.t[table] as Map<string, unknown>).delete(key)) {
      this.dirty.add(`${table}:${key}`);
      this.hashCache = null;
    }
  }

  // ---- rows ----
  private rowValue(k: string): string | undefined {
    const table = k[0] as TableName;
    const v = (this.t[table] as Map<string, unknown>).get(k.slice(2));
    return v === undefined ? undefined : jsonOf(v);
  }

  /** The dirty rows since the last call (value undefined = deleted), and clears the dirty set. */
  takeDirty(): [string, string | undefined][] {
    const out: [string, string | undefined][] = [];
    for (const k of this.dirty) out.push([k, this.rowValue(k)]);
    this.dirty.clear();
    return out;
  }

  /** Loads rows (from SQLite) into an empty state. */
  loadRows(rows: Iterable<{ k: string; v: string }>): void {
    for (const { k, v } of rows) {
      const table = k[0] as TableName;
      if (!TABLES.includes(table) || k[1] !== ':') throw new Error(`unknown state row ${k}`);
      (this.t[table] as Map<string, unknown>).set(k.slice(2), decodeRow(table, k.slice(2), v));
    }
    this.nextExpiry = undefined;
    this.hashCache = null;
  }

  /** All rows in ascending key order. */
  rows(): [string, string][] {
    const keys: string[] = [];
    for (const table of TABLES) for (const k of this.t[table].keys()) keys.push(`${table}:${k}`);
    keys.sort();
    return keys.map((k) => [k, this.rowValue(k)!]);
  }

  hash(): string {
    if (this.hashCache === null) this.hashCache = stateHashOfRows(this.rows());
    return this.hashCache;
  }

  // ---- snapshots ----
  snapshot(): StateSnapshot {
    return { a: new Map(this.t.a), r: new Map(this.t.r), c: new Map(this.t.c), x: new Map(this.t.x), g: new Map(this.t.g) };
  }

  /** Restores a snapshot and marks every row that differs as dirty. */
  restore(s: StateSnapshot): void {
    for (const table of TABLES) {
      const cur = this.t[table] as Map<string, unknown>;
      const next = s[table] as Map<string, unknown>;
      for (const [k, v] of cur) if (next.get(k) !== v) this.dirty.add(`${table}:${k}`);
      for (const [k, v] of next) if (cur.get(k) !== v) this.dirty.add(`${table}:${k}`);
    }
    this.t = { a: new Map(s.a), r: new Map(s.r), c: new Map(s.c), x: new Map(s.x), g: new Map(s.g) };
    this.nextExpiry = undefined;
    this.hashCache = null;
  }

  /** Balances + stakes + escrow + burned − minted: zero when the supply invariant holds. */
  supplyGap(): bigint {
    let held = 0n;
    let staked = 0n;
    for (const a of this.t.a.values()) {
      held += a.balance + a.staked;
      staked += a.staked;
      for (const u of a.unbonding) {
        held += u.amount;
        staked += u.amount;
      }
    }
    let escrow = 0n;
    for (const r of this.t.r.values()) escrow += r.escrow;
    const t = this.totals();
    if (staked !== t.staked) throw new Error(`staked total ${t.staked} differs from the accounts' ${staked}`);
    if (escrow !== t.escrowed) throw new Error(`escrow total ${t.escrowed} differs from the requests' ${escrow}`);
    return held + escrow + t.burned - t.minted;
  }
}

export const STATE_HASH_DOMAIN = 'neuroshard/ledger-state/v1';

export function stateHashOfRows(rows: Iterable<[string, string]>): string {
  const h = createHash('sha256');
  h.update(STATE_HASH_DOMAIN + '\0');
  for (const [k, v] of rows) h.update(k + '\0' + v + '\n');
  return h.digest('hex');
}

/**
 * The balance sheet: a few typed tables of immutable records, held in memory and mirrored row by row into SQLite
 * (`state(k, v)`, k = "<table>:<key>", v = canonical JSON with bigints as decimal strings).
 *
 * Records are never mutated in place, only replaced, so a snapshot is a shallow copy of the maps and restoring one
 * is cheap; the ledger uses snapshots to rewind when an event arrives that sorts before events already applied.
 * Every change marks its row dirty; the ledger writes the dirty rows in the same transaction as the event.
 *
 * State hash (v2, issue 11 attack 8): an LtHash (lattice hash, Bellare–Micciancio; the 1024 × 16-bit variant of
 * Lewi et al., "Securing update propagation with homomorphic hashing", 2019) over the set of rows:
 *
 *   element(k, v) = SHAKE256(k ‖ 0x00 ‖ v ‖ 0x0a, 2048 bytes) read as 1024 little-endian u16 lanes
 *   L             = lane-wise sum mod 2^16 of element(k, v) over every row
 *   stateHash     = SHA-256("neuroshard/ledger-state/v2" ‖ 0x00 ‖ L as 2048 little-endian bytes)
 *
 * It is a function of the set of rows alone (order-free), and a change to one row updates L by subtracting the old
 * element and adding the new one, so the hash costs O(rows changed), not O(rows): before, any change re-serialised
 * every row (about 2 s of CPU per call at 200k rows, and any peer could ask 64 times at once). A reader can still
 * compute it from the database alone.
 */
import { createHash } from 'node:crypto';
import { endianness } from 'node:os';

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
  /**
   * Rewards earned but not minted yet (issue 11 §3, "rewards are minted at checkpoints"; apply.ts): each is minted
   * to the balance at the account's first event at or after its releaseAt (the signing time of the checkpoint that
   * covers it), ascending releaseAt. Absent when empty, so accounts that never earned keep their row text.
   */
  readonly unminted?: readonly Unbonding[];
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
  /**
   * Demand as served (issue 11 attack 7): tokens paid by receipts in the 60 s window `win` (floor(ts / 60 s)) and
   * the window before it. Pending requests no longer count: they are refunded in full, so they cost nothing to fake.
   */
  readonly win: number;
  readonly served: bigint;
  readonly prevServed: bigint;
}

export const EMPTY_ACCOUNT: Account = Object.freeze({ balance: 0n, staked: 0n, unlocksAt: 0, unbonding: [], day: 0, mintedDay: 0n, lastEpoch: -1 });
export const EMPTY_TOTALS: Totals = Object.freeze({ minted: 0n, burned: 0n, staked: 0n, escrowed: 0n, applied: 0, rejected: 0, void: 0 });

type TableName = 'a' | 'r' | 'c' | 'x' | 'g';

interface Tables {
  a: Map<string, Account>;
  r: Map<string, MarketRequest>;
  c: Map<string, Capacity>;
  /** Offences already slashed (evidence key hex → 1); also training receipts' one-shot keys ("tr:…", training-receipt.ts). */
  x: Map<string, number>;
  /** Globals: "totals", "market". */
  g: Map<string, Totals | Market>;
}

export type StateSnapshot = Readonly<Tables> & { readonly lt: Uint16Array };

/** Lanes of the LtHash accumulator (2048 bytes). */
export const LTHASH_LANES = 1024;
if (endianness() !== 'LE') throw new Error('the ledger state hash reads u16 lanes in platform order: little-endian platforms only');

/**
 * element(k, v) of the file comment. The totals row is hashed without its `rejected` counter (v3, issue 11 attack
 * 5): rejected events are neither relayed nor served, so two nodes holding the same served events may have stored
 * different rejected ones, and must still agree.
 */
function rowElement(k: string, v: string): Uint16Array {
  if (k === 'g:totals') {
    const o = JSON.parse(v) as Record<string, unknown>;
    delete o.rejected;
    v = jsonOf(o);
  }
  const d = createHash('shake256', { outputLength: 2 * LTHASH_LANES }).update(k + '\0' + v + '\n').digest();
  return new Uint16Array(d.buffer, d.byteOffset, LTHASH_LANES);
}

function ltAdd(acc: Uint16Array, e: Uint16Array): void {
  for (let i = 0; i < LTHASH_LANES; i++) acc[i] = acc[i]! + e[i]!;
}

function ltSub(acc: Uint16Array, e: Uint16Array): void {
  for (let i = 0; i < LTHASH_LANES; i++) acc[i] = acc[i]! - e[i]!;
}

const TABLES: TableName[] = ['a', 'r', 'c', 'x', 'g'];

/** Canonical JSON: object keys sorted, bigints as decimal strings (one text per value, whatever built it). */
function jsonOf(v: unknown): string {
  if (typeof v === 'bigint') return '"' + v.toString() + '"';
  if (Array.isArray(v)) return '[' + v.map(jsonOf).join(',') + ']';
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    // an absent optional field (Account.unminted) is no field: rows written before it existed keep their text
    return '{' + Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => JSON.stringify(k) + ':' + jsonOf(o[k])).join(',') + '}';
  }
  return JSON.stringify(v);
}

/** Field names holding bigints, per record type, so decoding restores them. */
const BIGINTS: Record<string, readonly string[]> = {
  a: ['balance', 'staked', 'mintedDay'],
  r: ['escrow', 'price'],
  c: ['tokensPerSec'],
  totals: ['minted', 'burned', 'staked', 'escrowed'],
  market: ['price', 'served', 'prevServed'],
};

function decodeRow(table: TableName, key: string, v: string): unknown {
  const o = JSON.parse(v) as Record<string, unknown>;
  if (table === 'x') return o;
  const fields = table === 'g' ? BIGINTS[key] : BIGINTS[table];
  for (const f of fields ?? []) o[f] = BigInt(o[f] as string);
  if (table === 'a') {
    o.unbonding = (o.unbonding as { amount: string; releaseAt: number }[]).map((u) => ({ amount: BigInt(u.amount), releaseAt: u.releaseAt }));
    if (o.unminted !== undefined) o.unminted = (o.unminted as { amount: string; releaseAt: number }[]).map((u) => ({ amount: BigInt(u.amount), releaseAt: u.releaseAt }));
  }
  return o;
}

export class LedgerState {
  private t: Tables = { a: new Map(), r: new Map(), c: new Map(), x: new Map(), g: new Map() };
  private dirty = new Set<string>();
  private hashCache: string | null = null;
  /** The LtHash accumulator L over all rows (file comment), as of the last flush (flushLt). */
  private lt = new Uint16Array(LTHASH_LANES);
  /**
   * Rows changed since the last flush, with their canonical text at that flush (undefined: absent then). The
   * accumulator is brought up to date lazily, when the hash or a snapshot is asked for: a row changed many times in
   * between (the totals row changes several times per event, an account on every transfer of a sync page) costs
   * one subtraction and one addition, not two SHAKE256 expansions per change (issue 11 §4, ledger_events_per_s).
   */
  private ltPending = new Map<string, string | undefined>();
  /**
   * Indexes of the pending requests, derived from table r (not part of the state hash): the sum of their max
   * tokens, and a min-heap of (expiresAt, id). Requests are cheap to make (1e-6 NEURO of escrow each, refunded),
   * so a scan of all of them per event would be a way to slow every node down. Heap entries are removed lazily:
   * one whose request is gone or has another expiresAt is skipped when it surfaces.
   */
  private demand = 0n;
  private expiry: [number, string][] = [];
  /**
   * While an event is applied (begin … end/rollback): each row it changes, keyed `table:key`, with its record
   * before the event (undefined: absent). Kept so that a rejected event can leave the state as it found it
   * (apply.ts, session 25). One map reused for every event; recording only flags it on.
   */
  private readonly journal = new Map<string, [TableName, string, unknown]>();
  private recording = false;

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
    const prev = this.t.r.get(id);
    this.put('r', id, r);
    this.demand += BigInt(r.maxTokens) - BigInt(prev?.maxTokens ?? 0);
    if (prev === undefined || prev.expiresAt !== r.expiresAt) heapPush(this.expiry, [r.expiresAt, id]);
  }
  deleteRequest(id: string): void {
    const prev = this.t.r.get(id);
    if (prev !== undefined) this.demand -= BigInt(prev.maxTokens);
    this.del('r', id);
  }
  /**
   * Pending requests with expiresAt < ts, in key order (deterministic), taken out of the expiry index: the caller
   * settles (deletes) every one of them. Event time only moves forward between rewinds, and a rewind rebuilds the
   * index (restore).
   */
  takeExpiredRequests(ts: number): [string, MarketRequest][] {
    const h = this.expiry;
    if (h.length === 0 || h[0]![0] >= ts) return [];
    const out = new Map<string, MarketRequest>();
    while (h.length > 0 && h[0]![0] < ts) {
      const [at, id] = heapPop(h);
      const r = this.t.r.get(id);
      if (r !== undefined && r.expiresAt === at) out.set(id, r);
    }
    return [...out].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  }
  /** The earliest expiry among pending requests (lazily cleaned index: may name a request already settled). */
  nextExpiry(): number | undefined {
    return this.expiry[0]?.[0];
  }
  /** The max tokens of all pending requests. */
  pendingDemand(): bigint {
    return this.demand;
  }

  /** Recomputes the request indexes from table r (after loading or restoring it). */
  private reindexRequests(): void {
    this.demand = 0n;
    this.expiry = [];
    for (const [id, r] of this.t.r) {
      this.demand += BigInt(r.maxTokens);
      heapPush(this.expiry, [r.expiresAt, id]);
    }
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
    const m = this.t[table] as Map<string, unknown>;
    const k = `${table}:${key}`;
    const old = m.get(key);
    if (old === v) return;
    if (!this.ltPending.has(k)) this.ltPending.set(k, old === undefined ? undefined : jsonOf(old));
    if (this.recording && !this.journal.has(k)) this.journal.set(k, [table, key, old]);
    m.set(key, v);
    this.dirty.add(k);
    this.hashCache = null;
  }

  private del(table: TableName, key: string): void {
    const m = this.t[table] as Map<string, unknown>;
    const old = m.get(key);
    if (old === undefined) return;
    const k = `${table}:${key}`;
    if (!this.ltPending.has(k)) this.ltPending.set(k, jsonOf(old));
    if (this.recording && !this.journal.has(k)) this.journal.set(k, [table, key, old]);
    m.delete(key);
    this.dirty.add(k);
    this.hashCache = null;
  }

  /** Starts recording the rows an event changes (apply.ts): `end()` keeps them, `rollback()` undoes them. */
  begin(): void {
    this.journal.clear();
    this.recording = true;
  }

  /** Stops recording; the changes stay. */
  end(): void {
    this.recording = false;
    this.journal.clear();
  }

  /**
   * Undoes every row change since `begin()` and stops recording. The rows go back to their records before it (the
   * accumulator's pending entries already hold their text at the last flush, so the hash comes out as before); the
   * request indexes are rebuilt when a request changed (rare: only a rejected event that settled an expiry).
   */
  rollback(): void {
    this.recording = false;
    let requests = false;
    for (const [k, [table, key, old]] of this.journal) {
      const m = this.t[table] as Map<string, unknown>;
      if (old === undefined) m.delete(key);
      else m.set(key, old);
      this.dirty.add(k);
      if (table === 'r') requests = true;
    }
    if (this.journal.size > 0) this.hashCache = null;
    this.journal.clear();
    if (requests) this.reindexRequests();
  }

  /** Applies the pending row changes to the accumulator (the file comment's update, once per changed row). */
  private flushLt(): void {
    if (this.ltPending.size === 0) return;
    for (const [k, before] of this.ltPending) {
      const now = this.rowValue(k);
      if (now === before) continue;
      if (before !== undefined) ltSub(this.lt, rowElement(k, before));
      if (now !== undefined) ltAdd(this.lt, rowElement(k, now));
    }
    this.ltPending.clear();
  }

  // ---- rows ----
  private rowValue(k: string): string | undefined {
    const table = k[0] as TableName;
    const v = (this.t[table] as Map<string, unknown>).get(k.slice(2));
    return v === undefined ? undefined : jsonOf(v);
  }

  /** Forgets the dirty marks without serialising the rows (the caller wrote every row itself). */
  clearDirty(): void {
    this.dirty.clear();
  }

  /** The dirty rows since the last call (value undefined = deleted), and clears the dirty set. */
  takeDirty(): [string, string | undefined][] {
    const out: [string, string | undefined][] = [];
    for (const k of this.dirty) out.push([k, this.rowValue(k)]);
    this.dirty.clear();
    return out;
  }

  /**
   * Loads rows (from SQLite) into an empty state. `canonical`, when given, receives each row's canonical text (the
   * text it is hashed as), so that a caller storing the rows does not serialise them again (snapshot install).
   */
  loadRows(rows: Iterable<{ k: string; v: string }>, canonical?: [string, string][]): void {
    this.flushLt();
    for (const { k, v } of rows) {
      const table = k[0] as TableName;
      if (!TABLES.includes(table) || k[1] !== ':') throw new Error(`unknown state row ${k}`);
      const key = k.slice(2);
      const m = this.t[table] as Map<string, unknown>;
      const old = m.get(key);
      if (old !== undefined) ltSub(this.lt, rowElement(k, jsonOf(old)));
      const row = decodeRow(table, key, v);
      m.set(key, row);
      // the element of the canonical text (a hand-edited row with other spacing hashes as its canonical form)
      const text = jsonOf(row);
      ltAdd(this.lt, rowElement(k, text));
      canonical?.push([k, text]);
    }
    this.reindexRequests();
    this.hashCache = null;
  }

  /** The number of rows (without building them: rows() sorts and serialises every one). */
  rowCount(): number {
    let n = 0;
    for (const table of TABLES) n += this.t[table].size;
    return n;
  }

  /** All rows in ascending key order. */
  rows(): [string, string][] {
    const keys: string[] = [];
    for (const table of TABLES) for (const k of this.t[table].keys()) keys.push(`${table}:${k}`);
    keys.sort();
    return keys.map((k) => [k, this.rowValue(k)!]);
  }

  /** The state hash (file comment): O(rows changed since the last call), whatever the number of rows. */
  hash(): string {
    if (this.hashCache === null) {
      this.flushLt();
      this.hashCache = ltDigest(this.lt);
    }
    return this.hashCache;
  }

  // ---- snapshots ----
  snapshot(): StateSnapshot {
    this.flushLt();
    return { a: new Map(this.t.a), r: new Map(this.t.r), c: new Map(this.t.c), x: new Map(this.t.x), g: new Map(this.t.g), lt: this.lt.slice() };
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
    this.lt = s.lt.slice();
    this.ltPending.clear(); // the snapshot's accumulator matches its rows
    this.reindexRequests();
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

/** (expiresAt, id) ascending. */
function heapLess(a: [number, string], b: [number, string]): boolean {
  return a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);
}

function heapPush(h: [number, string][], e: [number, string]): void {
  h.push(e);
  for (let i = h.length - 1; i > 0; ) {
    const p = (i - 1) >> 1;
    if (!heapLess(h[i]!, h[p]!)) break;
    [h[i], h[p]] = [h[p]!, h[i]!];
    i = p;
  }
}

function heapPop(h: [number, string][]): [number, string] {
  const top = h[0]!;
  const last = h.pop()!;
  if (h.length > 0) {
    h[0] = last;
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && heapLess(h[l]!, h[m]!)) m = l;
      if (r < h.length && heapLess(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
  return top;
}

export const STATE_HASH_DOMAIN = 'neuroshard/ledger-state/v3';

function ltDigest(lt: Uint16Array): string {
  const h = createHash('sha256');
  h.update(STATE_HASH_DOMAIN + '\0');
  h.update(new Uint8Array(lt.buffer, lt.byteOffset, lt.byteLength));
  return h.digest('hex');
}

/** The state hash of a set of rows (in any order), as a reader computes it from the database alone. */
export function stateHashOfRows(rows: Iterable<[string, string]>): string {
  const lt = new Uint16Array(LTHASH_LANES);
  for (const [k, v] of rows) ltAdd(lt, rowElement(k, v));
  return ltDigest(lt);
}

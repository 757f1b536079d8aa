/**
 * The tracker's table of announced records, in SQLite (better-sqlite3, WAL). One row per (network, peer): a newer
 * announce replaces the older one. The row keeps the record's JSON exactly as the validator serialised it (only the
 * record's own fields), so GET /peers can return rows without re-encoding them and never returns anything the
 * record did not carry.
 *
 * A withdrawal deletes the peer's row and leaves a tombstone (network, peer, withdrawal time) in `withdrawals`, so
 * the record it removed, which anyone could copy from GET /peers, cannot be announced again in its place while it is
 * still young enough to be accepted. A tombstone is purged once every record it covers is too old to be announced.
 */
import Database from 'better-sqlite3';

export interface StoredRow {
  networkId: string;
  peerId: string;
  spanStart: number;
  spanEnd: number;
  timestampMs: number;
  expiresMs: number;
  receivedMs: number;
  source: string;
  /** The announcer's wider prefix (rate-limit.ts prefixKey). */
  prefix: string;
  json: string;
}

export interface PeersQuery {
  network?: string;
  layer?: number;
  limit: number;
  /** Only rows received after this instant and not yet expired at nowMs. */
  freshAfterMs: number;
  nowMs: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS holders (
  network_id   TEXT    NOT NULL,
  peer_id      TEXT    NOT NULL,
  span_start   INTEGER NOT NULL,
  span_end     INTEGER NOT NULL,
  timestamp_ms INTEGER NOT NULL,
  expires_ms   INTEGER NOT NULL,
  received_ms  INTEGER NOT NULL,
  source       TEXT    NOT NULL,
  record_json  TEXT    NOT NULL,
  PRIMARY KEY (network_id, peer_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS holders_received ON holders (received_ms);
CREATE INDEX IF NOT EXISTS holders_source ON holders (source);
CREATE TABLE IF NOT EXISTS withdrawals (
  network_id   TEXT    NOT NULL,
  peer_id      TEXT    NOT NULL,
  timestamp_ms INTEGER NOT NULL,
  PRIMARY KEY (network_id, peer_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS withdrawals_timestamp ON withdrawals (timestamp_ms);
`;

export class TrackerStore {
  private readonly db: Database.Database;
  private readonly stmts: {
    get: Database.Statement<[string, string], { timestamp_ms: number; source: string; prefix: string }>;
    upsert: Database.Statement<[string, string, number, number, number, number, number, string, string, string]>;
    count: Database.Statement<[], { n: number }>;
    countSource: Database.Statement<[string], { n: number }>;
    countPrefix: Database.Statement<[string], { n: number }>;
    purge: Database.Statement<[number, number]>;
    remove: Database.Statement<[string, string]>;
    tombstone: Database.Statement<[string, string, number]>;
    withdrawnAt: Database.Statement<[string, string], { timestamp_ms: number }>;
    countTombstones: Database.Statement<[], { n: number }>;
    purgeTombstones: Database.Statement<[number]>;
  };
  private readonly withdrawTx: (networkId: string, peerId: string, timestampMs: number, keepTombstone: boolean) => void;

  constructor(path: string) {
    this.db = new Database(path);
    if (path !== ':memory:') this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(SCHEMA);
    // the announcer's prefix (per-prefix cap), added to tables made before it existed
    const cols = this.db.prepare('PRAGMA table_info(holders)').all() as { name: string }[];
    if (!cols.some((c) => c.name === 'prefix')) this.db.exec("ALTER TABLE holders ADD COLUMN prefix TEXT NOT NULL DEFAULT ''");
    this.db.exec('CREATE INDEX IF NOT EXISTS holders_prefix ON holders (prefix)');
    this.stmts = {
      get: this.db.prepare('SELECT timestamp_ms, source, prefix FROM holders WHERE network_id = ? AND peer_id = ?'),
      upsert: this.db.prepare(
        `INSERT INTO holders (network_id, peer_id, span_start, span_end, timestamp_ms, expires_ms, received_ms, source, prefix, record_json)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (network_id, peer_id) DO UPDATE SET span_start = excluded.span_start, span_end = excluded.span_end,
           timestamp_ms = excluded.timestamp_ms, expires_ms = excluded.expires_ms, received_ms = excluded.received_ms,
           source = excluded.source, prefix = excluded.prefix, record_json = excluded.record_json`,
      ),
      count: this.db.prepare('SELECT COUNT(*) AS n FROM holders'),
      countSource: this.db.prepare('SELECT COUNT(*) AS n FROM holders WHERE source = ?'),
      countPrefix: this.db.prepare('SELECT COUNT(*) AS n FROM holders WHERE prefix = ?'),
      purge: this.db.prepare('DELETE FROM holders WHERE received_ms <= ? OR expires_ms <= ?'),
      remove: this.db.prepare('DELETE FROM holders WHERE network_id = ? AND peer_id = ?'),
      tombstone: this.db.prepare(
        `INSERT INTO withdrawals (network_id, peer_id, timestamp_ms) VALUES (?, ?, ?)
         ON CONFLICT (network_id, peer_id) DO UPDATE SET timestamp_ms = max(timestamp_ms, excluded.timestamp_ms)`,
      ),
      withdrawnAt: this.db.prepare('SELECT timestamp_ms FROM withdrawals WHERE network_id = ? AND peer_id = ?'),
      countTombstones: this.db.prepare('SELECT COUNT(*) AS n FROM withdrawals'),
      purgeTombstones: this.db.prepare('DELETE FROM withdrawals WHERE timestamp_ms < ?'),
    };
    this.withdrawTx = this.db.transaction((networkId: string, peerId: string, timestampMs: number, keepTombstone: boolean) => {
      this.stmts.remove.run(networkId, peerId);
      if (keepTombstone) this.stmts.tombstone.run(networkId, peerId, timestampMs);
    });
  }

  /** The stored timestamp and source of (network, peer), if any. */
  get(networkId: string, peerId: string): { timestampMs: number; source: string; prefix: string } | undefined {
    const r = this.stmts.get.get(networkId, peerId);
    return r === undefined ? undefined : { timestampMs: r.timestamp_ms, source: r.source, prefix: r.prefix };
  }

  upsert(r: StoredRow): void {
    this.stmts.upsert.run(r.networkId, r.peerId, r.spanStart, r.spanEnd, r.timestampMs, r.expiresMs, r.receivedMs, r.source, r.prefix, r.json);
  }

  countByPrefix(prefix: string): number {
    return this.stmts.countPrefix.get(prefix)!.n;
  }

  count(): number {
    return this.stmts.count.get()!.n;
  }

  countBySource(source: string): number {
    return this.stmts.countSource.get(source)!.n;
  }

  /** Deletes rows not announced since `receivedBeforeMs` or expired at `nowMs`; returns how many. */
  purge(receivedBeforeMs: number, nowMs: number): number {
    return this.stmts.purge.run(receivedBeforeMs, nowMs).changes;
  }

  /**
   * Removes the record of (network, peer) and, when `keepTombstone`, remembers that the peer withdrew at
   * `timestampMs`, in one transaction.
   */
  withdraw(networkId: string, peerId: string, timestampMs: number, keepTombstone: boolean): void {
    this.withdrawTx(networkId, peerId, timestampMs, keepTombstone);
  }

  /** When (network, peer) last withdrew, if a tombstone is held. */
  withdrawnAt(networkId: string, peerId: string): number | undefined {
    return this.stmts.withdrawnAt.get(networkId, peerId)?.timestamp_ms;
  }

  countTombstones(): number {
    return this.stmts.countTombstones.get()!.n;
  }

  /** Deletes tombstones of withdrawals signed before `beforeMs`; returns how many. */
  purgeTombstones(beforeMs: number): number {
    return this.stmts.purgeTombstones.run(beforeMs).changes;
  }

  /** JSON texts of fresh records, in random order (spreads load over holders), at most `limit`. */
  peers(q: PeersQuery): string[] {
    const where = ['received_ms > ?', 'expires_ms > ?'];
    const args: (string | number)[] = [q.freshAfterMs, q.nowMs];
    if (q.network !== undefined) {
      where.push('network_id = ?');
      args.push(q.network);
    }
    if (q.layer !== undefined) {
      where.push('span_start <= ? AND ? < span_end');
      args.push(q.layer, q.layer);
    }
    args.push(q.limit);
    const sql = `SELECT record_json FROM holders WHERE ${where.join(' AND ')} ORDER BY random() LIMIT ?`;
    return (this.db.prepare(sql).all(...args) as { record_json: string }[]).map((r) => r.record_json);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

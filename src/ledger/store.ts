/**
 * The SQLite store (better-sqlite3 12, WAL). Schema migrations are numbered SQL scripts applied in order inside a
 * transaction, tracked in `schema_version`. The ledger writes one event (its row, its verdict and the state rows it
 * changed) in one transaction, so a process killed at any moment leaves either all of it or none of it; with WAL
 * and synchronous=NORMAL a committed transaction survives a process crash (FULL also survives power loss).
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError } from '../util/errors.js';

export const LEDGER_DB_FILE = 'ledger.db';

const MIGRATIONS: string[] = [
  // 1: events, their accounts (history), the state rows, and metadata.
  `
  CREATE TABLE events (
    id      BLOB PRIMARY KEY,             -- 32-byte event id
    ord     BLOB NOT NULL UNIQUE,         -- canonical order key: u64 timestampMs ‖ id
    rkey    BLOB NOT NULL,                -- replay key: signer ‖ kind ‖ u64 nonce
    kind    INTEGER NOT NULL,
    ts      INTEGER NOT NULL,
    bytes   BLOB NOT NULL,                -- wire bytes as first received
    status  INTEGER NOT NULL,             -- 0 pending, 1 applied, 2 rejected, 3 void
    reason  TEXT,
    amount  TEXT                          -- main amount moved, base units
  ) WITHOUT ROWID;
  CREATE INDEX events_rkey ON events(rkey);
  CREATE TABLE event_accounts (
    account BLOB NOT NULL,                -- 20-byte account id named by the event
    ord     BLOB NOT NULL,
    id      BLOB NOT NULL,
    PRIMARY KEY (account, ord)
  ) WITHOUT ROWID;
  CREATE TABLE state (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;
  CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;
  `,
  // 2 (issue 11 attack 5): events that came from the network and have no verdict yet. The deferred replay judges
  // them at their place and removes, instead of storing as rejected, those the state rules reject.
  `
  ALTER TABLE events ADD COLUMN net INTEGER NOT NULL DEFAULT 0;
  `,
  // 3 (issue 11 §3): finalized checkpoints (JSON, checkpoint.ts) and the state rows at the latest one's cut (what
  // a new node's snapshot sync is served, and the base the ledger replays from after a restart).
  `
  CREATE TABLE checkpoints (seq INTEGER PRIMARY KEY, body TEXT NOT NULL);
  CREATE TABLE cp_state (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;
  `,
  // 4 (issue 11 §4, ingest speed): events clustered by their canonical order key instead of their random id. Events
  // arrive nearly in canonical order, so each insert now appends to the table's last pages instead of dirtying a
  // random leaf (about one 4-KiB WAL page written per event, half of ingest's SQLite time); replays and sync serving
  // read the table in order. The id keeps a unique index (small entries), and the rkey index now holds the order key
  // itself, so the conflict check (hasEarlier) no longer visits the table. Same columns, same rows.
  `
  CREATE TABLE events_by_ord (
    ord     BLOB PRIMARY KEY,
    id      BLOB NOT NULL UNIQUE,
    rkey    BLOB NOT NULL,
    kind    INTEGER NOT NULL,
    ts      INTEGER NOT NULL,
    bytes   BLOB NOT NULL,
    status  INTEGER NOT NULL,
    reason  TEXT,
    amount  TEXT,
    net     INTEGER NOT NULL DEFAULT 0
  ) WITHOUT ROWID;
  INSERT INTO events_by_ord (ord, id, rkey, kind, ts, bytes, status, reason, amount, net)
    SELECT ord, id, rkey, kind, ts, bytes, status, reason, amount, net FROM events ORDER BY ord;
  DROP TABLE events;
  ALTER TABLE events_by_ord RENAME TO events;
  CREATE INDEX events_rkey ON events(rkey);
  `,
  // 5 (issue 11 §4): event_accounts clustered by the order key, with an (account, ord) index for the history. Keyed
  // by (account, ord) before, removing one event's rows (a deferred replay dropping a rejected network event:
  // DELETE ... WHERE ord = ?) and pruning before a checkpoint's cut (ord < ?) scanned the whole table; now both
  // are a range of the key, and inserts append to the table's last pages as events arrive nearly in order. Same
  // columns, same rows.
  `
  CREATE TABLE event_accounts_by_ord (
    ord     BLOB NOT NULL,
    account BLOB NOT NULL,
    id      BLOB NOT NULL,
    PRIMARY KEY (ord, account)
  ) WITHOUT ROWID;
  INSERT INTO event_accounts_by_ord (ord, account, id) SELECT ord, account, id FROM event_accounts ORDER BY ord, account;
  DROP TABLE event_accounts;
  ALTER TABLE event_accounts_by_ord RENAME TO event_accounts;
  CREATE INDEX event_accounts_account ON event_accounts(account, ord);
  `,
  // 6 (issue 11 §4, ingest speed): event_accounts without its id column. The id is the order key's last 32 bytes
  // (ord = u64 timestampMs ‖ id) and nothing read the column; each row was 32 bytes wider in the table and again in
  // the (account, ord) index that every insert maintains, for 2 rows per transfer. Same rows, less the column.
  `
  CREATE TABLE event_accounts_v6 (
    ord     BLOB NOT NULL,
    account BLOB NOT NULL,
    PRIMARY KEY (ord, account)
  ) WITHOUT ROWID;
  INSERT INTO event_accounts_v6 (ord, account) SELECT ord, account FROM event_accounts ORDER BY ord, account;
  DROP TABLE event_accounts;
  ALTER TABLE event_accounts_v6 RENAME TO event_accounts;
  CREATE INDEX event_accounts_account ON event_accounts(account, ord);
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export interface OpenDbOptions {
  readonly?: boolean;
  /** NORMAL (default): durable across process crashes. FULL: also across power loss, slower. */
  synchronous?: 'NORMAL' | 'FULL';
}

export function openDatabase(path: string, opts: OpenDbOptions = {}): Database.Database {
  if (opts.readonly === true) {
    let db: Database.Database;
    try {
      db = new Database(path, { readonly: true, fileMustExist: true });
    } catch (e) {
      throw new ConfigError(`cannot open ledger ${path}: ${(e as Error).message}`, { file: path }, 'LEDGER_MISSING');
    }
    db.pragma('busy_timeout = 5000');
    const v = schemaVersion(db);
    if (v !== SCHEMA_VERSION) {
      db.close();
      throw new ConfigError(`ledger ${path} has schema version ${v}; this program reads ${SCHEMA_VERSION}`, { file: path }, 'LEDGER_SCHEMA');
    }
    return db;
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${opts.synchronous ?? 'NORMAL'}`);
  db.pragma('busy_timeout = 5000');
  // Checkpoint the WAL every 8,192 pages (32 MiB at 4 KiB) instead of SQLite's 1,000: a sync page of 512 events
  // rewrites a few hundred index pages (the random event ids' index above all), and with the default the commit
  // that crossed 1,000 copied them into the database every second page or so; now a page rewritten by many commits
  // is copied once (about 8 % of the main thread's CPU per synced event, issue 11 §4). The WAL may reach ~32 MiB
  // beside ledger.db (not counted by the disk quota, which reads the database's page count).
  db.pragma('wal_autocheckpoint = 8192');
  migrate(db, path);
  return db;
}

function schemaVersion(db: Database.Database): number {
  const has = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").get();
  if (has === undefined) return 0;
  const row = db.prepare('SELECT version FROM schema_version').get() as { version: number } | undefined;
  return row?.version ?? 0;
}

function migrate(db: Database.Database, path: string): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
  const v = schemaVersion(db);
  if (v > SCHEMA_VERSION) {
    db.close();
    throw new ConfigError(`ledger ${path} has schema version ${v}, newer than this program's ${SCHEMA_VERSION}`, { file: path }, 'LEDGER_SCHEMA');
  }
  for (let i = v; i < SCHEMA_VERSION; i++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[i]!);
      db.prepare('DELETE FROM schema_version').run();
      db.prepare('INSERT INTO schema_version (version) VALUES (?)').run(i + 1);
    })();
  }
}

export const STATUS_CODE = { pending: 0, applied: 1, rejected: 2, void: 3 } as const;
export const STATUS_NAME = ['pending', 'applied', 'rejected', 'void'] as const;
export type StoredStatus = (typeof STATUS_NAME)[number];

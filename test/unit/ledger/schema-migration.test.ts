/**
 * Schema 4 (issue 11 §4, ingest speed): the events table is clustered by its canonical order key instead of its
 * random id. Schema 5: event_accounts is clustered by the order key too, with an (account, ord) index for the
 * history, so removing one event's rows (WHERE ord = ?) no longer scans the table. Schema 6: event_accounts without
 * its id column (the order key's last 32 bytes). A ledger.db written by schema 3, 4 or 5
 * must open, migrate in place and hold exactly the same rows, state, verdicts and history, and keep taking
 * events as a fresh ledger would; a file from a newer program is refused with a typed error (LEDGER_SCHEMA), never
 * opened.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { accountIdFromPublicKey } from '../../../src/identity/index.js';
import { decodeEvent } from '../../../src/ledger/events.js';
import { Ledger } from '../../../src/ledger/ledger.js';
import { SCHEMA_VERSION } from '../../../src/ledger/store.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { tempDir } from '../../utils/paths.js';
import { generateTraffic, GEN_LAYERS } from './generate.js';
import { NET } from './helpers.js';
import { digestDb } from './db-digest.js';


/** The primary-key columns of a table (in key order) and the stored schema version. */
function layout(path: string, table = 'events'): { pk: string[]; version: number } {
  const db = new Database(path, { readonly: true });
  try {
    const cols = db.prepare(`PRAGMA table_info(${table})`).all() as { name: string; pk: number }[];
    const version = (db.prepare('SELECT version FROM schema_version').get() as { version: number }).version;
    return { pk: cols.filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk).map((c) => c.name), version };
  } finally {
    db.close();
  }
}

/** SQLite's plan of `sql` (EXPLAIN QUERY PLAN details, joined). */
function plan(path: string, sql: string): string {
  const db = new Database(path, { readonly: true });
  try {
    return (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...[...sql.matchAll(/\?/g)].map(() => Buffer.alloc(40))) as { detail: string }[]).map((r) => r.detail).join('; ');
  } finally {
    db.close();
  }
}

const REMOVE_ONE = 'DELETE FROM event_accounts WHERE ord = ?';
const HISTORY = 'SELECT e.bytes FROM event_accounts a JOIN events e ON e.ord = a.ord WHERE a.account = ? ORDER BY a.ord DESC LIMIT 10';

/**
 * Rewrites a ledger file's event_accounts into the schema-5 layout (clustered by order key with the (account, ord)
 * index, and the id column schema 6 dropped: the order key's last 32 bytes), version 5. The rows themselves are
 * untouched.
 */
function toSchema5(path: string): void {
  const db = new Database(path);
  try {
    db.exec(`
      BEGIN;
      CREATE TABLE event_accounts_v5 (ord BLOB NOT NULL, account BLOB NOT NULL, id BLOB NOT NULL, PRIMARY KEY (ord, account)) WITHOUT ROWID;
      INSERT INTO event_accounts_v5 SELECT ord, account, substr(ord, 9) FROM event_accounts;
      DROP TABLE event_accounts;
      ALTER TABLE event_accounts_v5 RENAME TO event_accounts;
      CREATE INDEX event_accounts_account ON event_accounts(account, ord);
      UPDATE schema_version SET version = 5;
      COMMIT;
    `);
  } finally {
    db.close();
  }
}

/**
 * Rewrites a ledger file's event_accounts into the schema-4 layout (keyed by account, then order key, no other
 * index), version 4. The rows themselves are untouched.
 */
function toSchema4(path: string): void {
  toSchema5(path);
  const db = new Database(path);
  try {
    db.exec(`
      BEGIN;
      CREATE TABLE event_accounts_v4 (account BLOB NOT NULL, ord BLOB NOT NULL, id BLOB NOT NULL, PRIMARY KEY (account, ord)) WITHOUT ROWID;
      INSERT INTO event_accounts_v4 SELECT account, ord, id FROM event_accounts;
      DROP TABLE event_accounts;
      ALTER TABLE event_accounts_v4 RENAME TO event_accounts;
      UPDATE schema_version SET version = 4;
      COMMIT;
    `);
  } finally {
    db.close();
  }
}

/**
 * Rewrites a ledger file into the schema-3 layout: event_accounts as in schema 4, the events table as migrations 1 and 2 made it (clustered by the
 * 32-byte id, ord a unique secondary key, net added last), version 3. The rows themselves are untouched.
 */
function toSchema3(path: string): void {
  toSchema4(path);
  const db = new Database(path);
  try {
    db.exec(`
      BEGIN;
      CREATE TABLE events_v3 (
        id BLOB PRIMARY KEY, ord BLOB NOT NULL UNIQUE, rkey BLOB NOT NULL, kind INTEGER NOT NULL, ts INTEGER NOT NULL,
        bytes BLOB NOT NULL, status INTEGER NOT NULL, reason TEXT, amount TEXT, net INTEGER NOT NULL DEFAULT 0
      ) WITHOUT ROWID;
      INSERT INTO events_v3 SELECT id, ord, rkey, kind, ts, bytes, status, reason, amount, net FROM events;
      DROP TABLE events;
      ALTER TABLE events_v3 RENAME TO events;
      CREATE INDEX events_rkey ON events(rkey);
      UPDATE schema_version SET version = 3;
      COMMIT;
    `);
  } finally {
    db.close();
  }
}

describe('ledger schema migration', () => {
  it('a schema-3 ledger.db migrates to events clustered by order key with identical rows, state and later verdicts', () => {
    const t = tempDir('neuroshard-schema-');
    try {
      const { events } = generateTraffic(900, 20_261_203);
      const first = events.slice(0, 600);
      const rest = events.slice(600);
      const oldPath = join(t.dir, 'old.db');
      const l = new Ledger({ path: oldPath, networkId: NET, modelLayers: GEN_LAYERS });
      // a network batch too, so rows with net = 1 and a deferred replay's verdicts are part of what moves
      for (let i = 0; i < first.length; i += 100) l.ingestMany(first.slice(i, i + 100), i % 200 === 0 ? {} : { ingress: 'sync', nowMs: Date.now(), deferReplay: true });
      l.flushReplay();
      const hash = l.stateHash();
      l.close();
      toSchema3(oldPath);
      assert.deepEqual(layout(oldPath), { pk: ['id'], version: 3 });
      const before = digestDb(oldPath, 'meta');

      const m = new Ledger({ path: oldPath, networkId: NET, modelLayers: GEN_LAYERS });
      try {
        assert.equal(m.stateHash(), hash, 'state after the migration');
        assert.equal(m.status().replayPending, false);
      } finally {
        m.close();
      }
      assert.deepEqual(layout(oldPath), { pk: ['ord'], version: SCHEMA_VERSION });
      assert.equal(SCHEMA_VERSION, 6);
      assert.deepEqual(layout(oldPath, 'event_accounts'), { pk: ['ord', 'account'], version: SCHEMA_VERSION });
      assert.equal(digestDb(oldPath, 'meta'), before, 'every row kept as it was');

      // the migrated file keeps taking events exactly as a fresh schema-4 ledger fed the same log
      const freshPath = join(t.dir, 'fresh.db');
      const f = new Ledger({ path: freshPath, networkId: NET, modelLayers: GEN_LAYERS });
      const again = new Ledger({ path: oldPath, networkId: NET, modelLayers: GEN_LAYERS });
      try {
        for (let i = 0; i < first.length; i += 100) f.ingestMany(first.slice(i, i + 100), i % 200 === 0 ? {} : { ingress: 'sync', nowMs: Date.now(), deferReplay: true });
        f.flushReplay();
        for (const x of [f, again]) for (let i = 0; i < rest.length; i += 50) x.ingestMany(rest.slice(i, i + 50));
        assert.equal(again.stateHash(), f.stateHash());
        assert.deepEqual(again.status(), f.status());
      } finally {
        f.close();
        again.close();
      }
      assert.equal(digestDb(oldPath, 'meta'), digestDb(freshPath, 'meta'));
    } finally {
      t.cleanup();
    }
  });

  it('a schema-4 ledger.db migrates to event_accounts clustered by order key: same rows, history and later verdicts, no table scan to remove an event', () => {
    const t = tempDir('neuroshard-schema-');
    try {
      const { events } = generateTraffic(900, 20_261_204);
      const first = events.slice(0, 600);
      const rest = events.slice(600);
      const feed = (l: Ledger, evs: Uint8Array[], step: number): void => {
        // network batches with deferred replays: a replay removes the rejected network events' account rows
        for (let i = 0; i < evs.length; i += step) l.ingestMany(evs.slice(i, i + step), i % (2 * step) === 0 ? {} : { ingress: 'sync', nowMs: Date.now(), deferReplay: true });
        l.flushReplay();
      };
      const oldPath = join(t.dir, 'old.db');
      const l = new Ledger({ path: oldPath, networkId: NET, modelLayers: GEN_LAYERS });
      feed(l, first, 100);
      const hash = l.stateHash();
      const accounts = [...new Set(first.flatMap((b) => { try { return [Buffer.from(decodeEvent(b).signer).toString('hex')]; } catch { return []; } }))].slice(0, 6).map((k) => accountIdFromPublicKey(Buffer.from(k, 'hex')));
      const history = accounts.map((a) => l.history(a, 50));
      assert.ok(history.some((h) => h.length > 5), 'accounts with a history');
      l.close();
      toSchema4(oldPath);
      assert.deepEqual(layout(oldPath, 'event_accounts'), { pk: ['account', 'ord'], version: 4 });
      assert.match(plan(oldPath, REMOVE_ONE), /SCAN/, 'schema 4 scans the table to remove one event');
      const before = digestDb(oldPath, 'meta');

      const m = new Ledger({ path: oldPath, networkId: NET, modelLayers: GEN_LAYERS });
      try {
        assert.equal(m.stateHash(), hash, 'state after the migration');
        assert.deepEqual(accounts.map((a) => m.history(a, 50)), history, 'the same history');
      } finally {
        m.close();
      }
      assert.deepEqual(layout(oldPath, 'event_accounts'), { pk: ['ord', 'account'], version: SCHEMA_VERSION });
      assert.equal(digestDb(oldPath, 'meta'), before, 'every row kept as it was');
      assert.doesNotMatch(plan(oldPath, REMOVE_ONE), /SCAN/, 'one event\'s rows are a range of the key');
      assert.doesNotMatch(plan(oldPath, 'DELETE FROM event_accounts WHERE ord < ?'), /SCAN/);
      assert.match(plan(oldPath, HISTORY), /event_accounts_account/);
      assert.doesNotMatch(plan(oldPath, HISTORY), /SCAN|TEMP B-TREE/, 'the history walks the account index and joins on the order key');

      // the migrated file keeps taking events exactly as a fresh ledger fed the same log
      const freshPath = join(t.dir, 'fresh.db');
      const f = new Ledger({ path: freshPath, networkId: NET, modelLayers: GEN_LAYERS });
      const again = new Ledger({ path: oldPath, networkId: NET, modelLayers: GEN_LAYERS });
      try {
        feed(f, first, 100);
        for (const x of [f, again]) feed(x, rest, 50);
        assert.equal(again.stateHash(), f.stateHash());
        assert.deepEqual(again.status(), f.status());
        assert.deepEqual(accounts.map((a) => again.history(a, 80)), accounts.map((a) => f.history(a, 80)));
      } finally {
        f.close();
        again.close();
      }
      assert.equal(digestDb(oldPath, 'meta'), digestDb(freshPath, 'meta'));
    } finally {
      t.cleanup();
    }
  });

  it('a schema-5 ledger.db migrates to event_accounts without the id column: same rows, history and later verdicts', () => {
    const t = tempDir('neuroshard-schema-');
    const columns = (path: string): string[] => {
      const db = new Database(path, { readonly: true });
      try {
        return (db.prepare('PRAGMA table_info(event_accounts)').all() as { name: string }[]).map((c) => c.name);
      } finally {
        db.close();
      }
    };
    try {
      const { events } = generateTraffic(700, 20_261_205);
      const first = events.slice(0, 500);
      const rest = events.slice(500);
      const feed = (l: Ledger, evs: Uint8Array[], step: number): void => {
        for (let i = 0; i < evs.length; i += step) l.ingestMany(evs.slice(i, i + step), i % (2 * step) === 0 ? {} : { ingress: 'sync', nowMs: Date.now(), deferReplay: true });
        l.flushReplay();
      };
      const oldPath = join(t.dir, 'old.db');
      const l = new Ledger({ path: oldPath, networkId: NET, modelLayers: GEN_LAYERS });
      feed(l, first, 100);
      const hash = l.stateHash();
      const accounts = [...new Set(first.flatMap((b) => { try { return [Buffer.from(decodeEvent(b).signer).toString('hex')]; } catch { return []; } }))].slice(0, 6).map((k) => accountIdFromPublicKey(Buffer.from(k, 'hex')));
      const history = accounts.map((a) => l.history(a, 50));
      assert.ok(history.some((h) => h.length > 5), 'accounts with a history');
      l.close();
      toSchema5(oldPath);
      assert.deepEqual(columns(oldPath), ['ord', 'account', 'id']);
      assert.equal(layout(oldPath, 'event_accounts').version, 5);
      const before = digestDb(oldPath, 'meta');

      const m = new Ledger({ path: oldPath, networkId: NET, modelLayers: GEN_LAYERS });
      try {
        assert.equal(m.stateHash(), hash, 'state after the migration');
        assert.deepEqual(accounts.map((a) => m.history(a, 50)), history, 'the same history');
      } finally {
        m.close();
      }
      assert.deepEqual(columns(oldPath), ['ord', 'account']);
      assert.deepEqual(layout(oldPath, 'event_accounts'), { pk: ['ord', 'account'], version: SCHEMA_VERSION });
      assert.equal(digestDb(oldPath, 'meta'), before, 'every row kept as it was');
      assert.match(plan(oldPath, HISTORY), /event_accounts_account/);

      const freshPath = join(t.dir, 'fresh.db');
      const f = new Ledger({ path: freshPath, networkId: NET, modelLayers: GEN_LAYERS });
      const again = new Ledger({ path: oldPath, networkId: NET, modelLayers: GEN_LAYERS });
      try {
        feed(f, first, 100);
        for (const x of [f, again]) feed(x, rest, 50);
        assert.equal(again.stateHash(), f.stateHash());
        assert.deepEqual(again.status(), f.status());
        assert.deepEqual(accounts.map((a) => again.history(a, 80)), accounts.map((a) => f.history(a, 80)));
      } finally {
        f.close();
        again.close();
      }
      assert.equal(digestDb(oldPath, 'meta'), digestDb(freshPath, 'meta'));
    } finally {
      t.cleanup();
    }
  });

  it('a ledger.db from a newer schema is refused with LEDGER_SCHEMA and left as it was', () => {
    const t = tempDir('neuroshard-schema-');
    try {
      const path = join(t.dir, 'ledger.db');
      new Ledger({ path, networkId: NET, modelLayers: GEN_LAYERS }).close();
      const db = new Database(path);
      db.prepare('UPDATE schema_version SET version = ?').run(SCHEMA_VERSION + 1);
      db.close();
      const digest = digestDb(path, 'meta');
      assert.throws(
        () => new Ledger({ path, networkId: NET, modelLayers: GEN_LAYERS }),
        (e: unknown) => isNeuroShardError(e, 'LEDGER_SCHEMA'),
      );
      assert.throws(
        () => new Ledger({ path, networkId: NET, modelLayers: GEN_LAYERS, readonly: true }),
        (e: unknown) => isNeuroShardError(e, 'LEDGER_SCHEMA'),
      );
      assert.equal(layout(path).version, SCHEMA_VERSION + 1);
      assert.equal(digestDb(path, 'meta'), digest);
    } finally {
      t.cleanup();
    }
  });
});

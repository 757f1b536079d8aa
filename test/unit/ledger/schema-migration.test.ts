/**
 * Schema 4 (issue 11 §4, ingest speed): the events table is clustered by its canonical order key instead of its
 * random id. A ledger.db written by schema 3 (events keyed by id) must open, migrate in place and hold exactly the
 * same rows, state and verdicts, and keep taking events as a fresh ledger would; a file from a newer program is
 * refused with a typed error (LEDGER_SCHEMA), never opened.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { Ledger } from '../../../src/ledger/ledger.js';
import { SCHEMA_VERSION } from '../../../src/ledger/store.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { tempDir } from '../../utils/paths.js';
import { generateTraffic, GEN_LAYERS } from './generate.js';
import { NET } from './helpers.js';
import { digestDb } from './db-digest.js';


/** The primary-key column of the events table and the stored schema version. */
function layout(path: string): { pk: string[]; version: number } {
  const db = new Database(path, { readonly: true });
  try {
    const cols = db.prepare('PRAGMA table_info(events)').all() as { name: string; pk: number }[];
    const version = (db.prepare('SELECT version FROM schema_version').get() as { version: number }).version;
    return { pk: cols.filter((c) => c.pk > 0).map((c) => c.name), version };
  } finally {
    db.close();
  }
}

/**
 * Rewrites a ledger file into the schema-3 layout: the events table as migrations 1 and 2 made it (clustered by the
 * 32-byte id, ord a unique secondary key, net added last), version 3. The rows themselves are untouched.
 */
function toSchema3(path: string): void {
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
      assert.equal(SCHEMA_VERSION, 4);
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

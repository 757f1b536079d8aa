/**
 * A SHA-256 over everything a ledger.db holds: every events row with its verdict (by `ord`), every event_accounts
 * row, every state row, then either the meta tip (`'tip'`, the replay fixture's recorded digests) or every meta row
 * (`'meta'`, the schema migration, which compares a migrated file with a fresh one). The byte layout is pinned by
 * test/unit/ledger/replay-fixture.test.ts's recorded values: do not change it.
 */
import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';

export function digestDb(path: string, tail: 'tip' | 'meta'): string {
  const db = new Database(path, { readonly: true });
  try {
    const h = createHash('sha256');
    const put = (v: unknown): void => {
      if (v === null) h.update('N;');
      else if (v instanceof Uint8Array) h.update(`B${v.byteLength}:`).update(v);
      else h.update(`${typeof v}:${String(v)};`);
    };
    for (const r of db.prepare('SELECT id, ord, rkey, kind, ts, bytes, status, reason, amount, net FROM events ORDER BY ord').raw().all() as unknown[][]) r.forEach(put);
    h.update('|accounts|');
    // the id as the order key's last 32 bytes (schema 6 dropped the column that held the same bytes)
    for (const r of db.prepare('SELECT account, ord, substr(ord, 9) AS id FROM event_accounts ORDER BY account, ord').raw().all() as unknown[][]) r.forEach(put);
    h.update('|state|');
    for (const r of db.prepare('SELECT k, v FROM state ORDER BY k').raw().all() as unknown[][]) r.forEach(put);
    if (tail === 'tip') {
      h.update('|tip|');
      put((db.prepare("SELECT v FROM meta WHERE k = 'tip'").get() as { v: string } | undefined)?.v ?? null);
    } else {
      h.update('|meta|');
      for (const r of db.prepare('SELECT k, v FROM meta ORDER BY k').raw().all() as unknown[][]) r.forEach(put);
    }
    return h.digest('hex');
  } finally {
    db.close();
  }
}

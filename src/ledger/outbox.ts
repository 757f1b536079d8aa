/**
 * The outbox: `<data-dir>/outbox/`, where `neuroshard wallet` leaves signed events for the node on that data dir
 * when it cannot hand them to the running node's local endpoint (POST /api/ledger/events): no node runs, or its
 * endpoint does not answer. The node polls the folder, submits each event to its ledger and the network, and writes
 * the outcome to `outbox/done/<id>.json`, which the CLI waits for. With no node running the events wait there
 * until the node starts.
 *
 *   outbox/<id hex>.event      wire bytes of one signed event (written atomically, mode 0600)
 *   outbox/done/<id hex>.json  {"id", "status", "reason"?} once the node has taken it (never re-signed: a stale
 *                              event is reported STALE and the wallet signs anew)
 *   outbox/.lock/              held (mkdir) while a CLI picks a nonce and writes, so two CLIs never reuse a nonce
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../identity/index.js';
import { toHex } from '../util/bytes.js';
import { NeuroShardError } from '../util/errors.js';
import { decodeEvent, MAX_SLASH_BYTES, type EventKind, type LedgerEvent } from './events.js';

export const OUTBOX_DIR = 'outbox';
export const MAX_OUTBOX_ENTRIES = 1000;

export function outboxPath(dataDir: string): string {
  return join(dataDir, OUTBOX_DIR);
}

export interface OutboxEntry {
  file: string;
  event: LedgerEvent;
}

export interface OutboxOutcome {
  id: string;
  status: string;
  reason?: string;
  /** When the node re-signed a stale event with a fresh timestamp, the id that was published. */
  publishedId?: string;
}

/** Writes a signed event into the outbox. */
export function writeOutbox(dataDir: string, event: LedgerEvent): string {
  const dir = outboxPath(dataDir);
  mkdirSync(join(dir, 'done'), { recursive: true, mode: 0o700 });
  if (listOutbox(dataDir).length >= MAX_OUTBOX_ENTRIES) {
    throw new NeuroShardError('OUTBOX_FULL', `the outbox holds ${MAX_OUTBOX_ENTRIES} events; start the node to publish them`, { fault: 'caller' });
  }
  const file = join(dir, `${toHex(event.id)}.event`);
  writeFileAtomic(file, event.bytes);
  return file;
}

/** The pending entries (unreadable or undecodable files are skipped and reported by `bad`). */
export function listOutbox(dataDir: string, bad?: (file: string, why: string) => void): OutboxEntry[] {
  const dir = outboxPath(dataDir);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: OutboxEntry[] = [];
  for (const n of names.sort()) {
    if (!/^[0-9a-f]{64}\.event$/.test(n)) continue;
    const file = join(dir, n);
    try {
      if (statSync(file).size > MAX_SLASH_BYTES) throw new Error('too large');
      out.push({ file, event: decodeEvent(new Uint8Array(readFileSync(file))) });
    } catch (e) {
      bad?.(file, (e as Error).message);
    }
  }
  return out;
}

/** The largest nonce of `kind` signed by `signer` waiting in the outbox, or -1. */
export function outboxMaxNonce(dataDir: string, signer: Uint8Array, kind: EventKind): bigint {
  let max = -1n;
  for (const { event } of listOutbox(dataDir)) {
    if (event.body.kind === kind && Buffer.compare(event.signer, signer) === 0 && event.nonce > max) max = event.nonce;
  }
  return max;
}

export function writeOutcome(dataDir: string, o: OutboxOutcome): void {
  const dir = join(outboxPath(dataDir), 'done');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileAtomic(join(dir, `${o.id}.json`), JSON.stringify(o) + '\n');
}

export function readOutcome(dataDir: string, idHex: string): OutboxOutcome | undefined {
  try {
    return JSON.parse(readFileSync(join(outboxPath(dataDir), 'done', `${idHex}.json`), 'utf8')) as OutboxOutcome;
  } catch {
    return undefined;
  }
}

export function removeOutboxFile(file: string): void {
  rmSync(file, { force: true });
}

/** Removes outcome files older than `maxAgeMs`. */
export function pruneOutcomes(dataDir: string, nowMs: number, maxAgeMs = 86_400_000): void {
  const dir = join(outboxPath(dataDir), 'done');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    const f = join(dir, n);
    try {
      if (statSync(f).mtimeMs < nowMs - maxAgeMs) rmSync(f, { force: true });
    } catch {
      // gone already
    }
  }
}

/**
 * Runs `fn` holding the outbox lock (a directory created atomically). Waits up to `timeoutMs` for another
 * holder; a lock older than 60 s is taken to be left by a killed process and broken.
 */
export async function withOutboxLock<T>(dataDir: string, fn: () => T | Promise<T>, timeoutMs = 10_000): Promise<T> {
  const dir = outboxPath(dataDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const lock = join(dir, '.lock');
  const start = Date.now();
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      try {
        if (statSync(lock).mtimeMs < Date.now() - 60_000) {
          rmdirSync(lock);
          continue;
        }
      } catch {
        continue;
      }
      if (Date.now() - start > timeoutMs) throw new NeuroShardError('OUTBOX_LOCKED', `${lock} is held by another wallet command`, { fault: 'local' });
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  try {
    return await fn();
  } finally {
    rmdirSync(lock);
  }
}

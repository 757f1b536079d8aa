/**
 * `<data-dir>/node.lock`: written by a running node, read by the CLI. It tells `wallet create/import` to refuse
 * (the node holds the key) and tells `wallet send/stake/…` where the node's local endpoint is.
 *
 *   { "pid": 1234, "apiPort": 8000, "peerId": "16Uiu2…", "startedAt": "2025-…Z" }
 *
 * Created atomically with its content (written to a temporary file, then hard-linked into place, which fails when
 * the lock exists), so two nodes cannot share a data dir and no reader ever sees a half-written lock. A lock whose
 * pid no longer runs is stale (the node was killed) and is replaced: it is first renamed aside and re-read, so two
 * nodes replacing the same stale lock at once cannot remove each other's fresh one. An unreadable lock is stale
 * once it is older than a few seconds. The pid check cannot tell a reused pid from the node; the cost of that rare
 * case is a wallet command that refuses until the file is removed by hand.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, linkSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { NeuroShardError } from '../util/errors.js';

export const NODE_LOCK_FILE = 'node.lock';
/** An unreadable lock younger than this may be another program's work in progress: refuse rather than take it. */
const UNREADABLE_GRACE_MS = 5_000;

export interface NodeLockInfo {
  pid: number;
  /** The local HTTP endpoint's port on 127.0.0.1; 0 when the node serves none. */
  apiPort: number;
  peerId?: string;
  startedAt: string;
}

export class NodeRunningError extends NeuroShardError {
  constructor(info: NodeLockInfo, dataDir: string) {
    super('NODE_RUNNING', `a node (pid ${info.pid}) is running on ${dataDir}; stop it first`, { fault: 'caller', meta: { pid: info.pid, dataDir } });
  }
}

export function nodeLockPath(dataDir: string): string {
  return join(dataDir, NODE_LOCK_FILE);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, but belongs to someone else
  }
}

function parse(text: string): NodeLockInfo | undefined {
  try {
    const o = JSON.parse(text) as Record<string, unknown>;
    if (!Number.isInteger(o.pid) || (o.pid as number) <= 0) return undefined;
    if (!Number.isInteger(o.apiPort) || (o.apiPort as number) < 0 || (o.apiPort as number) > 65535) return undefined;
    const info: NodeLockInfo = { pid: o.pid as number, apiPort: o.apiPort as number, startedAt: String(o.startedAt ?? '') };
    if (typeof o.peerId === 'string') info.peerId = o.peerId;
    return info;
  } catch {
    return undefined;
  }
}

/** The lock of the node running on `dataDir`, or undefined when none runs (no file, unreadable, or stale). */
export function readNodeLock(dataDir: string): NodeLockInfo | undefined {
  let text: string;
  try {
    text = readFileSync(nodeLockPath(dataDir), 'utf8');
  } catch {
    return undefined;
  }
  if (text.length > 4096) return undefined;
  const info = parse(text);
  if (info === undefined || !alive(info.pid)) return undefined;
  return info;
}

/** Throws NodeRunningError when a node runs on `dataDir`. */
export function assertNoNodeRunning(dataDir: string): void {
  const info = readNodeLock(dataDir);
  if (info !== undefined && info.pid !== process.pid) throw new NodeRunningError(info, dataDir);
}

/**
 * Takes the lock for this process. Throws NodeRunningError when another live node holds it; replaces a stale one.
 * Returns a release function that removes the file (only if it is still ours).
 */
export function writeNodeLock(dataDir: string, info: { apiPort: number; peerId?: string }): () => void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const path = nodeLockPath(dataDir);
  const body: NodeLockInfo = { pid: process.pid, apiPort: info.apiPort, startedAt: new Date().toISOString() };
  if (info.peerId !== undefined) body.peerId = info.peerId;
  const tmp = `${path}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, JSON.stringify(body) + '\n');
  } finally {
    closeSync(fd);
  }
  try {
    for (let attempt = 0; ; attempt++) {
      if (attempt >= 3) throw new NeuroShardError('NODE_LOCK_RACE', `could not take ${path}: another process keeps replacing it`, { fault: 'local' });
      try {
        linkSync(tmp, path); // fails with EEXIST when a lock exists: the atomic test-and-set, content included
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      removeStaleLock(dataDir, path);
    }
  } finally {
    rmSync(tmp, { force: true });
  }
  return () => {
    let text = '';
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      return;
    }
    if (parse(text)?.pid === process.pid) rmSync(path, { force: true });
  };
}

/** Removes the lock at `path` if it is stale; throws NodeRunningError / NODE_LOCK_BUSY when it is not. */
function removeStaleLock(dataDir: string, path: string): void {
  const judge = (file: string): void => {
    let text: string;
    let ageMs: number;
    try {
      ageMs = Date.now() - statSync(file).mtimeMs;
      text = readFileSync(file, 'utf8');
    } catch {
      return; // gone meanwhile
    }
    const held = text.length > 4096 ? undefined : parse(text);
    if (held === undefined && ageMs < UNREADABLE_GRACE_MS) {
      throw new NeuroShardError('NODE_LOCK_BUSY', `${path} is being written by another process; try again`, { fault: 'caller', meta: { dataDir } });
    }
    if (held !== undefined && held.pid !== process.pid && alive(held.pid)) throw new NodeRunningError(held, dataDir);
  };
  judge(path);
  // Rename aside, then judge what we actually moved: another node may have replaced the stale lock meanwhile.
  const aside = `${path}.${process.pid}-${randomBytes(4).toString('hex')}.stale`;
  try {
    renameSync(path, aside);
  } catch {
    return; // gone meanwhile: try again
  }
  try {
    judge(aside);
  } catch (e) {
    try {
      linkSync(aside, path); // a live lock: put it back (unless yet another one took its place)
    } catch {
      // a newer lock stands there; it is not ours to remove
    }
    throw e;
  } finally {
    rmSync(aside, { force: true });
  }
}

/**
 * `<data-dir>/node.lock`: written by a running node, read by the CLI. It tells `wallet create/import` to refuse
 * (the node holds the key) and tells `wallet send/stake/…` where the node's local endpoint is.
 *
 *   { "pid": 1234, "apiPort": 8000, "peerId": "16Uiu2…", "startedAt": "2025-…Z" }
 *
 * Created with O_EXCL so two nodes cannot share a data dir. A lock whose pid no longer runs is stale (the node was
 * killed) and is replaced. The pid check cannot tell a reused pid from the node; the cost of that rare case is a
 * wallet command that refuses until the file is removed by hand.
 */
import { closeSync, openSync, readFileSync, rmSync, writeSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { NeuroShardError } from '../util/errors.js';

export const NODE_LOCK_FILE = 'node.lock';

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
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, 'wx', 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const held = readNodeLock(dataDir);
      if (held !== undefined && held.pid !== process.pid) throw new NodeRunningError(held, dataDir);
      rmSync(path, { force: true }); // stale, or our own from before
      continue;
    }
    try {
      writeSync(fd, JSON.stringify(body) + '\n');
    } finally {
      closeSync(fd);
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
  throw new NeuroShardError('NODE_LOCK_RACE', `could not take ${path}: another process keeps replacing it`, { fault: 'local' });
}

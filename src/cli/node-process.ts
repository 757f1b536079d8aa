/**
 * Running `neuroshard start` as a child process, for `start --detach` and `swarm`: spawn it with its output in a
 * file, and wait (bounded) until its node.lock names it and its local endpoint answers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiClient } from '../api/client.js';
import type { NodeStatus } from '../api/status.js';
import { readNodeLock } from '../identity/index.js';
import { NeuroShardError, TimeoutError } from '../util/errors.js';
import type { FlagValues } from './command.js';

/** bin/neuroshard.js of this package (dist/src/cli/ or src/cli/ → package root). */
export function binPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const root = here.includes(`${join('dist', 'src')}`) ? join(here, '..', '..', '..') : join(here, '..', '..');
  return join(root, 'bin', 'neuroshard.js');
}

/** Rebuilds command-line flags from parsed values, leaving out `drop`. */
export function flagsToArgs(flags: FlagValues, drop: string[]): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(flags)) {
    if (drop.includes(k) || v === undefined) continue;
    const list = Array.isArray(v) ? v : [v];
    for (const x of list) {
      if (x === true) out.push(`--${k}`);
      else if (x === false) out.push(`--no-${k}`);
      // --k=v: a value that starts with "-" (a negative number, a prompt) is not then read as a flag
      else out.push(`--${k}=${String(x)}`);
    }
  }
  return out;
}

export class NodeStartFailedError extends NeuroShardError {
  constructor(message: string, meta: Record<string, unknown> = {}) {
    super('NODE_START_FAILED', message, { fault: 'local', meta });
  }
}

export interface SpawnedNode {
  child: ChildProcess;
  outFile: string;
  exited: Promise<number | null>;
}

/** Starts `neuroshard start ARGS` with stdout and stderr appended to `outFile`. */
export function spawnNode(args: string[], outFile: string, opts: { detached: boolean }): SpawnedNode {
  mkdirSync(dirname(outFile), { recursive: true, mode: 0o700 });
  const fd = openSync(outFile, 'a', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [binPath(), 'start', ...args], { stdio: ['ignore', fd, fd], detached: opts.detached, env: process.env });
  } finally {
    closeSync(fd);
  }
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code, sig) => resolve(code ?? (sig === null ? null : 128)));
    child.on('error', () => resolve(null));
  });
  return { child, outFile, exited };
}

export function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines - 1).join('\n');
  } catch {
    return '';
  }
}

/** The last `warn` or `error` log line in the node's output (its timestamp cut), or undefined. */
export function lastWarning(file: string): string | undefined {
  const lines = tail(file, 200).split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = /^\S+Z (warn|error) +(.*)$/.exec(lines[i]!);
    if (m !== null) return m[2]!.slice(0, 300);
  }
  return undefined;
}

/**
 * Waits until the node's local API answers with its peer id; with `holdsLayers`, also until the layer pool has given
 * it a span (the API answers before the pool has chosen and loaded one). Fails when the process exits first, after
 * `timeoutMs`, or when `signal` fires.
 */
export async function waitNodeUp(dataDir: string, node: SpawnedNode, timeoutMs: number, signal?: AbortSignal, holdsLayers = false): Promise<{ apiPort: number; status: NodeStatus }> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void node.exited.then(() => {
    exited = true;
  });
  for (;;) {
    if (exited) throw new NodeStartFailedError(`the node exited before it was up; its output (${node.outFile}):\n${tail(node.outFile, 15)}`, { outFile: node.outFile });
    if (signal?.aborted === true) throw new NodeStartFailedError('interrupted while waiting for the node to come up');
    if (Date.now() > deadline) {
      // the node's own last warning usually says why (e.g. no agreed weights to download): show it, not only the file
      const why = lastWarning(node.outFile);
      throw new TimeoutError(`the node did not come up within ${Math.round(timeoutMs / 1000)} s${why === undefined ? '' : `; its last warning: ${why}`}; its output is in ${node.outFile}`);
    }
    const lock = readNodeLock(dataDir);
    if (lock !== undefined && lock.pid === node.child.pid && lock.apiPort > 0) {
      try {
        const status = await new ApiClient({ port: lock.apiPort, timeoutMs: 5000 }).status();
        if (status.peerId !== '' && (!holdsLayers || status.span !== null)) return { apiPort: lock.apiPort, status };
      } catch {
        // listening but not answering yet
      }
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Shared by the commands that talk to a running node (`status`, `peers`, `ledger status`, the wallet's `send`,
 * `stake`, `unstake`): where its local endpoint listens. `status`/`peers`: --api-port, the apiPort the running node
 * wrote to <data-dir>/node.lock, the apiPort option (config.json, NEUROSHARD_API_PORT, default 8000) unless a data
 * dir was named (--data-dir, NEUROSHARD_DATA_DIR) and holds no running node. The ledger and
 * wallet commands ask only the node named by node.lock (`runningNodeClient`), since they act on that data dir's
 * node and fall back to its files when none runs.
 */
import { ApiClient } from '../api/client.js';
import { readNodeLock } from '../identity/index.js';
import { envName, loadOptions } from '../node/options.js';
import { NodeNotRunningError } from './stop/index.js';
import { intFlag, stringFlag, type FlagSpec, type FlagValues } from './command.js';

export const LOCAL_ENDPOINT_FLAGS: Record<string, FlagSpec> = {
  'api-port': { type: 'string', value: 'PORT', description: "the node's local endpoint port (default: the node running on the data dir, from its node.lock; 8000 when none runs on the default data dir)" },
  json: { type: 'boolean', description: 'print the answer as JSON' },
};

export function resolveApiPort(flags: FlagValues, env: NodeJS.ProcessEnv = process.env): number {
  if (flags['api-port'] !== undefined) return intFlag(flags, 'api-port', 0, 1, 65535);
  const named = stringFlag(flags, 'data-dir');
  const opts = loadOptions({ flags: { dataDir: named }, env });
  const lock = readNodeLock(opts.dataDir);
  if (lock !== undefined && lock.apiPort > 0) return lock.apiPort;
  // A data dir the user named has no node running (no live node.lock): the apiPort fallback would ask whatever
  // node listens there, another data dir's, and print its status as this one's (session 30's walkthrough).
  if (named !== undefined || (env[envName('dataDir')] ?? '') !== '') {
    throw new NodeNotRunningError(opts.dataDir, `; start one (neuroshard start --data-dir ${opts.dataDir}) or name a node's port with --api-port`);
  }
  return opts.apiPort;
}

export function localClient(flags: FlagValues): ApiClient {
  return new ApiClient({ port: resolveApiPort(flags) });
}

/** A client of the node running on `dataDir` (its node.lock names a live pid and an API port), or undefined. */
export function runningNodeClient(dataDir: string): ApiClient | undefined {
  const lock = readNodeLock(dataDir);
  return lock !== undefined && lock.apiPort > 0 ? new ApiClient({ port: lock.apiPort }) : undefined;
}

/**
 * Shared by the commands that talk to a running node (`status`, `peers`, `ledger status`, the wallet's `send`,
 * `stake`, `unstake`): where its local endpoint listens. `status`/`peers`: --api-port, the apiPort the running node
 * wrote to <data-dir>/node.lock, the apiPort option (config.json, NEUROSHARD_API_PORT, default 8000). The ledger and
 * wallet commands ask only the node named by node.lock (`runningNodeClient`), since they act on that data dir's
 * node and fall back to its files when none runs.
 */
import { ApiClient } from '../api/client.js';
import { readNodeLock } from '../identity/index.js';
import { loadOptions } from '../node/options.js';
import { intFlag, stringFlag, type FlagSpec, type FlagValues } from './command.js';

export const LOCAL_ENDPOINT_FLAGS: Record<string, FlagSpec> = {
  'api-port': { type: 'string', value: 'PORT', description: "the node's local endpoint port (default: from node.lock, else 8000)" },
  json: { type: 'boolean', description: 'print the answer as JSON' },
};

export function resolveApiPort(flags: FlagValues): number {
  if (flags['api-port'] !== undefined) return intFlag(flags, 'api-port', 0, 1, 65535);
  const opts = loadOptions({ flags: { dataDir: stringFlag(flags, 'data-dir') } });
  const lock = readNodeLock(opts.dataDir);
  if (lock !== undefined && lock.apiPort > 0) return lock.apiPort;
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

/**
 * `neuroshard stop`: stops the node running on the data dir (its node.lock names the pid) with SIGTERM, which
 * makes it leave gracefully (checkpoint, withdrawals), and waits until the process is gone. Exit codes: 0 stopped,
 * 1 no node was running or it did not stop in time (`--force` then kills it).
 */
import { readNodeLock } from '../../identity/index.js';
import { loadOptions } from '../../node/options.js';
import { NeuroShardError, TimeoutError } from '../../util/errors.js';
import { intFlag, stringFlag, type Command } from '../command.js';
import { Spinner } from '../progress.js';

export class NodeNotRunningError extends NeuroShardError {
  constructor(dataDir: string, hint = '') {
    super('NODE_NOT_RUNNING', `no node is running on ${dataDir}${hint}`, { fault: 'caller', meta: { dataDir } });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export const stopCommand: Command = {
  name: 'stop',
  summary: 'stop the node running on the data dir (e.g. one started with start --detach)',
  flags: {
    'timeout-s': { type: 'string', value: 'S', description: 'how long to wait for a clean stop (default 120)' },
    force: { type: 'boolean', description: 'kill the node (SIGKILL) if it has not stopped within the timeout' },
    json: { type: 'boolean', description: 'print {"stopped", "pid", "forced", "dataDir"}' },
  },
  async run(flags, _positionals, io) {
    const timeoutS = intFlag(flags, 'timeout-s', 120, 1, 3600);
    const { dataDir } = loadOptions({ flags: { dataDir: stringFlag(flags, 'data-dir') } });
    const lock = readNodeLock(dataDir);
    if (lock === undefined) throw new NodeNotRunningError(dataDir);
    process.kill(lock.pid, 'SIGTERM');
    const spin = new Spinner(io, `stopping node (pid ${lock.pid})`);
    const deadline = Date.now() + timeoutS * 1000;
    let forced = false;
    try {
      while (alive(lock.pid)) {
        if (Date.now() > deadline) {
          if (flags.force !== true) throw new TimeoutError(`the node (pid ${lock.pid}) did not stop within ${timeoutS} s; run again with --force to kill it`);
          process.kill(lock.pid, 'SIGKILL');
          forced = true;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      spin.done();
    }
    if (flags.json === true) io.stdout(JSON.stringify({ stopped: true, pid: lock.pid, forced, dataDir }) + '\n');
    else io.stdout(`node (pid ${lock.pid}) stopped${forced ? ' (killed)' : ''}\n`);
    return 0;
  },
};

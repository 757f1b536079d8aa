/**
 * `neuroshard start --detach`: starts the same command without --detach as a background process in its own session
 * (it survives the terminal), its output appended to `<data-dir>/logs/start.out`, waits until it is up, prints where
 * it is and exits 0. `neuroshard stop` stops it.
 */
import { join } from 'node:path';
import { addressFromPublicKey, readKeystorePublic } from '../../identity/index.js';
import { DETACHED_OUT_FILE, logDir } from '../../node/logs.js';
import { intFlag, type CommandIO, type FlagValues } from '../command.js';
import { flagsToArgs, spawnNode, waitNodeUp } from '../node-process.js';
import { Spinner } from '../progress.js';

/** `positionals`: the command's positional arguments, passed on as they are (`--hop-push auto`'s `auto`). */
export async function detachStart(flags: FlagValues, dataDir: string, io: CommandIO, positionals: readonly string[] = []): Promise<number> {
  const waitS = intFlag(flags, 'wait-s', 300, 1, 3600);
  const args = flagsToArgs(flags, ['detach', 'json', 'wait-s', 'help', 'data-dir']);
  const node = spawnNode(['--data-dir', dataDir, ...args, ...positionals], join(logDir(dataDir), DETACHED_OUT_FILE), { detached: true });
  const spin = new Spinner(io, 'starting the node in the background');
  try {
    const { apiPort, status } = await waitNodeUp(dataDir, node, waitS * 1000, io.signal);
    spin.done();
    node.child.unref();
    const api = `http://127.0.0.1:${apiPort}`;
    const out = {
      peerId: status.peerId,
      address: addressFromPublicKey(readKeystorePublic(dataDir).publicKey),
      api,
      dashboard: `${api}/`,
      pid: node.child.pid ?? 0,
      dataDir,
      log: node.outFile,
    };
    if (flags.json === true) io.stdout(JSON.stringify(out) + '\n');
    else io.stdout(`node ${out.peerId} running in the background (pid ${out.pid})\ndashboard at ${out.dashboard}\noutput in ${out.log}; stop it with: neuroshard stop${dataDirArg(flags)}\n`);
    return 0;
  } catch (e) {
    spin.done();
    // a node that came up too late must not linger unknown to the user
    if (node.child.exitCode === null && node.child.pid !== undefined) {
      try {
        process.kill(-node.child.pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    throw e;
  }
}

function dataDirArg(flags: FlagValues): string {
  return typeof flags['data-dir'] === 'string' ? ` --data-dir ${flags['data-dir']}` : '';
}

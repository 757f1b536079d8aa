/**
 * `neuroshard start`: runs a node until Ctrl-C or SIGTERM.
 */
import { loadOptions } from '../../node/options.js';
import { createLogger } from '../../util/logger.js';
import { stringFlag, type Command } from '../command.js';

export const startCommand: Command = {
  name: 'start',
  summary: 'run a node (the genesis node when given no peers) until Ctrl-C',
  flags: {},
  async run(flags, _positionals, io) {
    const opts = loadOptions({
      flags: { dataDir: stringFlag(flags, 'data-dir'), logLevel: stringFlag(flags, 'log-level'), threads: stringFlag(flags, 'threads') },
    });
    const log = createLogger({ level: opts.logLevel, module: 'start' });
    log.info('node starting', { dataDir: opts.dataDir, threads: opts.threads });
    await new Promise<void>((resolve) => {
      if (io.signal.aborted) resolve();
      io.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    log.info('node stopped');
    return 0;
  },
};

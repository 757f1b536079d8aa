/**
 * `neuroshard tracker`: runs the bootstrap tracker until Ctrl-C or SIGTERM. Its records live in
 * `<data-dir>/tracker.db`. Once listening it prints one JSON line on stdout, {"listening": {host, port, url}}, so
 * scripts and tests started with `--port 0` learn the port it bound.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadOptions } from '../../node/options.js';
import { createTracker } from '../../node/tracker.js';
import { isNetworkId, TRACKER_DEFAULTS } from '../../tracker/index.js';
import { createLogger } from '../../util/logger.js';
import { intFlag, stringFlag, stringListFlag, UsageError, type Command } from '../command.js';

export const trackerCommand: Command = {
  name: 'tracker',
  summary: 'run a bootstrap tracker (HTTP) where nodes announce themselves and find each other',
  flags: {
    port: { type: 'string', value: 'PORT', description: `port to listen on; 0 picks a free one (default ${TRACKER_DEFAULTS.port})` },
    host: { type: 'string', value: 'HOST', description: `address to listen on (default ${TRACKER_DEFAULTS.host})` },
    network: { type: 'string', multiple: true, value: 'ID', description: 'accept only records of this network id (default: any network)' },
    json: { type: 'boolean', description: 'accepted for uniformity: stdout is always one JSON document, {"listening": {host, port, url}}' },
  },
  async run(flags, _positionals, io) {
    const port = intFlag(flags, 'port', TRACKER_DEFAULTS.port, 0, 65535);
    const host = stringFlag(flags, 'host') ?? TRACKER_DEFAULTS.host;
    if (host.length === 0 || host.length > 255 || /\s/.test(host)) throw new UsageError('--host must be a host name or address');
    const networks = stringListFlag(flags, 'network');
    for (const n of networks) if (!isNetworkId(n)) throw new UsageError(`--network ${JSON.stringify(n)}: 1-128 characters of A-Z a-z 0-9 . _ -`);
    const opts = loadOptions({ flags: { dataDir: stringFlag(flags, 'data-dir'), logLevel: stringFlag(flags, 'log-level') } });
    const log = createLogger({ level: opts.logLevel, module: 'tracker' });
    mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
    const tracker = createTracker({ host, port, networks, dbPath: join(opts.dataDir, 'tracker.db') }, { logger: log });
    try {
      const addr = await tracker.listen();
      io.stdout(JSON.stringify({ listening: addr }) + '\n');
      log.info('tracker listening', { url: addr.url, db: join(opts.dataDir, 'tracker.db') });
      await new Promise<void>((resolve) => {
        if (io.signal.aborted) resolve();
        io.signal.addEventListener('abort', () => resolve(), { once: true });
      });
    } finally {
      await tracker.close();
    }
    log.info('tracker stopped');
    return 0;
  },
};

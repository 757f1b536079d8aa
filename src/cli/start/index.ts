/**
 * `neuroshard start`: runs a node until Ctrl-C or SIGTERM.
 */
import { loadOptions } from '../../node/options.js';
import { createLogger } from '../../util/logger.js';
import { stringFlag, stringListFlag, type Command } from '../command.js';

export const startCommand: Command = {
  name: 'start',
  summary: 'run a node (the genesis node when given no peers) until Ctrl-C',
  flags: {
    tracker: { type: 'string', multiple: true, value: 'URL', description: 'bootstrap tracker to announce to and find peers through' },
    'api-port': { type: 'string', value: 'PORT', description: 'port of the local status endpoint on 127.0.0.1 (default 8000; 0 picks one)' },
    listen: { type: 'string', multiple: true, value: 'MULTIADDR', description: 'P2P listen address (default /ip4/0.0.0.0/tcp/9000 and /ip4/0.0.0.0/tcp/9001/ws; port 0 picks one)' },
    announce: { type: 'string', multiple: true, value: 'MULTIADDR', description: 'address to announce instead of the listen addresses' },
    bootstrap: { type: 'string', multiple: true, value: 'MULTIADDR', description: 'peer to join through (ends in /p2p/<peerId>)' },
    genesis: { type: 'boolean', description: 'found a new network even when peers or trackers are given' },
    mdns: { type: 'boolean', description: 'LAN discovery through mDNS (default on; --no-mdns turns it off)' },
    upnp: { type: 'boolean', description: 'UPnP port mapping on the router (default on; --no-upnp turns it off)' },
    relay: { type: 'boolean', description: 'offer a circuit relay to peers that cannot be dialled directly' },
    span: { type: 'string', value: 'A:B', description: 'hold layers A..B-1 (until the layer pool decides)' },
  },
  async run(flags, _positionals, io) {
    const opts = loadOptions({
      flags: {
        dataDir: stringFlag(flags, 'data-dir'),
        logLevel: stringFlag(flags, 'log-level'),
        threads: stringFlag(flags, 'threads'),
        trackers: stringListFlag(flags, 'tracker').length > 0 ? stringListFlag(flags, 'tracker') : undefined,
        apiPort: stringFlag(flags, 'api-port'),
        listen: stringListFlag(flags, 'listen').length > 0 ? stringListFlag(flags, 'listen') : undefined,
        announce: stringListFlag(flags, 'announce').length > 0 ? stringListFlag(flags, 'announce') : undefined,
        bootstrap: stringListFlag(flags, 'bootstrap').length > 0 ? stringListFlag(flags, 'bootstrap') : undefined,
        genesis: flags.genesis,
        mdns: flags.mdns,
        upnp: flags.upnp,
        relay: flags.relay,
        span: stringFlag(flags, 'span'),
      },
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

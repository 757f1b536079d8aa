/**
 * `neuroshard peers`: the peers the running node knows (GET /api/peers), with their layers and liveness.
 */
import { type Command } from '../command.js';
import { LOCAL_ENDPOINT_FLAGS, localClient } from '../local-endpoint.js';
import { spanText } from '../../util/span-text.js';

export const peersCommand: Command = {
  name: 'peers',
  summary: 'list the peers the running node knows, their layers and liveness',
  flags: LOCAL_ENDPOINT_FLAGS,
  async run(flags, _positionals, io) {
    const { peers } = await localClient(flags).peers({ signal: io.signal });
    if (flags.json === true) {
      io.stdout(JSON.stringify({ peers }, null, 2) + '\n');
      return 0;
    }
    if (peers.length === 0) {
      io.stdout('no known peers\n');
      return 0;
    }
    const rows = peers.map((p) => [p.peerId, spanText(p.span), p.liveness, p.addresses[0] ?? '-']);
    const head = ['PEER ID', 'LAYERS', 'LIVENESS', 'ADDRESS'];
    const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const fmt = (r: string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]! + 2))).join('');
    io.stdout([fmt(head), ...rows.map(fmt)].join('\n') + '\n');
    return 0;
  },
};

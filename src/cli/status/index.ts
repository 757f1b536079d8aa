/**
 * `neuroshard status`: asks the running node's local endpoint (GET /api/status) who it is, where it listens, which
 * layers it holds and how many peers it knows.
 */
import { type Command } from '../command.js';
import { LOCAL_ENDPOINT_FLAGS, localClient } from '../local-endpoint.js';
import { spanText } from '../../util/span-text.js';

export const statusCommand: Command = {
  name: 'status',
  summary: "show the running node's identity, addresses, layers and peer counts",
  flags: LOCAL_ENDPOINT_FLAGS,
  async run(flags, _positionals, io) {
    const s = await localClient(flags).status({ signal: io.signal });
    if (flags.json === true) {
      io.stdout(JSON.stringify(s, null, 2) + '\n');
      return 0;
    }
    const lines = [
      `peer id:    ${s.peerId}`,
      `network:    ${s.networkId ?? '(none yet)'}`,
      `version:    ${s.version}`,
      `layers:     ${spanText(s.span)}`,
      `peers:      ${s.peers.known} known, ${s.peers.alive} alive`,
      `uptime:     ${Math.round(s.uptimeMs / 1000)} s`,
      'addresses:',
      ...s.addresses.map((a) => `  ${a}`),
    ];
    io.stdout(lines.join('\n') + '\n');
    return 0;
  },
};

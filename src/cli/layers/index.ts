/**
 * `neuroshard layers [--json]`: asks the running node's local endpoint (GET /api/layers) who holds each layer of
 * the network's model, in which liveness state and how fast, and prints it as a table (or the JSON as served).
 */
import { type Command } from '../command.js';
import { LOCAL_ENDPOINT_FLAGS, localClient } from '../local-endpoint.js';

export const layersCommand: Command = {
  name: 'layers',
  summary: 'show who holds each layer of the model (replicas, liveness, tokens/s) as the running node sees it',
  flags: LOCAL_ENDPOINT_FLAGS,
  async run(flags, _positionals, io) {
    const v = await localClient(flags).layers({ signal: io.signal });
    if (flags.json === true) {
      io.stdout(JSON.stringify(v, null, 2) + '\n');
      return 0;
    }
    const rows = [['layer', 'live', 'holders (state, tokens/s)']];
    for (const l of v.layers) {
      const live = l.holders.filter((h) => h.state !== 'dead').length;
      const holders = l.holders.map((h) => `${h.peerId.slice(-8)} ${h.state} ${Math.round(h.tokensPerSec)}`).join(', ');
      rows.push([String(l.layer), String(live), holders === '' ? '(nobody)' : holders]);
    }
    const w0 = Math.max(...rows.map((r) => r[0]!.length));
    const w1 = Math.max(...rows.map((r) => r[1]!.length));
    const lines = rows.map((r) => `${r[0]!.padStart(w0)}  ${r[1]!.padStart(w1)}  ${r[2]}`);
    lines.push(`replicas (min over layers): ${v.replicasMin}`, `model hash: ${v.modelHash === '' ? '(none published by this node: it holds no layers, or trains them)' : v.modelHash}`);
    io.stdout(lines.join('\n') + '\n');
    return 0;
  },
};

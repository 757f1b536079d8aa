/**
 * The hop side of the serving-hop section's 2-process keys (hop-2p.ts), in its own process: argv networkId, C,
 * lane (1 or 0). Prints its addresses as one JSON line; exits when its parent disconnects (stdin closes).
 */
import '../../util/polyfill.js';
import { serveHop2p } from './hop-2p.js';

const [networkId = 'hop2p', c = '768', lane = '1'] = process.argv.slice(2);
const { hello, close } = await serveHop2p(networkId, Number(c), lane === '1');
process.stdout.write(JSON.stringify(hello) + '\n');
process.stdin.resume();
process.stdin.on('end', () => {
  void close().finally(() => process.exit(0));
});

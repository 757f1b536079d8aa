/** A steered server (rpc-fixture.ts) in a child process: prints {"addr"} once up, then runs until killed. */
import '../../../src/util/polyfill.js';
import { steeredServer } from './rpc-fixture.js';

const s = await steeredServer();
process.stdout.write(JSON.stringify({ addr: s.net.multiaddrs()[0] }) + '\n');
setInterval(() => {}, 1 << 30);

#!/usr/bin/env node
// What one gossip heartbeat costs in libp2p's secp256k1 work (session 30). Usage (build first):
//   node scripts/experiments/heartbeatcost.mjs [--rounds 3] [--n 300] [--bytes 200]
// Runs gossipsub's own per-message code (not its exports: utils/buildRawMessage.js) on heartbeat-sized messages:
//   delivery  validateToRawMessage(StrictSign) of a message from a signer seen before (parse `from`, parse `key`,
//             check they match, verify), as a receiver does for each peer's heartbeat every 5 s;
//   cold      the same for a signer never seen before (a joiner's first heartbeat, or a flood of fresh keys);
//   publish   buildRawMessage (sign, and libp2p parses the sender's own key back).
// Old (A) is session 21's path (OpenSSL verify, noble sign, every key parsed in pure JS), new (B) the installed
// key cache, libsecp256k1 verify and sign; blocks alternate A B B A in one process. Main-thread CPU per message
// from /proc/thread-self/schedstat, the 1-minute load (as `uptime` prints it) beside each block.
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { StrictSign } from '@libp2p/gossipsub';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { clearKeyCache, installFastSecp256k1, setFastSecp256k1Paths } from '../../dist/src/p2p/fast-secp256k1.js';

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, n: { type: 'string', default: '300' }, bytes: { type: 'string', default: '200' } } });
const n = Number(args.n);
const cpuNs = () => Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ')[0]);
const gossipDir = import.meta.resolve('@libp2p/gossipsub');
const { buildRawMessage, validateToRawMessage } = await import(new URL('./utils/buildRawMessage.js', gossipDir).href);
const { getPublishConfigFromPeerId } = await import(new URL('./utils/publishConfig.js', gossipDir).href);

console.log('installed', await installFastSecp256k1());
const setOld = (old) => setFastSecp256k1Paths({ keyCache: !old, sign: !old, libsecpVerify: !old });
const config = async (key) => getPublishConfigFromPeerId(StrictSign, peerIdFromPrivateKey(key), key);
const data = (i) => {
  const d = new Uint8Array(Number(args.bytes)).fill(7);
  d[0] = i & 255;
  d[1] = i >> 8;
  return d;
};

// messages signed once, ahead of the blocks (by the new path: noble checks the same bytes)
const signer = await generateKeyPair('secp256k1');
const signerConfig = await config(signer);
const warm = [];
for (let i = 0; i < n; i++) warm.push((await buildRawMessage(signerConfig, 'hb', data(i), data(i))).raw);
const coldSets = [];
for (let b = 0; b < Number(args.rounds) * 4 + 1; b++) {
  const set = [];
  for (let i = 0; i < n; i++) {
    const k = await generateKeyPair('secp256k1');
    set.push((await buildRawMessage(await config(k), 'hb', data(i), data(i))).raw);
  }
  coldSets.push(set);
}

async function block(kind, old) {
  setOld(old);
  const msgs = kind === 'cold' ? coldSets.pop() : warm;
  if (kind === 'delivery') for (const m of msgs.slice(0, 20)) await validateToRawMessage(StrictSign, m); // the signer is known
  if (kind === 'cold') clearKeyCache();
  const load = loadavg()[0];
  const t0 = cpuNs();
  for (let i = 0; i < n; i++) {
    if (kind === 'publish') await buildRawMessage(signerConfig, 'hb', msgs[i].data, msgs[i].data);
    else if (!(await validateToRawMessage(StrictSign, msgs[i])).valid) throw new Error('a valid message was rejected');
  }
  return { us: (cpuNs() - t0) / n / 1000, load };
}

const results = { delivery: { A: [], B: [] }, cold: { A: [], B: [] }, publish: { A: [], B: [] } };
await block('delivery', false); // JIT warm-up of both paths
await block('delivery', true);
for (let r = 0; r < Number(args.rounds); r++) {
  for (const kind of Object.keys(results)) {
    for (const side of ['A', 'B', 'B', 'A']) {
      const x = await block(kind, side === 'A');
      results[kind][side].push(x);
      console.log(`round ${r} ${kind.padEnd(8)} ${side === 'A' ? 'old' : 'new'} ${x.us.toFixed(1).padStart(7)} us/msg  load ${x.load.toFixed(2)}`);
    }
  }
}
const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const [kind, r] of Object.entries(results)) {
  const a = med(r.A.map((x) => x.us));
  const b = med(r.B.map((x) => x.us));
  const loads = [...r.A, ...r.B].map((x) => x.load);
  console.log(`${kind.padEnd(8)} old ${a.toFixed(1)} us, new ${b.toFixed(1)} us (median of ${r.A.length} blocks each; load ${Math.min(...loads).toFixed(2)}-${Math.max(...loads).toFixed(2)})`);
}
setOld(false);

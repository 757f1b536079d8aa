#!/usr/bin/env node
// Do stopped nodes' ledgers converge? (session 25; src/sim/ledger-converge.ts, what scripts/chaos.mjs stage 8 runs)
// Usage (build first: npx tsc -p tsconfig.json):
//   node scripts/ledger-converge.mjs [--stop-ms EPOCH_MS] DATA_DIR DATA_DIR...
//   node scripts/ledger-converge.mjs --simulate-stops STEP_MS [--copies 4] [--jitter-ms J] DATA_DIR
// The first form copies each node's ledger.db (with -wal, -shm) to a temp dir, delivers every event one copy serves
// and another lacks through gossip's ingest path until nothing is missing, and prints the report as one JSON line:
// the raw and converged state hashes, what was missing, refusals and verdict differences. The nodes must be stopped.
// The second form exercises the check on one stopped node's real events: it rebuilds `copies` ledgers from the
// events the node serves, by live gossip (each arriving 0.3 s after its date plus a seeded delay up to J ms, so out
// of order within J), copy i cut i·STEP_MS before the last event (nodes stopped one by one with events in flight),
// runs the check on them and compares the converged hash with the node's own.
// The reward rules are the node defaults with the genesis key from the first DATA_DIR's network.json. Exit 0 when
// the copies converge with no refusal and no verdict difference, 1 otherwise, 2 on bad usage.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const dist = (p) => import(join(ROOT, 'dist', 'src', p));
const { values, positionals } = parseArgs({
  options: { 'stop-ms': { type: 'string' }, 'simulate-stops': { type: 'string' }, copies: { type: 'string', default: '4' }, 'jitter-ms': { type: 'string', default: '0' } },
  allowPositionals: true,
});
const simulate = values['simulate-stops'] !== undefined;
if (simulate ? positionals.length !== 1 : positionals.length < 2) {
  process.stderr.write('usage: node scripts/ledger-converge.mjs [--stop-ms EPOCH_MS] DATA_DIR DATA_DIR...\n       node scripts/ledger-converge.mjs --simulate-stops STEP_MS [--copies 4] [--jitter-ms J] DATA_DIR\n');
  process.exit(2);
}
const { convergeLedgers, copyLedgerFiles, servedEvents } = await dist('sim/ledger-converge.js');
const { Ledger } = await dist('ledger/ledger.js');
const { KIND_NAMES } = await dist('ledger/events.js');
const { rewardRules } = await dist('node/ledger.js');
const { readNetworkFile } = await dist('node/genesis-key.js');
const { ledgerMeta } = await dist('cli/wallet/common.js');
const { fromHex } = await dist('util/bytes.js');

const meta = ledgerMeta(positionals[0]);
if (meta === undefined) {
  process.stderr.write(`${positionals[0]}: no ledger\n`);
  process.exit(2);
}
const key = readNetworkFile(positionals[0])?.genesisKey;
const rewards = rewardRules({}, key === undefined ? undefined : fromHex(key));
const tmp = mkdtempSync(join(tmpdir(), 'ns-converge-'));
try {
  let copies;
  let stopMs = values['stop-ms'] === undefined ? undefined : Number(values['stop-ms']);
  let original;
  let simulated;
  if (!simulate) {
    copies = positionals.map((dir, i) => ({ name: dir, path: copyLedgerFiles(dir, join(tmp, String(i))) }));
  } else {
    const src = new Ledger({ ...meta, path: copyLedgerFiles(positionals[0], join(tmp, 'src')), rewards });
    const all = servedEvents(src);
    original = src.stateHash();
    src.close();
    const step = Number(values['simulate-stops']);
    const jitter = Number(values['jitter-ms']);
    const last = all[all.length - 1].e.timestampMs;
    stopMs = last + 1000;
    const kinds = {};
    for (const h of all) kinds[KIND_NAMES[h.e.body.kind]] = (kinds[KIND_NAMES[h.e.body.kind]] ?? 0) + 1;
    simulated = { events: all.length, kinds, copies: [] };
    copies = [];
    for (let i = 0; i < Number(values.copies); i++) {
      let seed = 17 + i;
      const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
      const cut = last - i * step;
      const arrivals = all
        .filter((h) => h.e.timestampMs <= cut)
        .map((h) => ({ h, at: h.e.timestampMs + 300 + rnd() * jitter }))
        .sort((a, b) => a.at - b.at);
      const path = join(tmp, `c${i}`, 'ledger.db');
      const l = new Ledger({ ...meta, path, rewards });
      let dropped = 0;
      arrivals.forEach(({ h, at }, k) => {
        if (l.ingest(h.e.bytes, { ingress: 'gossip', nowMs: at, deferReplay: true }).status === 'dropped') dropped++;
        if ((k + 1) % 20 === 0) l.flushReplay(); // the service's replay timer
      });
      l.flushReplay();
      simulated.copies.push({ name: `c${i}`, cut_s_before_end: (i * step) / 1000, offered: arrivals.length, dropped_at_tip: dropped, stored: l.status().events });
      l.close();
      copies.push({ name: `c${i}`, path });
    }
  }
  const r = convergeLedgers(copies, { ...meta, rewards, stopMs });
  const out = simulated === undefined ? r : { simulated, ...r, convergedEqualsOriginal: Object.values(r.convergedHashes).every((h) => h === original) };
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exitCode = r.convergedEqual && r.refusals.length === 0 && r.verdictDiffs.length === 0 ? 0 : 1;
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

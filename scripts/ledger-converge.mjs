#!/usr/bin/env node
// Do stopped nodes' ledgers converge? (session 25; src/sim/ledger-converge.ts, what scripts/chaos.mjs stage 8 runs)
// Usage: node scripts/ledger-converge.mjs [--stop-ms EPOCH_MS] DATA_DIR DATA_DIR...   (build first: npx tsc -p tsconfig.json)
// Copies each node's ledger.db (with -wal, -shm) to a temp dir, delivers every event one copy serves and another
// lacks through gossip's ingest path until nothing is missing, and prints the report as one JSON line: the raw and
// converged state hashes, what was missing, refusals and verdict differences. The nodes must be stopped. The
// reward rules are the node defaults with the genesis key from the first DATA_DIR's network.json. Exit 0 when the
// copies converge with no refusal and no verdict difference, 1 otherwise, 2 on bad usage.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const dist = (p) => import(join(ROOT, 'dist', 'src', p));
const { values, positionals } = parseArgs({ options: { 'stop-ms': { type: 'string' } }, allowPositionals: true });
if (positionals.length < 2) {
  process.stderr.write('usage: node scripts/ledger-converge.mjs [--stop-ms EPOCH_MS] DATA_DIR DATA_DIR...\n');
  process.exit(2);
}
const { convergeLedgers, copyLedgerFiles } = await dist('sim/ledger-converge.js');
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
const tmp = mkdtempSync(join(tmpdir(), 'ns-converge-'));
try {
  const copies = positionals.map((dir, i) => ({ name: dir, path: copyLedgerFiles(dir, join(tmp, String(i))) }));
  const stopMs = values['stop-ms'] === undefined ? undefined : Number(values['stop-ms']);
  const r = convergeLedgers(copies, { ...meta, rewards: rewardRules({}, key === undefined ? undefined : fromHex(key)), stopMs });
  process.stdout.write(JSON.stringify(r) + '\n');
  process.exitCode = r.convergedEqual && r.refusals.length === 0 && r.verdictDiffs.length === 0 ? 0 : 1;
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

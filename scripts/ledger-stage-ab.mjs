#!/usr/bin/env node
// The sync's two stages for two builds in one process, alternating (issue 11 §4 ledger_events_per_s on a loaded
// machine): the verify worker's check per event (acceptedSignatureKeyOfBytes) and the event loop's ingest of pages of
// 512 (ingress sync, deferred replay) once the worker's verdicts are cached; each build's least CPU per event over the
// rounds, and whether the state hashes agree. Events: the cache scripts/ledger-ingest-ab.mjs writes (run it first).
// Usage: node scripts/ledger-stage-ab.mjs DIST_A DIST_B [events=5000] [rounds=4]
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
const [dA, dB] = process.argv.slice(2, 4).map((d) => resolve(d));
const [nArg, rArg] = process.argv.slice(4);
const N = Number(nArg ?? 5000), rounds = Number(rArg ?? 4);
const raw = JSON.parse(readFileSync(join(tmpdir(), 'neuroshard-ledger-ab-20000.json'), 'utf8'));
const funding = raw.funding.map((s) => new Uint8Array(Buffer.from(s, 'base64')));
const txs = raw.txs.slice(0, N).map((s) => new Uint8Array(Buffer.from(s, 'base64')));
const mods = [];
for (const d of [dA, dB]) mods.push({ d, L: await import(d + '/src/ledger/ledger.js'), V: await import(d + '/src/ledger/verify.js') });
const T0 = 1_704_067_200_000;
const best = mods.map(() => ({ worker: Infinity, loop: Infinity }));
let hash = [];
const cpu = () => { const c = process.cpuUsage(); return c.user + c.system; };
for (let r = 0; r < rounds; r++) {
  for (const [j, m] of mods.entries()) {
    const dir = mkdtempSync(join(tmpdir(), 'neuroshard-stage-ab-'));
    const ledger = new m.L.Ledger({ path: join(dir, 'ledger.db'), networkId: 'bench-net', modelLayers: 16 });
    ledger.ingestMany(funding);
    m.V.clearEventVerdicts();
    let c0 = cpu();
    const keys = [];
    for (const t of txs) keys.push(m.V.acceptedSignatureKeyOfBytes(t.slice()));
    const w = (cpu() - c0) / txs.length;
    for (const k of keys) m.V.rememberSignatureKey(k);
    const opts = { ingress: 'sync', nowMs: T0 + 660_000 + 20000, deferReplay: true };
    c0 = cpu();
    for (let i = 0; i < txs.length; i += 512) for (const x of ledger.ingestMany(txs.slice(i, i + 512).map((b) => b.slice()), opts)) if (x.status !== 'applied') throw new Error(x.status + x.reason);
    ledger.flushReplay();
    const l = (cpu() - c0) / txs.length;
    hash[j] = ledger.stateHash();
    ledger.close();
    rmSync(dir, { recursive: true, force: true });
    best[j].worker = Math.min(best[j].worker, w);
    best[j].loop = Math.min(best[j].loop, l);
  }
}
console.log(mods.map((m, j) => `${m.d.split('/').slice(-2)[0]}: worker ${best[j].worker.toFixed(1)} us, loop ${best[j].loop.toFixed(1)} us`).join('  |  '), 'same hash', hash[0] === hash[1], 'load', readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);

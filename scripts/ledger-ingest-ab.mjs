#!/usr/bin/env node
// Back-to-back ledger ingest figures of two builds on the same events (issue 11 §4, ledger_events_per_s): the
// ingest as src/ledger/bench.ts times it, driven identically against each build's compiled Ledger, so an older
// build is measured under the current definition of the key. Alternates the builds, `--rounds` times.
//
//   node scripts/ledger-ingest-ab.mjs [--events 20000] [--rounds 2] [--mode sync|admitted|local] DIST_A [DIST_B …]
//
// DIST: a compiled `dist` folder whose `../node_modules` resolves (e.g. a copy of main's dist beside a symlink to
// node_modules). Modes: sync = the node's sync page call, ingestMany(page of 512, { ingress: 'sync', nowMs,
// deferReplay: true }), one signature check per event (the bench's ledger_events_per_s); admitted = signatures
// verified before the timed part (ledger_events_admitted_per_s); local = no ingress (the key's definition before
// the eighth session). The signed events (slow to make with the pure-JS signer) are cached in the OS temp folder.
// Prints wall and CPU rates, user and system CPU, and the state hash (equal across builds, or something changed).
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
const opt = (n, d) => {
  const i = args.indexOf(n);
  if (i < 0) return d;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const N = Number(opt('--events', '20000'));
const rounds = Number(opt('--rounds', '2'));
const mode = opt('--mode', 'sync');
const dists = args.map((d) => resolve(d));
if (dists.length === 0 || !['sync', 'admitted', 'local'].includes(mode)) {
  console.error('usage: node scripts/ledger-ingest-ab.mjs [--events N] [--rounds R] [--mode sync|admitted|local] DIST …');
  process.exit(2);
}
const NET = 'bench-net';
const LAYERS = 16;
const T0 = 1_704_067_200_000;
const PAGE = 512;
const load = (d, f) => import(pathToFileURL(join(d, f)).href);

/** The bench's events (ledgerBenchSetup): 32 keys funded by proofs, then N transfers between them. */
async function events(d) {
  const cache = join(tmpdir(), `neuroshard-ledger-ab-${N}.json`);
  if (existsSync(cache)) return JSON.parse(readFileSync(cache, 'utf8'));
  const id = await load(d, 'src/identity/index.js');
  const { sha256 } = await load(d, 'src/util/bytes.js');
  const { buildProof, buildTransfer } = await load(d, 'src/ledger/build.js');
  const { signEmbeddedHolderRecord } = await load(d, 'src/ledger/holder.js');
  const key = (i) => id.keyFromPrivate(sha256(`neuroshard bench key ${i}`));
  const rec = (k, ts) =>
    signEmbeddedHolderRecord(k, { networkId: NET, multiaddrs: ['/ip4/192.0.2.1/tcp/9000', '/ip4/192.0.2.1/tcp/9001/ws'], span: { start: 0, end: LAYERS }, capacity: { memoryMb: 8192, tokensPerSec: 200 }, timestampMs: ts - 5000, expiresMs: ts - 5000 + 65_000 });
  const proof = (k, ts) =>
    buildProof(k, { networkId: NET, nonce: BigInt(Math.floor(ts / 60_000)), timestampMs: ts }, { uptimeMs: 60_000, inferenceTokens: 10_000n, trainingTokens: 40_960n, dataSamples: 100n, modelHashBefore: sha256('before'), modelHashAfter: sha256('after'), gradientCommitment: sha256('commitment'), lossMicro: 2_500_000n, holderRecord: rec(k, ts) }).bytes;
  const keys = Array.from({ length: 32 }, (_, i) => key(i));
  const b64 = (b) => Buffer.from(b).toString('base64');
  const funding = [];
  for (let w = 0; w < 4; w++) for (const k of keys) funding.push(b64(proof(k, T0 + w * 60_000)));
  const txs = [];
  for (let i = 0; i < N; i++) {
    const from = keys[i % 32];
    const to = keys[(i * 7 + 3) % 32];
    if (from === to) continue;
    txs.push(b64(buildTransfer(from, { networkId: NET, nonce: BigInt(i), timestampMs: T0 + 600_000 + i }, id.accountIdFromPublicKey(to.publicKey), 10n ** 18n / 1_000_000n).bytes));
  }
  writeFileSync(cache, JSON.stringify({ funding, txs }));
  return { funding, txs };
}

async function measure(d, funding, txs) {
  const { Ledger } = await load(d, 'src/ledger/ledger.js');
  const V = await load(d, 'src/ledger/verify.js');
  const { decodeEvent } = await load(d, 'src/ledger/events.js');
  const { localHolderRecordVerifier } = await load(d, 'src/ledger/holder.js');
  const dir = mkdtempSync(join(tmpdir(), 'neuroshard-ledger-ab-'));
  try {
    const ledger = new Ledger({ path: join(dir, 'ledger.db'), networkId: NET, modelLayers: LAYERS });
    ledger.ingestMany(funding);
    V.clearEventVerdicts();
    if (mode === 'admitted') for (const t of txs) if (V.verifyEvent(decodeEvent(t), { networkId: NET, modelLayers: LAYERS, holderVerifier: localHolderRecordVerifier }) !== null) throw new Error('invalid event');
    const opts = mode === 'sync' ? { ingress: 'sync', nowMs: T0 + 660_000 + N, deferReplay: true } : {};
    const r0 = process.resourceUsage();
    const t0 = performance.now();
    for (let i = 0; i < txs.length; i += PAGE) {
      for (const r of ledger.ingestMany(txs.slice(i, i + PAGE), opts)) if (r.status !== 'applied') throw new Error(`not applied: ${r.status} ${r.reason}`);
    }
    const ms = performance.now() - t0;
    const r1 = process.resourceUsage();
    const hash = ledger.stateHash();
    ledger.close();
    const user = (r1.userCPUTime - r0.userCPUTime) / 1e3;
    const sys = (r1.systemCPUTime - r0.systemCPUTime) / 1e3;
    return { wall: Math.round((txs.length * 1000) / ms), cpu: Math.round((txs.length * 1000) / (user + sys)), user: Math.round(user), sys: Math.round(sys), hash: hash.slice(0, 16) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const raw = await events(dists[0]);
const funding = raw.funding.map((s) => new Uint8Array(Buffer.from(s, 'base64')));
const txs = raw.txs.map((s) => new Uint8Array(Buffer.from(s, 'base64')));
for (let r = 0; r < rounds; r++) {
  for (const d of dists) {
    // each build in a child of its own, so one build's JIT and caches do not warm the other's
    if (process.env.LEDGER_AB_CHILD === undefined) {
      const { spawnSync } = await import('node:child_process');
      const out = spawnSync(process.execPath, [new URL(import.meta.url).pathname, '--events', String(N), '--rounds', '1', '--mode', mode, d], { env: { ...process.env, LEDGER_AB_CHILD: '1' }, encoding: 'utf8' });
      process.stdout.write(out.stdout + out.stderr);
      continue;
    }
    const m = await measure(d, funding, txs);
    const l = existsSync('/proc/loadavg') ? readFileSync('/proc/loadavg', 'utf8').split(' ')[0] : '?';
    console.log(`${new Date().toISOString().slice(11, 19)} load ${l} ${mode} ${d}: ${m.wall}/s wall, ${m.cpu}/s per CPU s (user ${m.user} ms, sys ${m.sys} ms, ${txs.length} events) state ${m.hash}`);
  }
}

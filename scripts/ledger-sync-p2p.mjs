#!/usr/bin/env node
/**
 * The ledger sync through the node's real network layer (issue 11 §4, ledger_events_per_s on a real node): a
 * LedgerService pulls N transfers from a serving ledger through LedgerP2PNetwork (protocols/ledger-sync.ts: the
 * ledger-range RPC, its request/response codec and its page checks: decode, canonical order, cursor) over the
 * in-memory P2P network (p2p/memory.ts; no sockets), with the service's verify pool as on a node. The bench's own
 * sync (src/ledger/bench.ts benchLedgerSync) answers from memory without LedgerP2PNetwork, so it cannot show what
 * that layer's checks cost.
 *
 *   node scripts/ledger-sync-p2p.mjs [--events 20000] [--threads N] [--runs 3] [--dist dist]
 *
 * Prints per run: events per wall second, per CPU second (the process: both ledgers, both RPC ends, the workers)
 * and the event loop's CPU µs per event (the serving side's work is on the same loop). `--dist` points at another
 * build (A/B against an older commit's dist/).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '20000' },
    threads: { type: 'string' },
    runs: { type: 'string', default: '3' },
    dist: { type: 'string', default: 'dist' },
  },
});
const dist = pathToFileURL(resolve(values.dist)).href;
const load = (p) => import(`${dist}/src/${p}`);
const [{ ledgerBenchEvents }, { Ledger }, { LedgerService }, { defaultVerifyThreads }, { localHolderRecordVerifier }, { MemoryHub }, { RpcNode }, { LedgerP2PNetwork }] = await Promise.all([
  load('ledger/bench.js'),
  load('ledger/ledger.js'),
  load('ledger/service.js'),
  load('ledger/verify-pool.js'),
  load('ledger/holder.js'),
  load('p2p/memory.js'),
  load('protocols/rpc/service.js'),
  load('protocols/ledger-sync.js'),
]);

const NET = 'bench-net'; // src/ledger/bench.ts's network and model
const LAYERS = 16;
const T0 = 1_704_067_200_000;
const n = Number(values.events);
const threads = values.threads === undefined ? defaultVerifyThreads() : Number(values.threads);

function threadCpuMs() {
  const f = readFileSync('/proc/thread-self/stat', 'utf8');
  const s = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(s[11]) + Number(s[12])) * 10;
}

async function peer(hub, name) {
  const p2p = hub.createNode(name);
  await p2p.start();
  const rpc = new RpcNode({ network: p2p, networkId: NET });
  const net = new LedgerP2PNetwork({ p2p, rpc, networkId: NET, verify: { networkId: NET, modelLayers: LAYERS, holderVerifier: localHolderRecordVerifier } });
  await net.start();
  return { p2p, rpc, net };
}

const { funding, txs } = ledgerBenchEvents(n);
const dir = mkdtempSync(join(tmpdir(), 'neuroshard-sync-p2p-'));
try {
  const source = new Ledger({ path: join(dir, 'source.db'), networkId: NET, modelLayers: LAYERS });
  source.ingestMany(funding);
  for (let i = 0; i < txs.length; i += 2048) source.ingestMany(txs.slice(i, i + 2048));
  for (let run = 0; run < Number(values.runs); run++) {
    const hub = new MemoryHub();
    const a = await peer(hub, `serving-${run}`);
    const b = await peer(hub, `syncing-${run}`);
    a.net.serve(source.syncHandler());
    const ledger = new Ledger({ path: join(dir, `sync-${run}.db`), networkId: NET, modelLayers: LAYERS });
    ledger.ingestMany(funding);
    const nowMs = T0 + 660_000 + txs.length;
    const service = new LedgerService({ ledger, network: b.net, clock: { now: () => nowMs }, verifyThreads: threads, syncBudget: { maxPages: Number.MAX_SAFE_INTEGER } });
    const start = performance.now();
    const cpu0 = process.cpuUsage();
    const loop0 = threadCpuMs();
    const r = await service.syncFrom(`serving-${run}`, { fromStart: true });
    const ms = performance.now() - start;
    const c = process.cpuUsage(cpu0);
    const loopMs = threadCpuMs() - loop0;
    if (!r.complete || r.added !== txs.length) throw new Error(`synced ${r.added} of ${txs.length} (complete ${r.complete})`);
    if (ledger.stateHash() !== source.stateHash()) throw new Error('state hashes differ after the sync');
    console.log(
      JSON.stringify({
        events: txs.length,
        threads,
        per_s: Math.round((txs.length * 1000) / ms),
        per_cpu_s: Math.round(txs.length / ((c.user + c.system) / 1e6)),
        loop_us_per_event: Math.round((loopMs * 1000) / txs.length),
        pooled_pages: service.pooledPages,
      }),
    );
    service.stop();
    await service.closed();
    ledger.close();
    await a.net.stop();
    await b.net.stop();
    await a.p2p.stop();
    await b.p2p.stop();
  }
  source.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Child process of sync-crash.test.ts: syncs `<db>` from a peer that serves the source ledger `<source>` (opened
 * read-only) through LedgerService.syncFrom, with the default batched commits (LEDGER_SYNC_LIMITS.commitPages pages
 * per SQLite transaction). Prints "fetch <n>" as page request n arrives; request `hangAt` is never answered, so the
 * parent can SIGKILL it mid-fetch at a known place; "stored <n>" after each 512 events stored. Prints "done <events>"
 * when the sync completes.
 */
import { Ledger } from '../../../src/ledger/ledger.js';
import { LedgerService } from '../../../src/ledger/service.js';
import type { LedgerNetwork } from '../../../src/ledger/interfaces.js';

const [db, sourcePath, networkId, layers, nowMs, hangAt] = process.argv.slice(2);
const source = new Ledger({ path: sourcePath!, networkId: networkId!, modelLayers: Number(layers), readonly: true });
const serve = source.syncHandler();
let calls = 0;
const peer: LedgerNetwork = {
  publish: () => Promise.resolve(),
  subscribe: () => () => {},
  syncPeers: () => ['source'],
  fetchRange: (_p, after, limit) => {
    const call = ++calls;
    process.stdout.write(`fetch ${call}\n`);
    if (call === Number(hangAt)) return new Promise<Uint8Array[]>(() => {}); // the parent kills us while we wait
    const page = serve.range(after, limit);
    return new Promise((resolve) => setImmediate(() => resolve(page)));
  },
  fetchByIds: () => Promise.resolve([]),
  serve: () => () => {},
};
const keepAlive = setInterval(() => {}, 1000); // a fetch that never answers leaves nothing else pending
const ledger = new Ledger({ path: db!, networkId: networkId!, modelLayers: Number(layers) });
const service = new LedgerService({ ledger, network: peer, clock: { now: () => Number(nowMs) }, verifyThreads: 0 });
// "stored <n>" after each committed batch (its results are emitted once its transaction committed)
let stored = 0;
service.on('ledger:ingested', () => {
  if (++stored % 512 === 0) process.stdout.write(`stored ${stored}\n`);
});
const r = await service.syncFrom('source');
process.stdout.write(`done ${r.added} ${r.complete}\n`);
service.stop();
ledger.close();
source.close();
clearInterval(keepAlive);

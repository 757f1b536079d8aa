/**
 * Crash safety of batched sync commits (LEDGER_SYNC_LIMITS.commitPages sync pages per SQLite transaction): a process
 * syncing from a peer is killed with SIGKILL while it waits for a page, with pages fetched and not yet stored. The
 * database it leaves holds exactly the pages of its committed transactions (nothing of a batch half-applied: the
 * persisted state is that of exactly those events, and equals a replay of them), and a restarted sync completes to
 * the source's state hash.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { decodeEvent, orderKey } from '../../../src/ledger/events.js';
import { LEDGER_SYNC_LIMITS } from '../../../src/ledger/interfaces.js';
import { Ledger } from '../../../src/ledger/ledger.js';
import { LedgerService } from '../../../src/ledger/service.js';
import type { LedgerNetwork } from '../../../src/ledger/interfaces.js';
import { tempDir } from '../../utils/paths.js';
import { generateTraffic, GEN_LAYERS } from './generate.js';
import { NET, T0 } from './helpers.js';

const here = fileURLToPath(import.meta.url);
const fromSource = here.endsWith('.ts');
const child = here.replace(/sync-crash\.test\.(ts|js)$/, `sync-crash-child.$1`);
const PAGE = LEDGER_SYNC_LIMITS.maxRange;
const BATCH = LEDGER_SYNC_LIMITS.commitPages;

/**
 * Runs the child until it has printed `fetch <killAt>` and stored `storedAt` events (then SIGKILLs its process group)
 * or finishes.
 */
function runChild(args: string[], killAt: number, storedAt = 0): Promise<{ fetches: number; killed: boolean; done?: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [...(fromSource ? ['--import', 'tsx'] : []), child, ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let fetches = 0;
    let stored = 0;
    let killed = false;
    let done: string | undefined;
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    createInterface({ input: p.stdout }).on('line', (line) => {
      const m = /^fetch (\d+)$/.exec(line);
      const st = /^stored (\d+)$/.exec(line);
      if (m !== null) fetches = Number(m[1]);
      else if (st !== null) stored = Number(st[1]);
      else if (line.startsWith('done ')) done = line.slice(5);
      if (fetches === killAt && stored >= storedAt && !killed) {
        killed = true;
        process.kill(-p.pid!, 'SIGKILL');
      }
    });
    p.on('error', reject);
    p.on('close', (code, signal) => {
      if (signal !== 'SIGKILL' && code !== 0) reject(new Error(`child exited ${code}: ${stderr}`));
      else resolve({ fetches, killed, ...(done !== undefined ? { done } : {}) });
    });
  });
}

/** A peer serving `source`'s sync pages in process. */
function peerOf(source: Ledger): LedgerNetwork {
  const serve = source.syncHandler();
  return {
    publish: () => Promise.resolve(),
    subscribe: () => () => {},
    syncPeers: () => ['source'],
    fetchRange: (_p, after, limit) => Promise.resolve(serve.range(after, limit)),
    fetchByIds: () => Promise.resolve([]),
    serve: () => () => {},
  };
}

describe('sync crash safety (batched commits)', () => {
  it('a sync SIGKILLed mid-fetch leaves only whole committed batches, and a restart reaches the source state hash', async () => {
    const t = tempDir('neuroshard-sync-crash-');
    try {
      const sourcePath = join(t.dir, 'source.db');
      const source = await syncedSource(t.dir, sourcePath, 3200, 515);
      const served: Uint8Array[] = [];
      for (let after: Uint8Array | null = null; ; ) {
        const page = source.syncHandler().range(after, PAGE);
        if (page.length === 0) break;
        served.push(...page);
        const last = decodeEvent(page[page.length - 1]!);
        after = orderKey(last.timestampMs, last.id);
      }
      const want = source.status();
      source.close();
      const pages = Math.ceil(served.length / PAGE);
      assert.ok(pages >= BATCH + 2, `the source serves ${pages} pages: enough for a committed batch and held pages after it`);
      const nowMs = NOW_MS;

      // Killed while waiting for page BATCH + 2: pages 1..BATCH are one committed transaction, page BATCH + 1 is
      // fetched and held, not stored.
      const db = join(t.dir, 'target.db');
      const args = [db, sourcePath, NET, String(GEN_LAYERS), String(nowMs)];
      // (killed once the batch is stored: the sync stores it after waiting briefly for the pages it fetched ahead)
      const run = await runChild([...args, String(BATCH + 2)], BATCH + 2, BATCH * PAGE);
      assert.ok(run.killed && run.done === undefined, 'the child was killed before it finished');

      // What the killed process left: exactly the events of its committed batch, applied as a whole.
      const left = new Ledger({ path: db, networkId: NET, modelLayers: GEN_LAYERS });
      const ref = new Ledger({ path: join(t.dir, 'ref.db'), networkId: NET, modelLayers: GEN_LAYERS });
      try {
        ref.ingestMany(served.slice(0, BATCH * PAGE), { ingress: 'sync', nowMs, deferReplay: true });
        ref.flushReplay();
        assert.equal(left.status().replayPending, false);
        assert.deepEqual(left.status(), ref.status(), 'the committed batch, and nothing of the held page: the state of exactly those events');
        assert.equal(left.replayHash(), left.stateHash(), 'the persisted state equals a replay of the stored events');
        assert.equal(left.supplyGap(), 0n);
      } finally {
        left.close();
        ref.close();
      }

      // Restarted (another child that is not killed): it completes, to the source's state.
      const again = await runChild([...args, '0'], -1);
      assert.ok(again.done?.endsWith(' true'), `the restarted sync completes (${again.done})`);
      const final = new Ledger({ path: db, networkId: NET, modelLayers: GEN_LAYERS, readonly: true });
      try {
        const s = final.status();
        assert.equal(s.stateHash, want.stateHash, 'state hash equals the source');
        assert.equal(servedCount(final), served.length);
        assert.equal(s.replayPending, false);
      } finally {
        final.close();
      }
    } finally {
      t.cleanup();
    }
  });

  it('stores commitPages pages per transaction, fewer when the held bytes reach the bound', async () => {
    const t = tempDir('neuroshard-sync-batch-');
    try {
      const source = await syncedSource(t.dir, join(t.dir, 'source.db'), 2400, 616);
      const nowMs = NOW_MS;
      const batches = async (name: string, o: { syncCommitPages?: number; syncMaxHeldBytes?: number }): Promise<{ sizes: number[]; hash: string }> => {
        const ledger = new Ledger({ path: join(t.dir, `${name}.db`), networkId: NET, modelLayers: GEN_LAYERS });
        const sizes: number[] = [];
        const ingestMany = ledger.ingestMany.bind(ledger);
        ledger.ingestMany = (list, opts) => {
          sizes.push(list.length);
          return ingestMany(list, opts);
        };
        const service = new LedgerService({ ledger, network: peerOf(source), clock: { now: () => nowMs }, verifyThreads: 0, ...o });
        try {
          const r = await service.syncFrom('source');
          assert.equal(r.complete, true);
          return { sizes, hash: ledger.stateHash() };
        } finally {
          service.stop();
          ledger.close();
        }
      };
      const total = servedCount(source);
      const pages = Math.ceil(total / PAGE);
      const split = (per: number): number[] => {
        const out: number[] = [];
        for (let i = 0; i < pages; i += per) out.push(Math.min(per * PAGE, total - i * PAGE));
        return out;
      };
      const batched = await batches('batched', {});
      assert.deepEqual(batched.sizes, split(BATCH), `${BATCH} pages per transaction`);
      const single = await batches('single', { syncCommitPages: 1 });
      assert.deepEqual(single.sizes, split(1));
      const bounded = await batches('bounded', { syncMaxHeldBytes: PAGE * LEDGER_SYNC_LIMITS.heldEventBytes });
      assert.deepEqual(bounded.sizes, split(1), 'a page reaches the held-bytes bound: stored alone');
      assert.equal(batched.hash, source.stateHash());
      assert.equal(single.hash, source.stateHash());
      assert.equal(bounded.hash, source.stateHash());
      source.close();
    } finally {
      t.cleanup();
    }
  });
});

const NOW_MS = T0 + 30 * 86_400_000; // after every generated event; nothing watched, so no admission refusal

/**
 * The source: a node that took generated traffic (valid, rejected, void, garbage) by sync, one page per transaction,
 * from a node that took it locally, so that it holds what a syncing node keeps and a sync from it is a fixed point.
 */
async function syncedSource(dir: string, path: string, total: number, seed: number): Promise<Ledger> {
  const raw = new Ledger({ path: join(dir, 'raw.db'), networkId: NET, modelLayers: GEN_LAYERS });
  raw.ingestMany(generateTraffic(total, seed).events);
  const source = new Ledger({ path, networkId: NET, modelLayers: GEN_LAYERS });
  const service = new LedgerService({ ledger: source, network: peerOf(raw), clock: { now: () => NOW_MS }, verifyThreads: 0, syncCommitPages: 1 });
  try {
    assert.equal((await service.syncFrom('raw')).complete, true);
  } finally {
    service.stop();
    raw.close();
  }
  return source;
}

/** Events a ledger serves (applied and void). */
function servedCount(l: Ledger): number {
  const s = l.status();
  return s.applied + s.void;
}

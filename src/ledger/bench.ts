/**
 * Benchmarks for `npm run bench` (issue 11 §4: proof_verify_per_s, ledger_events_per_s, state_hash_ms,
 * checkpoint_verify_ms, snapshot_sync_s). All but the sync (benchLedgerSync, whose verify pool runs worker threads)
 * run synchronously on the calling thread, so they measure one core; the *_cpu_* keys divide by the process's CPU
 * time instead of the wall clock (what the work costs a core when the machine is shared).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { accountIdFromPublicKey, keyFromPrivate, verifyBackend, type NodeKey } from '../identity/index.js';
import { sha256, toHex } from '../util/bytes.js';
import { checkpointHash, MAX_COMMITTEE, signCheckpoint, verifyCheckpoint, ZERO_HASH, type CheckpointBody } from './checkpoint.js';
import { NEURO } from './amount.js';
import { buildProof, buildTransfer } from './build.js';
import { compareBytes, decodeEvent, orderKey } from './events.js';
import { localHolderRecordVerifier, signEmbeddedHolderRecord, type EmbeddedHolderRecord } from './holder.js';
import { Ledger } from './ledger.js';
import { LEDGER_SYNC_LIMITS, type LedgerNetwork } from './interfaces.js';
import { LedgerService } from './service.js';
import { EMPTY_ACCOUNT, LedgerState } from './state.js';
import { clearEventVerdicts, clearHolderRecordVerdicts, verifyEvent } from './verify.js';
import { defaultVerifyThreads } from './verify-pool.js';

const NET = 'bench-net';
const LAYERS = 16;
const T0 = 1_704_067_200_000;

function key(i: number): NodeKey {
  return keyFromPrivate(sha256(`neuroshard bench key ${i}`));
}

function benchRecord(k: NodeKey, ts: number, lifetimeMs = 65_000): EmbeddedHolderRecord {
  return signEmbeddedHolderRecord(k, {
    networkId: NET,
    multiaddrs: ['/ip4/192.0.2.1/tcp/9000', '/ip4/192.0.2.1/tcp/9001/ws'],
    span: { start: 0, end: LAYERS },
    capacity: { memoryMb: 8192, tokensPerSec: 200 },
    timestampMs: ts - 5000,
    expiresMs: ts - 5000 + lifetimeMs,
  });
}

function proofBytes(k: NodeKey, ts: number, rec = benchRecord(k, ts)): Uint8Array {
  return buildProof(k, { networkId: NET, nonce: BigInt(Math.floor(ts / 60_000)), timestampMs: ts }, {
    uptimeMs: 60_000,
    inferenceTokens: 10_000n,
    trainingTokens: 40_960n,
    dataSamples: 100n,
    modelHashBefore: sha256('before'),
    modelHashAfter: sha256('after'),
    gradientCommitment: sha256('commitment'),
    lossMicro: 2_500_000n,
    holderRecord: rec,
  }).bytes;
}

/**
 * Full stateless verification of Proof-of-Neural-Work events per second: decode, event signature, embedded
 * HolderRecord signature and every field rule. 64 signers (their key objects cached, as on a node) send one proof
 * per 60 s window for 6 windows, all distinct events in time order. A node embeds its current HolderRecord, which it
 * re-signs when it republishes it to the DHT (every 3 minutes), so a record is shared by `proofsPerRecord`
 * consecutive proofs of its node (3 by default; 1 is the worst case, every proof bringing a record never seen).
 * The record verdict cache is emptied before each pass over the 384 proofs, so each record is verified once per
 * pass, as it would be once in the life of a node.
 */
export function benchProofVerify(durationMs = 1500, proofsPerRecord = 3): number {
  return benchProofVerifyCpu(durationMs, proofsPerRecord).wall;
}

/**
 * Process CPU seconds of a synchronous function: on a machine shared with other work the wall clock measures the
 * share of a core this process got, the CPU time what the work costs on one core (both are reported).
 */
function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** benchProofVerify's figure per wall second and per CPU second. */
export function benchProofVerifyCpu(durationMs = 1500, proofsPerRecord = 3): { wall: number; cpu: number } {
  const verifier = { verifySignature: (r: EmbeddedHolderRecord) => localHolderRecordVerifier.verifySignature(r) };
  const cfg = { networkId: NET, modelLayers: LAYERS, holderVerifier: verifier };
  const WINDOWS = 6;
  const proofs: Uint8Array[] = [];
  const keys = Array.from({ length: 64 }, (_, i) => key(i));
  const records = new Map<NodeKey, EmbeddedHolderRecord>();
  for (let w = 0; w < WINDOWS; w++) {
    for (const [i, k] of keys.entries()) {
      const ts = T0 + w * 60_000 + i * 100;
      if (w % proofsPerRecord === 0) records.set(k, benchRecord(k, ts, proofsPerRecord * 60_000 + 5000));
      proofs.push(proofBytes(k, ts, records.get(k)));
    }
  }
  const pass = (): void => {
    clearHolderRecordVerdicts(verifier);
    clearEventVerdicts(); // every pass verifies every event signature again
    for (const p of proofs) if (verifyEvent(decodeEvent(p), cfg) !== null) throw new Error('bench proof invalid');
  };
  pass(); // warm-up: JIT and the key objects
  let n = 0;
  const start = performance.now();
  const cpu0 = cpuSeconds();
  let now = start;
  while (now - start < durationMs) {
    pass();
    n += proofs.length;
    now = performance.now();
  }
  return { wall: Math.round((n * 1000) / (now - start)), cpu: Math.round(n / (cpuSeconds() - cpu0)) };
}

/**
 * Ledger events ingested per second end to end: decode, duplicate check, signature and field verification, SQLite
 * insert, state transition and commit, one transaction per event (WAL, synchronous=NORMAL), on transfers between
 * 32 funded accounts.
 */
export function benchLedgerApply(events = 3000, batch = 1): number {
  return benchLedgerApplyCpu(events, batch).wall;
}

/**
 * benchLedgerApply's figure per wall second and per CPU second. `admitted`: the events' signatures were verified
 * before the timed ingest, as a node's gossip validator does at admission (the ledger then takes the cached verdict,
 * verify.ts); otherwise every event's signature is verified once inside the timed part. `asSync`: each batch is
 * taken exactly as a node takes a sync page (LedgerService.syncFrom, node/ledger.ts's tail sync):
 * `ingestMany(page, { ingress: 'sync', nowMs, deferReplay: true })`, so with the sync admission rule, the disk
 * quota check and the state precheck of network events; otherwise as a trusted local caller (no admission rule).
 */
export function benchLedgerApplyCpu(events = 3000, batch = 1, admitted = false, asSync = false): { wall: number; cpu: number } {
  const { dir, ledger, txs } = ledgerBenchSetup(events);
  try {
    clearEventVerdicts();
    if (admitted) for (const t of txs) if (verifyEvent(decodeEvent(t), { networkId: NET, modelLayers: LAYERS, holderVerifier: localHolderRecordVerifier }) !== null) throw new Error('bench transfer invalid');
    // the node's clock a minute after the last transfer (ledgerBenchSetup dates them T0 + 600 s + i ms)
    const opts = asSync ? ({ ingress: 'sync', nowMs: T0 + 660_000 + events, deferReplay: true } as const) : {};
    const start = performance.now();
    const cpu0 = cpuSeconds();
    for (let i = 0; i < txs.length; i += batch) {
      for (const r of ledger.ingestMany(txs.slice(i, i + batch), opts)) if (r.status !== 'applied') throw new Error(`bench transfer not applied: ${r.status} ${r.reason}`);
    }
    if (ledger.status().replayPending) throw new Error('bench ingest left a replay pending');
    const ms = performance.now() - start;
    const cpu = cpuSeconds() - cpu0;
    ledger.close();
    return { wall: Math.round((txs.length * 1000) / ms), cpu: Math.round(txs.length / cpu) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The node's real sync path (ledger_events_per_s): LedgerService.syncFrom pulling `events` transfers from a peer,
 * page by page (512), with the service's own signature verify pool (`threads` workers, started lazily by the first
 * page, inside the timed part, as on a node; 0 = signatures on the event loop): the next pages (up to
 * LEDGER_SYNC_LIMITS.aheadPages) are fetched and checked on the workers while the pages before them are ingested (ingestMany with ingress 'sync', deferred replay, the admission rule, the
 * disk quota and the state precheck), then the sync's closing replay flush. The peer answers from memory (its
 * pages precomputed, each answer a copy delivered on a later turn of the event loop, as a network reply arrives), so
 * only the syncing node's work is timed; `cpu` counts this process's threads, workers included.
 */
export async function benchLedgerSync(events = 3000, threads = defaultVerifyThreads()): Promise<LedgerSyncFigures> {
  const { funding, txs } = ledgerBenchEvents(events);
  return benchLedgerSyncOf(funding, txs, threads);
}

/** benchLedgerSync's figures: events per wall second, per CPU second (all threads), and the event loop's CPU µs per event. */
export interface LedgerSyncFigures {
  wall: number;
  cpu: number;
  threads: number;
  /** CPU µs per event on the event loop's thread alone (decode, admission, SQLite, state): the pipeline's serial stage. */
  loopUs: number;
  /** Pages whose signatures the pool checked (the others, while its workers started, were checked at ingest). */
  pooledPages: number;
}

/** CPU milliseconds of the calling thread (Linux: /proc/thread-self/stat, 10 ms ticks; elsewhere NaN). */
function threadCpuMs(): number {
  try {
    const f = readFileSync('/proc/thread-self/stat', 'utf8');
    const s = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(s[11]) + Number(s[12])) * 10;
  } catch {
    return Number.NaN;
  }
}

/**
 * benchLedgerSync of given events (wire bytes): `funding` ingested before the timed part, `txs` synced. Exported so
 * that events made elsewhere (a cache, another build) are synced by exactly the bench's code.
 */
export async function benchLedgerSyncOf(funding: Uint8Array[], txs: readonly Uint8Array[], threads = defaultVerifyThreads()): Promise<LedgerSyncFigures> {
  const { dir, ledger } = ledgerBenchLedger(funding);
  const keys = txs.map((t) => {
    const e = decodeEvent(t);
    return orderKey(e.timestampMs, e.id);
  });
  const firstAfter = (after: Uint8Array | null): number => {
    if (after === null) return 0;
    let lo = 0;
    let hi = keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compareBytes(keys[mid]!, after) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const peer: LedgerNetwork = {
    publish: () => Promise.resolve(),
    subscribe: () => () => {},
    syncPeers: () => ['peer'],
    fetchRange: (_p, after, limit) => {
      const i = firstAfter(after);
      const page = txs.slice(i, i + limit).map((b) => b.slice());
      return new Promise((resolve) => setImmediate(() => resolve(page)));
    },
    fetchByIds: () => Promise.resolve([]),
    serve: () => () => {},
  };
  const nowMs = T0 + 660_000 + txs.length;
  const service = new LedgerService({ ledger, network: peer, clock: { now: () => nowMs }, verifyThreads: threads, syncBudget: { maxPages: Number.MAX_SAFE_INTEGER } });
  try {
    clearEventVerdicts();
    const start = performance.now();
    const cpu0 = cpuSeconds();
    const loop0 = threadCpuMs();
    const r = await service.syncFrom('peer', { fromStart: true });
    const ms = performance.now() - start;
    const cpu = cpuSeconds() - cpu0;
    const loopMs = threadCpuMs() - loop0;
    if (!r.complete || r.added !== txs.length) throw new Error(`bench sync took ${r.added} of ${txs.length} events (complete: ${r.complete})`);
    if (ledger.status().replayPending) throw new Error('bench sync left a replay pending');
    return { wall: Math.round((txs.length * 1000) / ms), cpu: Math.round(txs.length / cpu), threads, loopUs: Math.round((loopMs * 1000) / txs.length), pooledPages: service.pooledPages };
  } finally {
    service.stop();
    await service.closed();
    ledger.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The bench's events: 4 windows of proofs funding 32 accounts, then `events` transfers between them (wire bytes). */
export function ledgerBenchEvents(events: number): { funding: Uint8Array[]; txs: Uint8Array[] } {
  const keys = Array.from({ length: 32 }, (_, i) => key(i));
  // Fund each account with proofs (rewards), one window apart.
  const funding: Uint8Array[] = [];
  for (let w = 0; w < 4; w++) for (const k of keys) funding.push(proofBytes(k, T0 + w * 60_000));
  const txs: Uint8Array[] = [];
  for (let i = 0; i < events; i++) {
    const from = keys[i % keys.length]!;
    const to = keys[(i * 7 + 3) % keys.length]!;
    if (from === to) continue;
    txs.push(buildTransfer(from, { networkId: NET, nonce: BigInt(i), timestampMs: T0 + 600_000 + i }, accountIdFromPublicKey(to.publicKey), NEURO / 1_000_000n).bytes);
  }
  return { funding, txs };
}

/** A fresh ledger in a temporary folder with `funding` ingested. */
function ledgerBenchLedger(funding: Uint8Array[]): { dir: string; ledger: Ledger } {
  const dir = mkdtempSync(join(tmpdir(), 'neuroshard-bench-ledger-'));
  const ledger = new Ledger({ path: join(dir, 'ledger.db'), networkId: NET, modelLayers: LAYERS });
  ledger.ingestMany(funding);
  return { dir, ledger };
}

/** A ledger with 32 funded accounts and `events` transfers between them (not yet ingested). */
function ledgerBenchSetup(events: number): { dir: string; ledger: Ledger; txs: Uint8Array[] } {
  const { funding, txs } = ledgerBenchEvents(events);
  return { ...ledgerBenchLedger(funding), txs };
}

/**
 * The state hash at `rows` account rows (issue 11 §4 state_hash_ms): milliseconds to change one row and read the
 * hash, averaged over 1,000 changes (the LtHash is incremental, so this does not grow with the rows). Building the
 * state is not timed.
 */
export function benchStateHash(rows = 1_000_000): number {
  const s = new LedgerState();
  for (let i = 0; i < rows; i++) s.setAccount(i.toString(16).padStart(40, '0'), { ...EMPTY_ACCOUNT, balance: BigInt(i + 1) });
  s.hash();
  const n = 1000;
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const id = ((i * 7919) % rows).toString(16).padStart(40, '0');
    s.setAccount(id, { ...s.account(id), balance: s.account(id).balance + 1n });
    s.hash();
  }
  return (performance.now() - start) / n;
}

/**
 * checkpoint_verify_ms (issue 11 §3): milliseconds to verify one checkpoint signed by a full committee
 * (MAX_COMMITTEE members, each a signature check), against the previous checkpoint's committee.
 */
export function benchCheckpointVerify(rounds = 5): number {
  const keys = Array.from({ length: MAX_COMMITTEE }, (_, i) => key(10_000 + i));
  const committee = keys.map((k) => ({ account: toHex(accountIdFromPublicKey(k.publicKey)), stake: NEURO }));
  const prev: CheckpointBody = { networkId: NET, seq: 1, cutMs: T0, height: 0, stateHash: ZERO_HASH, eventsRoot: ZERO_HASH, prev: ZERO_HASH, committee };
  const body: CheckpointBody = { ...prev, seq: 2, cutMs: T0 + 300_000, prev: checkpointHash(prev) };
  const cp = { body, sigs: keys.map((k) => signCheckpoint(k, body)) };
  const start = performance.now();
  for (let i = 0; i < rounds; i++) if (verifyCheckpoint(cp, prev, [], NET) !== null) throw new Error('bench checkpoint does not verify');
  return (performance.now() - start) / rounds;
}

/**
 * snapshot_sync_s (issue 11 §3): seconds for a new ledger to take a checkpoint's snapshot of `rows` account rows:
 * the serving ledger's pages (2,048 rows, as ledger-snapshot serves them), the hash and committee recomputed from
 * the rows, and the install. In process: the network transfer of the rows (about 150 bytes each) is not included.
 */
export function benchSnapshotSync(rows = 200_000): number {
  return benchSnapshotSyncCpu(rows).wall;
}

/** benchSnapshotSync's seconds of wall clock and of CPU. */
export function benchSnapshotSyncCpu(rows = 200_000): { wall: number; cpu: number } {
  const dir = mkdtempSync(join(tmpdir(), 'neuroshard-bench-snap-'));
  try {
    const state = new LedgerState();
    for (let i = 0; i < rows; i++) state.setAccount(i.toString(16).padStart(40, '0'), { ...EMPTY_ACCOUNT, balance: BigInt(i + 1) });
    const body: CheckpointBody = { networkId: NET, seq: 1, cutMs: T0, height: 0, stateHash: state.hash(), eventsRoot: ZERO_HASH, prev: ZERO_HASH, committee: [] };
    const cp = { body, sigs: [] };
    const src = new Ledger({ path: join(dir, 'src.db'), networkId: NET, modelLayers: 8 });
    if (src.installSnapshot(cp, state.rows()) !== 'installed') throw new Error('bench snapshot refused');
    const dst = new Ledger({ path: join(dir, 'dst.db'), networkId: NET, modelLayers: 8 });
    const start = performance.now();
    const cpu0 = cpuSeconds();
    const got: [string, string][] = [];
    for (let after = ''; ; ) {
      const page = src.snapshotPage(1, after, 2048)!;
      if (page.length === 0) break;
      got.push(...page);
      after = page[page.length - 1]![0];
    }
    if (dst.installSnapshot(cp, got) !== 'installed') throw new Error('bench snapshot refused');
    const s = (performance.now() - start) / 1000;
    const cpu = cpuSeconds() - cpu0;
    src.close();
    dst.close();
    return { wall: s, cpu };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The `npm run bench` section (scripts/bench.mjs discovers `benchSections` in any compiled `src/<area>/bench.js`).
 * Structural, since ledger/ may not import the bench types of compute/.
 */
export const benchSections = [
  {
    name: 'ledger',
    keys: [
      'proof_verify_per_s',
      'proof_verify_per_cpu_s',
      'ledger_events_per_s',
      'ledger_events_per_cpu_s',
      'ledger_events_per_s_single',
      'ledger_events_admitted_per_s',
      'ledger_events_admitted_per_cpu_s',
      'ledger_events_inline_per_s',
      'ledger_events_inline_per_cpu_s',
      'state_hash_ms',
      'checkpoint_verify_ms',
      'snapshot_sync_s',
      'snapshot_sync_cpu_s',
    ],
    async run({ quick, log }: { quick: boolean; log: (s: string) => void }): Promise<Record<string, number>> {
      log(`signature verification: ${verifyBackend}`);
      const verify = benchProofVerifyCpu(quick ? 200 : 4000);
      log(`proof verifications: ${verify.wall}/s of wall clock, ${verify.cpu}/s per CPU second, one core (3 consecutive proofs per embedded HolderRecord)`);
      const single = Math.round(benchLedgerApply(quick ? 300 : 3000));
      log(`ledger events applied: ${single}/s on one core (one SQLite transaction per event, WAL)`);
      const page = LEDGER_SYNC_LIMITS.maxRange;
      const n = quick ? 1000 : 20_000;
      const synced = await benchLedgerSync(n);
      log(`ledger events synced: ${synced.wall}/s of wall clock, ${synced.cpu}/s per CPU second (the node's sync path: LedgerService.syncFrom, pages of ${page} fetched up to ${LEDGER_SYNC_LIMITS.aheadPages} ahead and their signatures checked on ${synced.threads} worker thread(s) of the service's verify pool while the pages before them are stored; CPU counts the workers; transfers between 32 funded accounts)`);
      log(`  event loop ${synced.loopUs} µs CPU per event; ${synced.pooledPages} of ${Math.ceil(n / page)} pages checked by the pool (the rest at ingest while its worker started)`);
      const inline = await benchLedgerSync(n, 0);
      log(`ledger events synced without the pool: ${inline.wall}/s of wall clock, ${inline.cpu}/s per CPU second (the same sync, every signature checked on the event loop at ingest)`);
      const admitted = benchLedgerApplyCpu(n, page, true);
      log(`ledger events applied after admission: ${admitted.wall}/s of wall clock, ${admitted.cpu}/s per CPU second (batches of ${page} from a local caller, signatures verified before the timed part: the ingest alone)`);
      const rows = quick ? 100_000 : 1_000_000;
      const hashMs = benchStateHash(rows);
      log(`state hash after one row change at ${rows} rows: ${hashMs.toFixed(3)} ms (incremental LtHash)`);
      const cpMs = benchCheckpointVerify(quick ? 2 : 5);
      log(`checkpoint verification: ${cpMs.toFixed(1)} ms (a full committee of ${MAX_COMMITTEE} signatures)`);
      const snapRows = quick ? 20_000 : Number(process.env.NEUROSHARD_BENCH_SNAPSHOT_ROWS ?? 1_000_000);
      const snap = benchSnapshotSyncCpu(snapRows);
      log(`snapshot sync: ${snap.wall.toFixed(2)} s (${snap.cpu.toFixed(2)} CPU s) for ${snapRows} state rows (paged, hash and committee recomputed, installed; in process)`);
      return {
        proof_verify_per_s: verify.wall,
        proof_verify_per_cpu_s: verify.cpu,
        ledger_events_per_s: synced.wall,
        ledger_events_per_cpu_s: synced.cpu,
        ledger_events_per_s_single: single,
        ledger_events_admitted_per_s: admitted.wall,
        ledger_events_admitted_per_cpu_s: admitted.cpu,
        ledger_events_inline_per_s: inline.wall,
        ledger_events_inline_per_cpu_s: inline.cpu,
        state_hash_ms: Math.round(hashMs * 1000) / 1000,
        checkpoint_verify_ms: Math.round(cpMs * 100) / 100,
        snapshot_sync_s: Math.round(snap.wall * 100) / 100,
        snapshot_sync_cpu_s: Math.round(snap.cpu * 100) / 100,
      };
    },
  },
];

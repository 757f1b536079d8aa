/**
 * The node's ledger, composed: the NEURO ledger (src/ledger/) on the real network (src/protocols/ledger-sync.ts),
 * reconciliation with peers, and the node's own Proof of Neural Work.
 *
 *   const l = await startNodeLedgerService({ network, key, dataDir, networkId, modelLayers, counters });
 *   l.status();        // ledger totals and state hash, proof and sync figures (bigints: format before JSON)
 *   await l.stop();    // before network.stop()
 *
 * `network` is the NodeNetwork of node/network.ts (anything with its p2p, rpc, scores and genesis). Starting it:
 *   1. registers the ledger gossip validator and the sync RPCs (ledger-range, ledger-by-ids, ledger-status);
 *   2. opens `<dataDir>/ledger.db`, starts the LedgerService (gossip, sync serving, the wallet outbox, which it
 *      publishes now and polls after) and syncs from the peers connected now;
 *   3. reconciles with every peer that connects later (ledger-status first: a full sync only from a peer whose
 *      state hash differs), and every `resyncMs` compares with one random peer and pulls its last `tailSyncMs` of
 *      events when they differ (gossip lost in a partition). Syncs run one at a time; a peer that serves events
 *      failing stateless verification loses score;
 *   4. emits one proof per 60 s ledger window (PROOF_WINDOW_MS; the ledger accepts one per node and window), at
 *      `proofOffsetMs` into the window, carrying the work done since the previous proof from `counters`.
 *
 * Proofs. Uptime is the time since the previous proof (at most one window). Work counters are cumulative; a proof
 * claims their growth since the previous proof, cut to the ledger's per-second caps (the excess is not carried
 * over). Training is claimed only when it is provable: at least 10 s of uptime, a positive loss and a model hash
 * that changed since the previous proof (modelHashBefore = the hash at the previous proof, modelHashAfter = one read
 * from the worker right after the counters: ledger/work.ts freshWork);
 * the gradient commitment is the trainer's, or else SHA-256 over the two model hashes and the claimed tokens (the
 * weights moved from one to the other). No layers held, no proof. Each proof embeds our own HolderRecord, signed
 * on the ledger clock and re-signed only when the span, addresses or advertised throughput change or half its
 * lifetime is gone, so peers verify its signature once per record, not once per proof.
 *
 * Wallet events. `ledgerSubmitter(l)` is what the local endpoint's POST /api/ledger/events calls (the wallet CLI's
 * first choice; the outbox is its fallback): the same LedgerService.submit the outbox drain uses, which stores the
 * event and publishes it on the gossip topic; its status is ledger/status-view.ts `ledgerStatusView`, the JSON of
 * `neuroshard ledger status`.
 *
 * Nonces. A proof's nonce is the next one after every proof of ours the ledger stores (stored before it is
 * published, so a restart continues the sequence; never the epoch). A node does not prove before it has reconciled
 * with at least one peer (a founder with no peer yet excepted), so a node restarted on a fresh data dir learns its
 * used nonces first. Two machines running one mnemonic sign different proofs with one nonce: that is an
 * equivocation, both proofs are void and anyone may slash the key. Run each key on one machine only.
 */
import { freemem } from 'node:os';
import { LedgerNotReadyError, type LedgerSubmitter, type SubmitOutcome } from '../api/index.js';
import { accountIdFromPublicKey, addressFromAccountId, type NodeKey } from '../identity/index.js';
import {
  buildGenesis,
  aloneFounder,
  type ReconcileMode,
  lastProofEpochIn,
  servedEvents,
  submitTooOld,
  Finality,
  provenThrough,
  type FinalityStatus,
  decodeEvent,
  defaultProofOffset,
  EventKind,
  ledgerStatusView,
  rewardRulesOf,
  LEDGER_SYNC_LIMITS,
  localHolderRecordVerifier,
  MAX_SLASH_BYTES,
  PROOF_WINDOW_MS,
  startNodeLedger,
  HolderRecordCache,
  ProofLoop,
  Reconciler,
  DEFAULT_TAIL_SYNC_MS,
  ProofSequence,
  type ProofOutcome,
  type Ledger,
  type LedgerService,
  type LedgerStatus,
  type WorkCounters,
} from '../ledger/index.js';
import type { RewardRules } from '../ledger/witness.js';
import type { PeerScoreTable } from '../p2p/peer-score.js';
import { PENALTY } from '../p2p/peer-score.js';
import type { P2PNetwork } from '../p2p/types.js';
import { freshHolderRecord, type HolderRecord } from '../protocols/holder-record.js';
import { LedgerP2PNetwork } from '../protocols/ledger-sync.js';
import { CheckpointP2P } from '../protocols/ledger-checkpoint.js';
import { GenesisKeyStore } from './genesis-key.js';
import { LEDGER_DEFAULTS } from './options.js';
import type { RpcNode } from '../protocols/rpc/service.js';
import { deadlineSignal, linkSignals } from '../util/abort.js';
import { toHex } from '../util/bytes.js';
import { systemClock, type Clock } from '../util/clock.js';
import { errorMessage, isNeuroShardError } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/logger.js';

export { WorkTally, type ProofOutcome, type TrainingFigures, type WorkCounters } from '../ledger/index.js';

/** What the ledger needs of the node's network: node/network.ts's NodeNetwork has all of it. */
export interface LedgerHost {
  readonly p2p: P2PNetwork;
  readonly rpc: RpcNode;
  readonly scores?: PeerScoreTable;
  /** True when this node founded the network: it may prove work before any peer is there to sync from. */
  readonly genesis: boolean;
}

export interface NodeLedgerServiceOptions {
  network: LedgerHost;
  key: NodeKey;
  dataDir: string;
  networkId: string;
  modelLayers: number;
  counters: WorkCounters;
  /** Emit proofs (default true); false for a node that only verifies and relays. */
  proofs?: boolean;
  /** How often (wall time) the emitter looks whether a proof is due. Default 1,000 ms; tests shorten it. */
  proofCheckMs?: number;
  /** Offset of our proof inside each 60 s window. Default: 0..15 s derived from the key, so proofs spread. */
  proofOffsetMs?: number;
  /** Lifetime of the HolderRecord embedded in proofs. Default 10 min (re-signed at half life or on change). */
  recordTtlMs?: number;
  /** How the node holds its weights (`--weights`), signed into the embedded HolderRecord. Default f32. */
  weights?: 'f32' | 'int8';
  /** How often (wall time) one random peer's ledger status is compared. Default 60 s; 0 disables. */
  resyncMs?: number;
  /** How far back (ledger time) the periodic comparison pulls events from a differing peer. Default 15 min. */
  tailSyncMs?: number;
  /** Deadline of each sync call. Default LEDGER_SYNC_LIMITS.callTimeoutMs. */
  syncCallTimeoutMs?: number;
  /** The ledger clock (event times, live window); tests share a ManualClock between nodes. */
  clock?: Clock;
  log?: Logger;
  /** Aborts the start (its initial sync) and, later, any sync in flight. */
  signal?: AbortSignal;
  /** Horizon of the sync admission rule (src/ledger/admission.ts). Default 30 min. */
  syncHorizonMs?: number;
  /** Disk quota of ledger.db in bytes (events from the network are dropped past it). Default 8 GiB. */
  maxLedgerBytes?: number;
  /** How long the sync at start may hold the start (the rest continues in the background). Default 30 s. */
  startSyncMs?: number;
  /** Worker threads checking sync pages' signatures ahead of ingest (LEDGER_DEFAULTS.verifyThreads; 0: none). */
  verifyThreads?: number;
  /** How often (wall time) the node records that it watched the network (admission.ts). Default 30 s. */
  watchMarkMs?: number;
  /**
   * The network's genesis public key, pinned (`--genesis-key`). Unset: the one in `<dataDir>/network.json`, else our
   * own key on a founding node, else the first one a peer names (node/genesis-key.ts). It decides which Genesis
   * event mints (issue 11 §2) and who signs the first checkpoint (finality).
   * Finality (src/ledger/finality.ts): the checkpoint period and settle time (ledger time), and how often (wall
   * time) the node looks whether a checkpoint is due. Defaults: 5 min, 6 min, 1 s.
   */
  genesisKey?: Uint8Array;
  /**
   * Found the network's ledger: when our key is the genesis key, emit the Genesis event (the initial allocation)
   * once, as soon as we are caught up or alone. Default true; tests of other rules may turn it off.
   */
  emitGenesis?: boolean;
  checkpointPeriodMs?: number;
  checkpointSettleMs?: number;
  checkpointCheckMs?: number;
  /** Real time a node retries a checkpoint its state differs from before it takes the snapshot (LEDGER_DEFAULTS). */
  checkpointDivergeGraceMs?: number;
  /**
   * Issue 11 §2 reward rules (ledger/witness.ts). Default LEDGER_DEFAULTS.witnessedRewards (true). Under them rewards
   * are also minted at checkpoints (§3: RewardRules.mintAt, from checkpointPeriodMs and checkpointSettleMs).
   */
  witnessedRewards?: boolean;
}

/** The network's reward rules as this node runs them (ledger/reward-rules.ts, with this node's option defaults). */
export function rewardRules(o: Pick<NodeLedgerServiceOptions, 'witnessedRewards' | 'checkpointPeriodMs' | 'checkpointSettleMs'>, genesisKey: Uint8Array | undefined): RewardRules {
  return rewardRulesOf(o, { witnessedRewards: LEDGER_DEFAULTS.witnessedRewards, checkpointPeriodMs: 5 * 60_000, checkpointSettleMs: LEDGER_DEFAULTS.checkpointSettleMs }, genesisKey);
}

export interface NodeLedgerStatus extends LedgerStatus {
  /** Our wallet address. */
  address: string;
  proofs: {
    enabled: boolean;
    emitted: number;
    /** Epoch of our latest proof (-1 for none yet). */
    lastEpoch: number;
    nextNonce: string;
    /** True until the node has reconciled with a peer (or founded the network alone). */
    waitingForSync: boolean;
    last?: ProofOutcome;
  };
  gossip: { accepted: number; ignored: number; rejected: number };
  sync: { caughtUp: boolean; runs: number; failures: number; lastPeer?: string };
  finality: FinalityStatus;
}

export interface NodeLedgerService {
  readonly ledger: Ledger;
  readonly service: LedgerService;
  readonly network: LedgerP2PNetwork;
  readonly finality: Finality;
  status(): NodeLedgerStatus;
  /** Emits a proof now if one is due (the timer does this; tests and shutdown may call it). */
  proveNow(): Promise<ProofOutcome | undefined>;
  /** Reconciles with one peer now: status, then a full sync when the state hashes differ. */
  reconcile(peer: string): Promise<void>;
  /**
   * The first step of a graceful stop: from here on the node makes no event of its own (no proof, no outbox drain,
   * wallet submits answer 503 so the wallet queues them in the outbox for the next start), while it still takes
   * gossip and serves sync until stop(). Resolves once a proof being published is done. Why: a node stopping slowly
   * (a checkpoint cut, sessions draining) kept proving after its peers had closed their ledgers, so the ledger files
   * of a network stopped at once differed by those last events (issue 12, chaos runs).
   */
  quiesce(): Promise<void>;
  /** True once quiesce() (or stop()) was called. */
  readonly quiet: boolean;
  /** Stops proofs, syncs, gossip and serving, and closes the ledger. Call before the network stops. */
  stop(): Promise<void>;
}

const DEFAULT_RECORD_TTL_MS = 10 * 60_000;

/** Starts the node's ledger (see the file comment). */
export async function startNodeLedgerService(o: NodeLedgerServiceOptions): Promise<NodeLedgerService> {
  const clock = o.clock ?? systemClock;
  const log = o.log ?? silentLogger;
  const { network: host, key, networkId, modelLayers, counters } = o;
  const stopping = new AbortController();
  // not AbortSignal.any (util/abort.ts): made once per node, and detached from o.signal on stop
  const lifetime = linkSignals(stopping.signal, o.signal);
  const signal = lifetime.signal;
  const self = host.p2p.peerId;
  const account = accountIdFromPublicKey(key.publicKey);
  const callTimeoutMs = o.syncCallTimeoutMs ?? LEDGER_SYNC_LIMITS.callTimeoutMs;

  const net = new LedgerP2PNetwork({
    p2p: host.p2p,
    rpc: host.rpc,
    networkId,
    verify: { networkId, modelLayers, holderVerifier: localHolderRecordVerifier },
    clock,
    scores: host.scores,
    callTimeoutMs,
    log: log.child('ledger-net'),
  });
  await net.start();
  const cpNet = new CheckpointP2P({ p2p: host.p2p, rpc: host.rpc, networkId, scores: host.scores, log: log.child('checkpoint') });
  // the network's genesis key: pinned, stored, ours as the founder, or the first a peer names (node/genesis-key.ts)
  let genesisKeys: GenesisKeyStore;
  try {
    genesisKeys = new GenesisKeyStore(o.dataDir, { pinned: o.genesisKey === undefined ? undefined : toHex(o.genesisKey), founder: host.genesis, own: key.publicKey });
    if (genesisKeys.key === undefined) await learnGenesisKey(cpNet, genesisKeys, [...new Set([...net.syncPeers(), ...host.p2p.connectedPeers()])], callTimeoutMs, o.signal, log);
  } catch (e) {
    await net.stop();
    throw e;
  }
  let finality: Finality | undefined;
  // set once the sync queue below exists: finality asks for recent events when its state differs from a checkpoint
  let askSync: (peer: string | undefined) => void = () => {};
  let started: Awaited<ReturnType<typeof startNodeLedger>>;
  try {
    started = await startNodeLedger({
      dataDir: o.dataDir,
      networkId,
      modelLayers,
      network: net,
      holderVerifier: localHolderRecordVerifier,
      clock,
      logger: log.child('ledger'),
      signal: o.signal,
      syncHorizonMs: o.syncHorizonMs ?? LEDGER_DEFAULTS.syncHorizonMs,
      maxBytes: o.maxLedgerBytes ?? LEDGER_DEFAULTS.maxLedgerBytes,
      startSyncMs: o.startSyncMs ?? LEDGER_DEFAULTS.startSyncMs,
      syncCallTimeoutMs: callTimeoutMs,
      verifyThreads: o.verifyThreads ?? LEDGER_DEFAULTS.verifyThreads,
      beforeSync: async (ledger) => {
        const f = new Finality({
          ledger,
          net: cpNet,
          key,
          networkId,
          genesisKey: genesisKeys.key,
          periodMs: o.checkpointPeriodMs ?? 5 * 60_000,
          settleMs: o.checkpointSettleMs ?? LEDGER_DEFAULTS.checkpointSettleMs,
          clock,
          log: log.child('finality'),
          peers: () => net.syncPeers(),
          divergeGraceMs: o.checkpointDivergeGraceMs ?? LEDGER_DEFAULTS.checkpointDivergeGraceMs,
          behind: (peer) => askSync(peer),
        });
        finality = f;
        await cpNet.start(
          {
            checkpointsAfter: (seq, limit) => ledger.checkpointsAfter(seq, limit),
            snapshotPage: (seq, after, limit) => ledger.snapshotPage(seq, after, limit),
            account: (pub) => ({ nextProofNonce: ledger.nextNonce(Buffer.from(pub, 'hex'), EventKind.Proof), lastEpoch: ledger.lastProofEpoch(accountIdFromPublicKey(Buffer.from(pub, 'hex'))) }),
            voteCheck: (v) => f.voteCheck(v),
            genesisKey: () => (genesisKeys.key === undefined ? undefined : toHex(genesisKeys.key)),
          },
          (v, from) => f.onVote(v, from),
        );
        // a new (or long offline) node starts from the latest checkpoint a peer holds instead of replaying history
        for (const p of [...new Set([...net.syncPeers(), ...host.p2p.connectedPeers()])].slice(0, 3)) {
          await f.pull(p, { signal: deadlineSignal(o.startSyncMs ?? LEDGER_DEFAULTS.startSyncMs, o.signal) });
          if (ledger.latestCheckpoint() !== undefined) break;
        }
      },
      rewards: rewardRules(o, genesisKeys.key),
    });
  } catch (e) {
    await cpNet.stop();
    await net.stop();
    throw e;
  }
  const fin = finality!;
  const { ledger, service } = started;
  net.setKnownCheck((id) => ledger.eventStatus(id) !== undefined);
  net.setStateCheck((e) => ledger.stateVerdict(e)); // issue 11 attack 5: no relaying what our state rejects
  net.serveStatus(() => {
    const s = ledger.status();
    // served events only: the rejected ones we keep depend on arrival order (servedEvents)
    return { stateHash: s.stateHash, events: servedEvents(s) };
  });

  let stopped = false;
  let quiet = false;
  const timers: NodeJS.Timeout[] = [];
  const offs: (() => void)[] = [];

  // ─────────────────────────── reconciliation ───────────────────────────

  // one job per peer, run one at a time, a not-yet-serving peer retried, a tail sync for the periodic check, a peer
  // serving invalid events penalised: ledger/reconciler.ts
  const reconciler = new Reconciler({
    self,
    ours: () => {
      const s = ledger.status();
      return { stateHash: s.stateHash, events: servedEvents(s), replayPending: s.replayPending };
    },
    theirs: (peer, sig) => net.fetchStatus(peer, { signal: sig }),
    prepare: async (peer, sig) => {
      await learnFrom(peer);
      await fin.pull(peer, { signal: sig });
    },
    syncFrom: (peer, opts) => service.syncFrom(peer, opts),
    onSyncDropped: (fn) =>
      service.on('ledger:ingested', ({ result, source }) => {
        if (source === 'sync' && result.status === 'dropped') fn(result.reason);
      }),
    penalise: (peer, count, reason) => host.scores?.penalise(peer, PENALTY.forged, `ledger sync: ${count} invalid events (${reason})`),
    unavailable: (e) => isNeuroShardError(e, 'RPC_UNAVAILABLE') || isNeuroShardError(e, 'LEDGER_NOT_SERVING'),
    tailSyncMs: o.tailSyncMs ?? DEFAULT_TAIL_SYNC_MS,
    signal,
    clock,
    log,
  });
  const sync = reconciler.stats;
  const enqueue = (peer: string, mode: ReconcileMode): void => reconciler.enqueue(peer, mode);

  /** Adopts the genesis key a peer names when we have none yet: persisted, then every stored event re-judged. */
  const learnFrom = async (peer: string): Promise<void> => {
    if (genesisKeys.key !== undefined) return;
    await learnGenesisKey(cpNet, genesisKeys, [peer], callTimeoutMs, signal, log);
    const k = genesisKeys.key;
    if (k === undefined) return;
    ledger.setGenesisKey(k);
    fin.setGenesisKey(k);
  };

  // The watch record (admission.ts): while caught up with at least one peer, this node would have seen anything
  // dated now; sync later refuses events dated in watched time that did not reach it within the horizon.
  const markWatched = (): void => {
    if (stopped || !sync.caughtUp || net.syncPeers().length === 0) return;
    try {
      ledger.markWatched(clock.now());
    } catch (e) {
      log.warn('could not record the watch mark', { error: errorMessage(e) });
    }
  };
  {
    const t = setInterval(markWatched, o.watchMarkMs ?? 30_000);
    t.unref();
    timers.push(t);
  }

  {
    const t = setInterval(() => {
      if (!stopped) fin.tick().catch((e: unknown) => log.warn('checkpoint tick failed', { error: errorMessage(e) }));
    }, o.checkpointCheckMs ?? 1000);
    t.unref();
    timers.push(t);
  }

  for (const p of net.syncPeers()) enqueue(p, 'full');
  askSync = (peer) => {
    const peers = peer !== undefined ? [peer] : net.syncPeers();
    if (peers.length > 0) enqueue(peers[Math.floor(Math.random() * peers.length)]!, 'tail');
  };
  for (const p of host.p2p.connectedPeers()) enqueue(p, 'full');
  offs.push(host.p2p.events.on('peer:connect', ({ peer }) => enqueue(peer, 'full')));
  const resyncMs = o.resyncMs ?? 60_000;
  if (resyncMs > 0) {
    const t = setInterval(() => {
      const peers = net.syncPeers();
      if (peers.length > 0) enqueue(peers[Math.floor(Math.random() * peers.length)]!, 'tail');
    }, resyncMs);
    t.unref();
    timers.push(t);
  }

  // ─────────────────────────── founding ───────────────────────────

  // Issue 11 §2: the holder of the genesis key mints the initial allocation once, so the first bonds can come from
  // it. Exactly once: network.json records it, and the ledger holding a Genesis event from us (synced, or ours from
  // before a crash that lost network.json's update) stops it too. A founder with peers waits until it reconciled
  // with one, as proofs do, so it learns an allocation it made before on another data dir instead of signing a
  // second one (a second, different Genesis event would conflict with the first: docs/LIMITS.md).
  const aloneNow = (): boolean => aloneFounder(host.genesis, net.syncPeers().length, host.p2p.connectedPeers().length);
  let founding = false;
  const foundNow = async (): Promise<void> => {
    if (stopped || quiet || founding || o.emitGenesis === false || !genesisKeys.mayFound(key.publicKey)) return;
    if (ledger.nextNonce(key.publicKey, EventKind.Genesis) > 0n) {
      genesisKeys.markEmitted();
      return;
    }
    if (!sync.caughtUp && !aloneNow()) return;
    founding = true;
    try {
      const ev = buildGenesis(key, { networkId, timestampMs: clock.now() });
      const r = await service.submit(ev.bytes, { signal });
      if (r.status === 'dropped') {
        log.error('our genesis allocation was refused by our own ledger', { reason: r.reason });
      } else {
        genesisKeys.markEmitted();
        log.info('genesis allocation minted', { id: r.id, status: r.status });
      }
    } finally {
      founding = false;
    }
  };
  if (o.emitGenesis !== false && genesisKeys.mayFound(key.publicKey)) {
    const t = setInterval(() => {
      if (!genesisKeys.mayFound(key.publicKey)) return clearInterval(t);
      foundNow().catch((e: unknown) => log.warn('genesis allocation failed', { error: errorMessage(e) }));
    }, o.proofCheckMs ?? 1000);
    t.unref();
    timers.push(t);
    await foundNow().catch((e: unknown) => log.warn('genesis allocation failed', { error: errorMessage(e) }));
  }

  // ─────────────────────────── proofs ───────────────────────────

  const proofsEnabled = o.proofs !== false;
  const startedAt = clock.now();
  // Issue 11 item 6: never a window (nor so a nonce) this key may have proved already, even with a lost ledger.db
  const startEpoch = Math.floor(startedAt / PROOF_WINDOW_MS);
  const proofs = new ProofSequence({
    key,
    networkId,
    counters,
    modelLayers,
    offsetMs: o.proofOffsetMs ?? defaultProofOffset(key.publicKey),
    startedAt,
    lastEpoch: provenThrough(Math.max(lastProofEpochIn(ledger.history(account, 256), addressFromAccountId(account)), ledger.lastProofEpoch(account)), -1, startEpoch),
  });
  const records = new HolderRecordCache<HolderRecord>(
    o.recordTtlMs ?? DEFAULT_RECORD_TTL_MS,
    (content, now, ttlMs) => freshHolderRecord(key, { networkId, ...content, weights: o.weights ?? 'f32' }, now, ttlMs),
    (e) => log.debug('holder record without addresses', { error: errorMessage(e) }),
  );
  // the gate (reconciled, peers asked about our key) and one proof at a time: ledger/proof-loop.ts
  const loop = new ProofLoop({
    proofs,
    caughtUp: () => sync.caughtUp,
    alone: aloneNow,
    active: () => !stopped && !quiet && proofsEnabled,
    peers: () => net.syncPeers(),
    fetchAccount: (p) => cpNet.fetchAccount(p, toHex(key.publicKey), { signal: deadlineSignal(callTimeoutMs, signal) }),
    localNonce: () => ledger.nextNonce(key.publicKey, EventKind.Proof),
    submit: (bytes) => service.submit(bytes, { signal }),
    // our HolderRecord for a proof at `now`, re-signed only when it changed (ledger/prover.ts HolderRecordCache)
    record: (span, now) =>
      records.at({ nowMs: now, span, multiaddrs: host.p2p.multiaddrs(), peerId: self, capacity: counters.capacity?.() ?? { memoryMb: Math.floor(freemem() / (1 << 20)), tokensPerSec: 0 } }),
    startEpoch,
    clock,
    log,
  });
  const proveNow = (): Promise<ProofOutcome | undefined> => loop.proveNow();

  if (proofsEnabled) {
    const t = setInterval(() => {
      proveNow().catch((e: unknown) => log.warn('proof failed', { error: errorMessage(e) }));
    }, o.proofCheckMs ?? 1000);
    t.unref();
    timers.push(t);
  }

  // ─────────────────────────── status and stop ───────────────────────────

  const address = addressFromAccountId(account);
  return {
    ledger,
    service,
    network: net,
    finality: fin,
    proveNow,
    reconcile: (peer) => reconciler.reconcile(peer, 'full'),
    status: () => ({
      ...ledger.status(),
      address,
      proofs: {
        enabled: proofsEnabled,
        emitted: proofs.emitted,
        lastEpoch: proofs.lastEpoch,
        nextNonce: ledger.nextNonce(key.publicKey, EventKind.Proof).toString(),
        waitingForSync: proofsEnabled && loop.waitingForSync,
        ...(proofs.last !== undefined ? { last: { ...proofs.last } } : {}),
      },
      gossip: { ...net.stats },
      sync: { caughtUp: sync.caughtUp, runs: sync.runs, failures: sync.failures, ...(sync.lastPeer !== undefined ? { lastPeer: sync.lastPeer } : {}) },
      finality: fin.status(),
    }),
    get quiet() {
      return quiet || stopped;
    },
    async quiesce() {
      if (quiet || stopped) return;
      quiet = true;
      started.service.stopOutbox();
      await loop.idle();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      quiet = true;
      for (const t of timers) clearInterval(t);
      for (const off of offs) off();
      stopping.abort();
      await reconciler.stop(); // queued jobs and retries dropped; the running one ends on the abort
      // a proof being published finishes (its event is stored already); no new one starts
      await loop.idle();
      await cpNet.stop();
      await net.stop();
      started.stop();
      await service.closed(); // the verify pool's workers have exited: nothing of this node is left running
    },
  };
}

/** How long publishing a submitted wallet event may take before the endpoint answers (it is stored already). */
const SUBMIT_PUBLISH_MS = 3_000;

/**
 * The local endpoint's view of the node's ledger: wallet events go through LedgerService.submit (stored, applied,
 * then published on the gossip topic), as outbox events do. One thing is refused first: an event older than the
 * live gossip window (5 min) that the ledger does not hold, which every peer would drop as STALE while ours would
 * store it and sort it before the tip; the wallet signs just before it sends, so only a replay of an old event
 * looks like that.
 */
export function ledgerSubmitter(l: Pick<NodeLedgerService, 'ledger' | 'service'> & { readonly quiet?: boolean; finality?: NodeLedgerService['finality'] }, clock: Clock = systemClock): LedgerSubmitter {
  return {
    maxEventBytes: MAX_SLASH_BYTES,
    async submit(bytes: Uint8Array): Promise<SubmitOutcome> {
      // stopping (quiesce): 503, so the wallet keeps the event in the outbox and this node submits it when it starts again
      if (l.quiet === true) throw new LedgerNotReadyError();
      let decoded: { id: Uint8Array; timestampMs: number } | undefined;
      try {
        decoded = decodeEvent(bytes);
      } catch {
        // undecodable: submit() reports it as MALFORMED without storing anything
      }
      if (decoded !== undefined && submitTooOld(decoded.timestampMs, clock.now()) && l.ledger.eventStatus(decoded.id) === undefined) {
        return { id: toHex(decoded.id), status: 'dropped', reason: 'STALE', duplicate: false };
      }
      const r = await l.service.submit(bytes, { signal: AbortSignal.timeout(SUBMIT_PUBLISH_MS) });
      return { id: r.id, status: r.status, ...(r.reason !== undefined ? { reason: r.reason } : {}), duplicate: r.duplicate };
    },
    status: () => ledgerStatusView(l.ledger.status(), l.finality?.status()),
  };
}

/**
 * Asks `peers` in turn for the network's genesis key until one names it, and adopts that one (trust on first use:
 * node/genesis-key.ts). Failures (no answer, a peer that knows none) only move on to the next peer.
 */
async function learnGenesisKey(cp: CheckpointP2P, store: GenesisKeyStore, peers: string[], timeoutMs: number, signal: AbortSignal | undefined, log: Logger): Promise<void> {
  for (const p of peers.slice(0, 4)) {
    if (store.key !== undefined || signal?.aborted === true) return;
    try {
      const k = await cp.fetchGenesisKey(p, { signal: deadlineSignal(timeoutMs, signal) });
      if (k !== undefined && store.learn(Buffer.from(k, 'hex'))) log.info('genesis key learned from a peer (kept in network.json)', { peer: p, genesisKey: k });
    } catch (e) {
      log.debug('ledger-genesis failed', { peer: p, error: errorMessage(e) });
    }
  }
}


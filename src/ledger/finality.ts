/**
 * Finality on a node (issue 11 §3): makes, collects and adopts checkpoints (checkpoint.ts) for one ledger. The
 * network arrives as the FinalityNetwork interface (protocols/ledger-checkpoint.ts implements it); node/ wires it.
 *
 *   - Every `periodMs` of ledger time there is a cut; once it is `settleMs` old (events dated before it can no
 *     longer be admitted by gossip: the live window), each member of the committee of the next checkpoint computes
 *     the body for that cut from its own ledger, signs it and gossips the vote.
 *   - Every node collects votes per body; once members holding more than 2/3 of the committee's stake signed the
 *     same body, it is a checkpoint: verified, then finalized on the ledger when its own state at the cut is the
 *     one named; otherwise (the node missed events) it takes the snapshot from a peer.
 *   - A node behind (new, restarted, missed votes) pulls the chain of checkpoints from a peer, verifies it link by
 *     link from the genesis committee, and finalizes the last one, or starts from its snapshot.
 *   - With less than 2/3 of the stake online nothing is finalized: the ledger works as before, `status()` says
 *     'stalled'. Without a genesis key the node takes no part ('off').
 */
import { toHex } from '../util/bytes.js';
import type { Clock } from '../util/clock.js';
import { errorMessage } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import type { AbortOptions } from '../util/abort.js';
import { accountIdFromPublicKey, type NodeKey } from '../identity/index.js';
import {
  checkpointHash,
  committeeAfter,
  dueCut,
  genesisCommittee,
  quorumReached,
  signCheckpoint,
  signedStake,
  totalStake,
  verifyChain,
  verifyCheckpoint,
  type CheckpointBody,
  type CheckpointSignature,
  type CommitteeMember,
  type SignedCheckpoint,
} from './checkpoint.js';
import type { Ledger } from './ledger.js';

export interface CheckpointVote {
  body: CheckpointBody;
  sig: CheckpointSignature;
}

export interface FinalityNetwork {
  publishVote(v: CheckpointVote): Promise<void>;
  fetchCheckpoints(peer: string, after: number, opts?: AbortOptions): Promise<SignedCheckpoint[]>;
  fetchSnapshotPage(peer: string, seq: number, after: string, opts?: AbortOptions): Promise<[string, string][]>;
}

export type FinalityState = 'off' | 'waiting' | 'active' | 'stalled';

export interface FinalityStatus {
  state: FinalityState;
  /** The committee of the next checkpoint: members and their stake (base units). */
  committee: { members: number; stake: bigint };
  /** True when this node is a member of it. */
  member: boolean;
  votesSent: number;
  finalized: number;
  snapshots: number;
  lastError?: string;
}

/** Bodies collected per sequence number (a split committee cannot make us hold more). */
const MAX_BODIES = 8;
/** Snapshot rows a node accepts in all (a peer cannot stream rows forever). */
const MAX_SNAPSHOT_ROWS = 10_000_000;
/** Chain pages pulled in one go. */
const MAX_CHAIN_PAGES = 64;

/** Votes per checkpoint body, for the one sequence number that comes next. */
export class VoteBox {
  private seq = 0;
  private bodies = new Map<string, { body: CheckpointBody; sigs: Map<string, CheckpointSignature> }>();

  /** Adds a vote (signature verified by the caller or here via signedStake); returns the checkpoint on quorum. */
  add(v: CheckpointVote, committee: readonly CommitteeMember[]): SignedCheckpoint | undefined {
    if (v.body.seq !== this.seq) {
      if (v.body.seq < this.seq) return undefined;
      this.seq = v.body.seq;
      this.bodies.clear();
    }
    const h = checkpointHash(v.body);
    let e = this.bodies.get(h);
    if (e === undefined) {
      if (this.bodies.size >= MAX_BODIES) return undefined;
      e = { body: v.body, sigs: new Map() };
      this.bodies.set(h, e);
    }
    const account = toHex(accountIdFromPublicKey(Buffer.from(v.sig.key, 'hex')));
    e.sigs.set(account, v.sig);
    const cp: SignedCheckpoint = { body: e.body, sigs: [...e.sigs.values()] };
    const { stake, reason } = signedStake(cp, committee);
    if (reason !== undefined) {
      e.sigs.delete(account);
      return undefined;
    }
    return quorumReached(stake, totalStake(committee)) ? cp : undefined;
  }
}

export interface FinalityOptions {
  ledger: Ledger;
  net: FinalityNetwork;
  key: NodeKey;
  networkId: string;
  /** The network's genesis public key; undefined: this node takes no part in finality. */
  genesisKey: Uint8Array | undefined;
  periodMs: number;
  settleMs: number;
  clock: Clock;
  log?: Logger;
  /** Peers to pull checkpoints from. */
  peers: () => string[];
  /**
   * How long (real time) a node that holds most of the history retries a checkpoint its state differs from, while
   * it syncs the events it may lack, before it takes the snapshot (which deletes its events before the cut).
   */
  divergeGraceMs: number;
  /** Asks for a sync of recent events (with `peer`, or any): called when our state first differs from a checkpoint. */
  behind?: (peer: string | undefined) => void;
  /** Real (monotonic) time in ms; performance.now by default (the ledger clock may be a manual one in tests). */
  monotonic?: () => number;
}

export class Finality {
  private readonly box = new VoteBox();
  private gen: CommitteeMember[] | undefined;
  private readonly self: string;
  private readonly log: Logger;
  private voted = new Set<number>();
  /** A verified chain not yet finalized here: a replay was pending, or our state differed (since `divergedAt`). */
  private pending: { chain: SignedCheckpoint[]; peer: string | undefined; divergedAt: number | undefined } | undefined;
  private pulling: Promise<void> | undefined;
  private readonly startedAt: number;
  private readonly monotonic: () => number;
  readonly stats = { votesSent: 0, finalized: 0, snapshots: 0, lastError: undefined as string | undefined };

  constructor(private readonly o: FinalityOptions) {
    this.gen = o.genesisKey === undefined ? undefined : genesisCommittee(o.genesisKey);
    this.self = toHex(accountIdFromPublicKey(o.key.publicKey));
    this.log = o.log ?? silentLogger;
    this.startedAt = o.clock.now();
    this.monotonic = o.monotonic ?? (() => performance.now());
  }

  /** Names the genesis key once the node learns it (node/genesis-key.ts); a no-op when one is set. */
  setGenesisKey(key: Uint8Array): void {
    this.gen ??= genesisCommittee(key);
  }

  /** The committee that signs the next checkpoint. */
  committee(): CommitteeMember[] {
    return this.gen === undefined ? [] : committeeAfter(this.o.ledger.latestCheckpoint()?.body, this.gen);
  }

  status(): FinalityStatus {
    const c = this.committee();
    const last = this.o.ledger.latestCheckpoint()?.body;
    let state: FinalityState = 'off';
    if (this.gen !== undefined) {
      // stalled: two periods overdue (no quorum online, or the committee disagrees)
      const due = dueCut(this.o.clock.now(), this.o.periodMs, this.o.settleMs, last?.cutMs ?? 0);
      const overdue = due !== undefined && due - (last?.cutMs ?? Math.max(0, Math.floor(this.startedAt / this.o.periodMs) * this.o.periodMs)) >= 3 * this.o.periodMs;
      state = overdue ? 'stalled' : last === undefined ? 'waiting' : 'active';
    }
    const s: FinalityStatus = {
      state,
      committee: { members: c.length, stake: totalStake(c) },
      member: c.some((m) => m.account === this.self),
      votesSent: this.stats.votesSent,
      finalized: this.stats.finalized,
      snapshots: this.stats.snapshots,
    };
    if (this.stats.lastError !== undefined) s.lastError = this.stats.lastError;
    return s;
  }

  /** Whether a vote should be delivered and relayed: the next sequence number, by a committee member. */
  voteCheck(v: CheckpointVote): 'accept' | 'ignore' {
    if (this.gen === undefined || v.body.networkId !== this.o.networkId) return 'ignore';
    const next = (this.o.ledger.latestCheckpoint()?.body.seq ?? 0) + 1;
    if (v.body.seq < next || v.body.seq > next + 1) return 'ignore';
    const account = toHex(accountIdFromPublicKey(Buffer.from(v.sig.key, 'hex')));
    // a vote for the one after next comes from a node ahead of us: deliver it (it makes us pull), unchecked
    if (v.body.seq === next + 1) return 'accept';
    return this.committee().some((m) => m.account === account) ? 'accept' : 'ignore';
  }

  /** A vote from the network (or our own). */
  onVote(v: CheckpointVote, from?: string): void {
    if (this.gen === undefined) return;
    const last = this.o.ledger.latestCheckpoint()?.body;
    const next = (last?.seq ?? 0) + 1;
    if (v.body.seq > next) {
      if (from !== undefined) void this.pull(from); // pull() catches its own failures
      return;
    }
    if (v.body.seq < next) return;
    const cp = this.box.add(v, this.committee());
    if (cp !== undefined) this.adopt(cp, last);
  }

  /** Called on a timer: votes when a cut is due and this node is a member; retries a checkpoint not yet adopted. */
  async tick(): Promise<void> {
    if (this.gen === undefined) return;
    if (this.pending !== undefined) this.settle(this.pending.chain);
    const last = this.o.ledger.latestCheckpoint()?.body;
    const cut = dueCut(this.o.clock.now(), this.o.periodMs, this.o.settleMs, last?.cutMs ?? 0);
    if (cut === undefined || this.voted.has(cut)) return;
    if (!this.committee().some((m) => m.account === this.self)) return;
    const body = this.o.ledger.proposeCheckpoint(cut);
    if (body === undefined) return; // a replay is pending: next tick
    this.voted.add(cut);
    if (this.voted.size > 64) this.voted.delete(this.voted.values().next().value!);
    const v: CheckpointVote = { body, sig: signCheckpoint(this.o.key, body) };
    this.stats.votesSent++;
    this.onVote(v);
    try {
      await this.o.net.publishVote(v);
    } catch (e) {
      // alone on the topic (a founder without peers): nothing to tell anyone
      this.log.debug('checkpoint vote not published', { error: errorMessage(e) });
    }
  }

  private adopt(cp: SignedCheckpoint, prev: CheckpointBody | undefined): void {
    const why = verifyCheckpoint(cp, prev, this.gen!, this.o.networkId);
    if (why !== null) {
      this.stats.lastError = why;
      return;
    }
    this.settle([cp]);
  }

  /**
   * Finalizes the last checkpoint of a verified chain (the ones before it are recorded with it). 'not-ready' (a
   * replay is pending) waits for the next tick. 'diverged' (our state at the cut is not the one the committee
   * signed) takes the snapshot, which deletes our events before the cut (a wallet's history among them), so a node
   * that holds most of the history first asks for the events it may lack and retries for `divergeGraceMs`; only a
   * node far behind (a new one) takes the snapshot at once.
   */
  private settle(chain: SignedCheckpoint[], peer?: string): void {
    const cp = chain[chain.length - 1]!;
    const r = this.o.ledger.finalize(cp, chain.slice(0, -1));
    const same = this.pending !== undefined && checkpointHash(this.pending.chain[this.pending.chain.length - 1]!.body) === checkpointHash(cp.body);
    const first = same ? this.pending! : undefined;
    if (r === 'not-ready') {
      this.pending = { chain, peer: peer ?? first?.peer, divergedAt: first?.divergedAt };
      return;
    }
    this.pending = undefined;
    if (r === 'finalized') {
      this.stats.finalized++;
      this.log.info('checkpoint final', { seq: cp.body.seq, height: cp.body.height, stateHash: cp.body.stateHash });
      return;
    }
    if (r !== 'diverged') return; // 'known' or 'stale': nothing to do
    const s = this.o.ledger.status();
    const far = s.applied + s.void < cp.body.height / 2;
    const now = this.monotonic();
    const since = first?.divergedAt ?? now;
    if (!far && now - since < this.o.divergeGraceMs) {
      if (first?.divergedAt === undefined) {
        this.log.info('our state at the checkpoint differs; asking for the events we may lack', { seq: cp.body.seq });
        this.o.behind?.(peer);
      }
      this.pending = { chain, peer: peer ?? first?.peer, divergedAt: since };
      return;
    }
    // the committee saw events we lack (or we hold some it refused): take its state at the cut
    this.log.warn('our state at the checkpoint differs; taking the snapshot', { seq: cp.body.seq, far });
    const from = peer ?? first?.peer;
    const peers = from !== undefined ? [from] : this.o.peers();
    if (peers.length === 0) return;
    this.snapshotFrom(peers[Math.floor(Math.random() * peers.length)]!, chain).catch((e: unknown) => {
      this.stats.lastError = errorMessage(e);
    });
  }

  /** Pulls checkpoints we lack from `peer` (one pull at a time). */
  pull(peer: string, opts: AbortOptions = {}): Promise<void> {
    if (this.gen === undefined) return Promise.resolve();
    this.pulling ??= this.pullFrom(peer, opts)
      .catch((e: unknown) => {
        this.stats.lastError = errorMessage(e);
        this.log.debug('checkpoint pull failed', { peer, error: errorMessage(e) });
      })
      .finally(() => {
        this.pulling = undefined;
      });
    return this.pulling;
  }

  private async pullFrom(peer: string, opts: AbortOptions): Promise<void> {
    const have = this.o.ledger.latestCheckpoint();
    let prev = have?.body;
    const chain: SignedCheckpoint[] = [];
    for (let page = 0; page < MAX_CHAIN_PAGES; page++) {
      const got = await this.o.net.fetchCheckpoints(peer, prev?.seq ?? 0, opts);
      if (got.length === 0) break;
      const v = verifyChain(got, prev, this.gen!, this.o.networkId);
      chain.push(...got.slice(0, v.ok));
      if (v.ok > 0) prev = got[v.ok - 1]!.body;
      if (v.reason !== undefined) {
        this.stats.lastError = v.reason;
        this.log.warn('peer served a checkpoint that does not verify', { peer, reason: v.reason });
        break;
      }
    }
    if (chain.length === 0) return;
    this.settle(chain, peer);
  }

  /** Reads the snapshot of the last checkpoint of `chain` from `peer`, verifies it and starts the ledger from it. */
  async snapshotFrom(peer: string, chain: SignedCheckpoint[], opts: AbortOptions = {}): Promise<boolean> {
    const cp = chain[chain.length - 1]!;
    const rows: [string, string][] = [];
    let after = '';
    for (;;) {
      const page = await this.o.net.fetchSnapshotPage(peer, cp.body.seq, after, opts);
      if (page.length === 0) break;
      if (page[0]![0] <= after) throw new Error('snapshot page does not advance');
      rows.push(...page);
      if (rows.length > MAX_SNAPSHOT_ROWS) throw new Error('snapshot larger than the limit');
      after = page[page.length - 1]![0];
    }
    const r = this.o.ledger.installSnapshot(cp, rows, chain.slice(0, -1));
    if (r !== 'installed') {
      if (r !== 'stale') this.stats.lastError = r;
      this.log.warn('snapshot refused', { peer, seq: cp.body.seq, reason: r });
      return false;
    }
    this.stats.snapshots++;
    this.stats.finalized++;
    this.log.info('started from a checkpoint snapshot', { seq: cp.body.seq, height: cp.body.height, rows: rows.length });
    return true;
  }
}

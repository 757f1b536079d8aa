/**
 * The node's own Proof of Neural Work, one attempt at a time: when a proof may start (issue 11 item 6), what peers
 * know of our key before the first one, and the submit of each proof ProofSequence plans.
 *
 *   const loop = new ProofLoop({ proofs, caughtUp, alone, active, peers, fetchAccount, localNonce, submit, record, … });
 *   setInterval(() => void loop.proveNow(), 1000);
 *   await loop.idle();          // on stop: a proof being published finishes, no new one starts (active() is false)
 *
 * The gate. A node proves only once it has reconciled with a peer (or founded the network and nobody is there yet),
 * and then only after asking up to four peers what they know of our key (ledger-account): an equal state hash
 * proves little (the empty ledger's is public), and a node restarted on a fresh data dir must learn the nonces and
 * windows it used before, or it signs a second proof under a used nonce (an equivocation anyone may slash). Once
 * the gate opens it stays open.
 *
 * A proof due is built from the counters taken then and a model hash read right after them (ProofSequence.nextFresh,
 * ledger/work.ts freshWork); the attempt counts as running from before that read, so no second one starts meanwhile.
 *
 * Everything here is plain data and callbacks, so the gate and the one-at-a-time rule are tested without a network
 * (test/unit/ledger/proof-loop.test.ts); node/ledger.ts wires it to the LedgerService and CheckpointP2P.
 */
import type { IngestResult } from './ledger.js';
import type { ProofOutcome, ProofSequence } from './prover.js';
import { proofGate, raiseReported } from './reconcile.js';
import type { EmbeddedHolderRecord } from './holder.js';
import type { WorkSpan } from './work.js';
import type { Clock } from '../util/clock.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/logger.js';

/** How many peers the gate asks about our key. */
export const PROOF_GATE_PEERS = 4;

export interface ProofLoopOptions {
  proofs: ProofSequence;
  /** Reconciled with at least one peer (its state hash equals ours, or we hold everything it served). */
  caughtUp(): boolean;
  /** A founder with no peer yet: it may prove without reconciling (ledger/reconcile.ts aloneFounder). */
  alone(): boolean;
  /** False once the node stops or quiesces: no new proof starts. */
  active(): boolean;
  /** Peers to ask about our key (the ledger's sync peers); the first PROOF_GATE_PEERS are asked. */
  peers(): string[];
  /** ledger-account: what `peer` holds of our key. May throw: that peer is skipped. */
  fetchAccount(peer: string): Promise<{ nextProofNonce: bigint; lastEpoch: number }>;
  /** The next proof nonce our own ledger expects of us. */
  localNonce(): bigint;
  /** Stores and publishes one of our events (LedgerService.submit). */
  submit(bytes: Uint8Array): Promise<Pick<IngestResult, 'id' | 'status' | 'reason'>>;
  /** Our HolderRecord for a proof at `nowMs` (ledger/holder-record cache). */
  record(span: WorkSpan, nowMs: number): EmbeddedHolderRecord;
  /** The window the node started in: a proof never claims a window before it (prover.ts provenThrough). */
  startEpoch: number;
  clock: Clock;
  log: Logger;
}

export class ProofLoop {
  /** What peers report of our key, raised by every answer; `asked` once one answered. */
  readonly reported = { asked: false, nextNonce: 0n, lastEpoch: -1 };
  private asking = false;
  private proving = false;
  private mayProve = false;

  constructor(private readonly o: ProofLoopOptions) {}

  /** True until the gate opened: the node has not reconciled (or asked about its key) yet. */
  get waitingForSync(): boolean {
    return !this.mayProve;
  }

  /** A proof is being submitted now. */
  get busy(): boolean {
    return this.proving;
  }

  /**
   * One attempt: opens the gate if it may, then submits the proof due now, if one is. Undefined when none was
   * submitted (gate closed, nothing due, inactive, or another attempt running). A proof our own ledger refuses is
   * reported with status 'dropped' and its work waits for the next one (ProofSequence.settle).
   */
  async proveNow(): Promise<ProofOutcome | undefined> {
    if (!this.o.active() || this.proving) return undefined;
    if (!this.mayProve && !(await this.openGate())) return undefined;
    // asking peers took time: the node may have stopped meanwhile, or another attempt may have started
    if (!this.o.active() || this.proving) return undefined;
    const now = this.o.clock.now();
    if (!this.o.proofs.due(now)) return undefined;
    this.proving = true;
    try {
      // the counters, then a fresh hash of the weights (it waits for the worker): one attempt at a time from here
      const plan = await this.o.proofs.nextFresh(now, () => ({ local: this.o.localNonce(), reported: this.reported.nextNonce }), (span, t) => this.o.record(span, t));
      if (plan === undefined || !this.o.active()) return undefined;
      if (plan.why !== undefined) this.o.log.debug('training not claimable in this proof', { why: plan.why });
      const r = await this.o.submit(plan.event.bytes);
      const outcome = this.o.proofs.settle(plan, r);
      if (r.status === 'dropped') {
        // our own ledger refused it, so it was not published and its nonce is free; the work waits for the next one
        this.o.log.error('our proof was refused by our own ledger', { reason: r.reason, epoch: plan.epoch });
      } else {
        this.o.log.debug('proof emitted', { epoch: plan.epoch, nonce: outcome.nonce, status: r.status, uptimeMs: plan.claim.uptimeMs });
      }
      return outcome;
    } finally {
      this.proving = false;
    }
  }

  /** Resolves once no proof is being submitted (call after active() turned false). */
  async idle(): Promise<void> {
    while (this.proving) await new Promise((r) => setImmediate(r));
  }

  private async openGate(): Promise<boolean> {
    const alone = this.o.alone();
    if (proofGate({ caughtUp: this.o.caughtUp(), asked: this.reported.asked, alone }) === 'ask') {
      await this.askPeers();
      if (!this.reported.asked) return false;
    }
    this.mayProve = proofGate({ caughtUp: this.o.caughtUp(), asked: this.reported.asked, alone }) === 'prove';
    return this.mayProve;
  }

  /** Asks up to PROOF_GATE_PEERS peers what they know of our key; one at a time, one round at a time. */
  private async askPeers(): Promise<void> {
    if (this.asking) return;
    this.asking = true;
    try {
      for (const p of this.o.peers().slice(0, PROOF_GATE_PEERS)) {
        try {
          const r = await this.o.fetchAccount(p);
          Object.assign(this.reported, raiseReported(this.reported, r), { asked: true });
        } catch (e) {
          this.o.log.debug('ledger-account failed', { peer: p, error: errorMessage(e) });
        }
      }
      this.o.proofs.raiseProven(this.reported.lastEpoch, this.o.startEpoch);
    } finally {
      this.asking = false;
    }
  }
}

/**
 * The subject's side of liveness-challenge/1.0.0 and liveness-attest/1.0.0 (../liveness-witness.ts): answers
 * signed challenges from peers and keeps the attestations they send back, per window, for the node's Uptime ledger
 * event. Everything a peer can make it hold is bounded:
 *
 * - challenges: at most `perPeerPerWindow` answered per peer per window and `maxChallengesPerWindow` in all (more
 *   get LIVENESS_RATE, the caller's fault, no penalty); each answered nonce is remembered until its window ends;
 * - attestations: only for a nonce this node answered, to that witness, in that window (single use); at most one per
 *   witness and `maxWitnessesPerWindow` per window; only the current and previous window are kept.
 *
 * A challenge for another subject or network, or dated more than `maxSkewMs` from our clock, is refused; a
 * challenge or attestation signed by a key other than the calling peer's, or with a bad signature, is the peer's
 * misbehaviour (PeerMisbehaviourError: the RPC layer penalises it).
 */
import type { NodeKey } from '../../identity/index.js';
import { PENALTY, type PeerScoreTable } from '../../p2p/peer-score.js';
import { PROOF_WINDOW_MS } from '../../ledger/economics.js';
import { MAX_ATTESTATIONS } from '../../ledger/events.js';
import { verifyAttestation, type LivenessAttestation } from '../../ledger/witness.js';
import { bytesEqual, toHex } from '../../util/bytes.js';
import { systemClock, type Clock } from '../../util/clock.js';
import { NeuroShardError, PeerMisbehaviourError } from '../../util/errors.js';
import { checkPeerKey, challengeSignatureValid, decodeAttestationMessage, decodeChallenge, livenessAttest, livenessChallenge, signAnswer } from '../liveness-witness.js';
import type { CallContext } from '../rpc/service.js';
import type { RpcNode } from '../rpc/service.js';

export interface LivenessWitnessLimits {
  /** Challenges answered per peer per window. */
  perPeerPerWindow: number;
  /** Challenges answered per window in all. */
  maxChallengesPerWindow: number;
  /** Attestations kept per window (one per witness). */
  maxWitnessesPerWindow: number;
  /** A challenge's time may differ from our clock by at most this. */
  maxSkewMs: number;
}

export const LIVENESS_WITNESS_LIMITS: Readonly<LivenessWitnessLimits> = Object.freeze({
  perPeerPerWindow: 4,
  maxChallengesPerWindow: 1024,
  maxWitnessesPerWindow: 2 * MAX_ATTESTATIONS,
  maxSkewMs: 30_000,
});

interface Answered {
  challenger: Uint8Array;
  epoch: number;
}

function refused(code: string, message: string): NeuroShardError {
  return new NeuroShardError(code, `liveness: ${message}`, { fault: 'caller' });
}

export class LivenessWitnessServer {
  private readonly limits: LivenessWitnessLimits;
  private readonly clock: Clock;
  private epoch = -1;
  private answered = new Map<string, Answered>();
  private prevAnswered = new Map<string, Answered>();
  private perPeer = new Map<string, number>();
  private readonly atts = new Map<number, Map<string, LivenessAttestation>>();
  /** Counters (tests, telemetry). */
  readonly counts = { answered: 0, refused: 0, attested: 0 };

  constructor(
    private readonly key: NodeKey,
    private readonly networkId: string,
    opts: { limits?: Partial<LivenessWitnessLimits>; clock?: Clock; scores?: PeerScoreTable } = {},
  ) {
    this.limits = { ...LIVENESS_WITNESS_LIMITS, ...opts.limits };
    this.clock = opts.clock ?? systemClock;
    this.scores = opts.scores;
  }

  private readonly scores: PeerScoreTable | undefined;

  async register(rpc: RpcNode): Promise<void> {
    await rpc.handle(livenessChallenge, (req, ctx) => this.penalising(ctx.peer, () => this.onChallenge(req, ctx)));
    await rpc.handle(livenessAttest, (req, ctx) => this.penalising(ctx.peer, () => this.onAttest(req, ctx)));
  }

  /** Runs a handler; a PeerMisbehaviourError costs the peer points (forged: 50, malformed: 20) and is rethrown. */
  private penalising(peer: string, f: () => Uint8Array): Uint8Array {
    try {
      return f();
    } catch (e) {
      if (e instanceof PeerMisbehaviourError) this.scores?.penalise(peer, e.code === 'LIVENESS_FORGED' ? PENALTY.forged : PENALTY.malformed, e.message);
      throw e;
    }
  }

  async unregister(rpc: RpcNode): Promise<void> {
    await rpc.unhandle(livenessChallenge);
    await rpc.unhandle(livenessAttest);
  }

  /** The attestations received for window `epoch` (at most MAX_ATTESTATIONS, in arrival order). */
  attestations(epoch: number): LivenessAttestation[] {
    return [...(this.atts.get(epoch)?.values() ?? [])].slice(0, MAX_ATTESTATIONS);
  }

  /** Moves to the window of `now`: quotas reset, answers older than the previous window forgotten. */
  private roll(now: number): number {
    const epoch = Math.floor(now / PROOF_WINDOW_MS);
    if (epoch !== this.epoch) {
      this.prevAnswered = epoch === this.epoch + 1 ? this.answered : new Map();
      this.answered = new Map();
      this.perPeer = new Map();
      this.epoch = epoch;
      for (const e of [...this.atts.keys()]) if (e < epoch - 1) this.atts.delete(e);
    }
    return epoch;
  }

  onChallenge(req: Uint8Array, ctx: Pick<CallContext, 'peer'>): Uint8Array {
    const now = this.clock.now();
    const epoch = this.roll(now);
    const c = decodeChallenge(req);
    if (c.networkId !== this.networkId) throw new PeerMisbehaviourError('RPC_MALFORMED', 'liveness: challenge for another network');
    checkPeerKey(ctx.peer, c.challenger, 'challenge');
    if (!bytesEqual(c.subject, this.key.publicKey)) throw new PeerMisbehaviourError('RPC_MALFORMED', 'liveness: challenge for another subject');
    if (!challengeSignatureValid(c)) throw new PeerMisbehaviourError('LIVENESS_FORGED', 'liveness: challenge signature does not verify');
    if (Math.abs(c.timeMs - now) > this.limits.maxSkewMs) {
      this.counts.refused++;
      throw refused('LIVENESS_SKEW', `challenge dated ${c.timeMs - now} ms from our clock (limit ${this.limits.maxSkewMs})`);
    }
    const n = this.perPeer.get(ctx.peer) ?? 0;
    if (n >= this.limits.perPeerPerWindow || this.answered.size >= this.limits.maxChallengesPerWindow) {
      this.counts.refused++;
      throw refused('LIVENESS_RATE', 'too many challenges this window');
    }
    const nk = toHex(c.nonce);
    if (this.answered.has(nk)) throw refused('LIVENESS_RATE', 'nonce already answered');
    this.perPeer.set(ctx.peer, n + 1);
    this.answered.set(nk, { challenger: c.challenger, epoch });
    this.counts.answered++;
    return signAnswer(this.key, req);
  }

  onAttest(req: Uint8Array, ctx: Pick<CallContext, 'peer'>): Uint8Array {
    this.roll(this.clock.now());
    const m = decodeAttestationMessage(req);
    if (m.networkId !== this.networkId) throw new PeerMisbehaviourError('RPC_MALFORMED', 'liveness: attestation for another network');
    const a = m.attestation;
    checkPeerKey(ctx.peer, a.witness, 'attestation');
    const nk = toHex(a.nonce);
    const table = this.answered.get(nk) !== undefined ? this.answered : this.prevAnswered;
    const ans = table.get(nk);
    // only for a challenge we answered, from that witness, for the window we answered it in
    // (the witness dates its attestation when the answer arrives: the window may have turned meanwhile)
    if (ans === undefined || !bytesEqual(ans.challenger, a.witness) || Math.abs(ans.epoch - m.epoch) > 1) throw refused('LIVENESS_UNKNOWN_NONCE', 'attestation for no challenge we answered');
    if (!verifyAttestation(this.networkId, this.key.publicKey, m.epoch, a)) throw new PeerMisbehaviourError('LIVENESS_FORGED', 'liveness: attestation signature does not verify');
    table.delete(nk); // single use
    let bag = this.atts.get(m.epoch);
    if (bag === undefined) this.atts.set(m.epoch, (bag = new Map()));
    const wk = toHex(a.witness);
    if (!bag.has(wk) && bag.size >= this.limits.maxWitnessesPerWindow) throw refused('LIVENESS_RATE', 'attestation quota of this window is full');
    if (!bag.has(wk)) bag.set(wk, a);
    this.counts.attested++;
    return new Uint8Array([1]);
  }
}

/**
 * Who may read a hop's sealed transcripts (session 28; docs/PROTOCOL.md "Hop transcripts and fraud evidence").
 *
 * A transcript is the exact inputs of a hop's session: for the driver hop, the remote user's prompt and the token ids
 * it generated; for the others, the hidden states of that prompt. Request ids are public (market requests are on the
 * ledger), so serving whoever names one served every sampled user's prompt to anyone. The only reader with a use for
 * the inputs is a validator that can have the hop slashed, and the ledger says who that is:
 *
 * - **the completion.** Validators sample only completions their ledger applied (node/validator.ts), and a slash's
 *   evidence is the applied completion. A request still in flight, one never completed, or a session a stranger had
 *   the hop seal for a public request id has nobody entitled to re-execute it: a transcript is served only for the
 *   hop's commitments in the completion this node's ledger applied for that request (at most one: a completion
 *   deletes its request's escrow row, ledger/apply.ts, so a second is REQUEST_NOT_PENDING);
 * - **the reader.** A fraud statement counts only from a key holding the reward bond locked (`HOP_FRAUD_QUORUM`,
 *   ledger/fraud.ts `countsForFraudQuorum`); a key without it slashes nobody, co-checking included, so it gets nothing.
 *   Any bonded key may read: a hop cannot know which validators sampled the completion (each samples with its own key
 *   at its own rate), so the bond is the price of reading, not a proof of need (docs/LIMITS.md).
 *
 * The reader check is one state read and runs first: an unbonded stranger is refused before any wait, store lookup or
 * encoding. Refusals are typed and unpenalised (`TRANSCRIPT_FORBIDDEN`): an honest validator whose stake or completion
 * our ledger has not seen yet asks again later.
 */
import { accountIdFromPublicKey, publicKeyFromPeerId } from '../identity/index.js';
import { decodeEvent, EventKind } from '../ledger/events.js';
import { countsForFraudQuorum } from '../ledger/fraud.js';
import { bytesEqual } from '../util/bytes.js';
import type { TranscriptCommits } from './hop-transcript.js';

/** The serving side's rule (hop-transcript.ts `serveTranscripts`). */
export interface TranscriptAccess {
  /** Whether `peer` may read transcripts at all (cheap: no I/O beyond one state read). */
  entitled(peer: string): boolean;
  /** Hop `index`'s commitments in the completion this node's ledger applied for `requestId`; undefined when none. */
  paid(requestId: Uint8Array, index: number): TranscriptCommits | undefined;
  /**
   * Whether `requestId` is a market request still open in this node's ledger (escrowed, not completed): only then may
   * its completion still come, and a request waits for it. Without it every request of an entitled peer waits.
   */
  pending?(requestId: Uint8Array): boolean;
  /**
   * How long a request of an entitled peer waits for `paid` (the validator's ledger applied the completion; ours may
   * be a gossip hop behind). Default TRANSCRIPT_PAID_WAIT_MS.
   */
  waitMs?: number;
}

/** As hop-validator.ts CO_CHECK_APPLIED_WAIT_MS: gossip lag between two ledgers. */
export const TRANSCRIPT_PAID_WAIT_MS = 5_000;

/** `entitled` from the ledger: the peer's key holds locked stake that counts toward a hop-fraud quorum. */
export function bondedReaders(lockedOf: (accountId: Uint8Array) => bigint): (peer: string) => boolean {
  return (peer) => {
    let account: Uint8Array;
    try {
      account = accountIdFromPublicKey(publicKeyFromPeerId(peer));
    } catch {
      return false; // a peer id without a secp256k1 key has no account, so no stake
    }
    return countsForFraudQuorum(lockedOf(account));
  };
}

export interface PaidCompletionLimits {
  /** Completions kept in all (oldest first out). */
  maxEntries: number;
  /** How long one is kept after it was noted: the transcripts it names are gone after their retention anyway. */
  retentionMs: number;
}

/** 4 × the transcript store's entries, kept a little longer than its 10 minutes (a completion is noted after the seal). */
export const PAID_COMPLETION_DEFAULTS: PaidCompletionLimits = { maxEntries: 4096, retentionMs: 11 * 60_000 };
/** Completions kept per request (a requester may sign several for one request; the ledger applies at most one). */
const PER_REQUEST = 4;

interface Noted {
  id: Uint8Array;
  index: number;
  inCommit: Uint8Array;
  outCommit: Uint8Array;
  at: number;
}

/**
 * The market completions naming this hop (key `me`) that its ledger stored, by request id: where `paid` finds the
 * completion for a request without a ledger index by request (the ledger keys events by id). Fed with every stored
 * completion (`note`, from the ledger service's ingest events); whether one is applied is asked of the ledger at
 * lookup (`isApplied`: a pending one may apply later, an applied one be undone by a replay). Bounded in count and time.
 */
export class PaidCompletions {
  /** requestId hex → completions naming us, in note order; the map in first-note order for expiry. */
  private readonly byRequest = new Map<string, Noted[]>();
  private count = 0;

  constructor(
    private readonly me: Uint8Array,
    private readonly isApplied: (id: Uint8Array) => boolean,
    private readonly limits: PaidCompletionLimits = PAID_COMPLETION_DEFAULTS,
    private readonly now: () => number = Date.now,
  ) {}

  /** A completion event the ledger stored (wire bytes): kept when it names `me` as a hop. Anything else is ignored. */
  note(bytes: Uint8Array): void {
    // the kind is the event's second byte (u8 version ‖ u8 kind ‖ …), and a completion that does not hold our key
    // anywhere cannot name us: most events are not decoded
    if (bytes[1] !== EventKind.MarketComplete || Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).indexOf(this.me) < 0) return;
    let e;
    try {
      e = decodeEvent(bytes);
    } catch {
      return;
    }
    const b = e.body;
    if (b.kind !== EventKind.MarketComplete) return;
    const index = b.hops.findIndex((h) => bytesEqual(h.key, this.me));
    if (index < 0) return;
    this.expire();
    const rid = Buffer.from(b.requestId).toString('hex');
    const list = this.byRequest.get(rid) ?? [];
    if (list.some((n) => bytesEqual(n.id, e.id))) return;
    if (list.length >= PER_REQUEST) return; // the first ones stay: the ledger applies at most one of them
    const hop = b.hops[index]!;
    list.push({ id: e.id, index, inCommit: hop.inCommit, outCommit: hop.outCommit, at: this.now() });
    this.byRequest.set(rid, list);
    this.count++;
    while (this.count > this.limits.maxEntries) this.dropFirst();
  }

  /** Hop `index`'s commitments in the applied completion for `requestId` that names us at that index. */
  paid(requestId: Uint8Array, index: number): TranscriptCommits | undefined {
    this.expire();
    const list = this.byRequest.get(Buffer.from(requestId).toString('hex'));
    if (list === undefined) return undefined;
    for (const n of list) if (n.index === index && this.isApplied(n.id)) return { inCommit: n.inCommit, outCommit: n.outCommit };
    return undefined;
  }

  size(): number {
    return this.count;
  }

  private expire(): void {
    const cut = this.now() - this.limits.retentionMs;
    for (const [rid, list] of this.byRequest) {
      if (list[0]!.at > cut) break; // a request's first note is its oldest, and the map is in first-note order
      const keep = list.filter((n) => n.at > cut);
      this.count -= list.length - keep.length;
      if (keep.length === 0) this.byRequest.delete(rid);
      else {
        // younger ones left: moved to the end (first-note order becomes approximate; the count bounds it anyway)
        this.byRequest.delete(rid);
        this.byRequest.set(rid, keep);
      }
    }
  }

  private dropFirst(): void {
    const first = this.byRequest.entries().next();
    if (first.done === true) return;
    const [rid, list] = first.value;
    list.shift();
    this.count--;
    if (list.length === 0) this.byRequest.delete(rid);
  }
}

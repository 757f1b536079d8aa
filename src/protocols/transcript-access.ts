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
 *   And a bonded key only where the draw names it (session 29): each validator samples at its own rate, which the hop
 *   cannot know, but no higher than the network's MAX_VALIDATION_RATE (sampling.ts), and the draw at a lower rate is a
 *   subset of the draw at that one; so the hop serves a key drawn at the ceiling for the applied completion's receipt,
 *   and every honest sample is served. A co-checker (a holder the drawn validator asked) is served on that
 *   validator's fraud statement (`vouches`). Until session 29 any bonded key read every applied completion's inputs.
 * - **the completion, carried.** A hop-transcript/3.0.0 request carries the validator's applied completion; a hop
 *   whose ledger missed it at gossip ingests it (`ingest`, after the signature and draw checks, under a quota), since
 *   the 15-minute tail sync that would bring it comes after the transcript's 10 minutes. A 4.0.0 request carries the
 *   completion's market request too (session 30), ingested first: a ledger that missed the request as well dropped
 *   the completion alone (REQUEST_NOT_PENDING).
 *
 * The reader check is one state read and runs first: an unbonded stranger is refused before any wait, store lookup or
 * encoding. Refusals are typed and unpenalised (`TRANSCRIPT_FORBIDDEN`): an honest validator whose stake or completion
 * our ledger has not seen yet asks again later.
 */
import { accountIdFromPublicKey, peerIdFromPublicKey, publicKeyFromPeerId, verifyDomain } from '../identity/index.js';
import { decodeEvent, EVENT_DOMAIN, EventKind, HOP_COMMITMENT_DOMAIN, hopCommitmentPayload, type LedgerEvent, type MarketCompleteBody, type MarketRequestBody } from '../ledger/events.js';
import { countsForFraudQuorum, FRAUD_STATEMENT_DOMAIN, statementPayload, type FraudStatement } from '../ledger/fraud.js';
import { bytesEqual } from '../util/bytes.js';
import { errorMessage, PeerMisbehaviourError } from '../util/errors.js';
import { isSampled } from './sampling.js';
import type { TranscriptCommits } from './hop-transcript.js';

/** Hop `index`'s commitments in an applied completion, with what the sampling rule reads of it. */
export interface PaidCompletion extends TranscriptCommits {
  /** The completion event's id (a fraud statement signs it). */
  id: Uint8Array;
  /** The requester's receipt signature: the seed of every validator's draw (sampling.ts). */
  receiptSignature: Uint8Array;
}

/** What a carried completion's ingest came to (the ledger's IngestResult status and reason). */
export interface CarriedIngest {
  status: string;
  reason?: string;
}

/** The serving side's rule (hop-transcript.ts `serveTranscripts`). */
export interface TranscriptAccess {
  /** Whether `peer` may read transcripts at all (cheap: no I/O beyond one state read). */
  entitled(peer: string): boolean;
  /** Hop `index`'s commitments in the completion this node's ledger applied for `requestId`; undefined when none. */
  paid(requestId: Uint8Array, index: number): PaidCompletion | undefined;
  /**
   * The ceiling a reader must be sampled under for the (completion, hop) it asks about (default MAX_VALIDATION_RATE,
   * sampling.ts; session 29). Tests of several validators that must all sample one hop set 1.
   */
  maxRate?: number;
  /** This network's id: a completion or fraud statement carried by a hop-transcript/3.0.0 request is checked for it. */
  networkId?: string;
  /** This hop's key: a carried completion must name it at the asked index. */
  key?: Uint8Array;
  /**
   * Stores and applies a completion a 3.0.0 or 4.0.0 request carries (signature-checked and naming this hop at the
   * index) when our ledger has not applied one for the request (session 29: a completion dropped at gossip reached the
   * hop's ledger only by the 15-minute tail sync, after the transcript's 10 minutes), after `request`, the completion's
   * market request a 4.0.0 request carries (`carriedRequest`-checked; session 30: a ledger that lacked the request
   * dropped the completion, REQUEST_NOT_PENDING). The ledger's ordinary ingest of each (every state rule, by-id
   * admission); undefined when the caller's quota is spent (one unit for the pair). Without it, nothing carried is
   * ingested.
   */
  ingest?(completion: Uint8Array, peer: string, request?: Uint8Array): CarriedIngest | undefined;
  /**
   * Whether `requestId` is a market request still open in this node's ledger (escrowed, not completed), or stored and
   * waiting for the deferred replay that judges it (a carried request, session 30): only then may its completion still
   * come, and a request waits for it. Without it every request of an entitled peer waits.
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
/**
 * Calls that may wait for a completion at once, in all and per caller (review2, session 28): half of hop-transcript's 8
 * slots, so the other half always serves completions already applied, whoever waits on requests that never complete
 * (four bonded keys at 2 calls each held all 8 for 5 s a call). A call beyond them is answered at once
 * (`COMPLETION_NOT_APPLIED`), and the validator asks again later (hop-validator.ts TRANSCRIPT_RETRY_MS).
 */
export const TRANSCRIPT_MAX_WAITING = 4;
export const TRANSCRIPT_MAX_WAITING_PER_PEER = 1;

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

/**
 * The completion a hop-transcript/3.0.0 request carries, checked as a co-check's is (hop-validator.ts
 * `verifiedCompletion`): a market completion of this network, signed by its driver, whose hop `index` is this hop
 * (`access.key`) and signed its commitment. Two signature checks, run only for a bonded caller. An honest validator
 * carries what its own ledger applied, whose signatures that ledger checked, so a failure is the caller's
 * (`TRANSCRIPT_FORGED_COMPLETION`, fault `peer`; answered, not scored: the RPC layer scores only requests that do not
 * decode or validate) and nothing of it reaches our ledger.
 */
export function carriedCompletion(bytes: Uint8Array, index: number, access: Pick<TranscriptAccess, 'networkId' | 'key'>): LedgerEvent<MarketCompleteBody> {
  const forged = (why: string): PeerMisbehaviourError => new PeerMisbehaviourError('TRANSCRIPT_FORGED_COMPLETION', `hop-transcript: the carried completion ${why}`);
  let c: LedgerEvent;
  try {
    c = decodeEvent(bytes);
  } catch (e) {
    throw forged(`does not decode (${errorMessage(e)})`);
  }
  if (c.body.kind !== EventKind.MarketComplete) throw forged('is not a market completion');
  if (access.networkId !== undefined && c.networkId !== access.networkId) throw forged('is of another network');
  if (!verifyDomain(c.signer, EVENT_DOMAIN, c.payload, c.signature)) throw forged('is not signed by its signer');
  const h = c.body.hops[index];
  if (h === undefined || (access.key !== undefined && !bytesEqual(h.key, access.key))) throw forged('does not name this hop at that index');
  if (!verifyDomain(h.key, HOP_COMMITMENT_DOMAIN, hopCommitmentPayload(c.networkId, c.body.requestId, index, c.body.hops.length, h.inCommit, h.outCommit), h.signature)) {
    throw forged('carries a commitment this hop did not sign');
  }
  return c as LedgerEvent<MarketCompleteBody>;
}

/**
 * The market request a hop-transcript/4.0.0 request carries beside its completion (session 30), checked after the
 * completion (`carriedCompletion`) and before the draw: of this network, signed by its signer
 * (`TRANSCRIPT_FORGED_REQUEST`), and the request that completion answers: its event id is the completion's request id
 * and its signer the completion's requester (`TRANSCRIPT_REQUEST_MISMATCH`). An event's id excludes its signature
 * (ledger/events.ts), so a copy with another signature matches the id: the signature check is what refuses it. Both
 * are the caller's fault (fault `peer`, answered, not scored, as a forged completion): an honest validator carries the
 * request its own ledger applied under that id.
 * One signature check; the ledger's state rules (the requester's balance, the escrow, replay and dedupe) judge the
 * rest when it is ingested.
 */
export function carriedRequest(bytes: Uint8Array, completion: LedgerEvent<MarketCompleteBody>, access: Pick<TranscriptAccess, 'networkId'>): LedgerEvent<MarketRequestBody> {
  const forged = (why: string): PeerMisbehaviourError => new PeerMisbehaviourError('TRANSCRIPT_FORGED_REQUEST', `hop-transcript: the carried request ${why}`);
  let e: LedgerEvent;
  try {
    e = decodeEvent(bytes);
  } catch (err) {
    throw forged(`does not decode (${errorMessage(err)})`);
  }
  if (e.body.kind !== EventKind.MarketRequest) throw forged('is not a market request');
  if (access.networkId !== undefined && e.networkId !== access.networkId) throw forged('is of another network');
  if (!verifyDomain(e.signer, EVENT_DOMAIN, e.payload, e.signature)) throw forged('is not signed by its signer');
  const mismatch = (why: string): PeerMisbehaviourError => new PeerMisbehaviourError('TRANSCRIPT_REQUEST_MISMATCH', `hop-transcript: the carried request ${why}`);
  if (!bytesEqual(e.id, completion.body.requestId)) throw mismatch('is not the one the completion answers (another event id)');
  if (!bytesEqual(accountIdFromPublicKey(e.signer), accountIdFromPublicKey(completion.body.requesterKey))) throw mismatch("is not signed by the completion's requester");
  return e as LedgerEvent<MarketRequestBody>;
}

/**
 * Whether a co-checker's `statement` may vouch for it, before the transcript is looked up: its validator is bonded and
 * sampled for (receipt, index) under `maxRate`. Cheap (one draw, one state read); `vouches` then checks its signature.
 */
export function vouchable(statement: FraudStatement | undefined, receiptSignature: Uint8Array, index: number, maxRate: number, access: Pick<TranscriptAccess, 'entitled'>): boolean {
  if (statement === undefined || !isSampled(receiptSignature, index, statement.validator, maxRate)) return false;
  let peer: string;
  try {
    peer = peerIdFromPublicKey(statement.validator);
  } catch {
    return false;
  }
  return access.entitled(peer);
}

/**
 * Whether a sampled validator's fraud statement opens the transcript to a co-checker (session 29): a co-check asks
 * holders of the span that the draw did not name to re-execute a hop a sampled validator found wrong; the hop serves
 * them on that validator's signed statement about this completion, this hop and its output: `vouchable`, and the
 * statement verifies for (completion id, index, the claim's model hash, the hop's outCommit), and it disagrees with the
 * hop. So what a bonded key may read is still bounded by the draw: its own samples, and the hops some sampled key
 * signed a fraud statement about (which that key could have handed it anyway).
 */
export function vouches(statement: FraudStatement | undefined, paid: PaidCompletion, index: number, modelHash: string, maxRate: number, access: Pick<TranscriptAccess, 'entitled' | 'networkId'>): boolean {
  if (statement === undefined || access.networkId === undefined || !vouchable(statement, paid.receiptSignature, index, maxRate, access)) return false;
  if (bytesEqual(statement.recomputed, paid.outCommit)) return false;
  return verifyDomain(statement.validator, FRAUD_STATEMENT_DOMAIN, statementPayload(access.networkId, paid.id, index, modelHash, paid.outCommit, statement.recomputed), statement.signature);
}

/**
 * Carried completions a hop ingests, per caller and in all, per minute (session 29). Only a bonded caller that is
 * sampled for the completion (or vouched for) with a completion our own key signed a commitment in gets this far, so
 * the quota bounds ledger writes of a few bonded keys replaying real completions, not strangers.
 *
 * A 4.0.0 request's pair (the request, then its completion) takes one unit (session 30), not two: the request is
 * bound to a completion that passed every check above (its id is the one the completion names, its signer the
 * completion's requester), it is ≤ MAX_CARRIED_REQUEST_BYTES (512) beside the completion's ≤ 8 KiB, and it is useful
 * only with it; counted per event, a validator catching up on completions its hops missed would get 3 a minute from
 * each hop instead of 6. So the quota bounds carried events at 12 a minute per caller and 120 in all, of at most
 * 8 KiB + 512 bytes a unit.
 */
export const CARRIED_INGESTS_PER_MINUTE = 60;
export const CARRIED_INGESTS_PER_PEER_PER_MINUTE = 6;

export class CarriedIngestQuota {
  private windowStart = 0;
  private total = 0;
  private readonly byPeer = new Map<string, number>();
  constructor(
    private readonly perMinute = CARRIED_INGESTS_PER_MINUTE,
    private readonly perPeerPerMinute = CARRIED_INGESTS_PER_PEER_PER_MINUTE,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes one ingest for `peer`; false when its or the hop's minute is spent. */
  take(peer: string): boolean {
    const t = this.now();
    if (t - this.windowStart >= 60_000) {
      this.windowStart = t;
      this.total = 0;
      this.byPeer.clear();
    }
    const mine = this.byPeer.get(peer) ?? 0;
    if (this.total >= this.perMinute || mine >= this.perPeerPerMinute) return false;
    this.total++;
    this.byPeer.set(peer, mine + 1);
    return true;
  }
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
  receiptSignature: Uint8Array;
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
    /**
     * The hex account id of the requester of an open request (undefined: not open, or unknown). Given, a completion
     * of an open request signed for another requester is not kept (review2, session 28): while a replay is pending
     * every ingest only stores, so a stranger's completions naming us (over a session it drove for the public request
     * id) were stored 'pending', took the request's 4 places first, and the honest one was never kept: its validators
     * were refused. The ledger applies only the requester's (NOT_REQUESTER).
     */
    private readonly openRequester?: (requestId: Uint8Array) => string | undefined,
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
    const requester = this.openRequester?.(b.requestId);
    if (requester !== undefined && requester !== Buffer.from(accountIdFromPublicKey(b.requesterKey)).toString('hex')) return;
    this.expire();
    const rid = Buffer.from(b.requestId).toString('hex');
    const list = this.byRequest.get(rid) ?? [];
    if (list.some((n) => bytesEqual(n.id, e.id))) return;
    if (list.length >= PER_REQUEST) return; // the first ones stay: the ledger applies at most one of them
    const hop = b.hops[index]!;
    list.push({ id: e.id, index, inCommit: hop.inCommit, outCommit: hop.outCommit, receiptSignature: b.receiptSignature, at: this.now() });
    this.byRequest.set(rid, list);
    this.count++;
    while (this.count > this.limits.maxEntries) this.dropFirst();
  }

  /** Hop `index`'s commitments in the applied completion for `requestId` that names us at that index. */
  paid(requestId: Uint8Array, index: number): PaidCompletion | undefined {
    this.expire();
    const list = this.byRequest.get(Buffer.from(requestId).toString('hex'));
    if (list === undefined) return undefined;
    for (const n of list) if (n.index === index && this.isApplied(n.id)) return { id: n.id, inCommit: n.inCommit, outCommit: n.outCommit, receiptSignature: n.receiptSignature };
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

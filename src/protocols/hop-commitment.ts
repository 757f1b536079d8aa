/**
 * Hop commitments on the inference stream (issue 11 §2; docs/PROTOCOL.md "Hop commitments on the inference
 * stream"): the pieces both ends of inference-stream/1.0.0 need to turn a served generation into a market
 * completion the ledger pays from.
 *
 * - Every hop keeps two running activation commitments per session (ledger/commitment.ts): over the inputs it
 *   received and the outputs it sent, one step per forward chunk, over the values as they travelled (the wire's
 *   decoding). The entry, which drives the chain and so sees every hop's input and output, keeps the same two per hop.
 * - At the session's end the entry asks each hop to sign its pair for the market request (hop index, hop count); it
 *   checks each signed pair against its own (a hop cannot sign for outputs it did not send), the key against the
 *   hop's peer id, and the chain links, then signs the receipt as the requester (`makeReceipt`) and sends it to the
 *   driver (hop 0), which submits the completion (`HopMarket.submitCompletion`).
 *
 * Pure helpers and the receipt's wire encoding; the stream handling is in inference.ts.
 */
import { publicKeyFromPeerId, verifyDomain, type NodeKey } from '../identity/index.js';
import { signReceipt } from '../ledger/build.js';
import { DecodeError, Reader, Writer } from '../ledger/codec.js';
import { RunningCommitment } from '../ledger/commitment.js';
import { HOP_COMMITMENT_DOMAIN, hopCommitmentPayload, MAX_HOPS, type HopCommitment, type MarketCompleteBody } from '../ledger/events.js';
import { PeerMisbehaviourError } from '../util/errors.js';
import { linkSignals } from '../util/abort.js';

export { RunningCommitment };
export type { TopKStep } from '../ledger/commitment.js';

/** What the requester sends the driver: the completion's body without its request id (the session names it). */
export type Receipt = Omit<MarketCompleteBody, 'kind' | 'requestId'>;

/** A hop's market side: its key signs its commitments; the driver's also submits completions. */
export interface HopMarket {
  networkId: string;
  key: NodeKey;
  /** Signs and submits the completion (this node is its driver); resolves with its event id, rejects with the ledger's reason. */
  submitCompletion(body: Omit<MarketCompleteBody, 'kind'>): Promise<Uint8Array>;
}

/** u32 tokensUsed ‖ hash outputCommitment ‖ u8 n ‖ (33-byte key ‖ hash in ‖ hash out ‖ 64-byte signature) × n ‖ 33-byte requester key ‖ 64-byte signature. */
export function encodeReceipt(r: Receipt): Uint8Array {
  const w = new Writer().u32(r.tokensUsed).fixed(r.outputCommitment, 32).u8(r.hops.length);
  for (const h of r.hops) w.fixed(h.key, 33).fixed(h.inCommit, 32).fixed(h.outCommit, 32).fixed(h.signature, 64);
  return w.fixed(r.requesterKey, 33).fixed(r.receiptSignature, 64).finish();
}

export function decodeReceipt(bytes: Uint8Array): Receipt {
  try {
    const rd = new Reader(bytes);
    const tokensUsed = rd.u32();
    const outputCommitment = rd.fixed(32);
    const n = rd.u8();
    if (n < 1 || n > MAX_HOPS) throw new DecodeError(`hop count ${n} outside 1..${MAX_HOPS}`);
    const hops: HopCommitment[] = [];
    for (let i = 0; i < n; i++) hops.push({ key: rd.fixed(33), inCommit: rd.fixed(32), outCommit: rd.fixed(32), signature: rd.fixed(64) });
    const r: Receipt = { tokensUsed, outputCommitment, hops, requesterKey: rd.fixed(33), receiptSignature: rd.fixed(64) };
    if (rd.remaining !== 0) throw new DecodeError('trailing bytes');
    return r;
  } catch (e) {
    if (e instanceof DecodeError) throw new PeerMisbehaviourError('RPC_MALFORMED', `inference-stream.receipt: ${e.message}`);
    throw e;
  }
}

const eq = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/** One hop as the entry saw it: whom it drove, the commitments it computed itself, and what the hop signed. */
export interface RouteHopCheck {
  peerId: string;
  inCommit: Uint8Array;
  outCommit: Uint8Array;
  signed: HopCommitment;
}

/**
 * The requester's checks before it signs (first failure wins): each hop signed with the key of its peer id, under
 * the hop-commitment domain for (request, index, count), the pair the entry computed from what it sent and
 * received; the pairs chain (hop k's output = hop k+1's input). Returns null, or why not.
 */
export function checkRouteCommitments(networkId: string, requestId: Uint8Array, hops: readonly RouteHopCheck[]): { hop: number; reason: 'HOP_WRONG_KEY' | 'HOP_BAD_SIGNATURE' | 'HOP_COMMIT_MISMATCH' | 'HOP_CHAIN_BROKEN' } | null {
  for (let i = 0; i < hops.length; i++) {
    const h = hops[i]!;
    let key: Uint8Array;
    try {
      key = publicKeyFromPeerId(h.peerId);
    } catch {
      return { hop: i, reason: 'HOP_WRONG_KEY' };
    }
    if (!eq(key, h.signed.key)) return { hop: i, reason: 'HOP_WRONG_KEY' };
    if (!verifyDomain(h.signed.key, HOP_COMMITMENT_DOMAIN, hopCommitmentPayload(networkId, requestId, i, hops.length, h.signed.inCommit, h.signed.outCommit), h.signed.signature)) return { hop: i, reason: 'HOP_BAD_SIGNATURE' };
    if (!eq(h.signed.inCommit, h.inCommit) || !eq(h.signed.outCommit, h.outCommit)) return { hop: i, reason: 'HOP_COMMIT_MISMATCH' };
    if (i > 0 && !eq(hops[i - 1]!.signed.outCommit, h.signed.inCommit)) return { hop: i, reason: 'HOP_CHAIN_BROKEN' };
  }
  return null;
}

/** The requester's receipt over the checked route: tokens, the last hop's output commitment, every hop's pair. */
export function makeReceipt(requester: NodeKey, networkId: string, requestId: Uint8Array, tokensUsed: number, hops: readonly HopCommitment[]): Receipt {
  const outputCommitment = hops[hops.length - 1]!.outCommit;
  return { tokensUsed, outputCommitment, hops: [...hops], requesterKey: requester.publicKey, receiptSignature: signReceipt(requester, networkId, requestId, tokensUsed, outputCommitment, hops) };
}

/** A hop of a finished route as the entry holds it: its own commitments and the session to ask. */
export interface SettleHop {
  peerId: string;
  inCommit: Uint8Array;
  outCommit: Uint8Array;
  session: {
    commit?(req: { requestId: Uint8Array; index: number; count: number }, signal: AbortSignal): Promise<HopCommitment>;
    submitReceipt?(receipt: Uint8Array, signal: AbortSignal): Promise<Uint8Array>;
  };
}

/** How a generation's payment ended: submitted by the driver, refused (a check failed; nobody is paid), or skipped. */
export type Settlement =
  | { status: 'submitted'; completionId: string; tokensUsed: number; hops: number }
  | { status: 'refused'; reason: string; hop?: number; message?: string }
  | { status: 'skipped'; reason: string };

export interface SettleOptions {
  networkId: string;
  /** The market request's event id (the requester's escrow). */
  requestId: Uint8Array;
  requester: NodeKey;
  tokensUsed: number;
  /** Deadline of the whole settlement (commit requests in parallel, then the receipt). */
  timeoutMs: number;
  signal: AbortSignal;
}

/**
 * The requester's side at the end of a generation: collect every hop's signed commitments, check them
 * (checkRouteCommitments), sign the receipt and hand it to the driver, which submits the completion. Never throws:
 * the generation already succeeded, and a failed settlement only means nobody is paid for it (the escrow is
 * refunded at the request's expiry).
 */
export async function settleRoute(hops: readonly SettleHop[], o: SettleOptions): Promise<Settlement> {
  const me = Buffer.from(o.requester.publicKey);
  for (const h of hops) {
    let key: Uint8Array | undefined;
    try {
      key = publicKeyFromPeerId(h.peerId);
    } catch {
      key = undefined;
    }
    // the ledger refuses a requester among its own hops (self-dealing): the entry served itself, nothing to pay
    if (key !== undefined && me.equals(Buffer.from(key))) return { status: 'skipped', reason: 'REQUESTER_IN_ROUTE' };
    if (h.session.commit === undefined || h.session.submitReceipt === undefined) return { status: 'skipped', reason: 'HOP_CANNOT_COMMIT' };
  }
  if (hops.length < 1 || hops.length > MAX_HOPS) return { status: 'skipped', reason: 'ROUTE_LENGTH' };
  // not AbortSignal.any (util/abort.ts): o.signal may be a node-lifetime signal
  const linked = linkSignals(AbortSignal.timeout(o.timeoutMs), o.signal);
  const signal = linked.signal;
  try {
    const signed: HopCommitment[] = [];
    const results = await Promise.allSettled(hops.map((h, index) => h.session.commit!({ requestId: o.requestId, index, count: hops.length }, signal)));
    for (let i = 0; i < results.length; i++) {
      const r = results[i]!;
      if (r.status === 'rejected') return { status: 'refused', reason: 'HOP_NO_COMMITMENT', hop: i, message: r.reason instanceof Error ? r.reason.message : String(r.reason) };
      signed.push(r.value);
    }
    const bad = checkRouteCommitments(o.networkId, o.requestId, hops.map((h, i) => ({ peerId: h.peerId, inCommit: h.inCommit, outCommit: h.outCommit, signed: signed[i]! })));
    if (bad !== null) return { status: 'refused', ...bad };
    const receipt = makeReceipt(o.requester, o.networkId, o.requestId, o.tokensUsed, signed);
    try {
      const id = await hops[0]!.session.submitReceipt!(encodeReceipt(receipt), signal);
      return { status: 'submitted', completionId: Buffer.from(id).toString('hex'), tokensUsed: o.tokensUsed, hops: hops.length };
    } catch (e) {
      return { status: 'refused', reason: 'COMPLETION_REFUSED', hop: 0, message: e instanceof Error ? e.message : String(e) };
    }
  } finally {
    linked.dispose();
  }
}

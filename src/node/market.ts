/**
 * The node's market side of its hop server (issue 11 §2, protocols/hop-commitment.ts): its node key signs the hop
 * commitments, and as a route's driver it signs the completion the requester's receipt pays for and submits it to
 * its ledger (gossiped like any event). The nonce is read and the event ingested in one synchronous stretch
 * (LedgerService.submit ingests before its first await), so two completions at once never share a nonce.
 */
import { accountIdFromPublicKey, publicKeyFromPeerId, type NodeKey } from '../identity/index.js';
import { buildMarketComplete, buildMarketRequest, EventKind } from '../ledger/index.js';
import { requestTerms } from '../ledger/request-terms.js';
import { settleRoute, type HopMarket, type Settlement, type SettleHop } from '../protocols/hop-commitment.js';
import { waitFor } from '../util/abort.js';
import type { Clock } from '../util/clock.js';
import { NeuroShardError } from '../util/errors.js';
import type { NodeLedgerService } from './ledger.js';

/** Deadline of the completion's publish (it is stored before; peers get it by sync when the publish is lost). */
const SUBMIT_MS = 10_000;
/**
 * How long a driver waits for the requester's escrow to reach its own ledger before it submits the completion: the
 * request is gossiped as the requester asks the hops for their commitments, and the two race.
 */
const REQUEST_ARRIVAL_MS = 5_000;
/** Deadline of a whole settlement (the hops' commitments, then the receipt and the driver's completion). */
const SETTLE_MS = 10_000;

export function nodeHopMarket(key: NodeKey, networkId: string, ledger: NodeLedgerService, clock: Clock): HopMarket {
  return {
    networkId,
    key,
    submitCompletion: async (body) => {
      await waitFor(() => ledger.ledger.eventStatus(body.requestId)?.status === 'applied', { timeoutMs: REQUEST_ARRIVAL_MS, intervalMs: 25, what: 'the escrow of the request' }).catch(() => {
        // submitted anyway: the ledger judges it (REQUEST_NOT_PENDING now, applied on replay if the request is older)
      });
      const nonce = ledger.ledger.nextNonce(key.publicKey, EventKind.MarketComplete);
      const ev = buildMarketComplete(key, { networkId, nonce, timestampMs: clock.now() }, body);
      const r = await ledger.service.submit(ev.bytes, { signal: AbortSignal.timeout(SUBMIT_MS) });
      if (r.status !== 'applied' && r.status !== 'pending') {
        throw new NeuroShardError('COMPLETION_REFUSED', `the ledger refused the completion: ${r.status}${r.reason === undefined ? '' : ` (${r.reason})`}`, { fault: 'caller', meta: { reason: r.reason ?? r.status } });
      }
      return ev.id;
    },
  };
}

/**
 * The entry node pays for the generations it drives (issue 11 §2; `--pay-inference auto`): at the end of a
 * generation routed through other nodes, it escrows a market request for the tokens used (ledger/request-terms.ts)
 * and settles the route on it (protocols/hop-commitment.ts settleRoute): the hops sign their commitments, the entry
 * signs the receipt, the driver submits the completion, and every ledger pays the route from the escrow. A
 * generation this node served itself, or one its wallet cannot cover, is not paid (the answer says why).
 */
export function nodeInferencePayer(key: NodeKey, networkId: string, ledger: NodeLedgerService, clock: Clock): (hops: SettleHop[], usage: { promptTokens: number; completionTokens: number }, signal: AbortSignal) => Promise<Settlement> {
  const me = Buffer.from(key.publicKey);
  const account = accountIdFromPublicKey(key.publicKey);
  return async (hops, usage, signal) => {
    // before any escrow: settleRoute would refuse the same (the ledger refuses a requester among its own hops)
    if (hops.some((h) => samePeer(h.peerId, me))) return { status: 'skipped', reason: 'REQUESTER_IN_ROUTE' };
    if (hops.some((h) => h.session.commit === undefined || h.session.submitReceipt === undefined)) return { status: 'skipped', reason: 'HOP_CANNOT_COMMIT' };
    const l = ledger.ledger;
    const now = clock.now();
    const terms = requestTerms(l.status().marketPricePerMillion, usage.promptTokens + usage.completionTokens, l.account(account).balance, now);
    if (!terms.ok) return { status: 'skipped', reason: terms.reason };
    const req = buildMarketRequest(key, { networkId, nonce: l.nextNonce(key.publicKey, EventKind.MarketRequest), timestampMs: now }, { maxTokens: terms.maxTokens, maxPricePerMillion: terms.maxPricePerMillion, expiresAtMs: terms.expiresAtMs });
    const r = await ledger.service.submit(req.bytes, { signal: AbortSignal.timeout(SUBMIT_MS) });
    if (r.status !== 'applied' && r.status !== 'pending') return { status: 'refused', reason: 'REQUEST_REFUSED', message: `${r.status}${r.reason === undefined ? '' : ` (${r.reason})`}` };
    return settleRoute(hops, { networkId, requestId: req.id, requester: key, tokensUsed: terms.maxTokens, timeoutMs: SETTLE_MS, signal });
  };
}

function samePeer(peerId: string, publicKey: Buffer): boolean {
  try {
    return publicKey.equals(Buffer.from(publicKeyFromPeerId(peerId)));
  } catch {
    return false;
  }
}

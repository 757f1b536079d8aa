/**
 * The node's market side of its hop server (issue 11 §2, protocols/hop-commitment.ts): its node key signs the hop
 * commitments, and as a route's driver it signs the completion the requester's receipt pays for and submits it to
 * its ledger (gossiped like any event). The nonce is read and the event ingested in one synchronous stretch
 * (LedgerService.submit ingests before its first await), so two completions at once never share a nonce.
 */
import type { NodeKey } from '../identity/index.js';
import { buildMarketComplete, EventKind } from '../ledger/index.js';
import type { HopMarket } from '../protocols/hop-commitment.js';
import type { Clock } from '../util/clock.js';
import { NeuroShardError } from '../util/errors.js';
import type { NodeLedgerService } from './ledger.js';

/** Deadline of the completion's publish (it is stored before; peers get it by sync when the publish is lost). */
const SUBMIT_MS = 10_000;

export function nodeHopMarket(key: NodeKey, networkId: string, ledger: NodeLedgerService, clock: Clock): HopMarket {
  return {
    networkId,
    key,
    submitCompletion: async (body) => {
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

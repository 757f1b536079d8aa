/**
 * What an entry node escrows for a generation it pays for (issue 11 §2): the requester side of the market, sized at
 * the end of the generation, when the tokens used are known. The request locks the price it is applied at (never
 * above `maxPricePerMillion`) and the completion charges `tokensUsed` at that price; what is left of the escrow goes
 * back to the requester with the completion, or at expiry when the completion never comes.
 */
import { requestEscrow } from './economics.js';

/** The most the entry accepts above the price its ledger shows: the price moves with demand between sign and apply. */
export const REQUEST_PRICE_HEADROOM = 2n;
/** A request whose completion has not come within this time refunds in full (the settlement's own deadline is shorter). */
export const REQUEST_EXPIRY_MS = 10 * 60_000;

export type RequestTerms =
  | { ok: true; maxTokens: number; maxPricePerMillion: bigint; escrow: bigint; expiresAtMs: number }
  | { ok: false; reason: 'INSUFFICIENT_BALANCE' | 'NO_TOKENS' };

/** The market request for `tokensUsed` tokens at `pricePerMillion` (the ledger's price now), or why none is made. */
export function requestTerms(pricePerMillion: bigint, tokensUsed: number, balance: bigint, nowMs: number): RequestTerms {
  if (!Number.isSafeInteger(tokensUsed) || tokensUsed <= 0) return { ok: false, reason: 'NO_TOKENS' };
  const maxPricePerMillion = pricePerMillion * REQUEST_PRICE_HEADROOM;
  const escrow = requestEscrow(maxPricePerMillion, tokensUsed);
  if (balance < escrow) return { ok: false, reason: 'INSUFFICIENT_BALANCE' };
  return { ok: true, maxTokens: tokensUsed, maxPricePerMillion, escrow, expiresAtMs: nowMs + REQUEST_EXPIRY_MS };
}

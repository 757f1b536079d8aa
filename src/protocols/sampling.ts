/**
 * Which validators sample which hop (issue 11 §2 "Inference"; docs/ECONOMICS.md). Shared by the validator
 * (hop-validator.ts: what it checks) and the hop (transcript-access.ts: whom it serves a transcript), so it lives
 * apart from both.
 */
import { createHash } from 'node:crypto';

export const VALIDATE_DOMAIN = 'neuroshard/validate/v1';
/** Default share of other hops' sessions a validator re-executes (1 in 20). */
export const VALIDATION_RATE_DEFAULT = 0.05;
/**
 * The network-wide ceiling on a validator's rate (session 29): a hop serves a transcript only to a key sampled for
 * that (completion, hop) at this rate, so one bonded key reads at most this share of the hops it asks about (the
 * users' prompts and their hidden states), not all of them. A node started with a higher `--validation-rate` runs at
 * this one. Sampling is a threshold on one hash, so a key sampled at a lower rate is sampled at this one too: every
 * hop an honest validator samples, the hop serves it.
 */
export const MAX_VALIDATION_RATE = 0.25;

/** The fraction in [0, 1) that `validator` draws for hop `index` of the completion whose receipt carries `receiptSignature`. */
export function sampleDraw(receiptSignature: Uint8Array, index: number, validator: Uint8Array): number {
  const d = createHash('sha256').update(VALIDATE_DOMAIN).update(receiptSignature).update(new Uint8Array([index])).update(validator).digest();
  return d.readUInt32BE(0) / 2 ** 32;
}

/**
 * Whether `validator` samples hop `index` of the completion whose receipt carries `receiptSignature`: its draw is
 * below `rate`. Monotone in `rate` (one draw, one threshold): sampled at r is sampled at every r' ≥ r.
 */
export function isSampled(receiptSignature: Uint8Array, index: number, validator: Uint8Array, rate: number): boolean {
  if (!(rate > 0)) return false;
  if (rate >= 1) return true;
  return sampleDraw(receiptSignature, index, validator) < rate;
}

/**
 * The rate a validator runs at: `requested` (--validation-rate), at most `ceiling`. Above it the validator would
 * sample hops that serve it no transcript (NOT_SAMPLED), so a higher setting is clamped, with `message` to log.
 */
export function effectiveValidationRate(requested: number, ceiling = MAX_VALIDATION_RATE): { rate: number; message?: string } {
  if (requested <= ceiling) return { rate: requested };
  return { rate: ceiling, message: `--validation-rate ${requested} is above the network's ceiling ${ceiling} (hops serve transcripts only to keys the draw names at it): validating at ${ceiling}` };
}

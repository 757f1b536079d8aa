/**
 * Who may use the /v1 routes, and how often. On a loopback-only node no key is asked (whoever can reach
 * 127.0.0.1 is on this machine, and the server's Host check keeps web pages out); all local callers share one
 * budget. On an exposed node (`--api-host`) every request carries `Authorization: Bearer <key>` naming a key of
 * `<data-dir>/api-keys.json`; each key has its own budget (its `rateLimitPerMin`, else the node's `apiRateLimit`).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ApiKeyStore } from '../keys.js';
import type { RateLimiter } from '../rate-limit.js';
import { onceClosed } from '../closed.js';
import { invalidApiKey, rateLimited, sendOpenAiError, tooManyConcurrent } from './errors.js';

/**
 * Requests in flight at once per API key (keys on only). The node runs at most 8 /v1 generations at once
 * (node/options.ts `maxPending`); a key's minute of rate budget (60 by default) let one key take all of them with
 * streams that run for as long as their tokens, and every other key got 503 `overloaded` meanwhile (session 22).
 */
export const MAX_IN_FLIGHT_PER_KEY = 4;

export interface AccessOptions {
  /** Present when keys are required. */
  keys?: ApiKeyStore;
  limiter: RateLimiter;
  /** Requests per minute per key (0 turns limits off). */
  rateLimitPerMin: number;
  /** Requests in flight at once per key when keys are on. Default MAX_IN_FLIGHT_PER_KEY. */
  maxInFlightPerKey?: number;
}

export function openAiAccess(o: AccessOptions) {
  const inFlight = new Map<string, number>();
  const maxInFlight = o.maxInFlightPerKey ?? MAX_IN_FLIGHT_PER_KEY;
  return async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    let bucket = 'local';
    let perMin = o.rateLimitPerMin;
    if (o.keys !== undefined) {
      const auth = req.headers.authorization;
      const m = typeof auth === 'string' ? /^Bearer\s+(\S{1,200})$/i.exec(auth.trim()) : null;
      if (m === null) {
        return sendOpenAiError(
          reply,
          invalidApiKey("You didn't provide an API key. Send it as 'Authorization: Bearer <key>' (a node operator creates keys with `neuroshard apikey create`)."),
        );
      }
      const rec = o.keys.verify(m[1]!);
      if (rec === null) return sendOpenAiError(reply, invalidApiKey('Incorrect API key provided.'));
      bucket = rec.id;
      perMin = rec.rateLimitPerMin ?? o.rateLimitPerMin;
    }
    if (perMin > 0) {
      const d = o.limiter.take(bucket, perMin);
      if (!d.ok) return sendOpenAiError(reply, rateLimited(d.retryAfterS, perMin));
    }
    if (o.keys !== undefined) {
      // counted until the response closes (a hijacked stream included: no fastify hook runs for it) or its socket
      // does, whichever comes first: a pipelined request's response waits in a queue behind the first one and never
      // emits 'close' when the client goes away (Node 20), so its place was kept for good (attacks/api-pipelined)
      const n = inFlight.get(bucket) ?? 0;
      if (n >= maxInFlight) return sendOpenAiError(reply, tooManyConcurrent(maxInFlight));
      inFlight.set(bucket, n + 1);
      onceClosed(req, reply, () => {
        const left = (inFlight.get(bucket) ?? 1) - 1;
        if (left <= 0) inFlight.delete(bucket);
        else inFlight.set(bucket, left);
      });
    }
    return undefined;
  };
}

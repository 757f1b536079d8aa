/**
 * Bounds on a token stream (SSE) for a client that stopped reading: the /v1 streams (openai/routes.ts) and POST
 * /api/generate (generate.ts) write one event per token and never wait for the socket to drain (a generation does
 * not pause for one reader: its route's KV cache is held on every hop while it runs). Before, a client that stopped
 * reading had every token it asked for queued in the node's memory and the generation ran to its end; the socket
 * (and its queue) then stayed open for as long as the client kept it, with no deadline
 * (test/attacks/api-stream.test.ts). Now a stream whose queue passes MAX_STREAM_BUFFERED_BYTES is cut off, which
 * aborts its generation (the routes abort on the socket's close) and frees the route's sessions; and a stream that
 * ended waits at most STREAM_DRAIN_MS for its last bytes to be taken.
 */
import type { ServerResponse } from 'node:http';

/** Bytes a token stream may have queued (past the kernel's socket buffers) before it is cut off. */
export const MAX_STREAM_BUFFERED_BYTES = 1 << 20;
/** How long an ended stream's last bytes may wait for the client before the socket is closed. */
export const STREAM_DRAIN_MS = 30_000;

/**
 * True when `raw` holds more than `max` bytes the client has not taken: the response is then destroyed (its socket's
 * close aborts the generation). Call after each token's write.
 */
export function cutOffSlowReader(raw: ServerResponse, max = MAX_STREAM_BUFFERED_BYTES): boolean {
  if (raw.destroyed) return true;
  if (raw.writableLength <= max) return false;
  raw.destroy();
  return true;
}

/** Ends `raw` with `last`; a client that does not take the rest within `ms` has its socket closed. */
export function endWithin(raw: ServerResponse, last: string | undefined, ms = STREAM_DRAIN_MS): void {
  if (raw.destroyed) return;
  if (last === undefined) raw.end();
  else raw.end(last);
  if (raw.writableFinished) return;
  const t = setTimeout(() => raw.destroy(), ms);
  t.unref();
  const clear = (): void => clearTimeout(t);
  raw.once('finish', clear);
  raw.once('close', clear);
}

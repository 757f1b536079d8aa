/**
 * When a request is over for the client: its response closed, or its socket did. Node emits 'close' on a response
 * when it finished or its socket closed, except for a pipelined request's response still queued behind an earlier
 * one: that one never emits it when the client goes away (Node 20), so what hung on it alone (an in-flight place, a
 * generation's abort) stayed for good (test/attacks/api-pipelined.test.ts).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';

/**
 * Calls `fn` once, when `reply`'s response or `req`'s socket closes, whichever comes first; both listeners are then
 * removed (a keep-alive socket serves many requests: none of them leaves a listener on it). Returns a function that
 * removes them without calling `fn`.
 */
export function onceClosed(req: FastifyRequest, reply: FastifyReply, fn: () => void): () => void {
  const res = reply.raw;
  const socket = req.raw.socket;
  let done = false;
  const off = (): void => {
    done = true;
    res.off('close', fire);
    socket.off('close', fire);
  };
  const fire = (): void => {
    if (done) return;
    off();
    fn();
  };
  res.once('close', fire);
  // a socket already closed (the client went away before this ran) emits nothing more
  if (socket.destroyed) queueMicrotask(fire);
  else socket.once('close', fire);
  return off;
}

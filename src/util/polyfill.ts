/**
 * Node 20 gaps that libp2p 3 steps into, filled before any libp2p code runs (imported first by the CLI entry and by
 * the libp2p factory):
 *
 * - `Promise.withResolvers` (Node 22+), called throughout libp2p 3 and its dependencies.
 * - A global `WebSocket` (Node 22+; behind --experimental-websocket on 20): @libp2p/websockets dials with
 *   `new WebSocket(url)`, so without it every /ws dial fails with "WebSocket is not defined". The `ws` package's
 *   client (the one @libp2p/websockets already uses for its listener) implements the same browser API.
 */
import { WebSocket as WsWebSocket } from 'ws';

interface PromiseWithResolversCtor {
  withResolvers?: unknown;
}
if (typeof (Promise as PromiseWithResolversCtor).withResolvers !== 'function') {
  (Promise as PromiseWithResolversCtor).withResolvers = function withResolvers<T>(this: PromiseConstructor) {
    let resolve!: (v: T | PromiseLike<T>) => void;
    let reject!: (e: unknown) => void;
    const promise = new this<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}

const g = globalThis as { WebSocket?: unknown };
if (typeof g.WebSocket === 'undefined') g.WebSocket = WsWebSocket;

export {};

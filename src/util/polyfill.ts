/**
 * Node 20 lacks Promise.withResolvers (Node 22+); libp2p 3 and its dependencies call it at run time.
 * Imported first by the CLI entry and by the libp2p factory, so it is in place before any libp2p code runs.
 */
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
export {};

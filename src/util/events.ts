import { EventEmitter } from 'node:events';

/**
 * A strictly typed event emitter: `Events` maps event names (`noun:verb`) to payload types, so emitting a wrong
 * payload or listening for an unknown event fails to compile.
 */
export class TypedEmitter<Events extends { [K in keyof Events]: unknown }> {
  private readonly ee = new EventEmitter();

  constructor() {
    this.ee.setMaxListeners(100);
  }

  on<K extends keyof Events & string>(event: K, fn: (payload: Events[K]) => void): () => void {
    this.ee.on(event, fn as (p: unknown) => void);
    return () => this.ee.off(event, fn as (p: unknown) => void);
  }

  once<K extends keyof Events & string>(event: K, fn: (payload: Events[K]) => void): void {
    this.ee.once(event, fn as (p: unknown) => void);
  }

  off<K extends keyof Events & string>(event: K, fn: (payload: Events[K]) => void): void {
    this.ee.off(event, fn as (p: unknown) => void);
  }

  emit<K extends keyof Events & string>(event: K, payload: Events[K]): void {
    this.ee.emit(event, payload);
  }

  /** Resolves with the next payload of `event` that satisfies `pred`, or rejects after `timeoutMs`. */
  waitFor<K extends keyof Events & string>(
    event: K,
    opts: { timeoutMs: number; pred?: (p: Events[K]) => boolean },
  ): Promise<Events[K]> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.ee.off(event, handler);
        reject(new Error(`event ${event} not seen within ${opts.timeoutMs} ms`));
      }, opts.timeoutMs);
      const handler = (p: unknown): void => {
        if (opts.pred !== undefined && !opts.pred(p as Events[K])) return;
        clearTimeout(timer);
        this.ee.off(event, handler);
        resolve(p as Events[K]);
      };
      this.ee.on(event, handler);
    });
  }

  removeAllListeners(): void {
    this.ee.removeAllListeners();
  }
}

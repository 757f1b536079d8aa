/**
 * An in-memory LedgerNetwork for tests: a hub that connects named members. Gossip reaches every other member
 * (asynchronously, like a real network); sync calls go straight to the target's handler. A member can be
 * partitioned off to model a node that misses gossip and catches up by sync.
 */
import { throwIfAborted, type AbortOptions } from '../util/abort.js';
import type { LedgerNetwork, LedgerSyncHandler } from './interfaces.js';

export class MemoryLedgerHub {
  private readonly members = new Map<string, MemoryLedgerNetwork>();

  join(name: string): MemoryLedgerNetwork {
    const m = new MemoryLedgerNetwork(name, this);
    this.members.set(name, m);
    return m;
  }

  /** @internal */
  others(name: string): MemoryLedgerNetwork[] {
    return [...this.members.values()].filter((m) => m.name !== name && !m.partitioned);
  }

  /** @internal */
  member(name: string): MemoryLedgerNetwork | undefined {
    return this.members.get(name);
  }
}

export class MemoryLedgerNetwork implements LedgerNetwork {
  partitioned = false;
  private handlers = new Set<(event: Uint8Array, from: string) => void>();
  private syncHandler: LedgerSyncHandler | undefined;

  constructor(
    readonly name: string,
    private readonly hub: MemoryLedgerHub,
  ) {}

  publish(event: Uint8Array, opts: AbortOptions = {}): Promise<void> {
    throwIfAborted(opts.signal, 'publish');
    if (this.partitioned) return Promise.resolve();
    for (const m of this.hub.others(this.name)) {
      const copy = new Uint8Array(event);
      setImmediate(() => m.deliver(copy, this.name));
    }
    return Promise.resolve();
  }

  /** @internal */
  deliver(event: Uint8Array, from: string): void {
    if (this.partitioned) return;
    for (const h of this.handlers) h(event, from);
  }

  subscribe(handler: (event: Uint8Array, from: string) => void): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }

  syncPeers(): string[] {
    return this.partitioned ? [] : this.hub.others(this.name).map((m) => m.name);
  }

  private target(peer: string): LedgerSyncHandler {
    const m = this.hub.member(peer);
    if (m === undefined || m.partitioned || this.partitioned || m.syncHandler === undefined) throw new Error(`peer ${peer} unreachable`);
    return m.syncHandler;
  }

  fetchRange(peer: string, after: Uint8Array | null, limit: number, opts: AbortOptions): Promise<Uint8Array[]> {
    throwIfAborted(opts.signal, 'fetchRange');
    return Promise.resolve(this.target(peer).range(after, limit).map((b) => new Uint8Array(b)));
  }

  fetchByIds(peer: string, ids: Uint8Array[], opts: AbortOptions): Promise<Uint8Array[]> {
    throwIfAborted(opts.signal, 'fetchByIds');
    return Promise.resolve(this.target(peer).byIds(ids).map((b) => new Uint8Array(b)));
  }

  serve(handler: LedgerSyncHandler): () => void {
    this.syncHandler = handler;
    return () => {
      if (this.syncHandler === handler) this.syncHandler = undefined;
    };
  }
}

/**
 * The one answer to "the span hash of the weights this node holds now" (model/hash.ts), for everything that names
 * it: GET /api/layers `modelHash`, the shard-info RPC, and the model hashes a proof of work claims (ledger/work.ts:
 * training is claimed only when the hash changed since the previous proof).
 *
 * The weights change under a node that trains: every inner step (a whole-model trainer's, or a chain's stage ops on
 * a span holder), every closed outer round (DiLoCo replaces them), every span the pool swaps in. Hashing after every
 * step would cost the chain a worker job per step, so the hash is read from the compute worker:
 *
 *   - at once when a span is adopted (`set`: the hash of the weights just loaded and verified),
 *   - at once when the node knows its weights changed (`refresh`: training started, an outer round closed),
 *   - and every HELD_HASH_REFRESH_MS while a span is held (the worker computes it once per weights version,
 *     compute/served-params.ts: a node whose weights did not move pays one message).
 *
 * So the hash named is that of weights the node held at most HELD_HASH_REFRESH_MS (plus one queued worker job) ago.
 * Nothing that verifies weights reads it: a joiner checks what it downloads against the checkpoint stream's heads,
 * which are computed from the weights served (pool/transfer.ts), and a validator against the worker's hash at the
 * moment it re-executes (node/validator.ts).
 */
import { TypedEmitter } from '../util/events.js';

/** The longest a held span's announced hash lags its weights (ms), plus one queued worker job. */
export const HELD_HASH_REFRESH_MS = 5_000;

export interface HeldHashOptions {
  /** Reads the hash of the worker's weights (the compute `modelHash` job). */
  read(): Promise<{ hash: string }>;
  /**
   * Whether the worker's weights are the held span's now: false while nothing is held, and while a new span is being
   * swapped in (the worker may then hold weights that are not announced yet). A read is skipped then, and a read
   * that ends when it no longer holds is dropped.
   */
  readable(): boolean;
}

export interface HeldHashEvents {
  changed: { hash: string };
}

export class HeldHash {
  readonly events = new TypedEmitter<HeldHashEvents>();
  private hash = '';
  /** Bumped by `set`: a read that started before it is of weights that are gone. */
  private generation = 0;
  private tail: Promise<string> = Promise.resolve('');
  private queued: Promise<string> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: HeldHashOptions) {}

  /** The hash named now; '' while none is known (nothing held, or weights a trainer has not loaded yet). */
  current(): string {
    return this.hash;
  }

  /** The hash of weights just loaded (a span adopted): taken as is, and any read in flight is dropped. */
  set(hash: string): void {
    this.generation++;
    this.update(hash);
  }

  /**
   * Reads the worker's hash now. Reads run one at a time; one asked while another runs is queued (once: every asker
   * of that moment shares it), so a change that lands during a read is seen by the next one. Resolves with the hash
   * named after it; a failed read (no model loaded yet, the worker restarting) keeps the old one.
   */
  refresh(): Promise<string> {
    if (this.queued !== undefined) return this.queued;
    const run = async (): Promise<string> => {
      this.queued = undefined;
      if (!this.o.readable()) return this.hash;
      const g = this.generation;
      try {
        const { hash } = await this.o.read();
        if (g === this.generation && this.o.readable()) this.update(hash);
      } catch {
        // the next refresh tries again
      }
      return this.hash;
    };
    const next = this.tail.then(run, run);
    this.queued = next;
    this.tail = next;
    return next;
  }

  /** Refreshes every `everyMs` until stop(). */
  start(everyMs: number = HELD_HASH_REFRESH_MS): void {
    this.stop();
    this.timer = setInterval(() => void this.refresh(), everyMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  private update(hash: string): void {
    if (hash === this.hash) return;
    this.hash = hash;
    this.events.emit('changed', { hash });
  }
}

/**
 * Joining the network. A node that was given peers (bootstrap addresses, tracker results, peers remembered from
 * an earlier run) dials them in rounds until it reaches at least one member of its network, backing off between
 * failed rounds (`retrying`). It never decides on its own to found a network: only a node started as genesis
 * reports `genesis`. When a joined node loses its last member connection it goes back to `connecting`.
 */
import { backoffMs, deadlineLink } from '../util/abort.js';
import { errorMessage } from '../util/errors.js';
import { TypedEmitter } from '../util/events.js';
import { silentLogger, type Logger } from '../util/logger.js';
import type { BootstrapState, BootstrapStatus } from './types.js';

export interface BootstrapperOptions {
  genesis: boolean;
  /** Dial targets of one round (multiaddr strings or peer ids), already de-duplicated by the caller. */
  candidates: () => Promise<string[]>;
  /** Dials one target; rejects on failure. Must honour the signal. */
  dial: (target: string, signal: AbortSignal) => Promise<void>;
  /** Connected peers that speak our network's protocols. */
  memberCount: () => number;
  /** First retry delay; doubles per failed round up to `retryMaxMs`, ±20 % jitter. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Deadline of one dial. */
  dialTimeoutMs?: number;
  /** How long a round waits for a dialled peer to identify as a member. Default 5 s. */
  identifyWaitMs?: number;
  /** Most targets dialled per round, and at once. */
  maxPerRound?: number;
  concurrency?: number;
  log?: Logger;
}

/** The failed round after which a node joining only through its peer book is told about `--genesis`. */
export const PEER_BOOK_HINT_ROUND = 3;

export interface BootstrapperEvents {
  state: BootstrapStatus;
}

export class Bootstrapper {
  readonly events = new TypedEmitter<BootstrapperEvents>();
  private st: BootstrapStatus;
  private running = false;
  private stopped = true;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private readonly ac = new AbortController();
  private readonly log: Logger;
  /** Joining only through the peer book (no `--bootstrap`, no tracker): set by `setGenesis(false)`. */
  private peerBookOnly = false;

  constructor(private readonly opts: BootstrapperOptions) {
    this.st = { state: opts.genesis ? 'genesis' : 'connecting', failedRounds: 0 };
    this.log = opts.log ?? silentLogger;
  }

  status(): BootstrapStatus {
    return { ...this.st };
  }

  /** Decides founder or joiner before start (the p2p layer resolves "auto" from the peer book). */
  setGenesis(genesis: boolean): void {
    if (!this.stopped) throw new Error('setGenesis after start');
    this.opts.genesis = genesis;
    // decided from the peer book: a joiner whose only candidates are the peers it remembers
    this.peerBookOnly = !genesis;
    this.st = { state: genesis ? 'genesis' : 'connecting', failedRounds: 0 };
  }

  get genesis(): boolean {
    return this.opts.genesis;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    if (this.opts.genesis) {
      this.set({ state: 'genesis', failedRounds: 0 });
      // A restarted founder still redials the peers it knew; one round, no retries.
      this.loop = this.round().then(() => undefined);
      return;
    }
    this.ensureLoop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.ac.abort();
    this.wake?.();
    await this.loop?.catch(() => {});
    this.set({ state: 'stopped', failedRounds: this.st.failedRounds });
  }

  /** Call when member connections change: moves between `connected` and `connecting`. */
  membershipChanged(): void {
    const n = this.opts.memberCount();
    if (n > 0) this.memberWaiter?.();
    if (this.stopped || this.opts.genesis) return;
    if (n > 0 && this.st.state !== 'connected') {
      this.set({ state: 'connected', failedRounds: 0 });
      this.wake?.();
    } else if (n === 0 && this.st.state === 'connected') {
      this.set({ state: 'connecting', failedRounds: 0 });
      this.ensureLoop();
    }
  }

  /** New candidates are available (e.g. a tracker answered): retry now instead of waiting out the backoff. */
  kick(): void {
    this.wake?.();
  }

  private ensureLoop(): void {
    if (this.running || this.stopped) return;
    this.running = true;
    this.loop = this.run().finally(() => {
      this.running = false;
    });
  }

  private async run(): Promise<void> {
    while (!this.stopped && this.opts.memberCount() === 0) {
      const err = await this.round();
      if (this.stopped) return;
      if (this.opts.memberCount() > 0) break;
      const failedRounds = this.st.failedRounds + 1;
      const delay = backoffMs(failedRounds - 1, this.opts.retryBaseMs ?? 1000, this.opts.retryMaxMs ?? 60_000);
      this.set({ state: 'retrying', failedRounds, nextAttemptAt: Date.now() + delay, lastError: err });
      this.log.warn('no peer of the network reachable yet; retrying', { round: failedRounds, inMs: delay, error: err });
      // A founder restarted after the nodes it knew have gone (a local test network stopped, say) waits for them
      // for ever: founding is only for an empty peer book (docs/PROTOCOL.md "Joining"). Said once, with the way out.
      if (this.peerBookOnly && failedRounds === PEER_BOOK_HINT_ROUND) {
        this.log.warn(
          'none of the peers this node remembers from earlier runs answers (it was given no --bootstrap and no --tracker); if it founded this network and those peers are gone, restart it with --genesis to go on alone, else give it a peer with --bootstrap',
          { rounds: failedRounds },
        );
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, delay);
        function done(): void {
          clearTimeout(t);
          resolve();
        }
        this.wake = done;
      });
      this.wake = undefined;
    }
    if (!this.stopped && this.opts.memberCount() > 0) this.set({ state: 'connected', failedRounds: 0 });
  }

  /** Dials every candidate (bounded); returns the last error text when nothing connected. */
  private async round(): Promise<string | undefined> {
    let targets: string[];
    try {
      targets = (await this.opts.candidates()).slice(0, this.opts.maxPerRound ?? 32);
    } catch (e) {
      return `listing candidates failed: ${errorMessage(e)}`;
    }
    if (targets.length === 0) return 'no peers to dial';
    let lastError: string | undefined;
    let dialled = 0;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < targets.length && !this.stopped) {
        const t = targets[next++]!;
        // not AbortSignal.any (util/abort.ts); detached from this.ac when the dial ends, not at its deadline (a round
        // of up to 32 quick dials left that many listeners on the bootstrapper's lifetime signal)
        const { signal, dispose } = deadlineLink(this.opts.dialTimeoutMs ?? 10_000, this.ac.signal);
        try {
          await this.opts.dial(t, signal);
          dialled++;
        } catch (e) {
          lastError = `${t}: ${errorMessage(e)}`;
          this.log.debug('bootstrap dial failed', { target: t, error: errorMessage(e) });
        } finally {
          dispose();
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.opts.concurrency ?? 8, targets.length) }, worker));
    // A connection counts once the peer has identified as one of ours; give identify a moment.
    if (dialled > 0 && this.opts.memberCount() === 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, this.opts.identifyWaitMs ?? 5000);
        const onStop = (): void => done();
        this.ac.signal.addEventListener('abort', onStop, { once: true });
        const self = this;
        function done(): void {
          clearTimeout(t);
          self.ac.signal.removeEventListener('abort', onStop);
          self.memberWaiter = undefined;
          resolve();
        }
        this.memberWaiter = done;
      });
      if (this.opts.memberCount() === 0) lastError = `reached ${dialled} peer(s), none of them speaks our network's protocols`;
    }
    return lastError;
  }

  private memberWaiter: (() => void) | undefined;

  private set(s: BootstrapStatus): void {
    const changed = s.state !== this.st.state || s.failedRounds !== this.st.failedRounds;
    this.st = s;
    if (changed) this.events.emit('state', this.status());
  }
}

export type { BootstrapState };

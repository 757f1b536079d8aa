/**
 * DiLoCo between partial holders (issue 9 §2 over §1): every holder of a span inside a chain — the driver that runs
 * the steps and every passive hop — runs this loop over its own InnerLoop (training/inner.ts) and its own OuterSync
 * (training/sync.ts) for the layers it holds. Every H AdamW steps its span applied, it pauses (a driver stops
 * issuing steps; a hop answers STAGE_PAUSED, which the driver waits out without leaving the hop), takes part in the
 * outer round of its layers with the other holders of those layers (replicas of the same span in other chains), and
 * resumes. A span's holders need not line up with ours: contributions and hashes are per layer.
 *
 * Rounds count this node's applied steps, so a driver and its hops close their rounds after the same step: a hop's
 * H-th applied step is the driver's H-th (the hop pauses in the same turn of the event loop as it applies, before
 * the driver can begin another step).
 */
import { pause } from '../util/abort.js';
import { AbortedError } from '../util/errors.js';
import type { InnerLoop } from './inner.js';
import type { LayerRange } from './diloco.js';
import type { InnerParams, LastRoundReport, OuterSync } from './sync.js';

/** The outer sync's flat view of an InnerLoop's held layers (call inside a pause). */
export function innerLoopParams(inner: InnerLoop, layers: readonly LayerRange[], size: number): InnerParams {
  return {
    getParams: async () => {
      const out = new Float32Array(size); // [size]: the span's flat buffer, ParamLayout order
      const byId = new Map((await inner.readLayers()).map((l) => [l.id, l.params]));
      for (const l of layers) {
        const p = byId.get(l.id);
        if (p === undefined || p.length !== l.size) throw new AbortedError(`the inner loop does not hold layer ${l.id} (its span moved)`);
        out.set(p, l.offset);
      }
      return out;
    },
    setParams: (params) => inner.writeLayers(layers.map((l) => ({ id: l.id, params: params.slice(l.offset, l.offset + l.size) }))),
  };
}

export interface OuterRoundsOptions {
  inner: InnerLoop;
  sync: OuterSync;
  /** H: this node's applied steps per round. */
  innerSteps: number;
  signal: AbortSignal;
  /** Stop at the next boundary. */
  done?: () => boolean;
  /**
   * Steps this node may still run (a driver: `--train-steps` minus its step counter, ChainTrainer.stepsLeft); unset: no
   * limit. It holds for every step, the ones driven while waiting to enter included: the waiting drive stops at it,
   * and a round whose steps would pass it is not begun (the node stops at the boundary before it; stopping mid-round
   * would leave its hops and the other holders of its layers waiting for a Δ that never comes).
   */
  stepsLeft?: () => number;
  onRound?: (r: LastRoundReport) => void;
  /**
   * A driver: runs its chain's steps until the signal aborts (ChainTrainer.innerSteps), called while this node waits
   * to enter the rounds (OuterSync.enter's `waiting`). Its hops are in their own layers' rounds, which only our steps
   * advance: a pool move made N the driver of a span mid-round, N waited a round for a boundary without stepping, and
   * its hop's layers' rounds waited for the hop's Δ to their deadline and were abandoned (outer-move on CI).
   * The steps' updates to our span are overwritten by the entry's verified state: they are marked discarded
   * (InnerLoop.discardSteps) while they run, so they do not count as this node's training (--train-steps, the tokens it
   * reports); `stepsLeft` then reads the discarded steps' own budget (ChainTrainer.stepsLeft).
   */
  drives?: (signal: AbortSignal) => Promise<unknown>;
}

/** The longest a node that does not drive holds its chain's steps off at the start of its entry (runOuterRounds). */
export const ENTRY_HOLD_MS = 10_000;

/** Pause between a driver's attempts while it waits to enter and its chain cannot step (no holders line up). */
export const ENTRY_DRIVE_RETRY_MS = 1_000;

/**
 * Runs `drives` until `signal` aborts or no step is left (`left`); a failure (no chain for a while) is tried again
 * after a pause. `drives` itself must stop at the limit (ChainTrainer's `stepLimit`): this only stops calling it.
 */
async function driveWhileWaiting(inner: InnerLoop, drives: (signal: AbortSignal) => Promise<unknown>, signal: AbortSignal, left: () => number): Promise<void> {
  // the entry replaces our span's weights with the holders' verified state: these steps are discarded (still driven:
  // our hops' rounds count their updates). Ended inside the install's pause, after the last such step (sync.ts enter)
  // our span's optimizer state before the first discarded step is kept, and put back after the last (ChainTrainer)
  try {
    try {
      await inner.discardSteps?.(true);
    } catch {
      // the steps are marked discarded all the same; only the optimizer state is not kept (the drive must go on)
    }
    while (!signal.aborted && left() > 0) {
      try {
        await drives(signal);
      } catch {
        // the entry does not depend on these steps: only the hops' rounds do
      }
      if (!signal.aborted && left() > 0) await pause(ENTRY_DRIVE_RETRY_MS, signal);
    }
  } finally {
    await inner.discardSteps?.(false);
  }
}

/**
 * Enters the outer rounds at a boundary (a joiner's downloaded weights are installed inside a pause, between steps), then closes a round every H applied steps until `signal` aborts or `done()` says so at a boundary.
 */
export async function runOuterRounds(o: OuterRoundsOptions): Promise<void> {
  const { inner, sync, signal } = o;
  // the entry state is installed inside a pause; the wait for a boundary is not (a hop that waits keeps serving the
  // steps of the holders whose boundary it waits for: a moved hop held its pause through the wait and stalled them)
  // A driver drives its chain while it waits (o.drives); the install's pause stops that first (sync.ts enter)
  const drives = o.drives;
  const left = o.stepsLeft ?? ((): number => Infinity);
  // A node that does not drive (a hop: its driver steps it) holds steps off from the start of its entry until the
  // entry knows whether anyone is ahead. Nobody ahead: round 0 begins from the weights now, which must be the
  // initial ones on every holder; a driver that entered first stepped a hop still asking its peers' statuses, that
  // hop began round 0 some steps on, and the replicas' round-0 states differed (chain-diloco under load: a repair in
  // the hash vote). Holders ahead (a joiner): the hold ends at the first wait for their boundary (sync.ts enter's
  // `waiting`), so its chain's steps go on while it waits. Bounded by ENTRY_HOLD_MS (a peer that does not answer keeps
  // the entry asking for up to a minute: the hop serves its chain again after that, and a round 0 begun later is
  // settled by the hash vote, as before the hold).
  let held = false;
  let installing = false;
  // A hop that lets its driver step it while it waits to enter applies steps its rounds never count: the install
  // replaces their update to its weights, but AdamW's moments and step count (the bias correction) would still carry
  // them. Its optimizer state is kept when the hold ends with the entry still waiting (InnerLoop.discardSteps(true)) and
  // put back inside the install's pause, before the holders' weights are written (as a waiting driver's:
  // driveWhileWaiting), so that after the install the hop steps exactly as one its driver never stepped while it
  // waited: a fresh joiner with zero moments and step count 0; a hop that re-enters over the same stage (a move that
  // failed) with its state when this entry's hold ended (the steps applied between its leave and that point stay:
  // keeping a copy at every leave would cost three copies of the span during a move). The holders agree on θ and the
  // outer momentum only; AdamW's state is every holder's own, so there is no agreed state to take instead, and zeroing
  // it would also throw away what a re-entering hop learnt in its rounds (and differ from a driver's re-entry).
  let releasing: Promise<void> = Promise.resolve();
  const release = (keep: boolean): Promise<void> => {
    if (!held || installing) return releasing;
    held = false;
    releasing = (async () => {
      if (keep) {
        try {
          await inner.discardSteps?.(true);
        } catch {
          // not kept: the steps still run (the rounds of our driver's layers need them); only the trace stays
        }
      }
      // an install that began meanwhile holds the steps off itself, and resumes them when it is done
      if (!installing) inner.resume();
    })();
    return releasing;
  };
  let holdTimer: NodeJS.Timeout | undefined;
  if (drives === undefined) {
    await inner.pause();
    held = true;
    holdTimer = setTimeout(() => void release(true), ENTRY_HOLD_MS);
  }
  try {
    await sync.enter(
      signal,
      async (fn) => {
        installing = true;
        await releasing;
        await inner.pause();
        try {
          // a hop: the state kept when its driver's steps began (by this entry, or by an earlier one that stopped or
          // failed after its hold ended) goes back before the holders' weights are written (none kept: nothing changes).
          // A driver's is put back by its drive (driveWhileWaiting), which the install stops first (sync.ts enter)
          if (drives === undefined) {
            try {
              await inner.discardSteps?.(false);
            } catch {
              // the worker failed to put the state back: the entry does not depend on it (a driver's neither)
            }
          }
          return await fn();
        } finally {
          held = false;
          installing = false;
          inner.resume();
        }
      },
      drives === undefined ? () => release(true) : (s) => driveWhileWaiting(inner, drives, s, left),
    );
  } finally {
    clearTimeout(holdTimer);
    await release(false);
    // an entry that failed after the hold ended (no holder counted us before its deadline) or was stopped (a leave)
    // leaves the copy in the stage: the steps from now on are uncounted too, and the next entry over this stage (a
    // retry, a move that failed) keeps that older copy (a save keeps a kept copy) and puts it back at its install.
    // Putting it back now would need a pause, which waits for the driver's step in flight (a leave must not)
  }
  let base = inner.appliedSteps();
  while (!signal.aborted && o.done?.() !== true) {
    // H steps, or fewer once for a hop that ends its rounds with its driver's from now on (sync.ts chainNext)
    const steps = Math.min(o.innerSteps, sync.roundSteps());
    // a round that cannot end within the step limit is not begun: we stop at this boundary (as `done` does)
    if (left() < steps - (inner.appliedSteps() - base)) break;
    for (let need = steps - (inner.appliedSteps() - base); need > 0; need = steps - (inner.appliedSteps() - base)) {
      const before = inner.appliedSteps();
      await inner.innerSteps(need, signal);
      for (let i = before; i < inner.appliedSteps(); i++) sync.innerStep();
    }
    // pause() holds steps off synchronously: no step of the next round begins before the round closes
    await inner.pause();
    try {
      const r = await sync.closeRound(signal, inner.chainPosition?.());
      o.onRound?.(r);
    } finally {
      base = inner.appliedSteps();
      inner.resume();
    }
  }
  if (signal.aborted) throw new AbortedError('outer rounds stopped');
}

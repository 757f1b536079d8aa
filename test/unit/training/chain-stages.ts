/**
 * Chain stages over the in-memory network of ./sync-net.ts, each run by the real round loop (training/chain-outer.ts
 * runOuterRounds): a driver's InnerLoop that steps its hops (every chain step, `stepMs` apart, is applied by the
 * driver and all its hops at once, or by none: a paused hop refuses it, as STAGE_PAUSED aborts a step on the whole
 * chain), and a hop's InnerLoop that counts the steps its driver applied to it. A hop belongs to one driver at a time
 * (`attach`): a hop whose driver left is stepped by nobody until another driver takes it.
 */
import { AppliedSteps, ChainTrainer, type Batch, type BatchSource, type LocalSpanStage } from '../../../src/training/index.js';
import type { ChainPosition, InnerLoop, InnerStepsResult, LayerParams } from '../../../src/training/inner.js';
import { LocalStage, batchOf } from '../../../src/training/pipeline/index.js';
import { runOuterRounds } from '../../../src/training/chain-outer.js';
import type { LastRoundReport } from '../../../src/training/sync.js';
import { AbortedError } from '../../../src/util/errors.js';
import { randomIds, reference, tinyConfig } from '../model/helpers.js';
import type { Net, Node } from './sync-net.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function waitFor(waiters: (() => void)[], signal?: AbortSignal): Promise<void> {
  return new Promise((res) => {
    const done = (): void => {
      signal?.removeEventListener('abort', done);
      res();
    };
    waiters.push(done);
    signal?.addEventListener('abort', done, { once: true });
  });
}

abstract class StageLoop implements InnerLoop {
  applied = 0;
  paused = false;
  protected last: ChainPosition | undefined;
  protected waiters: (() => void)[] = [];
  /** The ids applied here, as ChainTrainer and HopInnerLoop keep them (ChainPosition.appliedAfter). */
  protected readonly ids = new AppliedSteps();
  /** Off: positions carry no appliedAfter (chain partners read ids as steps, as before session 21). */
  countApplied = true;

  protected position(step: number, partners: string[], drives: boolean): ChainPosition {
    this.ids.add(step, drives ? this.node.id : partners[0]);
    const ids = this.ids;
    return { step, partners, drives, ...(this.countApplied ? { appliedAfter: (id: number) => ids.after(id) } : {}) };
  }

  constructor(readonly node: Node) {}

  span(): { start: number; end: number } {
    return this.node.span;
  }

  appliedSteps(): number {
    return this.applied;
  }

  chainPosition(): ChainPosition | undefined {
    return this.last;
  }

  /** One chain step's update to this stage's params (k: the stage's place in the chain, so that stages differ). */
  applyStep(step: number, k: number): void {
    const p = this.node.params;
    for (let i = 0; i < p.length; i++) p[i] = p[i]! - 0.001 * k * Math.cos(i + step);
    this.applied++;
  }

  protected wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  abstract innerSteps(n: number, signal?: AbortSignal): Promise<InnerStepsResult>;
  abstract pause(): Promise<void>;
  abstract resume(): void;

  readLayers(): Promise<LayerParams[]> {
    return Promise.reject(new Error('the outer sync reads the node\'s params directly (sync-net)'));
  }

  writeLayers(): Promise<void> {
    return Promise.reject(new Error('the outer sync writes the node\'s params directly (sync-net)'));
  }
}

export class HopStage extends StageLoop {
  driver: DriverStage | undefined;

  /** Applied by its driver's step (synchronously: no step is ever in flight on a hop, so pause() resolves at once). */
  take(step: number, k: number, driver: string): void {
    this.applyStep(step, k);
    this.last = this.position(step, [driver], false);
    this.wake();
  }

  async innerSteps(n: number, signal?: AbortSignal): Promise<InnerStepsResult> {
    const start = this.applied;
    while (this.applied < start + n) {
      if (signal?.aborted === true) throw new AbortedError('inner steps stopped');
      await waitFor(this.waiters, signal);
    }
    return { applied: n, abandoned: 0, meanLoss: NaN, tokens: 0 };
  }

  pause(): Promise<void> {
    this.paused = true;
    return Promise.resolve();
  }

  resume(): void {
    this.paused = false;
  }
}

export class DriverStage extends StageLoop {
  hops: HopStage[] = [];
  /** Steps run through the chain (the chain step ids, as ChainTrainer's pipeline step: an abandoned step takes none). */
  step = 0;
  /** As ChainTrainer's `stepLimit` (--train-steps): no step is issued once `step` reached it (abandoned ones not counted). */
  stepLimit = Infinity;
  /**
   * Ids whose step is skipped (PipelineTrainer's NaN skip: the step ran through every stage, its gradients were not
   * finite, nobody applies it; the id is used up and the step counts toward stepLimit, not as applied).
   */
  skip: (id: number) => boolean = () => false;
  private running = 0;

  constructor(
    node: Node,
    private readonly stepMs: number,
  ) {
    super(node);
  }

  /** Takes `hop` into this driver's chain (out of any other's). */
  attach(hop: HopStage): void {
    if (hop.driver !== undefined) hop.driver.hops = hop.driver.hops.filter((h) => h !== hop);
    hop.driver = this;
    this.hops.push(hop);
  }

  async innerSteps(n: number, signal?: AbortSignal): Promise<InnerStepsResult> {
    let applied = 0;
    let abandoned = 0;
    while (applied < n) {
      if (signal?.aborted === true) throw new AbortedError('inner steps stopped');
      if (this.paused) {
        await waitFor(this.waiters, signal);
        continue;
      }
      if (this.step >= this.stepLimit) throw new Error(`the driver has run its ${this.stepLimit} steps`);
      this.running++;
      try {
        await sleep(this.stepMs);
        // a paused hop (in its outer round) refuses the step: abandoned on the whole chain, nothing applied, and its id
        // is not used up: ChainTrainer's pipeline step counts a step only once it ran through every stage (a hop
        // refuses STAGE_PAUSED at the step's begin), so the driver tries the same id again. The stages' chain
        // positions are these ids and a boundary `h` ids after a partner's is its next one (sync.ts chainNext,
        // rounds.ts partnerAt); an id used up here by a step nobody applied put a hop's next boundary one id later
        // than its driver counted: the driver of a hop closing `apart` from it (it entered mid-round) waited at its
        // own boundary for that hop (partnerAt 'coming') while the hop waited for its driver's next step, until
        // chainNext's bound (2 sync deadlines + 5 s); the hop's replicas abandoned that round (driver-entry under load)
        if (this.hops.length === 0 || this.hops.some((h) => h.paused)) {
          abandoned++;
          continue;
        }
        const id = this.step++;
        if (this.skip(id)) continue;
        this.applyStep(id, 1);
        this.hops.forEach((h, i) => h.take(id, i + 2, this.node.id));
        this.last = this.position(id, this.hops.map((h) => h.node.id), true);
        applied++;
      } finally {
        this.running--;
        this.wake();
      }
    }
    return { applied, abandoned, meanLoss: NaN, tokens: 0 };
  }

  async pause(): Promise<void> {
    this.paused = true;
    while (this.running > 0) await waitFor(this.waiters);
  }

  resume(): void {
    this.paused = false;
    this.wake();
  }
}

/** A stage's round loop: runOuterRounds over its inner loop and its node's OuterSync, until `stop()`. */
export interface RunningStage {
  node: Node;
  inner: DriverStage | HopStage;
  reports: LastRoundReport[];
  /** When each report came (ms since epoch). */
  at: number[];
  /** When its entry completed (ms since epoch), once it did. */
  enteredAt?: number;
  /** Settles when its round loop ends (a step limit reached, or stop()). */
  finished: Promise<void>;
  stop(): Promise<void>;
}

/**
 * Runs `inner`'s rounds; `drive`: a driver drives its chain while it waits to enter (runOuterRounds' `drives`).
 */
export function runStage(inner: DriverStage | HopStage, innerSteps: number, drive: boolean, o: { limit?: number } = {}): RunningStage {
  const ac = new AbortController();
  const st: RunningStage = { node: inner.node, inner, reports: [], at: [], finished: Promise.resolve(), stop: async () => {} };
  // `limit`: a driver's --train-steps, wired as node/chain.ts wires ChainTrainer's (stepLimit, stepsLeft, done)
  const d = inner instanceof DriverStage ? inner : undefined;
  if (d !== undefined && o.limit !== undefined) d.stepLimit = o.limit;
  const left = (): number => (d === undefined ? Infinity : Math.max(0, d.stepLimit - d.step));
  const entered = (): void => {
    if (st.enteredAt === undefined && inner.node.sync.status().phase !== 'entering') st.enteredAt = Date.now();
  };
  const poll = setInterval(entered, 2);
  const running = runOuterRounds({
    inner,
    sync: inner.node.sync,
    innerSteps,
    signal: ac.signal,
    onRound: (r) => {
      entered();
      st.reports.push(r);
      st.at.push(Date.now());
      inner.node.closed.push(r.round);
    },
    ...(o.limit === undefined ? {} : { stepsLeft: left, done: () => left() <= 0 }),
    ...(drive && d !== undefined ? { drives: (signal: AbortSignal) => d.innerSteps(Math.min(Number.MAX_SAFE_INTEGER, left()), signal) } : {}),
  }).catch((e: unknown) => {
    if (!ac.signal.aborted) throw e;
  });
  st.finished = running;
  inner.node.running = running;
  st.stop = async () => {
    ac.abort();
    clearInterval(poll);
    await running;
  };
  return st;
}

/** A chain of a driver and its hops on `net` (each node created in the view), not yet running. */
export function chainOf(net: Net, driver: { id: string; span: { start: number; end: number } }, hops: { id: string; span: { start: number; end: number } }[], stepMs: number): { driver: DriverStage; hops: HopStage[] } {
  const d = new DriverStage(net.create(driver.id, driver.span, stepMs), stepMs);
  const hs = hops.map((h) => new HopStage(net.create(h.id, h.span, stepMs)));
  for (const h of hs) d.attach(h);
  return { driver: d, hops: hs };
}

/**
 * A real ChainTrainer over two in-process stages of a tiny 2-layer model ([0,1) local, [1,2) a hop 'x'), batches
 * of 2 × 4 random tokens, one micro-batch, no outer sync: for the tests of its step accounting (stepLimit, discarded
 * steps).
 */
export function twoStageChainTrainer(stepLimit: number): ChainTrainer {
  return twoStageChain(stepLimit).trainer;
}

/** twoStageChainTrainer with its two stages (the driver's own span `local`, the hop's `hop`). */
export function twoStageChain(stepLimit: number): { trainer: ChainTrainer; local: LocalStage; hop: LocalStage } {
  const cfg = tinyConfig({ num_hidden_layers: 2 });
  const B = 2;
  const T = 4;
  let i = 0;
  const data: BatchSource = {
    next: (): Batch => {
      const ids = randomIds(B * T * 2, cfg.vocab_size, 7 + i++);
      return batchOf(ids.subarray(0, B * T), ids.subarray(B * T), B, T);
    },
    position: () => i,
  };
  const stage = new LocalStage(cfg, reference, { start: 0, end: 1 }, { seed: 1 });
  const local = stage as unknown as LocalSpanStage;
  const hop = new LocalStage(cfg, reference, { start: 1, end: 2 }, { seed: 1 });
  const trainer = new ChainTrainer({
    self: 'me',
    local,
    data,
    pipeline: { microBatches: 1, schedule: 'gpipe', trainer: { decaySteps: 10 } },
    stepLimit,
    formChain: () => Promise.resolve([{ peer: 'me', span: local.span, stage: local }, { peer: 'x', span: hop.span, stage: hop, release: () => Promise.resolve() }]),
  });
  return { trainer, local: stage, hop };
}

/** Settles with 'ended' when the loop ended by itself, 'running' after `ms`. */
export async function endsWithin(s: RunningStage, ms: number): Promise<'ended' | 'running'> {
  let t: NodeJS.Timeout | undefined;
  const r = await Promise.race([s.finished.then(() => 'ended' as const), new Promise<'running'>((res) => (t = setTimeout(() => res('running'), ms)))]);
  clearTimeout(t);
  return r;
}

/**
 * One AdamW step on a stage alone, the same for every caller (fixed ids and output gradient): two stages that end it
 * with the same weights had the same weights, moments and step count (the bias correction) before it.
 */
export async function probeStep(s: LocalStage): Promise<Float32Array> {
  const B = 2;
  const T = 4;
  const C = s.config.hidden_size;
  const ids = randomIds(B * T, s.config.vocab_size, 99);
  const last = s.isLast;
  const dOut = last ? null : Float32Array.from({ length: B * T * C }, (_, i) => Math.sin(i * 0.37) * 0.1);
  const input = s.isFirst ? ids : Float32Array.from({ length: B * T * C }, (_, i) => Math.cos(i * 0.13) * 0.5);
  await s.beginStep(1000);
  await s.forward(1000, 0, input, B, T, last ? randomIds(B * T, s.config.vocab_size, 98) : undefined, 1);
  await s.backward(1000, 0, dOut);
  await s.gradSumSquares(1000);
  await s.applyStep(1000, { lr: 1e-2, clipScale: 1 });
  return s.params.slice();
}

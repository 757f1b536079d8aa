/**
 * Serving before training, simulated: the compute worker's drain (compute/worker.ts) over simulated time, with the
 * rule's own functions (compute/serving-first.ts) deciding, a trainer that posts its next step as soon as the last
 * answers, and the session jobs of replies or a stranger arriving on a schedule. Pure and deterministic: the unit
 * tests (test/unit/compute/serving-first.test.ts) assert what training keeps and how often a reply pauses, and
 * session 28's figures in docs/LIMITS.md come from it.
 *
 * What it leaves out: batching (one session at a time here), the worker's hand-offs (~0.1 ms), timer lateness.
 */
import type { Job } from '../compute/jobs.js';
import { SERVING_FIRST_DEFAULTS, idleAfter, isSessionJob, servingFirstStep, yieldsToServing, type ServingFirstOptions } from '../compute/serving-first.js';

/** A stranger: every `everyMs` from 0, the jobs of `pattern` arrive together. */
export interface StrangerLoad {
  kind: 'stranger';
  everyMs: number;
  /** 'empty': a new session opened and closed; 'step': a one-token step of one session kept open; 'openStepClose'. */
  pattern: 'empty' | 'step' | 'openStepClose';
  /**
   * 'empty' and 'openStepClose': the close arrives this long after the open (default 0, together). A remote stranger's
   * close comes a round trip after its open's answer at the soonest, and the session is open meanwhile.
   */
  closeAfterMs?: number;
}

/** Replies, one after another: open, a prefill, `tokens` decode steps, close; each job `rttMs` after the last answered. */
export interface ReplyLoad {
  kind: 'reply';
  startMs: number;
  tokens: number;
  rttMs: number;
  /** The next reply's open comes this long after a reply's close answered; none when absent. */
  restMs?: number;
}

export interface SimOptions {
  horizonMs: number;
  /** One training step's run time (ms). */
  trainMs: number;
  /** A decode step's (and a prefill's) run time; an open or a close takes openMs. */
  stepMs?: number;
  openMs?: number;
  loads: ReadonlyArray<StrangerLoad | ReplyLoad>;
  rule?: ServingFirstOptions;
  /** 'before': the rule as session 27 left it (any session job counts as serving, idle time unbounded). */
  variant?: 'before' | 'after';
}

export interface SimReply {
  tokens: number;
  /** Training steps that started between the reply's open arriving and its last token answered: its pauses. */
  trainsDuring: number;
  /** From the open arriving to the last token answered (ms). */
  ms: number;
}

export interface SimResult {
  trainSteps: number;
  /** Time the worker sat idle waiting for serving (ms). */
  idleWaitMs: number;
  replies: SimReply[];
}

interface Item {
  job: Job;
  ms: number;
  /** When it reaches the queue. */
  arrived?: (at: number) => void;
  done?: (t: number) => void;
}

const TRAIN = { type: 'trainStep' } as unknown as Job;

export function simulateServingFirst(opts: SimOptions): SimResult {
  const rule = opts.rule ?? SERVING_FIRST_DEFAULTS;
  const before = opts.variant === 'before';
  const o: ServingFirstOptions = before ? { ...rule, idleCapMs: Infinity, idleShare: 0 } : rule;
  const stepMs = opts.stepMs ?? 5;
  const openMs = opts.openMs ?? 0.2;
  const arrivals: Array<{ at: number; seq: number; item: Item }> = [];
  let seq = 0;
  const arrive = (at: number, item: Item): void => {
    arrivals.push({ at, seq: seq++, item });
    arrivals.sort((a, b) => a.at - b.at || a.seq - b.seq);
  };
  const session = (type: 'sessionOpen' | 'sessionStep' | 'sessionClose', id: string): Job => ({ type, id }) as unknown as Job;
  const item = (job: Job, done?: (t: number) => void): Item => ({ job, ms: job.type === 'sessionStep' ? stepMs : openMs, ...(done ? { done } : {}) });

  let trainSteps = 0;
  let trainStarts = 0;
  const replies: SimReply[] = [];
  for (const [n, load] of opts.loads.entries()) {
    if (load.kind === 'stranger') {
      if (load.pattern === 'step') arrive(0, item(session('sessionOpen', `x${n}`)));
      for (let k = 0, at = 0; at < opts.horizonMs; k++, at += load.everyMs) {
        const id = `s${n}-${k}`;
        if (load.pattern === 'step') arrive(at, item(session('sessionStep', `x${n}`)));
        else {
          arrive(at, item(session('sessionOpen', id)));
          if (load.pattern === 'openStepClose') arrive(at, item(session('sessionStep', id)));
          arrive(at + (load.closeAfterMs ?? 0), item(session('sessionClose', id)));
        }
      }
    } else {
      const reply = (start: number, r: number): void => {
        const id = `r${n}-${r}`;
        let left = load.tokens;
        let from = 0;
        let trainsAt = 0;
        const decode = (t: number): void => {
          if (left-- > 0) arrive(t + load.rttMs, item(session('sessionStep', id), decode));
          else {
            replies.push({ tokens: load.tokens, trainsDuring: trainStarts - trainsAt, ms: t - from });
            arrive(t + load.rttMs, item(session('sessionClose', id), (tc) => (load.restMs === undefined ? undefined : reply(tc + load.restMs, r + 1))));
          }
        };
        // the open, then the prefill; the decode steps follow the prefill's answer
        const open = item(session('sessionOpen', id), (t) => arrive(t + load.rttMs, item(session('sessionStep', id), decode)));
        open.arrived = (at) => {
          from = at;
          trainsAt = trainStarts;
        };
        arrive(start, open);
      };
      reply(load.startMs, 0);
    }
  }

  const queue: Item[] = [{ job: TRAIN, ms: opts.trainMs }];
  const lastStep = new Map<string, number>();
  let lastAny = -Infinity;
  let idle = o.idleCapMs;
  let idleWaitMs = 0;
  let headed: Item | undefined;
  let headSince = 0;
  let t = 0;
  const deliver = (): void => {
    while (arrivals.length > 0 && arrivals[0]!.at <= t) {
      const a = arrivals.shift()!;
      a.item.arrived?.(a.at);
      queue.push(a.item);
    }
  };
  const lastStepAt = (): number => (before ? lastAny : Math.max(-Infinity, ...lastStep.values()));
  while (t < opts.horizonMs) {
    deliver();
    if (queue.length === 0) {
      t = arrivals.length > 0 ? arrivals[0]!.at : opts.horizonMs;
      continue;
    }
    if (headed !== undefined && headed !== queue[0] && t - headSince >= o.holdMs) {
      const at = queue.indexOf(headed);
      if (at > 0) queue.unshift(queue.splice(at, 1)[0]!);
      else headed = undefined;
    }
    if (o.holdMs > 0 && yieldsToServing(queue[0]!.job)) {
      if (headed !== queue[0]) {
        headed = queue[0];
        headSince = t;
      }
      const next = servingFirstStep(queue.map((m) => m.job), t, lastStepAt(), headSince, idle, o);
      if (next.pass.length > 0) {
        const moved = next.pass.map((i) => queue[i]!);
        for (let k = next.pass.length - 1; k >= 0; k--) queue.splice(next.pass[k]!, 1);
        queue.unshift(...moved);
      } else {
        const end = Math.min(t + next.waitMs, arrivals.length > 0 ? arrivals[0]!.at : Infinity, opts.horizonMs);
        // (a wait below the clock's resolution is none: the worker's shortest timer is a millisecond)
        if (end > t) {
          idle = idleAfter(idle, end - t, 0, o);
          idleWaitMs += end - t;
          t = end;
          continue;
        }
      }
    }
    const run = queue.shift()!;
    if (run === headed) headed = undefined;
    if (run.job === TRAIN) trainStarts++;
    t += run.ms;
    if (run.job === TRAIN) {
      if (t <= opts.horizonMs) trainSteps++;
      idle = idleAfter(idle, 0, run.ms, o);
      queue.push({ job: TRAIN, ms: opts.trainMs });
    } else if (isSessionJob(run.job)) {
      lastAny = t;
      const id = (run.job as { id: string }).id;
      if (run.job.type === 'sessionClose') lastStep.delete(id);
      else lastStep.set(id, t); // as SessionTable.lastActiveAt: an open session's open or last step
    }
    run.done?.(t);
  }
  return { trainSteps, idleWaitMs, replies };
}

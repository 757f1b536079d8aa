/**
 * Serving before training (src/compute/serving-first.ts): which queued session job passes a training step, how
 * long a training step waits for a reply in progress, and the idle time the worker keeps in hand for that; then the
 * rule over a minute of simulated time (src/sim/serving-first.ts): what a stranger's session jobs cost training and
 * how often an honest reply pauses for a training step.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Job } from '../../../src/compute/jobs.js';
import { SERVING_FIRST_DEFAULTS, idleAfter, servingFirstStep, servingJobsAhead, trainingWait, type ServingFirstOptions } from '../../../src/compute/serving-first.js';
import { simulateServingFirst, type SimOptions } from '../../../src/sim/serving-first.js';
import { SessionTable } from '../../../src/compute/sessions.js';
import { LlamaShard } from '../../../src/model/index.js';
import { reference, tinyConfig } from '../model/helpers.js';

const train = { type: 'trainStep', inputs: new Int32Array(4), targets: new Int32Array(4), B: 1, T: 4 } as Job;
const step = (id: string): Job => ({ type: 'sessionStep', id, ids: Int32Array.of(1), chunks: [1] }) as Job;
const open = (id: string): Job => ({ type: 'sessionOpen', id, maxLen: 8 }) as Job;
const close = (id: string): Job => ({ type: 'sessionClose', id }) as Job;
const release = { type: 'releaseModel' } as Job;
const setParams = { type: 'setParams' } as unknown as Job;
const evalLoss = { type: 'evalLoss' } as unknown as Job;

describe('serving first: which session jobs pass the head', () => {
  it('the session jobs behind a training step go first', () => {
    assert.deepEqual(servingJobsAhead([train, step('a')]), [1]);
    assert.deepEqual(servingJobsAhead([train, open('a'), step('a')]), [1, 2], 'in their order: a session keeps its order');
    assert.deepEqual(servingJobsAhead([train, close('a')]), [1]);
  });
  it('all of them, so that concurrent replies still batch (review, session 26)', () => {
    // pickBatch ends its scan at a training step: one at a time, each decode step ran alone
    assert.deepEqual(servingJobsAhead([train, step('a'), step('b'), train, step('c')]), [1, 2, 4]);
  });
  it('a hop\'s claim (the model hash before each session it opens) passes with its session (session 27)', () => {
    const hash = { type: 'modelHash' } as Job;
    assert.deepEqual(servingJobsAhead([train, hash, open('a'), step('a')]), [1, 2, 3]);
    assert.deepEqual(servingJobsAhead([train, hash, setParams, open('a')]), [1], 'still not across new parameters');
  });
  it('passes several training steps but nothing else', () => {
    assert.deepEqual(servingJobsAhead([train, train, train, step('a')]), [3]);
    assert.deepEqual(servingJobsAhead([train, release, step('a')]), [], 'a model release stands between: the step must meet it');
    assert.deepEqual(servingJobsAhead([train, setParams, step('a')]), [], 'new parameters stand between');
    assert.deepEqual(servingJobsAhead([train, evalLoss, step('a')]), []);
    assert.deepEqual(servingJobsAhead([train, step('a'), setParams, step('b')]), [1], 'not across new parameters');
  });
  it('from a training step that is no longer the head: those behind it pass it up to it (session 29)', () => {
    // two decode steps passed it; a third reply's step arrived while they ran
    assert.deepEqual(servingJobsAhead([step('a'), train, step('b')], 1), [2]);
    assert.deepEqual(servingJobsAhead([step('a'), train, train, step('b'), setParams, step('c')], 1), [3], 'still not across new parameters');
    assert.deepEqual(servingJobsAhead([step('a'), step('b')], 1), [], 'only from a training step');
    assert.deepEqual(servingJobsAhead([step('a'), train], 1), []);
  });
  it('only a training step yields', () => {
    assert.deepEqual(servingJobsAhead([step('a'), step('b')]), []);
    assert.deepEqual(servingJobsAhead([evalLoss, step('a')]), []);
    assert.deepEqual(servingJobsAhead([release, step('a')]), []);
    assert.deepEqual(servingJobsAhead([train]), []);
    assert.deepEqual(servingJobsAhead([]), []);
  });
});

describe('serving first: what the drain does with a training step at the head', () => {
  const o: ServingFirstOptions = { gapMs: 250, holdMs: 2000, idleCapMs: 2000, idleShare: 0.5 };
  it('session jobs pass it while the hold lasts', () => {
    assert.deepEqual(servingFirstStep([train, step('a')], 10_500, 10_499, 10_000, 2000, o), { pass: [1], waitMs: 0 });
    assert.deepEqual(servingFirstStep([train, step('a')], 10_500, 10_499, 10_000, 0, o), { pass: [1], waitMs: 0 }, 'with no idle time in hand too: passing is not idle');
  });
  it('once held holdMs it runs, even with session jobs queued behind it (review, session 26: they passed it forever)', () => {
    assert.deepEqual(servingFirstStep([train, step('a')], 12_000, 11_999, 10_000, 2000, o), { pass: [], waitMs: 0 });
    assert.deepEqual(servingFirstStep([train, step('a')], 60_000, 59_999, 10_000, 2000, o), { pass: [], waitMs: 0 });
  });
  it('waits for serving only when nothing but training steps is queued (review, session 26)', () => {
    assert.deepEqual(servingFirstStep([train, train], 10_000, 9_990, 10_000, 2000, o), { pass: [], waitMs: 240 });
    // new parameters, a pipeline stage, a checkpoint behind it would wait too, and a session job behind them
    assert.deepEqual(servingFirstStep([train, setParams], 10_000, 9_990, 10_000, 2000, o), { pass: [], waitMs: 0 });
    assert.deepEqual(servingFirstStep([train, evalLoss, step('a')], 10_000, 9_990, 10_000, 2000, o), { pass: [], waitMs: 0 });
  });
  it('holdMs 0, or a head that does not yield: nothing changes', () => {
    assert.deepEqual(servingFirstStep([train, step('a')], 10_000, 9_990, 10_000, 2000, { ...o, holdMs: 0 }), { pass: [], waitMs: 0 });
    assert.deepEqual(servingFirstStep([step('a'), train], 10_000, 9_990, 10_000, 2000, o), { pass: [], waitMs: 0 });
    assert.deepEqual(servingFirstStep([], 10_000, 9_990, 10_000, 2000, o), { pass: [], waitMs: 0 });
  });
});

describe('serving first: how long a training step waits', () => {
  const o: ServingFirstOptions = { gapMs: 250, holdMs: 2000, idleCapMs: 2000, idleShare: 0.5 };
  it('runs at once when no open session was active recently', () => {
    assert.equal(trainingWait(10_000, -Infinity, 10_000, 2000, o), 0, 'no session open (an empty open and close leaves none)');
    assert.equal(trainingWait(10_000, 9_700, 10_000, 2000, o), 0, '300 ms since an open session last stepped');
    assert.equal(trainingWait(10_000, 9_750, 10_000, 2000, o), 0, 'exactly the gap');
  });
  it('waits while a reply is in progress, until its gap would end', () => {
    assert.equal(trainingWait(10_000, 9_990, 10_000, 2000, o), 240);
    assert.equal(trainingWait(10_000, 10_000, 10_000, 2000, o), 250);
  });
  it('never holds a step longer than holdMs under continuous serving', () => {
    assert.equal(trainingWait(11_900, 11_899, 10_000, 2000, o), 100, 'the hold caps the wait');
    assert.equal(trainingWait(12_000, 11_999, 10_000, 2000, o), 0, 'held 2 s: it runs');
    assert.equal(trainingWait(15_000, 14_999, 10_000, 2000, o), 0);
  });
  it('never waits longer than the idle time in hand (attack pass, session 27)', () => {
    assert.equal(trainingWait(10_000, 10_000, 10_000, 30, o), 30);
    assert.equal(trainingWait(10_000, 10_000, 10_000, 0, o), 0, 'none in hand: it runs');
    assert.equal(trainingWait(10_000, 10_000, 10_000, -5, o), 0, 'overdrawn by a late timer: it runs');
  });
  it('holdMs 0 is arrival order', () => {
    assert.equal(trainingWait(10_000, 10_000, 10_000, 2000, { ...o, holdMs: 0 }), 0);
  });
});

describe('serving first: the idle time in hand', () => {
  const o: ServingFirstOptions = { gapMs: 250, holdMs: 2000, idleCapMs: 2000, idleShare: 0.5 };
  it('a wait spends it, a training step earns idleShare of its run time, up to idleCapMs', () => {
    assert.equal(idleAfter(2000, 120, 0, o), 1880);
    assert.equal(idleAfter(100, 0, 400, o), 300);
    assert.equal(idleAfter(1900, 0, 400, o), 2000, 'capped');
    assert.equal(idleAfter(10, 30, 0, o), -20, 'a late timer overdraws it; the next training step pays that back');
    assert.equal(idleAfter(500, -3, -7, o), 500, 'negative durations (a clock step) count as none');
  });
});

describe('serving first: a reply mid-answer (SessionTable.lastActiveAt, what the worker passes as lastStepAt)', () => {
  it('an open session counts from its open and each step, prefills included; a closed one not at all', () => {
    const sh = new LlamaShard({ config: tinyConfig({ max_position_embeddings: 16 }), backend: reference, seed: 1 });
    const t = new SessionTable();
    assert.equal(t.lastActiveAt(), -Infinity, 'none open');
    const t0 = performance.now();
    t.open(sh, { type: 'sessionOpen', id: 'a', maxLen: 8 });
    const opened = t.lastActiveAt();
    assert.ok(opened >= t0);
    t.close('a');
    assert.equal(t.lastActiveAt(), -Infinity, 'an empty open and close leaves nothing to wait for');
    t.open(sh, { type: 'sessionOpen', id: 'b', maxLen: 8 });
    const b0 = t.lastActiveAt();
    t.step(sh, { type: 'sessionStep', id: 'b', ids: Int32Array.of(1, 2, 3), chunks: [3] }, () => {});
    const b1 = t.lastActiveAt();
    assert.ok(b1 >= b0);
    t.open(sh, { type: 'sessionOpen', id: 'c', maxLen: 8 });
    const c0 = t.lastActiveAt();
    assert.ok(c0 >= b1, 'the latest of the open sessions');
    t.close('c');
    assert.equal(t.lastActiveAt(), b1, 'back to the one still open');
  });
});

describe('serving first: defaults, in one place', () => {
  it('are what docs/ARCHITECTURE.md and docs/LIMITS.md session 28 describe', () => {
    assert.deepEqual({ ...SERVING_FIRST_DEFAULTS }, { gapMs: 250, holdMs: 2000, idleCapMs: 4000, idleShare: 2 });
    assert.ok(Object.isFrozen(SERVING_FIRST_DEFAULTS));
    assert.equal(trainingWait(10_000, 10_000, 10_000, SERVING_FIRST_DEFAULTS.idleCapMs), SERVING_FIRST_DEFAULTS.gapMs);
  });
});

describe('serving first over a simulated minute (400 ms training steps)', () => {
  const base = { horizonMs: 60_000, trainMs: 400 } satisfies Partial<SimOptions>;
  const steps = (o: Omit<SimOptions, 'horizonMs' | 'trainMs'>): number => simulateServingFirst({ ...base, ...o }).trainSteps;
  it('with no serving training makes 150 steps', () => {
    assert.equal(steps({ loads: [] }), 150);
    assert.equal(steps({ loads: [], variant: 'before' }), 150);
  });
  it("a stranger's empty session open and close every 240 ms: 25 steps before, ~150 now (attack pass, session 27)", () => {
    const loads = [{ kind: 'stranger', everyMs: 240, pattern: 'empty' }] as const;
    const before = simulateServingFirst({ ...base, loads, variant: 'before' });
    const after = simulateServingFirst({ ...base, loads });
    assert.ok(before.trainSteps <= 26, `before: ${before.trainSteps}`);
    assert.ok(before.idleWaitMs > 45_000, `before: the worker idled ${before.idleWaitMs} ms`);
    assert.ok(after.trainSteps >= 140, `after: ${after.trainSteps}`);
    assert.equal(after.idleWaitMs, 0, 'a closed session buys no wait');
  });
  it("a stranger's empty opens buy a wait only while they stay open: closed a round trip later almost none, kept open 240 ms what a stepping session buys (review, session 28)", () => {
    const { idleCapMs, idleShare } = SERVING_FIRST_DEFAULTS;
    // a remote stranger's close comes a round trip after its open's answer at the soonest: the session is open meanwhile
    const rtt = simulateServingFirst({ ...base, loads: [{ kind: 'stranger', everyMs: 240, pattern: 'empty', closeAfterMs: 25 }] });
    assert.ok(rtt.trainSteps >= 140 && rtt.idleWaitMs < 1000, `closed 25 ms after: ${rtt.trainSteps} steps, idle ${rtt.idleWaitMs} ms`);
    // each kept open until the next: an open counts as activity (a reply's prefill follows it), so the balance bounds it
    for (const variant of ['before', 'after'] as const) {
      const kept = simulateServingFirst({ ...base, loads: [{ kind: 'stranger', everyMs: 240, pattern: 'empty', closeAfterMs: 240 }], variant });
      const bound = Math.floor((60_000 - idleCapMs) / (400 * (1 + idleShare)));
      if (variant === 'before') assert.ok(kept.trainSteps <= 26, `before: ${kept.trainSteps}`);
      else assert.ok(kept.trainSteps >= bound && kept.idleWaitMs <= idleCapMs + idleShare * 400 * kept.trainSteps + 1, `kept open: ${kept.trainSteps} steps (bound ${bound}), idle ${kept.idleWaitMs} ms`);
    }
  });
  it("a stranger's session that stays open and steps one token every 240 ms, or every 30 ms: training keeps ≥ 1 / (1 + idleShare), less what the steps compute", () => {
    for (const everyMs of [240, 30]) {
      const loads = [{ kind: 'stranger', everyMs, pattern: 'step' }] as const;
      const before = steps({ loads, variant: 'before' });
      const after = simulateServingFirst({ ...base, loads });
      assert.ok(before <= 26, `every ${everyMs} ms before: ${before}`);
      // idle ≤ idleCapMs + idleShare × training time; the stranger's steps (5 ms each) are real work, as in arrival order
      const busy = 60_000 * (1 - 5 / everyMs);
      const { idleCapMs, idleShare } = SERVING_FIRST_DEFAULTS;
      assert.ok(after.trainSteps >= Math.floor((busy - idleCapMs) / (400 * (1 + idleShare))), `every ${everyMs} ms after: ${after.trainSteps}`);
      assert.ok(after.idleWaitMs <= idleCapMs + idleShare * 400 * after.trainSteps + 1, `idle ${after.idleWaitMs} ms`);
    }
  });
  it('an honest remote reply (64 tokens, a step every 30 ms) on a node that trained a while since the last one passes training, as before', () => {
    const loads = [{ kind: 'reply', startMs: 5000, tokens: 64, rttMs: 25, restMs: 3000 }] as const;
    for (const variant of ['before', 'after'] as const) {
      const r = simulateServingFirst({ ...base, loads, variant });
      assert.ok(r.replies.length >= 10, `${variant}: ${r.replies.length} replies`);
      const pauses = r.replies.reduce((a, x) => a + x.trainsDuring, 0);
      assert.ok(pauses <= 2, `${variant}: ${pauses} training steps ran inside ${r.replies.length} replies`);
    }
  });
  it('remote replies back to back pause for a training step every ~35 tokens (every ~67 before), and training keeps ≥ 1/3', () => {
    const loads = [{ kind: 'reply', startMs: 0, tokens: 64, rttMs: 25, restMs: 0 }] as const;
    const perPause = (r: ReturnType<typeof simulateServingFirst>): number => r.replies.reduce((a, x) => a + x.tokens, 0) / r.replies.reduce((a, x) => a + x.trainsDuring, 0);
    const before = simulateServingFirst({ ...base, loads, variant: 'before' });
    const after = simulateServingFirst({ ...base, loads });
    assert.ok(perPause(before) >= 60, `before: ${perPause(before)} tokens a pause`);
    assert.ok(perPause(after) >= 28 && perPause(after) <= 45, `after: ${perPause(after)} tokens a pause`);
    assert.ok(before.trainSteps <= 40 && after.trainSteps >= 40, `training ${before.trainSteps} → ${after.trainSteps} steps`);
  });
  it('one remote reply a second (64 tokens) is as fast as before, and training gets more steps than before', () => {
    const loads = [{ kind: 'reply', startMs: 0, tokens: 64, rttMs: 25, restMs: 1000 }] as const;
    const before = simulateServingFirst({ ...base, loads, variant: 'before' });
    const after = simulateServingFirst({ ...base, loads });
    const mean = (r: ReturnType<typeof simulateServingFirst>): number => r.replies.reduce((a, x) => a + x.ms, 0) / r.replies.length;
    assert.ok(mean(after) <= mean(before) * 1.05, `a reply took ${mean(before).toFixed(0)} ms before, ${mean(after).toFixed(0)} now`);
    assert.ok(after.trainSteps >= before.trainSteps, `training ${before.trainSteps} → ${after.trainSteps} steps`);
  });
  it('a local reply (its next step within a millisecond) passes training as before', () => {
    const loads = [{ kind: 'reply', startMs: 0, tokens: 64, rttMs: 0.2, restMs: 0 }] as const;
    for (const variant of ['before', 'after'] as const) {
      const r = simulateServingFirst({ ...base, loads, variant });
      const tokens = r.replies.reduce((a, x) => a + x.tokens, 0);
      const pauses = r.replies.reduce((a, x) => a + x.trainsDuring, 0);
      assert.ok(tokens / pauses >= 300, `${variant}: ${tokens} tokens, ${pauses} pauses`);
    }
  });
});

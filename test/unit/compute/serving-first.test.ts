/**
 * Serving before training (src/compute/serving-first.ts): which queued session job passes a training step, and how
 * long a training step waits for a reply in progress.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Job } from '../../../src/compute/jobs.js';
import { SERVING_GAP_MS, TRAINING_HOLD_MS, servingFirstStep, servingJobsAhead, trainingWait } from '../../../src/compute/serving-first.js';

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
  it('only a training step yields', () => {
    assert.deepEqual(servingJobsAhead([step('a'), step('b')]), []);
    assert.deepEqual(servingJobsAhead([evalLoss, step('a')]), []);
    assert.deepEqual(servingJobsAhead([release, step('a')]), []);
    assert.deepEqual(servingJobsAhead([train]), []);
    assert.deepEqual(servingJobsAhead([]), []);
  });
});

describe('serving first: what the drain does with a training step at the head', () => {
  const o = { gapMs: 250, holdMs: 2000 };
  it('session jobs pass it while the hold lasts', () => {
    assert.deepEqual(servingFirstStep([train, step('a')], 10_500, 10_499, 10_000, o), { pass: [1], waitMs: 0 });
  });
  it('once held holdMs it runs, even with session jobs queued behind it (review, session 26: they passed it forever)', () => {
    assert.deepEqual(servingFirstStep([train, step('a')], 12_000, 11_999, 10_000, o), { pass: [], waitMs: 0 });
    assert.deepEqual(servingFirstStep([train, step('a')], 60_000, 59_999, 10_000, o), { pass: [], waitMs: 0 });
  });
  it('waits for serving only when nothing but training steps is queued (review, session 26)', () => {
    assert.deepEqual(servingFirstStep([train, train], 10_000, 9_990, 10_000, o), { pass: [], waitMs: 240 });
    // new parameters, a pipeline stage, a checkpoint behind it would wait too, and a session job behind them
    assert.deepEqual(servingFirstStep([train, setParams], 10_000, 9_990, 10_000, o), { pass: [], waitMs: 0 });
    assert.deepEqual(servingFirstStep([train, evalLoss, step('a')], 10_000, 9_990, 10_000, o), { pass: [], waitMs: 0 });
  });
  it('holdMs 0, or a head that does not yield: nothing changes', () => {
    assert.deepEqual(servingFirstStep([train, step('a')], 10_000, 9_990, 10_000, { gapMs: 250, holdMs: 0 }), { pass: [], waitMs: 0 });
    assert.deepEqual(servingFirstStep([step('a'), train], 10_000, 9_990, 10_000, o), { pass: [], waitMs: 0 });
    assert.deepEqual(servingFirstStep([], 10_000, 9_990, 10_000, o), { pass: [], waitMs: 0 });
  });
});

describe('serving first: how long a training step waits', () => {
  const o = { gapMs: 250, holdMs: 2000 };
  it('runs at once when nothing was served recently', () => {
    assert.equal(trainingWait(10_000, -Infinity, 10_000, o), 0);
    assert.equal(trainingWait(10_000, 9_700, 10_000, o), 0, '300 ms since the last session job');
    assert.equal(trainingWait(10_000, 9_750, 10_000, o), 0, 'exactly the gap');
  });
  it('waits while a reply is in progress, until its gap would end', () => {
    assert.equal(trainingWait(10_000, 9_990, 10_000, o), 240);
    assert.equal(trainingWait(10_000, 10_000, 10_000, o), 250);
  });
  it('never holds a step longer than holdMs under continuous serving', () => {
    assert.equal(trainingWait(11_900, 11_899, 10_000, o), 100, 'the hold caps the wait');
    assert.equal(trainingWait(12_000, 11_999, 10_000, o), 0, 'held 2 s: it runs');
    assert.equal(trainingWait(15_000, 14_999, 10_000, o), 0);
  });
  it('holdMs 0 is arrival order', () => {
    assert.equal(trainingWait(10_000, 10_000, 10_000, { gapMs: 250, holdMs: 0 }), 0);
  });
  it('defaults', () => {
    assert.equal(SERVING_GAP_MS, 250);
    assert.equal(TRAINING_HOLD_MS, 2000);
    assert.equal(trainingWait(10_000, 10_000, 10_000), SERVING_GAP_MS);
  });
});

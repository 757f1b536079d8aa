/**
 * Serving before training (src/compute/serving-first.ts): which queued session job passes a training step, and how
 * long a training step waits for a reply in progress.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Job } from '../../../src/compute/jobs.js';
import { SERVING_GAP_MS, TRAINING_HOLD_MS, servingJobAhead, trainingWait } from '../../../src/compute/serving-first.js';

const train = { type: 'trainStep', inputs: new Int32Array(4), targets: new Int32Array(4), B: 1, T: 4 } as Job;
const step = (id: string): Job => ({ type: 'sessionStep', id, ids: Int32Array.of(1), chunks: [1] }) as Job;
const open = (id: string): Job => ({ type: 'sessionOpen', id, maxLen: 8 }) as Job;
const close = (id: string): Job => ({ type: 'sessionClose', id }) as Job;
const release = { type: 'releaseModel' } as Job;
const setParams = { type: 'setParams' } as unknown as Job;
const evalLoss = { type: 'evalLoss' } as unknown as Job;

describe('serving first: which session job passes the head', () => {
  it('a session job behind a training step goes first', () => {
    assert.equal(servingJobAhead([train, step('a')]), 1);
    assert.equal(servingJobAhead([train, open('a'), step('a')]), 1, 'the first, so that a session keeps its order');
    assert.equal(servingJobAhead([train, close('a')]), 1);
  });
  it('passes several training steps but nothing else', () => {
    assert.equal(servingJobAhead([train, train, train, step('a')]), 3);
    assert.equal(servingJobAhead([train, release, step('a')]), -1, 'a model release stands between: the step must meet it');
    assert.equal(servingJobAhead([train, setParams, step('a')]), -1, 'new parameters stand between');
    assert.equal(servingJobAhead([train, evalLoss, step('a')]), -1);
  });
  it('only a training step yields', () => {
    assert.equal(servingJobAhead([step('a'), step('b')]), -1);
    assert.equal(servingJobAhead([evalLoss, step('a')]), -1);
    assert.equal(servingJobAhead([release, step('a')]), -1);
    assert.equal(servingJobAhead([train]), -1);
    assert.equal(servingJobAhead([]), -1);
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

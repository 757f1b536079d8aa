/**
 * Where a chain partner's next round boundary is (training/rounds.ts partnerAt, stepsToAlign) counts the steps the
 * reader applied since the partner's last boundary (training/applied-steps.ts), under one driver's ids: a NaN-skipped
 * step takes an id nobody applies, and a hop's previous driver numbered its steps on its own. The scenario over the
 * round machine is in chain-rounds.test.ts ("a NaN-skipped step …").
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AppliedSteps } from '../../../src/training/applied-steps.js';
import { partnerAt, stepsToAlign } from '../../../src/training/rounds.js';

const H = 3;

describe('AppliedSteps', () => {
  it('counts the ids applied after an id, skipped ones left out', () => {
    const a = new AppliedSteps();
    assert.equal(a.after(0), undefined, 'nothing applied: unknown');
    for (const id of [0, 2, 3, 5, 6]) a.add(id, 'd');
    assert.equal(a.driver(), 'd');
    assert.equal(a.after(0), 4);
    assert.equal(a.after(1), 4);
    assert.equal(a.after(3), 2);
    assert.equal(a.after(6), 0);
    assert.equal(a.after(-1), 5, 'from just before the first id');
    assert.equal(a.after(-2), undefined, 'ids before the record began are not known');
    a.add(6, 'd');
    assert.equal(a.after(3), 2, 'the same id again is one step');
  });

  it('starts over under another driver\'s ids, or when the ids go back', () => {
    const a = new AppliedSteps();
    for (const id of [40, 41, 42]) a.add(id, 'd1');
    a.add(7, 'd3');
    assert.equal(a.driver(), 'd3');
    assert.equal(a.after(6), 1);
    assert.equal(a.after(40), 0);
    assert.equal(a.after(5), undefined);
    a.add(3, 'd3');
    assert.equal(a.after(2), 1);
    assert.equal(a.after(1), undefined);
  });

  it('keeps the newest runs only: ids before them are unknown', () => {
    const a = new AppliedSteps(2);
    for (const id of [0, 1, 3, 4, 6, 7]) a.add(id);
    assert.equal(a.after(2), 4);
    assert.equal(a.after(1), undefined, 'the run 0..1 was dropped');
  });
});

describe('partnerAt and stepsToAlign read applied steps, not ids', () => {
  const reader = (ids: number[], self = 'd'): { ids: string; appliedAfter: (id: number) => number | undefined } => {
    const a = new AppliedSteps();
    for (const id of ids) a.add(id, self);
    return { ids: self, appliedAfter: (id) => a.after(id) };
  };

  it('a partner h ids back with a skipped id between is not coming', () => {
    // the driver applied 0, 2, 3 (1 skipped) and closes at 3; the hop's last boundary was 0
    const theirs = { step: 0, next: 2, drives: false, driver: 'd' };
    assert.equal(partnerAt(3, H, theirs), 'coming', 'read as ids (the old reading)');
    assert.equal(partnerAt(3, H, theirs, reader([0, 2, 3])), 'apart');
    // without a skip the applied steps are the ids
    assert.equal(partnerAt(3, H, theirs, reader([0, 1, 2, 3])), 'coming');
    assert.equal(partnerAt(4, H, theirs, reader([0, 2, 3, 4])), 'coming', 'h applied steps since, one id later');
    assert.equal(partnerAt(3, H, { ...theirs, step: 3 }, reader([0, 2, 3])), 'at');
    assert.equal(partnerAt(3, H, undefined, reader([0, 2, 3])), 'apart');
  });

  it('a boundary under another driver\'s ids is apart, whatever its number', () => {
    const theirs = { step: 0, next: 2, drives: false, driver: 'd1' };
    assert.equal(partnerAt(3, H, theirs, reader([1, 2, 3], 'd3')), 'apart');
    assert.equal(partnerAt(0, H, theirs, reader([0], 'd3')), 'apart', 'even the same id');
    // an older node publishes no driver: its ids are taken as ours
    assert.equal(partnerAt(3, H, { step: 0, next: 2, drives: false }, reader([1, 2, 3], 'd3')), 'coming');
  });

  it('an apart hop\'s steps to align count the driver\'s skipped ids out', () => {
    // the driver's boundary was at 2, the hop is at 5 having applied 4 and 5 since (3 skipped): the driver needs one
    // more step, not H (2 + H − 5 = 0 read as ids)
    assert.equal(stepsToAlign(5, H, 2), H, 'read as ids (the old reading): out of reach, a whole round');
    assert.equal(stepsToAlign(5, H, 2, reader([2, 4, 5])), 1);
    assert.equal(stepsToAlign(4, H, 2, reader([2, 3, 4])), 1, 'no skip: as the ids say');
    assert.equal(stepsToAlign(9, H, 2, reader([2, 3, 4, 5, 6, 7, 8, 9])), H, 'the driver\'s boundary is not in reach');
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { admit, contributionRoundCheck, innerStepDone, MAX_ROUND, nextRound, nextRoundNumber, quorumSize, receive, startRound, tryClose, type RoundConfig } from '../../../src/training/rounds.js';
import { isNeuroShardError } from '../../../src/util/errors.js';

const cfg: RoundConfig = { innerSteps: 3, quorum: 0.67, syncTimeoutMs: 1000 };

describe('outer round state machine', () => {
  it('runs H inner steps, collects, and closes early when every holder contributed', () => {
    let s = startRound(cfg, 0, ['c', 'a', 'b'], 'h0');
    assert.deepEqual(s.holders, ['a', 'b', 'c']);
    s = innerStepDone(cfg, s, 10);
    s = innerStepDone(cfg, s, 20);
    assert.equal(s.phase, 'inner');
    // a faster holder's contribution arrives during our inner steps
    s = receive(s, 0, 'b', 25).state;
    s = innerStepDone(cfg, s, 30);
    assert.equal(s.phase, 'collecting');
    assert.equal(s.deadlineMs, 1030);
    s = receive(s, 0, 'a', 40).state;
    assert.equal(tryClose(cfg, s, 50).outcome.kind, 'open');
    s = receive(s, 0, 'c', 60).state;
    const r = tryClose(cfg, s, 61);
    assert.deepEqual(r.outcome, { kind: 'closed', included: ['a', 'b', 'c'], missing: [] });
    const n = nextRound(cfg, r.state, ['a', 'b', 'c', 'd'], 'h1');
    assert.equal(n.round, 1);
    assert.equal(n.phase, 'inner');
    assert.deepEqual(n.received, {});
  });

  it('closes at the deadline with the quorum and leaves late contributions out', () => {
    const q2 = { ...cfg, quorum: 2 / 3 };
    let s = startRound(q2, 4, ['a', 'b', 'c'], 'h');
    for (let i = 0; i < 3; i++) s = innerStepDone(q2, s, 0);
    s = receive(s, 4, 'a', 10).state;
    s = receive(s, 4, 'b', 20).state;
    assert.equal(tryClose(q2, s, 999).outcome.kind, 'open');
    const r = tryClose(q2, s, 1000);
    assert.deepEqual(r.outcome, { kind: 'closed', included: ['a', 'b'], missing: ['c'] });
    const late = receive(r.state, 4, 'c', 1001);
    assert.equal(late.verdict, 'late');
    assert.deepEqual(late.state.late, ['c']);
    assert.equal(receive(late.state, 4, 'a', 1002).verdict, 'duplicate');
  });

  it('abandons a round below the quorum', () => {
    assert.equal(quorumSize(cfg, 3), 3); // ⌈0.67·3⌉ = ⌈2.01⌉
    assert.equal(quorumSize({ ...cfg, quorum: 2 / 3 }, 3), 2);
    assert.equal(quorumSize({ ...cfg, quorum: 0.5 }, 4), 2);
    const c2 = { ...cfg, quorum: 2 / 3 };
    let s = startRound(c2, 0, ['a', 'b', 'c'], 'h');
    for (let i = 0; i < 3; i++) s = innerStepDone(c2, s, 0);
    s = receive(s, 0, 'a', 1).state;
    assert.deepEqual(tryClose(c2, s, 1000).outcome, { kind: 'abandoned', included: ['a'], missing: ['b', 'c'] });
  });

  it('waived holders (entering at the boundary) only listen: not waited for, never counted, the quorum is the others\'', () => {
    const q = { ...cfg, quorum: 2 / 3 };
    let s = startRound(q, 5, ['a', 'b', 'c', 'd'], 'h', ['d', 'x']);
    assert.deepEqual(s.waived, ['d'], 'only holders can be waived');
    for (let i = 0; i < 3; i++) s = innerStepDone(q, s, 0);
    s = receive(s, 5, 'a', 1).state;
    assert.equal(receive(s, 5, 'd', 1).verdict, 'not_holder', 'a listener\'s Δ is not taken, in time or not');
    s = receive(s, 5, 'b', 2).state;
    assert.equal(tryClose(q, s, 3).outcome.kind, 'open', 'c is still waited for');
    s = receive(s, 5, 'c', 4).state;
    const r = tryClose(q, s, 5);
    assert.deepEqual(r.outcome, { kind: 'closed', included: ['a', 'b', 'c'], missing: [] }, 'closes at once without the joiner');
    // one member and a listening joiner: the member's Δ alone is the quorum
    let u = startRound(q, 0, ['a', 'j'], 'h', ['j']);
    for (let i = 0; i < 3; i++) u = innerStepDone(q, u, 0);
    u = receive(u, 0, 'a', 1).state;
    assert.deepEqual(tryClose(q, u, 2).outcome, { kind: 'closed', included: ['a'], missing: [] });
    // at the deadline, the quorum of the waited holders decides
    let v = startRound(q, 0, ['a', 'b', 'c', 'j'], 'h', ['j']);
    for (let i = 0; i < 3; i++) v = innerStepDone(q, v, 0);
    v = receive(v, 0, 'a', 1).state;
    assert.equal(tryClose(q, v, 999).outcome.kind, 'open');
    assert.deepEqual(tryClose(q, v, 1000).outcome, { kind: 'abandoned', included: ['a'], missing: ['b', 'c'] });
    assert.deepEqual(nextRound(q, r.state, ['a', 'b', 'c', 'd'], 'h2').waived, [], 'the next round waits for everyone again');
  });

  it('contributionRoundCheck: past rounds, and future ones from a holder, answered without a penalty (a holder\'s late Δ to a joiner, a holder whose numbers skipped ahead); far future from anyone else refused', () => {
    assert.equal(contributionRoundCheck(3, -1, 4, true), 'too_early', 'still entering');
    assert.equal(contributionRoundCheck(9, 10, 4, true), 'take');
    assert.equal(contributionRoundCheck(10, 10, 4, true), 'take');
    assert.equal(contributionRoundCheck(11, 10, 4, true), 'take');
    assert.equal(contributionRoundCheck(14, 10, 4, true), 'too_early');
    assert.equal(contributionRoundCheck(15, 10, 4, true), 'too_early', 'a holder further on: no penalty (its numbers skipped ahead)');
    assert.equal(contributionRoundCheck(1000, 10, 4, true), 'too_early');
    assert.equal(contributionRoundCheck(15, 10, 4, false), 'refuse', 'far ahead from a sender that holds no such layer: refused, penalised');
    assert.equal(contributionRoundCheck(14, 10, 4, false), 'too_early');
    assert.equal(contributionRoundCheck(3, -1, 4, false), 'too_early');
    assert.equal(contributionRoundCheck(8, 10, 4, true), 'wrong_round');
    // a holder kept retrying its round-3 Δ while the joiner downloaded; the joiner entered at round 12
    assert.equal(contributionRoundCheck(3, 12, 4, true), 'wrong_round', 'an honest race, not a penalty');
  });

  it('answers wrong rounds, strangers and duplicates without changing the state', () => {
    const s = startRound(cfg, 2, ['a', 'b'], 'h');
    assert.equal(receive(s, 1, 'a', 0).verdict, 'wrong_round');
    assert.equal(receive(s, 3, 'a', 0).verdict, 'too_early');
    assert.equal(receive(s, 2, 'z', 0).verdict, 'not_holder');
    const a = receive(s, 2, 'a', 0);
    assert.equal(a.verdict, 'accepted');
    const d = receive(a.state, 2, 'a', 1);
    assert.equal(d.verdict, 'duplicate');
    assert.equal(d.state, a.state);
    assert.deepEqual(s.received, {}); // the original is untouched
  });

  it('refuses misuse and bad configs', () => {
    const s = startRound(cfg, 0, ['a'], 'h');
    assert.throws(() => nextRound(cfg, s, ['a'], 'h'), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => startRound({ ...cfg, quorum: 0 }, 0, ['a'], 'h'), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => startRound(cfg, 0, [], 'h'), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
    let t = startRound({ ...cfg, innerSteps: 1 }, 0, ['a'], 'h');
    t = innerStepDone({ ...cfg, innerSteps: 1 }, t, 0);
    assert.throws(() => innerStepDone(cfg, t, 0), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
  });
});

describe('round numbers tied across layer groups (nextRoundNumber)', () => {
  it('one more than the closed round, or the round a holder of our layers two or more further on is in', () => {
    assert.equal(nextRoundNumber(7, []), 8, 'alone');
    assert.equal(nextRoundNumber(7, [7, 8]), 8, 'holders in step (one already began the next round)');
    assert.equal(nextRoundNumber(59, [61, 60]), 61, 'a holder further on: join the round it is in');
    assert.equal(nextRoundNumber(2, [9]), 9, 'W entered 9: A joins it (its chain partner B, finishing 9, proposes 10, and the chain begins 10: sync.ts chainNext)');
    assert.equal(nextRoundNumber(61, [59]), 62, 'never backward: the holders behind skip to ours');
    // no chase: a skip never goes past the largest number a holder stands at, so a holder that skipped is never two
    // ahead of one that stood one behind the holder it followed (R + 1 did that: 7 closed, a holder at 9 → 10; the
    // holder at 8 closing then saw 10 and went to 11, …)
    assert.equal(nextRoundNumber(7, [9, 8]), 9, 'the largest number stays 9');
    assert.equal(nextRoundNumber(3, [MAX_ROUND, Number.MAX_SAFE_INTEGER, 2.5, Number.NaN]), 4, 'labels from MAX_ROUND on, or not integers, are ignored');
    assert.equal(nextRoundNumber(3, [MAX_ROUND - 1]), MAX_ROUND - 1);
  });
  it('admits a waived holder that shows it is a member: waited for and counted, only while the round is open', () => {
    let s = startRound(cfg, 3, ['a', 'j'], 'h', ['j']);
    for (let i = 0; i < 3; i++) s = innerStepDone(cfg, s, 0);
    s = receive(s, 3, 'a', 1).state;
    assert.equal(receive(s, 3, 'j', 2).verdict, 'not_holder', 'a waived holder\'s Δ is refused');
    const open = admit(s, 'j');
    assert.deepEqual(open.waived, []);
    assert.equal(tryClose(cfg, open, 3).outcome.kind, 'open', 'its Δ is waited for');
    const r = receive(open, 3, 'j', 4);
    assert.equal(r.verdict, 'accepted');
    assert.deepEqual(tryClose(cfg, r.state, 5).outcome, { kind: 'closed', included: ['a', 'j'], missing: [] });
    assert.equal(admit(s, 'x'), s, 'not a holder');
    assert.equal(admit(open, 'j'), open, 'not waived');
    const closed = tryClose(cfg, s, 5).state;
    assert.equal(closed.phase, 'closed');
    assert.equal(admit(closed, 'j'), closed, 'a closed round is not reopened');
  });
});

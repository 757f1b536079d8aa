/**
 * training/keep.ts: which closed rounds a holder keeps (the window and joiners' pins, with their quotas), and which
 * round a joiner takes (newestSharedRound for the weights download, sequenceToJoin for its entry into the rounds).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newestSharedRound, windowEndingAt } from '../../../src/pool/rounds.js';
import { KEPT_ROUNDS, layerEntryState, livePins, PIN_LIMITS, pinRound, roundsToKeep, sequenceToJoin, type ClosedView, type RoundPin } from '../../../src/training/keep.js';

const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, k) => a + k);

describe('training/keep: closed rounds kept, pins and their quotas', () => {
  it('the window: the newest KEPT_ROUNDS closed rounds, and older ones only while a live pin names them', () => {
    assert.equal(KEPT_ROUNDS, 4);
    assert.deepEqual(roundsToKeep(range(-1, 9), [], 0), [6, 7, 8, 9]);
    assert.deepEqual(roundsToKeep([3, 1, 2], [], 0), [1, 2, 3]);
    const pins: RoundPin[] = [{ peer: 'j', round: 4, since: 0, until: 60_000 }];
    assert.deepEqual(roundsToKeep(range(0, 9), pins, 59_999), [4, 6, 7, 8, 9], 'round 4 left the window but is pinned');
    assert.deepEqual(roundsToKeep(range(0, 9), pins, 60_000), [6, 7, 8, 9], 'the pin expired: round 4 is dropped');
    // a pin never brings back a round that is no longer there
    assert.deepEqual(roundsToKeep(range(6, 9), pins, 1000), [6, 7, 8, 9]);
  });

  it('a pin lives PIN_LIMITS.ms after its last renewal and never past PIN_LIMITS.capMs after it was made', () => {
    assert.deepEqual(PIN_LIMITS, { perPeer: 2, ms: 60_000, capMs: 300_000, maxRounds: 4, maxPins: 256 });
    let pins: RoundPin[] = [];
    let r = pinRound(pins, 'j', 9, range(6, 9), 0);
    assert.equal(r.pinned, true);
    pins = r.pins;
    assert.deepEqual(pins, [{ peer: 'j', round: 9, since: 0, until: 60_000 }]);
    // renewed by the download's later requests (the round has left the window meanwhile: renewal still works)
    for (let t = 50_000; t < 300_000; t += 50_000) {
      r = pinRound(pins, 'j', 9, range(10, 13).concat([9]), t);
      assert.equal(r.pinned, true, `renewed at ${t}`);
      pins = r.pins;
    }
    assert.equal(pins[0]!.until, 300_000, 'capped 5 min after it was made');
    r = pinRound(pins, 'j', 9, range(10, 13).concat([9]), 300_000);
    assert.equal(r.pinned, false, 'past the cap: neither renewed nor made again (round 9 is out of the window)');
    assert.deepEqual(r.pins, []);
    // not renewed: gone after ms
    r = pinRound([], 'j', 9, range(6, 9), 0);
    assert.deepEqual(livePins(r.pins, 59_999).length, 1);
    assert.deepEqual(livePins(r.pins, 60_000), []);
  });

  it('only a round inside the window can be newly pinned (a pin cannot be handed on to keep a round forever)', () => {
    const held: RoundPin[] = [{ peer: 'a', round: 4, since: 0, until: 60_000 }];
    const kept = [4, 6, 7, 8, 9];
    const r = pinRound(held, 'b', 4, kept, 1000);
    assert.equal(r.pinned, false, 'round 4 is kept only by a\'s pin: b cannot pin it anew');
    assert.deepEqual(r.pins, held);
    assert.equal(pinRound([], 'b', 5, kept, 1000).pinned, false, 'a round not kept at all');
    assert.equal(pinRound([], 'b', 10, kept, 1000).pinned, false, 'a round not closed yet');
    assert.equal(pinRound([], 'b', 6, kept, 1000).pinned, true);
  });

  it('at most PIN_LIMITS.perPeer pins per peer: a new one replaces the peer\'s oldest', () => {
    let pins: RoundPin[] = [];
    pins = pinRound(pins, 'j', 6, range(6, 9), 0).pins;
    pins = pinRound(pins, 'j', 7, range(6, 9), 10).pins;
    pins = pinRound(pins, 'k', 7, range(6, 9), 15).pins;
    const r = pinRound(pins, 'j', 8, range(6, 9), 20);
    assert.equal(r.pinned, true);
    assert.deepEqual(r.pins.filter((p) => p.peer === 'j').map((p) => p.round).sort(), [7, 8], 'j\'s pin on 6 (its oldest) was replaced');
    assert.deepEqual(r.pins.filter((p) => p.peer === 'k').map((p) => p.round), [7], 'other peers\' pins are untouched');
    // many peers (a Sybil) pinning everything they can: the kept rounds stay bounded
    let all: RoundPin[] = [];
    const closed: number[] = [];
    for (let round = 0; round < 100; round++) {
      closed.push(round);
      const kept = roundsToKeep(closed, all, round * 1000);
      closed.splice(0, closed.length, ...kept);
      for (let s = 0; s < 10; s++) all = pinRound(all, `sybil${round}-${s}`, round, closed, round * 1000).pins;
      assert.ok(roundsToKeep(closed, all, round * 1000).length <= KEPT_ROUNDS + PIN_LIMITS.maxRounds, `round ${round}: ${closed.length} kept`);
    }
  });

  it('every pin inside the window is granted; past the window only the newest PIN_LIMITS.maxRounds pinned rounds are kept', () => {
    let pins: RoundPin[] = [];
    const kept = range(10, 13);
    for (const [k, round] of kept.entries()) {
      const r = pinRound(pins, `p${k}`, round, kept, 0);
      assert.equal(r.pinned, true);
      pins = r.pins;
    }
    const later = range(10, 17);
    const q = pinRound(pins, 'q', 14, later, 1);
    assert.equal(q.pinned, true, 'a fifth distinct round inside the window is granted (it is kept anyway)');
    assert.deepEqual(roundsToKeep(later, q.pins, 1), range(10, 17), 'four pinned rounds past the window: all kept');
    // round 18 closes: 14 leaves the window too; five pinned rounds past it, the oldest (10) is dropped
    assert.deepEqual(roundsToKeep(range(10, 18), q.pins, 2), range(11, 18));
    assert.equal(pinRound(pins, 'q', 13, range(10, 13), 1).pinned, true, 'another joiner of a pinned round is fine');
    assert.equal(pinRound(pins, 'q', 9, range(10, 13), 1).pinned, false, 'a round outside the window is not newly pinned');
  });

  it('at most PIN_LIMITS.maxPins pins in all: a new one replaces the oldest', () => {
    let pins: RoundPin[] = [];
    const closed = range(0, 3);
    for (let k = 0; k < PIN_LIMITS.maxPins + 10; k++) pins = pinRound(pins, `sybil${k}`, 3, closed, k).pins;
    assert.equal(pins.length, PIN_LIMITS.maxPins);
    assert.equal(pins.some((p) => p.peer === 'sybil0'), false, 'the oldest went first');
    const j = pinRound(pins, 'joiner', 3, closed, 1000);
    assert.equal(j.pinned, true);
    assert.equal(j.pins.length, PIN_LIMITS.maxPins);
  });
});

describe('training/keep: the round a joiner takes', () => {
  it('newestSharedRound: the newest round every holder keeps; none when they keep none in common', () => {
    assert.equal(newestSharedRound([]), undefined);
    assert.equal(newestSharedRound([range(6, 9)]), 9);
    assert.equal(newestSharedRound([range(6, 9), range(5, 8)]), 8, 'a holder a round behind has not closed 9 yet');
    assert.equal(newestSharedRound([[2, 6, 7, 8, 9], range(0, 3)]), 2, 'a round kept past the window by a pin counts');
    assert.equal(newestSharedRound([range(6, 9), range(0, 3)]), undefined);
    assert.deepEqual(windowEndingAt(9), [6, 7, 8, 9]);
    assert.deepEqual(windowEndingAt(0), [-3, -2, -1, 0]);
  });

  it('sequenceToJoin: the newest round a holder is in, only once every holder in the rounds counts the joiner', () => {
    const h = (round: number, members: string[], closed: number[], entering = false) => ({ round, members, closed, entering });
    // nobody in the rounds yet
    assert.equal(sequenceToJoin('j', []), undefined);
    assert.equal(sequenceToJoin('j', [h(-1, [], [], true)]), undefined);
    // a began round 7 before it saw j: wait for its next boundary, even though b counts j
    assert.equal(sequenceToJoin('j', [h(7, ['a', 'b'], range(3, 6)), h(7, ['a', 'b', 'j'], range(3, 6))]), undefined);
    // both count j: enter round 7 with the state after 6
    assert.equal(sequenceToJoin('j', [h(7, ['a', 'b', 'j'], range(3, 6)), h(7, ['a', 'b', 'j'], range(3, 6))]), 7);
    // b is a round ahead (closed 7): enter 8, a counts j in 8 too and has it entering there
    assert.equal(sequenceToJoin('j', [h(7, ['a', 'b', 'j'], range(3, 6)), h(8, ['a', 'b', 'j'], range(4, 7))]), 8);
    // another joiner still entering has no say
    assert.equal(sequenceToJoin('j', [h(7, ['a', 'j'], range(3, 6)), h(-1, [], [], true)]), 7);
    // nobody keeps the state after the round before (cannot happen with honest holders): not yet
    assert.equal(sequenceToJoin('j', [h(7, ['a', 'j'], [1, 2])]), undefined);
    // round 0: entered with the initial state (round −1)
    assert.equal(sequenceToJoin('j', [h(0, ['a', 'j'], [-1])]), 0);
  });

  it('sequenceToJoin with the fallback (after the joiner\'s patience): a quorum of the holders in the rounds counting it is enough', () => {
    const h = (round: number, members: string[], closed: number[], entering = false) => ({ round, members, closed, entering });
    const q = { quorum: 2 / 3 };
    const a = h(7, ['a', 'b', 'j', 'x'], range(3, 6));
    const b = h(7, ['a', 'b', 'j', 'x'], range(3, 6));
    const x = h(8, ['a', 'b', 'x'], range(4, 7)); // x never lists j
    assert.equal(sequenceToJoin('j', [a, b, x]), undefined, 'without the fallback: every holder must count j');
    assert.equal(sequenceToJoin('j', [a, b, x], q), 7, 'a and b (2 of 3) count j: the newest round of those that count it');
    assert.equal(sequenceToJoin('j', [a, h(7, ['a', 'b', 'x'], range(3, 6)), x], q), undefined, '1 of 3 is below the quorum');
    assert.equal(sequenceToJoin('j', [a, x], q), undefined, '1 of 2 is below the quorum');
    assert.equal(sequenceToJoin('j', [a, b, x, h(-1, [], [], true)], q), 7, 'a holder still entering has no say');
    assert.equal(sequenceToJoin('j', [h(7, ['j'], [1]), h(7, ['j'], [1]), x], q), 7, 'the state after 6 is kept by x');
    assert.equal(sequenceToJoin('j', [h(7, ['j'], [1]), h(7, ['j'], [1]), h(7, ['x'], [2])], q), undefined, 'nobody keeps the state after 6');
  });
});

describe('training/keep: a joiner\'s entry state per layer (layerEntryState)', () => {
  const closed = (rounds: number[], hash: (r: number) => Record<string, string>): ClosedView[] => rounds.map((r) => ({ round: r, hashes: hash(r) }));
  it('takes each layer\'s newest closed round ≤ the one before its entry, whatever the other layers\' numbers (drifted groups)', () => {
    // the chaos run: a (layer 0's group) kept 55-58, b (layer 1's) 57-60; the joiner enters round 61
    const holders = new Map<string, ClosedView[]>([
      ['a', closed([55, 56, 57, 58], (r) => ({ 'layers.0': `a${r}` }))],
      ['b', closed([57, 58, 59, 60], (r) => ({ 'layers.1': `b${r}` }))],
    ]);
    assert.deepEqual(layerEntryState('layers.0', 60, holders), { round: 58, hash: 'a58', sources: ['a'] });
    assert.deepEqual(layerEntryState('layers.1', 60, holders), { round: 60, hash: 'b60', sources: ['b'] });
    assert.deepEqual(layerEntryState('layers.1', 58, holders), { round: 58, hash: 'b58', sources: ['b'] }, 'nothing past the round before the entry');
    assert.equal(layerEntryState('layers.2', 60, holders), undefined, 'no holder keeps a state of the layer');
    assert.equal(layerEntryState('layers.0', 54, holders), undefined, 'none that old');
  });
  it('the hash most holders of the newest round report wins (ties: the smallest), with those holders as sources', () => {
    const holders = new Map<string, ClosedView[]>([
      ['p', closed([3, 4], (r) => ({ x: r === 4 ? 'h2' : 'old' }))],
      ['q', closed([4], () => ({ x: 'h1' }))],
      ['r', closed([4], () => ({ x: 'h2' }))],
      ['s', closed([2, 3], () => ({ x: 'h0' }))],
    ]);
    assert.deepEqual(layerEntryState('x', 10, holders), { round: 4, hash: 'h2', sources: ['p', 'r'] });
    holders.delete('r');
    assert.deepEqual(layerEntryState('x', 10, holders), { round: 4, hash: 'h1', sources: ['q'] }, 'a tie goes to the smallest hash');
  });
});

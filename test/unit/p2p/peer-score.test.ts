import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PENALTY, PeerScoreTable } from '../../../src/p2p/peer-score.js';
import { ManualClock } from '../../../src/util/clock.js';

describe('PeerScoreTable', () => {
  it('starts at zero, goes down per offence, and bans at the threshold for banMs', () => {
    const clock = new ManualClock(1000);
    const t = new PeerScoreTable({ clock, banThreshold: -50, banMs: 10_000, halfLifeMs: 60_000 });
    const bans: string[] = [];
    t.events.on('peer:banned', (e) => bans.push(e.peer));
    assert.equal(t.score('p'), 0);
    t.penalise('p', PENALTY.malformed, 'x');
    assert.equal(t.score('p'), -20);
    assert.equal(t.isBanned('p'), false);
    t.penalise('p', PENALTY.malformed, 'x');
    t.penalise('p', PENALTY.protocol, 'x');
    assert.equal(t.isBanned('p'), true);
    assert.deepEqual(bans, ['p']);
    clock.advance(10_001);
    assert.equal(t.isBanned('p'), false, 'the ban ends');
  });

  it('decays penalties with the half-life', () => {
    const clock = new ManualClock(0);
    const t = new PeerScoreTable({ clock, halfLifeMs: 1000 });
    t.penalise('p', 40, 'x');
    clock.advance(1000);
    assert.ok(Math.abs(t.score('p') + 20) < 1e-9);
    clock.advance(2000);
    assert.ok(Math.abs(t.score('p') + 5) < 1e-9);
  });

  it('is bounded in memory and keeps banned peers longest', () => {
    const clock = new ManualClock(0);
    const t = new PeerScoreTable({ clock, maxPeers: 3, banThreshold: -10 });
    t.penalise('banned', 50, 'x');
    for (let i = 0; i < 10; i++) t.penalise(`p${i}`, 1, 'x');
    assert.equal(t.snapshot().length, 3);
    assert.equal(t.isBanned('banned'), true);
  });
});

/**
 * A hostile hop on a route against the honest hop after it (router/driver.ts, session 27). The entry opened every hop
 * of a route under one session id, so the first hop learned the id the next hop would be opened with. Opening it
 * there first (any peer may open any id; the hop answers the rightful owner SESSION_TAKEN) made the entry's step on
 * the honest hop fail: the entry failed over to another holder of that span (the attacker's own replica here) and
 * banned the honest hop, steering the route's traffic and the honest hop's pay away at will. Now each hop session of
 * a route has an id of its own, which no other hop sees. The hops are in-memory; the honest hop refuses an id that is
 * open there, as protocols/inference.ts does.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BanList, DRIVER_DEFAULTS, runGeneration, type DriverDeps, type HolderView, type HopSession, type ModelView } from '../../src/router/index.js';
import { NeuroShardError } from '../../src/util/errors.js';
import { tally } from './tally.js';

const L = 4;
const C = 8;
const model: ModelView = { numLayers: L, hiddenSize: C, contextLength: 64, eosId: -1, encode: () => [1, 2, 3], decode: () => '' };
const req = { prompt: 'x', maxTokens: 4, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] };

describe('attack: a hop takes the next hop\'s session id', () => {
  it('the honest hop after a hostile one keeps its session: no failover, no ban', async () => {
    const runs = 5;
    let stolen = 0;
    for (let g = 0; g < runs; g++) {
      // the honest hop's open sessions (any peer may open any id there; an open id is refused to everyone else)
      const openAtHonest = new Set<string>();
      const holders: HolderView[] = [
        { peerId: 'evil', span: { start: 0, end: 2 }, alive: true, rttMs: 1 },
        { peerId: 'honest', span: { start: 2, end: L }, alive: true, rttMs: 1 },
        { peerId: 'evil-replica', span: { start: 2, end: L }, alive: true, rttMs: 20 },
      ];
      const hidden = (T: number): Float32Array => new Float32Array(T * C);
      const tokens = (chunks: number[]): Int32Array => Int32Array.from(chunks.map(() => 5));
      const open = (peer: string, id: string): HopSession => {
        let opened = false;
        return {
          step: async (input) => {
            const T = input.chunks.reduce((a, b) => a + b, 0);
            if (peer === 'evil') {
              // the attacker, as it answers its own step, opens the session id it was given on the honest hop
              openAtHonest.add(id);
              return { hidden: hidden(T) };
            }
            if (peer === 'honest' && !opened) {
              if (openAtHonest.has(id)) throw new NeuroShardError('SESSION_TAKEN', 'this session id is in use', { fault: 'caller' });
              openAtHonest.add(id);
              opened = true;
            }
            return { tokens: tokens(input.chunks) };
          },
          close: () => {
            if (peer === 'honest' && opened) openAtHonest.delete(id);
          },
        };
      };
      let n = 0;
      const bans = new BanList();
      const deps: DriverDeps = {
        model,
        holders: () => holders,
        opener: { open: (h, spec) => open(h.peerId, spec.id) },
        bans,
        now: () => performance.now(),
        random: () => 0.5,
        newSessionId: () => `s${g}-${++n}`,
        options: { ...DRIVER_DEFAULTS, explore: 0 },
      };
      const r = await runGeneration(req, deps, {}, new AbortController().signal);
      assert.equal(r.tokens.length, req.maxTokens);
      const banned = bans.banned(performance.now()).has('honest');
      if (r.failovers > 0 || banned) stolen++;
      assert.deepEqual(r.route.map((h) => h.peerId), ['evil', 'honest']);
    }
    tally('router: honest hop failed over and banned by a hop that took its session id', runs, stolen);
    assert.equal(stolen, 0, `${stolen} of ${runs} generations failed over from the honest hop and banned it`);
  });
});

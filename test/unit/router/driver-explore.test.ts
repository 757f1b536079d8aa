/**
 * The driver's exploration switch (router/driver.ts DriverOptions.explore, `--route-explore`): with the default share a
 * fresh generation may route through an unproven holder (route.ts exploreRoute); with 0 it always takes the usual
 * near-best chain, whatever the random draw, which is what tests and experiments that compare tokens across routes
 * need. The hops are in-memory.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BanList, DRIVER_DEFAULTS, runGeneration, type DriverDeps, type HolderView, type HopSession, type ModelView } from '../../../src/router/index.js';

const L = 4;
const model: ModelView = { numLayers: L, hiddenSize: 8, contextLength: 64, eosId: -1, encode: () => [1, 2, 3], decode: () => '' };
const req = { prompt: 'x', maxTokens: 2, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] };

/** A measured holder and an unproven newcomer of the whole model; every draw is 0 (below any share). */
function deps(explore: number | undefined, opened: string[]): DriverDeps {
  const holders: HolderView[] = [
    { peerId: 'measured', span: { start: 0, end: L }, alive: true, rttMs: 1 },
    { peerId: 'newcomer', span: { start: 0, end: L }, alive: true, rttMs: 1, unproven: true },
  ];
  const hop = (): HopSession => ({ step: (input) => Promise.resolve({ tokens: Int32Array.from(input.chunks.map(() => 7)) }), close: () => {} });
  let n = 0;
  return {
    model,
    holders: () => holders,
    opener: { open: (h) => (opened.push(h.peerId), hop()) },
    bans: new BanList(),
    now: () => performance.now(),
    random: () => 0,
    newSessionId: () => `s${++n}`,
    options: { ...DRIVER_DEFAULTS, ...(explore === undefined ? {} : { explore }) },
  };
}

describe('driver: route exploration switch', () => {
  it('the default share explores (a draw of 0 takes the newcomer); explore 0 keeps the usual route', async () => {
    assert.equal(DRIVER_DEFAULTS.explore, 0.05);
    const on: string[] = [];
    await runGeneration(req, deps(undefined, on), {}, new AbortController().signal);
    assert.deepEqual(on, ['newcomer']);
    for (let i = 0; i < 5; i++) {
      const off: string[] = [];
      const r = await runGeneration(req, deps(0, off), {}, new AbortController().signal);
      assert.deepEqual(off, ['measured']);
      assert.deepEqual(r.route.map((h) => h.peerId), ['measured']);
    }
  });
});

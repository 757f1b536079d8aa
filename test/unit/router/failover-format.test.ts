/**
 * Failover keeps the chain's weights format (router/driver.ts `widen` → route.ts chooseRouteAvoiding `format`): a
 * greedy answer through int8 hops is the int8 model's, through float32 hops the checkpoint's, and a mix of both is
 * neither. Before, a failover re-planned the lost hop's layers float32 first, so a hop of an all-int8 chain that died
 * was replaced by a float32 holder wherever one held its layers, and the rest of the answer came from a mixed chain.
 * In-memory hops; no network.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BanList, chooseRouteAvoiding, DRIVER_DEFAULTS, runGeneration, type DriverDeps, type HolderView, type HopSession, type ModelView } from '../../../src/router/index.js';

const L = 4;
const C = 8;
const model: ModelView = { numLayers: L, hiddenSize: C, contextLength: 64, eosId: -1, encode: () => [1, 2, 3], decode: () => '' };
const req = { prompt: 'x', maxTokens: 4, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] };

/** A hop over `span`: hidden rows of zeros, or (the last span) token 7 per chunk; `dieAfter` calls, then it fails. */
function hop(span: { start: number; end: number }, dieAfter = Infinity): HopSession {
  let calls = 0;
  return {
    step: async (input) => {
      if (++calls > dieAfter) throw new Error('connection reset');
      const T = input.chunks.reduce((a, b) => a + b, 0);
      return span.end === L ? { tokens: Int32Array.from(input.chunks.map(() => 7)) } : { hidden: new Float32Array(T * C) };
    },
    close: () => {},
  };
}

function run(holders: HolderView[], dying: string): Promise<{ opened: string[]; result: Awaited<ReturnType<typeof runGeneration>> }> {
  const opened: string[] = [];
  let n = 0;
  const d: DriverDeps = {
    model,
    holders: () => holders,
    opener: {
      open: (h) => {
        opened.push(h.peerId);
        return hop(h.span, h.peerId === dying ? 2 : Infinity);
      },
    },
    bans: new BanList(),
    now: () => performance.now(),
    random: () => 0,
    newSessionId: () => `s${++n}`,
    options: { ...DRIVER_DEFAULTS, msPerPosition: 0, openTimeoutMs: 0 },
  };
  return runGeneration(req, d, {}, new AbortController().signal).then((result) => ({ opened, result }));
}

const int8 = (peerId: string, start: number, end: number, rttMs = 1): HolderView => ({ peerId, span: { start, end }, alive: true, rttMs, weights: 'int8' });
const f32 = (peerId: string, start: number, end: number, rttMs = 1): HolderView => ({ peerId, span: { start, end }, alive: true, rttMs });

describe('failover keeps the chain\'s weights format', () => {
  it('route choice: `format` puts that format first, and falls back to the other, then to a mix', () => {
    const hs = [f32('a', 2, 4), int8('r', 2, 4, 5)];
    const none = { random: () => 0, explore: 0, banned: new Set<string>(), failed: new Set<string>() };
    assert.deepEqual(chooseRouteAvoiding(hs, { start: 2, end: 4 }, none).map((h) => h.peerId), ['a'], 'float32 first by default');
    assert.deepEqual(chooseRouteAvoiding(hs, { start: 2, end: 4 }, { ...none, format: 'int8' }).map((h) => h.peerId), ['r']);
    assert.deepEqual(chooseRouteAvoiding(hs, { start: 2, end: 4 }, { ...none, format: 'int8', failed: new Set(['r']) }).map((h) => h.peerId), ['a'], 'no int8 holder left: float32');
    assert.deepEqual(chooseRouteAvoiding([f32('a', 2, 4), int8('r', 0, 4)], { start: 2, end: 4 }, { ...none, format: 'f32' }).map((h) => h.peerId), ['a']);
  });

  it('an int8 hop that dies is replaced by an int8 holder, though a faster float32 holder has its layers', async () => {
    // no float32 chain covers 0-4 (nobody float32 holds 0-2): the route is q1 → q2, all int8. The float32 holder a
    // of 2-4 is the cheapest replacement for q2; the int8 one q3 is slower
    const holders = [int8('q1', 0, 2), int8('q2', 2, 4), int8('q3', 2, 4, 20), f32('a', 2, 4)];
    const { opened, result } = await run(holders, 'q2');
    assert.deepEqual(result.route.map((h) => [h.peerId, h.weights]), [['q1', 'int8'], ['q2', 'int8']]);
    assert.equal(result.failovers, 1);
    assert.deepEqual(result.tokens, [7, 7, 7, 7]);
    assert.deepEqual(opened, ['q1', 'q2', 'q3'], 'the replacement is q3 (int8), never a');
  });

  it('with no int8 holder of the lost layers, a float32 one still takes over (a mixed chain beats no answer)', async () => {
    const { opened, result } = await run([int8('q1', 0, 2), int8('q2', 2, 4), f32('a', 2, 4)], 'q2');
    assert.equal(result.failovers, 1);
    assert.deepEqual(result.tokens, [7, 7, 7, 7]);
    assert.deepEqual(opened, ['q1', 'q2', 'a']);
  });

  it('a float32 chain keeps float32 (unchanged): its hop is replaced by a float32 holder, not a faster int8 one', async () => {
    const { opened } = await run([f32('a', 0, 2), f32('b', 2, 4), f32('c', 2, 4, 20), int8('q', 2, 4)], 'b');
    assert.deepEqual(opened, ['a', 'b', 'c']);
  });
});

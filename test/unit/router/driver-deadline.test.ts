/**
 * The driver's step deadline (router/driver.ts `call`) is a failover trigger: a hop past it is replaced when another
 * holder can take its layers, and waited on (up to the hard bound) when nobody can. Before, a single holder that
 * answered its first decode step in more than `stepTimeoutMs` failed the generation with layers_uncovered
 * (test/integration/router/paid-generate under load). The hops here are in-memory: each answers after a delay
 * that stands for a loaded peer.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BanList, DRIVER_DEFAULTS, LayersUncoveredError, runGeneration, type DriverDeps, type HolderView, type HopSession, type ModelView } from '../../../src/router/index.js';

const L = 4;
const C = 8;

const model: ModelView = {
  numLayers: L,
  hiddenSize: C,
  contextLength: 64,
  eosId: -1,
  encode: () => [1, 2, 3],
  decode: () => '',
};

/** A hop holding every layer that samples `token` (default 7) for each chunk, `delayMs(call)` after each call. */
function slowHop(delayMs: (call: number) => number, log: string[], peer: string, token = 7): HopSession {
  let calls = 0;
  return {
    step: (input, signal) =>
      new Promise((resolve, reject) => {
        const n = ++calls;
        const t = setTimeout(() => {
          log.push(`${peer}:${n}`);
          resolve({ tokens: Int32Array.from(input.chunks.map(() => token)) });
        }, delayMs(n));
        signal.addEventListener('abort', () => {
          clearTimeout(t);
          reject(signal.reason as Error);
        }, { once: true });
      }),
    close: () => {},
  };
}

function deps(holders: HolderView[], open: (peer: string) => HopSession, stepTimeoutMs: number): DriverDeps {
  let n = 0;
  return {
    model,
    holders: () => holders,
    opener: { open: (hop) => open(hop.peerId) },
    bans: new BanList(),
    now: () => performance.now(),
    random: () => 0,
    newSessionId: () => `s${++n}`,
    options: { ...DRIVER_DEFAULTS, stepTimeoutMs, msPerPosition: 0, openTimeoutMs: 0, localStepTimeoutMs: 2000 },
  };
}

const req = { prompt: 'x', maxTokens: 3, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] };

describe('driver step deadline', () => {
  it('a lone holder slower than the deadline is waited on, not failed over to layers_uncovered', async () => {
    const log: string[] = [];
    // every step takes 4 deadlines (the first decode step under load did); nobody else holds the layers
    const d = deps([{ peerId: 'a', span: { start: 0, end: L }, alive: true, rttMs: 1 }], (p) => slowHop(() => 80, log, p), 20);
    const r = await runGeneration(req, d, {}, new AbortController().signal);
    assert.deepEqual(r.tokens, [7, 7, 7]);
    assert.equal(r.failovers, 0);
    assert.deepEqual(log, ['a:1', 'a:2', 'a:3']);
  });

  it('a slow hop is still replaced when another holder can take its layers', async () => {
    const log: string[] = [];
    const holders: HolderView[] = [
      { peerId: 'a', span: { start: 0, end: L }, alive: true, rttMs: 1 },
      { peerId: 'b', span: { start: 0, end: L }, alive: true, rttMs: 50 },
    ];
    // a answers its prefill, then hangs; b answers at once
    const d = deps(holders, (p) => slowHop((n) => (p === 'a' && n > 1 ? 60_000 : 0), log, p), 20);
    const r = await runGeneration(req, d, {}, new AbortController().signal);
    assert.deepEqual(r.tokens, [7, 7, 7]);
    assert.equal(r.failovers, 1);
    assert.equal(log[0], 'a:1');
    assert.ok(log.slice(1).every((l) => l.startsWith('b:')), log.join(' '));
  });

  it('a slow float32 hop is waited on, not replaced by an int8 holder: the answer stays the float32 one', async () => {
    // test/integration/pool/int8-net: the int8 node as entry, its float32 hop past 200 ms under load, the other
    // float32 holder too after it took over; the second failover went to the entry's own int8 worker and the rest
    // of the greedy answer came from the int8 model (tokens 9-10 swapped), while the answer named the float32 route
    const log: string[] = [];
    const holders: HolderView[] = [
      { peerId: 'a', span: { start: 0, end: L }, alive: true, rttMs: 1 },
      { peerId: 'b', span: { start: 0, end: L }, alive: true, rttMs: 2 },
      { peerId: 'q', span: { start: 0, end: L }, alive: true, rttMs: 0, weights: 'int8' },
    ];
    // a and b: the first call on each (prefill, replay) at once, every decode step after it 4 deadlines late; the
    // int8 holder q answers at once with another token (its model's greedy choice differs)
    const d = deps(holders, (p) => (p === 'q' ? slowHop(() => 0, log, p, 9) : slowHop((n) => (n > 1 ? 80 : 0), log, p)), 20);
    const r = await runGeneration({ ...req, maxTokens: 4 }, d, {}, new AbortController().signal);
    assert.deepEqual(r.tokens, [7, 7, 7, 7], log.join(' '));
    assert.ok(!log.some((l) => l.startsWith('q:')), `the int8 holder was never asked: ${log.join(' ')}`);
    assert.equal(r.failovers, 1, 'a was replaced by b (same format); b, with no float32 holder left, was waited on');
  });

  it('a lone float32 holder past the deadline is waited on although an int8 holder holds its layers', async () => {
    const log: string[] = [];
    const holders: HolderView[] = [
      { peerId: 'a', span: { start: 0, end: L }, alive: true, rttMs: 1 },
      { peerId: 'q', span: { start: 0, end: L }, alive: true, rttMs: 0, weights: 'int8' },
    ];
    const d = deps(holders, (p) => (p === 'q' ? slowHop(() => 0, log, p, 9) : slowHop(() => 80, log, p)), 20);
    const r = await runGeneration(req, d, {}, new AbortController().signal);
    assert.deepEqual(r.tokens, [7, 7, 7]);
    assert.equal(r.failovers, 0);
    assert.deepEqual(log, ['a:1', 'a:2', 'a:3']);
  });

  it('the wait on a lone holder is bounded (localStepTimeoutMs): then the generation fails as before', async () => {
    const d = deps([{ peerId: 'a', span: { start: 0, end: L }, alive: true, rttMs: 1 }], (p) => slowHop(() => 60_000, [], p), 20);
    d.options = { ...d.options, localStepTimeoutMs: 150 };
    const t0 = performance.now();
    await assert.rejects(runGeneration(req, d, {}, new AbortController().signal), (e: unknown) => e instanceof LayersUncoveredError);
    assert.ok(performance.now() - t0 >= 150, 'not before the hard bound');
  });
});

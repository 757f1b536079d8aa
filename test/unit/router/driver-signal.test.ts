/**
 * The signal the driver hands a hop's session (router/driver.ts `call`): one per route entry for its whole life, not
 * a fresh AbortController per call (session 22: the controller, its signal, the race around it and the session's
 * listener moved onto each new signal were ~30 % of the driver's CPU per hop step). What must not change: a
 * deadline and the generation's abort still abort the step in flight and end that session, a replacement gets a
 * signal of its own, and no listener is left on the caller's signal.
 */
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, it } from 'node:test';
import { AbortedError, TimeoutError } from '../../../src/util/errors.js';
import { BanList, DRIVER_DEFAULTS, runGeneration, type DriverDeps, type HolderView, type HopSession, type ModelView } from '../../../src/router/index.js';

const L = 4;
const C = 8;
const model: ModelView = { numLayers: L, hiddenSize: C, contextLength: 64, eosId: -1, encode: () => [1, 2, 3], decode: () => '' };
const req = { prompt: 'x', maxTokens: 5, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] };

interface Seen {
  peer: string;
  signals: AbortSignal[];
}

/** A hop of `span` that answers at once (hidden states, or token 7 from the last layers) unless `hang(call)`. */
function hop(span: { start: number; end: number }, seen: Seen, hang: (call: number) => boolean = () => false): HopSession {
  let calls = 0;
  return {
    step: (input, signal) => {
      seen.signals.push(signal);
      const n = ++calls;
      if (hang(n)) {
        return new Promise((_, reject) => {
          const onAbort = (): void => reject(signal.reason as Error);
          if (signal.aborted) onAbort();
          else signal.addEventListener('abort', onAbort, { once: true });
        });
      }
      const T = input.chunks.reduce((a, b) => a + b, 0);
      return Promise.resolve(span.end === L ? { tokens: Int32Array.from(input.chunks.map(() => 7)) } : { hidden: new Float32Array(T * C).fill(0.5) });
    },
    close: () => {},
  };
}

function deps(holders: HolderView[], hang: (peer: string, call: number) => boolean = () => false, stepTimeoutMs = 10_000): { d: DriverDeps; seen: Seen[] } {
  const seen: Seen[] = [];
  let n = 0;
  const d: DriverDeps = {
    model,
    holders: () => holders,
    opener: {
      open: (h) => {
        const s: Seen = { peer: h.peerId, signals: [] };
        seen.push(s);
        return hop(h.span, s, (call) => hang(h.peerId, call));
      },
    },
    bans: new BanList(),
    now: () => performance.now(),
    random: () => 0,
    newSessionId: () => `s${++n}`,
    options: { ...DRIVER_DEFAULTS, stepTimeoutMs, msPerPosition: 0, openTimeoutMs: 0, localStepTimeoutMs: 2000 },
  };
  return { d, seen };
}

const twoHops: HolderView[] = [
  { peerId: 'a', span: { start: 0, end: 2 }, alive: true, rttMs: 1 },
  { peerId: 'b', span: { start: 2, end: L }, alive: true, rttMs: 1 },
];

describe('driver: the signal a hop session gets', () => {
  it('is one signal per hop for the whole generation, distinct between hops, and never aborted by a normal answer', async () => {
    const { d, seen } = deps(twoHops);
    const signal = new AbortController().signal;
    const r = await runGeneration(req, d, {}, signal);
    assert.deepEqual(r.tokens, [7, 7, 7, 7, 7]);
    assert.equal(seen.length, 2);
    for (const s of seen) {
      assert.equal(s.signals.length, 5, `${s.peer}: prefill and 4 decode steps`);
      assert.equal(new Set(s.signals).size, 1, `${s.peer}: the same signal on every call`);
      assert.equal(s.signals[0]!.aborted, false);
    }
    assert.notEqual(seen[0]!.signals[0], seen[1]!.signals[0]);
    assert.equal(getEventListeners(signal, 'abort').length, 0, 'no listener left on the caller\'s signal');
  });

  it('a deadline aborts the step in flight with a TimeoutError; the replacement gets a fresh signal', async () => {
    const holders: HolderView[] = [...twoHops, { peerId: 'c', span: { start: 2, end: L }, alive: true, rttMs: 5 }];
    // b answers its prefill and first decode step, then hangs; c holds the same layers
    const { d, seen } = deps(holders, (peer, call) => peer === 'b' && call === 3, 30);
    const r = await runGeneration(req, d, {}, new AbortController().signal);
    assert.deepEqual(r.tokens, [7, 7, 7, 7, 7]);
    assert.equal(r.failovers, 1);
    const b = seen.find((s) => s.peer === 'b')!;
    const c = seen.find((s) => s.peer === 'c')!;
    assert.equal(b.signals.length, 3);
    assert.equal(b.signals[2]!.aborted, true);
    assert.ok(b.signals[2]!.reason instanceof TimeoutError, String(b.signals[2]!.reason));
    assert.ok(c.signals.length > 0 && c.signals.every((s) => !s.aborted && s === c.signals[0]), 'c: one signal of its own, not aborted');
  });

  it('the generation\'s abort fails the step in flight at once with AbortedError, without a failover', async () => {
    const ac = new AbortController();
    // a hangs on its third call (the second decode step); the generation is aborted meanwhile
    const { d, seen } = deps(twoHops, (peer, call) => peer === 'a' && call === 3);
    const t0 = performance.now();
    const p = runGeneration(req, d, { onToken: () => {} }, ac.signal);
    const a = () => seen.find((s) => s.peer === 'a');
    for (let i = 0; i < 1000 && (a()?.signals.length ?? 0) < 3; i++) await new Promise((r) => setImmediate(r));
    assert.equal(a()!.signals.length, 3, 'a reached its hanging call');
    ac.abort();
    await assert.rejects(p, (e: unknown) => e instanceof AbortedError);
    assert.ok(performance.now() - t0 < 5000, 'not held to the step deadline');
    assert.equal(a()!.signals[2]!.aborted, true, 'the session in flight was told');
    assert.ok(a()!.signals[2]!.reason instanceof AbortedError);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
  });

  it('a generation whose signal is already aborted asks no hop', async () => {
    const ac = new AbortController();
    ac.abort();
    const { d, seen } = deps(twoHops);
    await assert.rejects(runGeneration(req, d, {}, ac.signal), (e: unknown) => e instanceof AbortedError);
    assert.ok(seen.every((s) => s.signals.length === 0));
  });
});

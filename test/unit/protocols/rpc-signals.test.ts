/**
 * The RPC layer leaves nothing on signals that outlive its calls (issue 12 §2, the chaos run's memory growth of
 * serving nodes). Node's AbortSignal.any (v20 at least) adds an entry to each source signal's set of dependants that
 * is never removed: composing every served call and every reply frame with the RpcNode's lifetime signal grew that
 * set by about 18 entries per 16-token hop session, for as long as the node ran. linkSignals (util/abort.ts) detaches
 * itself instead; these tests fail when a long-lived signal keeps anything per call (a listener or a dependant).
 */
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, it } from 'node:test';
import { MemoryHub } from '../../../src/p2p/memory.js';
import { echoHandler } from '../../../src/protocols/handlers/echo.js';
import * as methods from '../../../src/protocols/methods.js';
import { RpcNode } from '../../../src/protocols/rpc/service.js';
import { deadlineSignal, linkSignals } from '../../../src/util/abort.js';

/** What a signal holds per composed or listening signal: abort listeners plus Node's dependant set of AbortSignal.any. */
function attached(signal: AbortSignal): number {
  const k = Object.getOwnPropertySymbols(signal).find((s) => s.description === 'kDependantSignals');
  const dependants = k === undefined ? 0 : (((signal as unknown as Record<symbol, { size?: number } | undefined>)[k])?.size ?? 0);
  return getEventListeners(signal, 'abort').length + dependants;
}

describe('linkSignals', () => {
  it('fires with the reason of whichever source fires, and detaches from the others', () => {
    const a = new AbortController();
    const b = new AbortController();
    const l = linkSignals(a.signal, undefined, b.signal);
    assert.equal(l.signal.aborted, false);
    assert.equal(attached(a.signal), 1);
    b.abort(new Error('b went'));
    assert.equal(l.signal.aborted, true);
    assert.equal((l.signal.reason as Error).message, 'b went');
    assert.equal(attached(a.signal), 0);
    assert.equal(attached(b.signal), 0);
  });

  it('is aborted at once when a source already was', () => {
    const a = new AbortController();
    a.abort(new Error('early'));
    const l = linkSignals(new AbortController().signal, a.signal);
    assert.equal(l.signal.aborted, true);
    assert.equal((l.signal.reason as Error).message, 'early');
  });

  it('leaves nothing on a long-lived source after dispose, however many links were made', () => {
    const life = new AbortController();
    for (let i = 0; i < 1000; i++) {
      const l = linkSignals(new AbortController().signal, life.signal);
      l.dispose();
      l.dispose(); // idempotent
    }
    assert.equal(attached(life.signal), 0);
  });
});

describe('rpc: nothing accumulates on the node-lifetime signal', () => {
  it('after 200 unary calls and 20 bidi streams, neither side holds anything per call', async () => {
    const hub = new MemoryHub();
    const a = hub.createNode('peerA');
    const b = hub.createNode('peerB');
    await a.start();
    await b.start();
    const ra = new RpcNode({ network: a, networkId: 'testnet01' });
    const rb = new RpcNode({ network: b, networkId: 'testnet01' });
    await rb.handle(methods.echo, echoHandler);
    await rb.handle(methods.inferenceStream, async function* (reqs) {
      for await (const r of reqs) yield { requestId: r.requestId, processedTokens: r.tokens.length, tokens: [1], computeUs: 0 };
    });
    // a caller's own long-lived signal (a service's stop signal) passed to every call
    const callerLife = new AbortController();
    const closing = (n: RpcNode): AbortSignal => (n as unknown as { closing: AbortController }).closing.signal;
    for (let i = 0; i < 200; i++) {
      const r = await ra.call('peerB', methods.echo, { payload: Uint8Array.of(i & 0xff), replyWithTensor: false }, { signal: callerLife.signal });
      assert.deepEqual([...r.payload], [i & 0xff]);
    }
    for (let s = 0; s < 20; s++) {
      const reqs = Array.from({ length: 16 }, (_, k) => ({ sessionId: `s${s}`, requestId: String(k), tokens: [k], positionOffset: 0, endSession: false, chunks: [1], maxLength: 16, temperature: 0, topK: 0, topP: 0, seed: 0 }));
      let n = 0;
      for await (const res of ra.bidi('peerB', methods.inferenceStream, reqs, { signal: callerLife.signal })) {
        assert.deepEqual(res.tokens, [1]);
        n++;
      }
      assert.equal(n, 16);
    }
    // the server side ends each call after answering: wait for the last one's finally (bounded, no fixed sleep)
    for (let i = 0; i < 1000 && attached(closing(rb)) > 0; i++) await new Promise((r) => setImmediate(r));
    assert.equal(attached(closing(rb)), 0, 'the serving node holds an entry per served call or frame');
    assert.equal(attached(closing(ra)), 0);
    assert.equal(attached(callerLife.signal), 0, 'the calling node holds an entry per call on the caller signal');
    await ra.close();
    await rb.close();
  });
});

describe('deadlineSignal', () => {
  it('fires at its deadline and then holds nothing on the long-lived signal it was linked to', async () => {
    const life = new AbortController();
    const s = deadlineSignal(20, life.signal);
    assert.equal(attached(life.signal), 1);
    // AbortSignal.timeout's timer does not hold the event loop open: a ref'd one (the bound) does meanwhile
    const bound = setTimeout(() => {}, 60_000);
    await new Promise<void>((resolve) => s.addEventListener('abort', () => resolve(), { once: true }));
    clearTimeout(bound);
    assert.equal(s.reason instanceof DOMException && s.reason.name === 'TimeoutError', true);
    assert.equal(attached(life.signal), 0);
  });
});

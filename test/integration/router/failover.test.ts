/**
 * The generation driver's failover on real compute workers (one per "peer"; the wire is covered by hops.test.ts and
 * the e2e test): a hop that hangs or fails mid-answer is replaced by a replica, or by two holders whose spans tile
 * its layers, or, when nobody holds exactly its layers, by a holder of more layers that replaces it and its
 * neighbours together; its inputs are replayed there, and the tokens are those of the uninterrupted answer, greedy and
 * seeded. Every session is closed afterwards.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ComputeClient } from '../../../src/compute/index.js';
import { bundledGenesis } from '../../../src/node/genesis.js';
import { genesisModelView, LocalHopSession } from '../../../src/node/serving.js';
import { BanList, DRIVER_DEFAULTS, runGeneration, type HolderView, type HopSession } from '../../../src/router/index.js';
import { NeuroShardError } from '../../../src/util/errors.js';

const genesis = bundledGenesis();
const cfg = genesis.config;
const model = genesisModelView(genesis);
const SPANS: Record<string, [number, number]> = { a1: [0, 2], a2: [0, 2], b1: [2, 4], b2: [2, 4], c1: [2, 3], c2: [3, 4], w: [0, 4] };
/** Peers the route choice should not take first (a far round trip): they are there for failover only. */
const FAR = new Set(['w']);

describe('failover by replay', () => {
  const workers = new Map<string, ComputeClient>();
  let full: ComputeClient;

  before(async () => {
    full = await ComputeClient.start({ threads: 1 });
    await full.run({ type: 'initModel', config: cfg, seed: 0 });
    for (const [peer, [start, end]] of Object.entries(SPANS)) {
      const c = await ComputeClient.start({ threads: 1 });
      await c.run({ type: 'initModel', config: cfg, seed: 0, span: { start, end } });
      workers.set(peer, c);
    }
  });
  after(async () => {
    await full.close();
    for (const c of workers.values()) await c.close();
  });

  const reference = async (prompt: string, o: { temperature: number; topK: number; topP: number; seed: number }, maxTokens: number): Promise<number[]> =>
    Array.from((await full.run({ type: 'generate', prompt: Int32Array.from(model.encode(prompt)), maxTokens, ...o, stopIds: [cfg.eos_token_id] })).tokens);

  /** Runs a generation where `victim` misbehaves (`mode`) from its `after`-th step on. */
  const run = async (holders: string[], victim: string, mode: 'hang' | 'throw', afterSteps: number, o: { temperature: number; topK: number; topP: number; seed: number }) => {
    const view: HolderView[] = holders.map((p) => ({ peerId: p, span: { start: SPANS[p]![0], end: SPANS[p]![1] }, alive: true, ...(FAR.has(p) ? { rttMs: 60_000 } : {}) }));
    const r = await runGeneration(
      { prompt: 'She said that the', maxTokens: 30, stop: [], ...o },
      {
        model,
        holders: () => view,
        opener: {
          open: (hop, spec): HopSession => {
            const inner = new LocalHopSession(workers.get(hop.peerId)!, spec);
            let steps = 0;
            return {
              step: async (input, signal) => {
                if (hop.peerId === victim && ++steps > afterSteps) {
                  if (mode === 'throw') throw new NeuroShardError('RPC_STREAM_RESET', 'peer died', { fault: 'peer' });
                  return new Promise<never>(() => undefined);
                }
                return inner.step(input, signal);
              },
              close: () => inner.close(),
            };
          },
        },
        bans: new BanList(),
        now: () => performance.now(),
        random: () => 0, // the first candidate: deterministic which peer is the victim's replica
        newSessionId: () => `s${Math.random().toString(16).slice(2)}`,
        options: { ...DRIVER_DEFAULTS, stepTimeoutMs: 3000, explore: 0 }, // the usual route only
      },
      {},
      new AbortController().signal,
    );
    return r;
  };

  const greedy = { temperature: 0, topK: 0, topP: 1, seed: 0 };
  const sampled = { temperature: 0.8, topK: 40, topP: 0.95, seed: 11 };

  for (const [name, victim] of [['driver', 'a1'], ['validator', 'b1']] as const) {
    for (const mode of ['hang', 'throw'] as const) {
      it(`a ${name} hop that ${mode === 'hang' ? 'stops answering' : 'fails'} after 10 steps: same tokens, greedy and seeded`, async () => {
        for (const o of [greedy, sampled]) {
          const want = await reference('She said that the', o, 30);
          const r = await run(['a1', 'a2', 'b1', 'b2'], victim, mode, 10, o);
          assert.deepEqual(r.tokens, want);
          assert.ok(r.failovers >= 1);
          assert.equal(r.stallsMs.length, r.failovers);
          assert.deepEqual(r.route.map((h) => h.peerId), ['a1', 'b1']);
        }
      });
    }
  }

  it('a validator is replaced by two holders whose spans tile its layers', async () => {
    const want = await reference('She said that the', greedy, 30);
    const r = await run(['a1', 'b1', 'c1', 'c2'], 'b1', 'throw', 5, greedy);
    assert.deepEqual(r.tokens, want);
    assert.equal(r.failovers, 1);
  });

  for (const [name, victim] of [['validator', 'b1'], ['driver', 'a1']] as const) {
    it(`a ${name} hop whose layers nobody else holds exactly: a holder of the whole model replaces it and its neighbour`, async () => {
      for (const o of [greedy, sampled]) {
        const want = await reference('She said that the', o, 30);
        const r = await run(['a1', 'b1', 'w'], victim, 'throw', 6, o);
        assert.deepEqual(r.tokens, want);
        assert.equal(r.failovers, 1);
        assert.deepEqual(r.route.map((h) => h.peerId), ['a1', 'b1'], 'the first route did not take the far holder');
      }
    });
  }

  it('a hop whose layers nobody covers any more fails with the missing layers named', async () => {
    await assert.rejects(run(['a1', 'b1'], 'b1', 'throw', 3, greedy), { code: 'LAYERS_UNCOVERED' });
  });

  it('leaves no session open on any worker', async () => {
    for (const [peer, c] of workers) {
      await c.run({ type: 'ping' });
      // a hung step never reached the worker; closed sessions are gone
      assert.deepEqual((await c.run({ type: 'sessionList' })).ids, [], peer);
    }
  });
});

/**
 * OuterSync (training/sync.ts) over an in-memory transport: several replicas of a tiny model whose "inner steps"
 * move every parameter by a replica-specific amount. Checks the round logic without a network: equal state hashes
 * after every round, the outer step actually applied, a lone node keeping θ_local, a late replica repaired by the
 * majority, a joiner entering at a boundary with verified weights, and a forged download refused.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ParamLayout } from '../../../src/model/layout.js';
import { layerStateHash, majorityHash, OuterSync, TrainingRoundGoneError, type LayerState, type PeerTrainingStatus, type SendVerdict } from '../../../src/training/sync.js';
import { decodeDelta } from '../../../src/training/compression/index.js';
import { tinyConfig } from '../model/helpers.js';
import { createLogger } from '../../../src/util/logger.js';
import { PeerMisbehaviourError } from '../../../src/util/errors.js';

const layout = new ParamLayout(tinyConfig());

interface Rep {
  id: string;
  params: Float32Array;
  sync: OuterSync;
  /** Extra latency of this replica's sends (ms of the fake clock are real ms here). */
  slow: number;
  forge?: boolean;
}

function group(ids: string[], o: { syncTimeoutMs?: number; quorum?: number; compress?: 'none' | 'int8' } = {}): Map<string, Rep> {
  const reps = new Map<string, Rep>();
  const up = new Set(ids);
  for (const [k, id] of ids.entries()) {
    const params = new Float32Array(layout.size).map((_, i) => Math.sin(i)); // the same start everywhere
    const rep: Rep = { id, params, slow: 0, sync: undefined as unknown as OuterSync };
    rep.sync = new OuterSync({
      self: id,
      layout,
      inner: { getParams: () => Promise.resolve(rep.params.slice()), setParams: (p) => Promise.resolve(void rep.params.set(p)) },
      round: { innerSteps: 2, quorum: o.quorum ?? 2 / 3, syncTimeoutMs: o.syncTimeoutMs ?? 2000 },
      aggregator: 'mean',
      compress: o.compress ?? 'none',
      outerLr: 0.7,
      outerMomentum: 0.9,
      holders: () => [...up].filter((h) => reps.has(h)),
      transport: {
        send: async (peer, c): Promise<SendVerdict> => {
          if (rep.slow > 0) await new Promise((r) => setTimeout(r, rep.slow));
          const to = reps.get(peer);
          if (to === undefined) throw new Error('unreachable');
          if (to.sync.round < 0) return 'too_early';
          return to.sync.receive(id, c.round, c.layer, decodeDelta(c.compression, c.n, c.payload), c.payload.byteLength);
        },
        status: (peer): Promise<PeerTrainingStatus> => {
          const to = reps.get(peer);
          return to === undefined ? Promise.reject(new Error('unreachable')) : Promise.resolve(to.sync.status());
        },
        fetchLayer: (peer, round, layer): Promise<LayerState> => {
          const s = reps.get(peer)?.sync.layerState(round, layer);
          if (s === undefined) return Promise.reject(new Error('no such state'));
          if (reps.get(peer)!.forge === true) return Promise.resolve({ theta: s.theta.map((x) => x + 1), buf: s.buf });
          return Promise.resolve({ theta: s.theta.slice(), buf: s.buf === null ? null : s.buf.slice() });
        },
      },
      clock: { now: () => Date.now() },
      pollMs: 10,
      ...(process.env.SYNC_UNIT_LOG === undefined ? {} : { log: createLogger({ level: 'debug', module: id }) }),
    });
    void k;
    reps.set(id, rep);
  }
  return reps;
}

/** Two "inner steps": θ −= 0.01·(k+1) everywhere (replica k), then the round closes. */
async function round(reps: Rep[], signal = new AbortController().signal): Promise<void> {
  await Promise.all(
    reps.map(async (r, k) => {
      await r.sync.enter(signal);
      for (let s = 0; s < 2; s++) {
        for (let i = 0; i < r.params.length; i++) r.params[i] = r.params[i]! - 0.01 * (k + 1);
        r.sync.innerStep();
      }
      await r.sync.closeRound(signal);
    }),
  );
}

describe('OuterSync over an in-memory transport', () => {
  it('majorityHash: most votes win, ties go to the smallest hash', () => {
    assert.equal(majorityHash(['b', 'a', 'b']), 'b');
    assert.equal(majorityHash(['b', 'a']), 'a');
    assert.equal(majorityHash([]), undefined);
    const t = new Float32Array([1, 2]);
    assert.notEqual(layerStateHash(t, null), layerStateHash(t, new Float32Array(2)), 'the momentum is part of the state');
  });

  it('three replicas: equal hashes every round, the mean Δ applied with Nesterov from θ_start', async () => {
    const reps = [...group(['a', 'b', 'c']).values()];
    const start = reps[0]!.params.slice();
    await round(reps);
    for (const r of reps) assert.deepEqual(r.sync.stats().hashes, reps[0]!.sync.stats().hashes);
    for (const r of reps) assert.ok(Buffer.from(r.params.buffer).equals(Buffer.from(reps[0]!.params.buffer)));
    // mean Δ = 2·0.01·(1+2+3)/3 = 0.04; first round: θ = θ_start − η·(Δ + μ·Δ) = θ_start − 0.7·1.9·0.04
    assert.ok(Math.abs(start[5]! - reps[0]!.params[5]! - 0.7 * 1.9 * 0.04) < 1e-5);
    const rep = reps[0]!.sync.stats().lastRound!;
    assert.equal(rep.accepted, 3 * reps[0]!.sync.layers.length);
    await round(reps);
    await round(reps);
    for (const r of reps) assert.deepEqual(r.sync.status().closed.at(-1), reps[0]!.sync.status().closed.at(-1));
    assert.equal(reps[0]!.sync.round, 3);
  });

  it('a lone node keeps θ_local at the boundary (a one-node chain needs no outer step)', async () => {
    const [a] = [...group(['a']).values()];
    const start = a!.params.slice();
    await round([a!]);
    assert.ok(Math.abs(start[0]! - a!.params[0]! - 0.02) < 1e-6);
    assert.deepEqual(Object.values(a!.sync.stats().lastRound!.outcome), Array(a!.sync.layers.length).fill('alone'));
  });

  it('a round a joiner pinned is kept past the window (closedWeights, the state RPC) until the pin expires; the status lists the window only', async () => {
    const [a] = [...group(['a']).values()];
    const rounds = async (n: number): Promise<void> => {
      for (let k = 0; k < n; k++) await round([a!]);
    };
    await rounds(3); // closed: −1 (the entry state), 0, 1, 2
    assert.deepEqual(a!.sync.closedWeights().map((c) => c.round), [-1, 0, 1, 2]);
    assert.equal(a!.sync.pin('joiner', 1), true);
    assert.equal(a!.sync.pin('joiner', 7), false, 'a round not closed cannot be pinned');
    await rounds(4); // closed up to 6: the window is 3..6
    assert.deepEqual(a!.sync.closedWeights().map((c) => c.round), [1, 3, 4, 5, 6], 'round 1 pinned, kept past the window');
    assert.deepEqual(a!.sync.status().closed.map((c) => c.round), [3, 4, 5, 6]);
    // the kept state as GET /api/training reports it: every kept round, θ of the held layers and their momentum
    const kept = a!.sync.stats().kept;
    assert.deepEqual(kept.rounds, [1, 3, 4, 5, 6]);
    assert.ok(kept.bytes >= 5 * a!.params.byteLength && kept.bytes <= 5 * 2 * a!.params.byteLength, `kept bytes ${kept.bytes}`);
    assert.ok(a!.sync.layerState(1, a!.sync.layers[0]!.id) !== undefined, 'its state is still served');
    assert.equal(a!.sync.pin('other', 1), false, 'out of the window: nobody can pin it anew');
    assert.equal(a!.sync.pin('joiner', 1), true, 'the joiner renews its own pin');
  });

  it('the state RPC answers a round that left the window as typed "round gone" (no misbehaviour), and pins nothing', async () => {
    const [a] = [...group(['a']).values()];
    for (let k = 0; k < 7; k++) await round([a!]); // closed up to 6: the window is 3..6
    const layer = a!.sync.layers[0]!.id;
    assert.deepEqual(a!.sync.closedWeights().map((c) => c.round), [3, 4, 5, 6]);
    for (const gone of [-1, 0, 2]) {
      assert.throws(
        () => a!.sync.serveLayer('late', gone, layer),
        (e: unknown) => e instanceof TrainingRoundGoneError && e.code === 'TRAINING_ROUND_GONE' && e.fault === 'caller' && !(e instanceof PeerMisbehaviourError) && (e.meta?.round as number) === gone,
        `round ${gone}`,
      );
    }
    assert.equal(a!.sync.pin('late', 2), false, 'still nothing to pin');
    assert.ok(a!.sync.serveLayer('late', 4, layer) !== undefined, 'a kept round is served');
    // not a round passed here, or not a layer held here: no state (the handler's own answer, node/diloco.ts)
    assert.equal(a!.sync.serveLayer('late', 9, layer), undefined);
    assert.equal(a!.sync.serveLayer('late', 2, 'layers.999'), undefined);
  });

  it('a replica whose contributions miss the deadline is repaired to the majority state', async () => {
    const m = group(['a', 'b', 'c'], { syncTimeoutMs: 300 });
    const reps = [...m.values()];
    m.get('c')!.slow = 1500;
    await round(reps);
    const c = m.get('c')!;
    assert.ok(c.sync.stats().lastRound!.repaired.length > 0, 'c took the majority state');
    for (const r of reps) assert.deepEqual(r.sync.status().closed.at(-1), reps[0]!.sync.status().closed.at(-1));
    assert.ok(Buffer.from(c.params.buffer).equals(Buffer.from(m.get('a')!.params.buffer)));
  });

  it('a joiner enters at a boundary that counts it, with weights verified against the holders\' hash; a forged copy is refused', async () => {
    const m = group(['a', 'b', 'j']);
    const j = m.get('j')!;
    m.delete('j'); // not there yet
    const ab = [...m.values()];
    await round(ab);
    j.params.fill(123); // stale weights
    m.set('j', j);
    m.get('a')!.forge = true; // a serves wrong bytes: the joiner must refuse them and take b's
    const ctl = new AbortController();
    const entering = j.sync.enter(ctl.signal);
    await round(ab); // a and b's round 1 started before j was there; j waits for round 2
    // j enters round 2 before a and b run it. Run together, a and b could close round 2 (which does not wait for a
    // joiner) before j's poll saw them in it, and j then rightly entered round 3, which nobody else ran here (seen
    // once in a full suite run at high load)
    await entering;
    assert.equal(j.sync.round, 2);
    await round([...ab, j]);
    assert.ok(j.sync.round >= 3);
    for (const r of [...m.values()]) assert.deepEqual(r.sync.status().closed.at(-1), m.get('b')!.sync.status().closed.at(-1));
  });

  it('a joiner does not stall the members: the round it enters does not wait for it, the hash vote gives it their state', async () => {
    const SYNC = 30_000;
    const m = group(['a', 'b', 'j'], { syncTimeoutMs: SYNC });
    const j = m.get('j')!;
    m.delete('j');
    const ab = [...m.values()];
    await round(ab); // round 0 without j
    m.set('j', j); // j holds the layers now (the pool's view) and starts entering
    const ctl = new AbortController();
    const entering = j.sync.enter(ctl.signal);
    await round(ab); // round 1: j was no holder at its start; at its close a and b see j entering
    await entering; // j is counted in round 2 and enters it with the state after round 1
    assert.equal(j.sync.round, 2);
    await round(ab); // round 2: a and b close without waiting for j's inner steps
    for (const r of ab) {
      const last = r.sync.stats().lastRound!;
      assert.equal(last.round, 2);
      assert.deepEqual(last.waived, ['j'], 'j was a member not waited for');
      assert.deepEqual(last.members, ['a', 'b', 'j']);
      assert.ok(Object.values(last.outcome).every((o) => o === 'closed'), 'closed with the quorum of the others');
      assert.ok(last.syncMs < SYNC / 2, `closed without waiting for the deadline (${last.syncMs} ms)`);
    }
    await round([j]); // j's round 2, late: it only listened (its Δ is no one's), and aggregates the members' Δ as they did
    const jl = j.sync.stats().lastRound!;
    assert.deepEqual(jl.repaired, [], 'j reached the members\' state by itself');
    assert.deepEqual(jl.waived, ['j']);
    assert.equal(jl.accepted, 2 * Object.keys(jl.outcome).length, 'the two members\' contributions per layer');
    assert.deepEqual(j.sync.status().closed.at(-1), m.get('a')!.sync.status().closed.at(-1));
    await round([...ab, j]); // round 3: a full member, waited for
    for (const r of [...ab, j]) {
      const last = r.sync.stats().lastRound!;
      assert.equal(last.round, 3);
      assert.deepEqual(last.waived, []);
      assert.equal(last.accepted, 3 * Object.keys(last.outcome).length, 'three contributions per layer');
      assert.deepEqual(r.sync.status().closed.at(-1), m.get('a')!.sync.status().closed.at(-1));
    }
  });
});

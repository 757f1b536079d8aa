/**
 * A pool move moves a node's outer-sync membership (issue 9): training/membership.ts, rounds.ts `release`, and
 * OuterSync over an in-memory transport where one holder of span [0,1) is moved to [1,3) while rounds run. The old
 * layers' holders keep closing rounds without it (no wait for the deadline, not a member after), although their view
 * still lists it; it enters the new layers' rounds as a joiner (verified state of a closed round) and leaves each
 * round after with the same state hashes as the new layers' holders.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ParamLayout, type Span } from '../../../src/model/layout.js';
import { decodeDelta } from '../../../src/training/compression/index.js';
import { entryPeers, isModelLayer, layerMembers, notTrainedFromStatus } from '../../../src/training/membership.js';
import { receive, release, startRound, innerStepDone, tryClose, type RoundConfig } from '../../../src/training/rounds.js';
import { OuterSync, type LayerState, type PeerTrainingStatus, type SendVerdict } from '../../../src/training/sync.js';
import { createLogger } from '../../../src/util/logger.js';
import { tinyConfig } from '../model/helpers.js';

const cfg = tinyConfig(); // 3 layers
const L = cfg.num_hidden_layers;
const S1: Span = { start: 0, end: 1 };
const S2: Span = { start: 1, end: L };

describe('outer-sync membership when the pool moves a span (pure parts)', () => {
  it('isModelLayer: the model\'s layer ids only', () => {
    for (const id of ['embed', 'head', 'layers.0', 'layers.2']) assert.equal(isModelLayer(id, 3), true, id);
    for (const id of ['layers.3', 'layers.01', 'layers.-1', 'layers.', 'embeds', 'x']) assert.equal(isModelLayer(id, 3), false, id);
  });

  it('a status names the layers a peer trains: ours it does not train are left out of its membership', () => {
    assert.equal(notTrainedFromStatus(['embed', 'layers.0'], undefined), undefined, 'an older node says nothing');
    assert.deepEqual([...notTrainedFromStatus(['embed', 'layers.0'], ['layers.0', 'layers.1'])!], ['embed']);
    const not = new Map([['m', new Set(['embed'])]]);
    assert.deepEqual(layerMembers('a', 'embed', ['a', 'b', 'm', 'n'], new Set(['n']), not), ['a', 'b']);
    assert.deepEqual(layerMembers('a', 'layers.0', ['b', 'm'], new Set(), not), ['a', 'b', 'm'], 'm still trains layers.0');
    const st = new Map<string, { layers?: string[] }>([
      ['old', {}],
      ['moved', { layers: ['layers.1', 'head'] }],
      ['same', { layers: ['layers.0'] }],
    ]);
    assert.deepEqual([...entryPeers(['embed', 'layers.0'], st).keys()], ['old', 'same']);
  });

  it('release: a member that left is not waited for unless its Δ is in', () => {
    const c: RoundConfig = { innerSteps: 1, quorum: 2 / 3, syncTimeoutMs: 1000 };
    let s = startRound(c, 4, ['a', 'b', 'm'], '');
    s = innerStepDone(c, s, 0);
    s = receive(s, 4, 'a', 1).state;
    s = receive(s, 4, 'b', 2).state;
    assert.equal(tryClose(c, s, 10).outcome.kind, 'open', 'waiting for m');
    const r = release(s, 'm');
    assert.deepEqual(r.waived, ['m']);
    const out = tryClose(c, r, 10).outcome;
    assert.equal(out.kind, 'closed');
    assert.deepEqual(out.kind === 'closed' ? out.included : [], ['a', 'b']);
    assert.equal(receive(r, 4, 'm', 11).verdict, 'not_holder', 'its later Δ is not counted');
    const inAlready = receive(s, 4, 'm', 3).state;
    assert.equal(release(inAlready, 'm'), inAlready, 'a Δ already in counts, as on the holders that got it');
    assert.equal(release(s, 'x'), s, 'a stranger changes nothing');
  });
});

interface Rep {
  id: string;
  span: Span;
  layout: ParamLayout;
  params: Float32Array;
  sync: OuterSync | undefined;
}

const SYNC = 30_000;

/** Holders of `span`'s layers; `view` is the span each peer holds in the others' view (it may lag a move). */
function harness(syncTimeoutMs = SYNC): { reps: Map<string, Rep>; view: Map<string, Span>; add(id: string, span: Span, params?: Float32Array, hide?: string[]): Rep } {
  const reps = new Map<string, Rep>();
  const view = new Map<string, Span>();
  const covers = (s: Span, layer: string): boolean => {
    const i = layer === 'embed' ? 0 : layer === 'head' ? L - 1 : Number(layer.slice('layers.'.length));
    return s.start <= i && i < s.end;
  };
  const add = (id: string, span: Span, params?: Float32Array, hide: string[] = []): Rep => {
    const layout = new ParamLayout(cfg, span);
    const rep: Rep = { id, span, layout, params: params ?? new Float32Array(layout.size).map((_, i) => Math.sin(i + 100 * span.start)), sync: undefined };
    const target = (peer: string): OuterSync => {
      const s = reps.get(peer)?.sync;
      if (s === undefined) throw new Error('unreachable');
      return s;
    };
    rep.sync = new OuterSync({
      self: id,
      layout,
      inner: { getParams: () => Promise.resolve(rep.params.slice()), setParams: (p) => Promise.resolve(void rep.params.set(p)) },
      round: { innerSteps: 2, quorum: 2 / 3, syncTimeoutMs },
      aggregator: 'mean',
      compress: 'none',
      outerLr: 0.7,
      outerMomentum: 0.9,
      holders: (layer) => [...view].filter(([p, s]) => covers(s, layer) && !hide.includes(p)).map(([p]) => p),
      transport: {
        send: (peer, c): Promise<SendVerdict> => {
          const to = target(peer);
          if (to.round < 0) return Promise.resolve('too_early');
          return Promise.resolve(to.receive(id, c.round, c.layer, decodeDelta(c.compression, c.n, c.payload), c.payload.byteLength));
        },
        status: (peer): Promise<PeerTrainingStatus> => Promise.resolve().then(() => target(peer).status()),
        fetchLayer: (peer, round, layer): Promise<LayerState> => {
          const s = reps.get(peer)?.sync?.layerState(round, layer);
          if (s === undefined) return Promise.reject(new Error('no such state'));
          return Promise.resolve({ theta: s.theta.slice(), buf: s.buf === null ? null : s.buf.slice() });
        },
      },
      clock: { now: () => Date.now() },
      pollMs: 10,
      ...(process.env.SYNC_UNIT_LOG === undefined ? {} : { log: createLogger({ level: 'debug', module: id }) }),
    });
    reps.set(id, rep);
    view.set(id, span);
    return rep;
  };
  return { reps, view, add };
}

/** One round: two "inner steps" (θ −= 0.01·k everywhere, k per replica), then the close. */
async function round(reps: Rep[], signal = new AbortController().signal): Promise<void> {
  await Promise.all(
    reps.map(async (r) => {
      const k = r.id.charCodeAt(0) - 96;
      await r.sync!.enter(signal);
      for (let s = 0; s < 2; s++) {
        for (let i = 0; i < r.params.length; i++) r.params[i] = r.params[i]! - 0.01 * k;
        r.sync!.innerStep();
      }
      await r.sync!.closeRound(signal);
    }),
  );
}

const lastClosed = (r: Rep): PeerTrainingStatus['closed'][number] | undefined => r.sync!.status().closed.at(-1);

describe('OuterSync: a holder the pool moves to another span', () => {
  it('leaves the old layers\' rounds without stalling them and enters the new layers\' rounds as a joiner', async () => {
    const h = harness();
    const [a, b, m] = (['a', 'b', 'm'] as const).map((id) => h.add(id, S1)) as [Rep, Rep, Rep];
    const [c, d] = (['c', 'd'] as const).map((id) => h.add(id, S2)) as [Rep, Rep];
    await Promise.all([round([a, b, m]), round([c, d])]);
    await Promise.all([round([a, b, m]), round([c, d])]);
    assert.deepEqual(lastClosed(m), lastClosed(a));
    assert.deepEqual(lastClosed(c), lastClosed(d));

    // the pool moves m to S2 mid-round: its old sync stops (no Δ for round 2), it holds S2's layers with stale
    // weights, and a, b's view still lists it on S1 (its heartbeats have not reached them); c, d's view has it on S2
    assert.equal(m.sync!.round, 2);
    h.reps.delete('m');
    const moved = h.add('m', S2, new Float32Array(new ParamLayout(cfg, S2).size).fill(7));
    // a and b's view still lists m on S1 (its heartbeats have not reached them), c and d's lists it on S2: one view
    // naming it on every layer stands for both
    h.view.set('m', { start: 0, end: L });

    // a and b close round 2 (m was a member at its start): m answers not_held, they do not wait for the deadline
    const t0 = Date.now();
    const entering = moved.sync!.enter(new AbortController().signal);
    await Promise.all([round([a, b]), round([c, d])]);
    for (const r of [a, b]) {
      const last = r.sync!.stats().lastRound!;
      assert.equal(last.round, 2);
      assert.ok(last.members.includes('m'), 'm was counted at round 2\'s start');
      assert.ok(Object.values(last.outcome).every((o) => o === 'closed'), 'closed with a and b');
      assert.ok(last.syncMs < SYNC / 3, `closed without waiting for m until the deadline (${last.syncMs} ms)`);
    }
    assert.ok(Date.now() - t0 < SYNC / 2);
    // the next rounds leave m out although the view still lists it on S1
    await round([a, b]);
    for (const r of [a, b]) {
      const last = r.sync!.stats().lastRound!;
      assert.deepEqual(last.members, ['a', 'b']);
      assert.ok(last.syncMs < SYNC / 3, `${last.syncMs} ms`);
    }
    assert.deepEqual(lastClosed(a), lastClosed(b));

    // m enters S2's rounds at a boundary where c and d count it, with their verified state of the round before
    await entering;
    const entry = moved.sync!.round;
    assert.equal(entry, c.sync!.round, 'm entered the round c and d are in');
    await round([c, d, moved]); // its entry round: it listens
    assert.deepEqual(lastClosed(moved), lastClosed(c), 'm left its entry round with c and d\'s state');
    assert.deepEqual(moved.sync!.stats().lastRound!.repaired, []);
    await round([c, d, moved]); // a full member now
    for (const r of [c, d, moved]) {
      const last = r.sync!.stats().lastRound!;
      assert.equal(last.round, entry + 1);
      assert.deepEqual(last.members, ['c', 'd', 'm']);
      assert.deepEqual(last.waived, []);
      assert.equal(last.accepted, 3 * Object.keys(last.outcome).length, 'three contributions per layer');
      assert.deepEqual(lastClosed(r), lastClosed(c));
    }
    assert.ok(Buffer.from(moved.params.buffer).equals(Buffer.from(c.params.buffer)), 'bit-identical weights');
    assert.deepEqual(moved.sync!.status().layers, ['layers.1', 'layers.2', 'head']);
  });

  it('a holder that took our Δ and then moved before sending its own is not waited for until the deadline', async () => {
    const h = harness();
    const [a, b, m] = (['a', 'b', 'm'] as const).map((id) => h.add(id, S1)) as [Rep, Rep, Rep];
    await round([a, b, m]);
    // round 1: a and b take their steps and close; m (still in its inner steps) accepts their Δ, then the pool moves
    // it before it closes: its Δ never comes, and no later send of theirs to it (answered not_held) tells them so
    const signal = new AbortController().signal;
    const got0 = m.sync!.bytesReceived;
    const closing = [a, b].map(async (r) => {
      for (let s = 0; s < 2; s++) r.sync!.innerStep();
      return r.sync!.closeRound(signal);
    });
    const t0 = Date.now();
    // every layer's Δ of a and of b (fp32, uncompressed: 4 bytes a value) reached m
    while (m.sync!.bytesReceived - got0 < 2 * 4 * m.layout.size) {
      if (Date.now() - t0 > 10_000) throw new Error('m never got a and b\'s Δ');
      await new Promise((r) => setImmediate(r));
    }
    h.reps.delete('m');
    h.add('m', S2, new Float32Array(new ParamLayout(cfg, S2).size).fill(7));
    h.view.set('m', { start: 0, end: L }); // a and b's view still lists it on S1
    const reports = await Promise.all(closing);
    for (const r of reports) {
      assert.equal(r.round, 1);
      assert.ok(r.members.includes('m'), 'm was a member at the round\'s start');
      assert.ok(Object.values(r.outcome).every((o) => o === 'closed'), JSON.stringify(r.outcome));
      assert.ok(r.syncMs < SYNC / 3, `closed without waiting for m's Δ until the deadline (${r.syncMs} ms)`);
    }
    assert.deepEqual(lastClosed(a), lastClosed(b));
  });

  it('a joiner\'s entry does not wait for a holder the view still lists but that moved to other layers', async () => {
    const h = harness();
    const [c, d, n] = (['c', 'd', 'n'] as const).map((id) => h.add(id, S2)) as [Rep, Rep, Rep];
    const [a, b] = (['a', 'b'] as const).map((id) => h.add(id, S1)) as [Rep, Rep];
    await Promise.all([round([c, d, n]), round([a, b])]);
    // n moves to S1 and enters a, b's rounds; every view still lists it on S2 too
    h.reps.delete('n');
    const movedN = h.add('n', S1, new Float32Array(new ParamLayout(cfg, S1).size).fill(3));
    h.view.set('n', { start: 0, end: L });
    // j joins S2: n's status counts nobody in S2's rounds; before, j waited for n to count it until its deadline
    const j = h.add('j', S2, new Float32Array(new ParamLayout(cfg, S2).size).fill(5));
    const signal = new AbortController().signal;
    const enteringJ = j.sync!.enter(signal);
    const enteringN = movedN.sync!.enter(signal);
    await Promise.all([round([c, d]), round([a, b])]);
    const bound = new Promise<never>((_, rej) => setTimeout(() => rej(new Error('entry stalled')), 10_000).unref());
    await Promise.race([Promise.all([enteringJ, enteringN]), bound]);
    assert.equal(j.sync!.round, c.sync!.round);
    assert.equal(movedN.sync!.round, a.sync!.round);
    await Promise.all([round([c, d, j]), round([a, b, movedN])]);
    await Promise.all([round([c, d, j]), round([a, b, movedN])]);
    for (const [r, ref] of [[j, c], [d, c], [movedN, a], [b, a]] as const) assert.deepEqual(lastClosed(r), lastClosed(ref));
    assert.deepEqual(c.sync!.stats().lastRound!.members, ['c', 'd', 'j']);
    assert.deepEqual(a.sync!.stats().lastRound!.members, ['a', 'b', 'n']);
  });

  it('a holder whose view never lists the joiner does not stall its entry: after the patience a quorum counting it is enough', async () => {
    const h = harness(1000); // entry patience: 1.5 s
    const [a, b] = (['a', 'b'] as const).map((id) => h.add(id, S1)) as [Rep, Rep];
    const x = h.add('x', S1, undefined, ['j']); // x's view never lists j
    await round([a, b, x]);
    const j = h.add('j', S1, new Float32Array(new ParamLayout(cfg, S1).size).fill(9));
    const t0 = Date.now();
    const entering = j.sync!.enter(new AbortController().signal);
    await round([a, b, x]); // a and b count j from their next boundary on, x never does
    const bound = new Promise<never>((_, rej) => setTimeout(() => rej(new Error('entry stalled')), 15_000).unref());
    await Promise.race([entering, bound]);
    const waited = Date.now() - t0;
    assert.equal(j.sync!.round, a.sync!.round, 'j entered the round a and b are in');
    assert.ok(!x.sync!.status().members.includes('j'));
    for (let k = 0; k < 3; k++) await round([a, b, x, j]);
    // a and b aggregate every Δ; x leaves j's out and j gets none from x: the hash vote gives both the majority's state
    for (const r of [b, x, j]) assert.deepEqual(lastClosed(r), lastClosed(a), `${r.id} ends each round with a's state`);
    assert.ok(Buffer.from(j.params.buffer).equals(Buffer.from(a.params.buffer)));
    const jl = j.sync!.stats().lastRound!;
    assert.ok(jl.syncMs < 1000, `j does not wait for x's Δ until the deadline (${jl.syncMs} ms)`);
    console.log(`# entry without a holder that never counts the joiner: ${waited} ms; j repaired ${jl.repaired.length} layers in its last round`);
  });
});

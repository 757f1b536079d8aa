/**
 * An `--weights int8` holder inside a network of float32 ones (real NeuroShardNodes: libp2p on 127.0.0.1, compute
 * workers): a genesis node started from a fixed checkpoint, an int8 joiner and then a float32 joiner, both pinned
 * to the whole model.
 *
 *   - the int8 joiner takes its weights from the genesis node and quantizes them: its span hash is the float32
 *     weights' (what it quantized), its engine names int8, and it keeps no float32 copy;
 *   - it still counts as a replica of every layer in the others' views (routing may use it);
 *   - the float32 joiner that comes next downloads verified float32 weights although the int8 holder is live and
 *     asked: the int8 holder answers a typed "cannot serve" and is not penalised for it;
 *   - its signed HolderRecord names its format (and so does the others' view of it); a greedy answer asked on the
 *     int8 node goes through float32 hops (one format per chain, float32 first), its route names each hop's weights,
 *     and its tokens are the float32 ones.
 *
 * Then (issue 8, weight sources) a network where some layers are held only by an int8 holder: a genesis node pinned
 * to the first half, an int8 node pinned to the second half (loaded from its own copy of the checkpoint), and a
 * float32 joiner with memory for half the model. The joiner takes the half that a float32 holder can serve, never
 * the int8-only half (whose download would fail with CHECKPOINT_UNAVAILABLE, over and over).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NANO, type LlamaConfig } from '../../../src/model/index.js';
import { coverage, extraWeightBytes, layerMb, sliceSpan, spanHashOfParams } from '../../../src/pool/index.js';
import { bootAddrs, genesisCheckpoint, poolNet, waitFor } from '../../utils/pool-net.js';

const CONFIG: LlamaConfig = { ...NANO };
const L = CONFIG.num_hidden_layers;
/** Memory for L/2 float32 layers plus the embedding and head. */
const HALF_MB = Math.ceil(extraWeightBytes(CONFIG) / (1 << 20)) + (L / 2) * layerMb(CONFIG) + 1;

const net = poolNet({ prefix: 'int8', tickMs: 400, settleMs: 2000 });

describe('an int8 holder in a float32 network', { timeout: 600_000 }, () => {
  let checkpointDir = '';
  let fullParams: Float32Array;

  before(async () => {
    ({ dir: checkpointDir, params: fullParams } = await genesisCheckpoint(CONFIG, 1234, net.tmp('ckpt')));
  });

  after(() => net.close());

  it('counts as a replica, serves no weights, is not penalised for it; an f32 joiner still gets verified f32 weights', async () => {
    const whole = { start: 0, end: L };
    const f32Hash = spanHashOfParams(CONFIG, whole, fullParams);
    const genesis = await net.start('genesis', { genesis: true, checkpoint: checkpointDir });
    await waitFor(() => genesis.pool?.span() !== undefined, 60_000, 'the genesis node to hold its span');
    assert.equal(genesis.pool!.modelHash(), f32Hash);
    const boot = bootAddrs(genesis);

    const q = await net.start('int8', { bootstrap: boot, span: `0:${L}`, weights: 'int8' });
    await waitFor(() => q.pool?.span() !== undefined, 240_000, 'the int8 joiner to hold its span');
    // its span hash is the float32 weights' it quantized (the same figure as the f32 holders'); its engine says int8
    assert.equal(q.pool!.modelHash(), f32Hash);
    assert.match(q.compute.info?.description ?? '', /int8 weights/);
    await assert.rejects(q.compute.run({ type: 'getParams' }), /no float32 copy|COMPUTE_STATE|int8/);
    await waitFor(() => genesis.pool!.view().holders.some((h) => h.peerId === q.network.peerId && h.state === 'alive'), 60_000, 'the int8 joiner alive in the genesis view');

    const f = await net.start('f32', { bootstrap: boot, span: `0:${L}` });
    // the f32 joiner must have heard the int8 holder before it downloads, so that it is asked
    await waitFor(() => f.pool?.span() !== undefined, 240_000, 'the f32 joiner to hold its span');
    assert.equal(f.pool!.modelHash(), f32Hash, 'the f32 joiner holds the checkpoint weights, verified');
    assert.equal(f.network.scores.score(q.network.peerId), 0, 'the int8 holder was not penalised by the f32 joiner');
    assert.equal(genesis.network.scores.score(q.network.peerId), 0);

    // the int8 holder counts as a replica of every layer
    const ids = new Set([genesis.network.peerId, q.network.peerId, f.network.peerId]);
    await waitFor(
      () => Math.min(...coverage({ numLayers: L, holders: genesis.pool!.view().holders.filter((h) => ids.has(h.peerId) && h.state === 'alive') }).replicas) === 3,
      60_000,
      'three live replicas of every layer (the int8 holder among them) in the genesis view',
    );

    // heartbeats say how each holder holds its weights; an entry prefers a chain of one format, float32 first, and
    // the answer names each hop's weights: asked on the int8 node itself, the greedy answer comes through float32
    // hops, token for token the genesis node's (its own float32 worker)
    assert.equal(genesis.network.liveness.snapshot().find((p) => p.peer === q.network.peerId)?.heartbeat.weights, 'int8');
    // the format is signed into its HolderRecord, and the others' pool views take it from there
    assert.equal((await genesis.network.registry.recordOf(q.network.peerId))?.weights, 'int8');
    assert.equal((await genesis.network.registry.recordOf(f.network.peerId))?.weights, undefined, 'a float32 record has no weights field');
    await waitFor(() => genesis.pool!.view().holders.find((h) => h.peerId === q.network.peerId)?.weights === 'int8', 30_000, 'the int8 holder named int8 in the genesis view');
    await waitFor(() => [genesis, f].every((n) => q.network.liveness.snapshot().some((p) => p.peer === n.network.peerId && p.state === 'alive' && p.heartbeat.span !== undefined)), 60_000, 'the int8 node to hear both f32 holders');
    type Answer = { tokens: number[]; route: { peerId: string; span: [number, number]; weights: string }[] };
    const ask = async (url: string): Promise<Answer> => {
      const res = await fetch(`${url}/api/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'The jury said', max_tokens: 12, temperature: 0 }) });
      assert.equal(res.status, 200, await res.clone().text());
      return (await res.json()) as Answer;
    };
    const want = await ask(genesis.apiUrl);
    // its own worker, or the float32 joiner (route choice does not explore here: POOL_NODE_FLAGS routeExplore 0, but
    // the near-best draw may take an equally fast replica): either way one float32 hop
    assert.equal(want.route.length, 1, `route ${JSON.stringify(want.route)}`);
    assert.ok([genesis.network.peerId, f.network.peerId].includes(want.route[0]!.peerId) && want.route[0]!.weights === 'f32', `route ${JSON.stringify(want.route)}`);
    const got = await ask(q.apiUrl);
    assert.ok(got.route.every((h) => h.weights === 'f32' && h.peerId !== q.network.peerId), `route ${JSON.stringify(got.route)}`);
    // the routes in the message (the first ones: a failover is not in them). This failed at times (tokens 9-10 of 12
    // became 1003, 2956 instead of 2956, 1003: the int8 model's greedy answer) with both routes naming one float32
    // hop: q's remote float32 hop missed its 200 ms step deadline under load, the other float32 holder after it, and
    // the failover went on through q's own int8 worker. A slow hop is now replaced only by a holder of the chain's
    // format (router/driver.ts `replaceable`; test/unit/router/driver-deadline.test.ts)
    assert.deepEqual(got.tokens, want.tokens, `routes: want ${JSON.stringify(want.route)}, got ${JSON.stringify(got.route)}`);
  });

  it('a joiner never takes layers that only an int8 holder holds: it takes the half a float32 holder serves', async () => {
    // the first scenario's nodes go: this one is a network of its own
    await net.closeNodes();
    const first = { start: 0, end: L / 2 };
    const second = { start: L / 2, end: L };
    const hashOf = (s: { start: number; end: number }): string => spanHashOfParams(CONFIG, s, sliceSpan(CONFIG, { start: 0, end: L }, fullParams, s));
    const genesis = await net.start('genesis2', { genesis: true, checkpoint: checkpointDir, span: `${first.start}:${first.end}` });
    await waitFor(() => genesis.pool?.span() !== undefined, 60_000, 'the genesis node to hold the first half');
    const boot = bootAddrs(genesis);
    // nobody holds the second half: the int8 node loads it from its own copy of the checkpoint and quantizes it
    const q = await net.start('int8-half', { bootstrap: boot, checkpoint: checkpointDir, span: `${second.start}:${second.end}`, weights: 'int8' });
    await waitFor(() => q.pool?.span() !== undefined, 240_000, 'the int8 node to hold the second half');
    assert.equal(q.pool!.modelHash(), hashOf(second));
    await waitFor(() => genesis.pool!.view().holders.find((h) => h.peerId === q.network.peerId && h.state === 'alive')?.weights === 'int8', 60_000, 'the int8 holder alive, named int8 by its record, in the genesis view');

    // each half has one live holder: by replicas and speed the two halves tie, and the joiner's tie-break could draw
    // either; only the first has a holder that serves weights
    const j = await net.start('joiner', { bootstrap: boot, memoryMb: HALF_MB });
    const errors: string[] = [];
    j.pool!.events.on('span:error', (e) => errors.push(e.error));
    await waitFor(() => j.pool?.span() !== undefined, 240_000, 'the joiner to hold a span');
    assert.deepEqual(j.pool!.span(), first, `the joiner took ${JSON.stringify(j.pool!.span())}`);
    assert.equal(j.pool!.modelHash(), hashOf(first), 'verified float32 weights of the first half');
    assert.deepEqual(errors, [], 'no failed download on the way');
    assert.equal(j.network.scores.score(q.network.peerId), 0, 'the int8 holder was not penalised');
  });
});

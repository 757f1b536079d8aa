/**
 * The generate answer names every route that produced tokens (issue 8): on real libp2p nodes on 127.0.0.1 (one
 * compute worker per hop), a hop is killed mid-answer; the answer's tokens are one machine's, `route` is the route
 * as first chosen, and `routes` has two entries, the second from the token the failover produced first, through
 * the replacement. Once as a JSON answer read by the JS client (ApiClient), once as the SSE `done` event.
 *
 * The failover point is counted by the test itself, not taken from the driver: the entry's sessions are wrapped, the
 * victim is stopped (libp2p node and worker) right after it answered its K-th step, so tokens 0..K-1 came through it
 * and the step of token K fails on it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ApiClient } from '../../../src/api/client.js';
import { ApiServer } from '../../../src/api/index.js';
import { ComputeClient } from '../../../src/compute/index.js';
import { bundledGenesis } from '../../../src/node/genesis.js';
import type { NodeNetwork } from '../../../src/node/network.js';
import { genesisModelView, NodeGenerator, workerHopCompute } from '../../../src/node/serving.js';
import { HOP_LIMIT_DEFAULTS, InferenceHopServer, RemoteHopSession } from '../../../src/protocols/inference.js';
import type { HopSession } from '../../../src/router/index.js';
import { waitFor } from '../../../src/util/abort.js';
import { startServingNet } from '../../utils/network.js';

const genesis = bundledGenesis();
const cfg = genesis.config;
const L = cfg.num_hidden_layers;
const C = cfg.hidden_size;
const PROMPT = 'The jury said that';
const MAX = 24;

interface Hop {
  name: string;
  span: { start: number; end: number };
  net: NodeNetwork;
  compute: ComputeClient;
  /** A replica: priced far (rttMs) so that the first route never takes it; there for failover. */
  spare: boolean;
  killed: boolean;
}

const startNet = (span: { start: number; end: number } | undefined, boot: string[]): Promise<NodeNetwork> => startServingNet(genesis.networkId, span, boot);

const addr = (n: NodeNetwork): string => n.p2p.multiaddrs()[0]!;

describe('the generate answer reports every route used (real libp2p nodes, a hop killed mid-answer)', () => {
  const hops: Hop[] = [];
  let entry: NodeNetwork;
  let entryCompute: ComputeClient;
  let api: ApiServer;
  let url: string;
  let reference: number[];
  /** Steps each peer answered the entry (successful calls on its sessions), counted by the test. */
  const answered = new Map<string, number>();
  /** Stop `name` right after it answered its `after`-th step. */
  let victim: { name: string; after: number } | undefined;
  const hop = (name: string): Hop => hops.find((h) => h.name === name)!;

  const kill = async (h: Hop): Promise<void> => {
    h.killed = true; // the entry's view drops it, as liveness marks a silent holder dead
    await h.net.stop();
    await h.compute.close();
  };

  before(async () => {
    const first = await startNet({ start: 0, end: 2 }, []);
    const boot = [addr(first)];
    const specs: [string, { start: number; end: number }, boolean][] = [['a2', { start: 0, end: 2 }, true], ['b1', { start: 2, end: L }, false], ['b2', { start: 2, end: L }, true]];
    const nets: [string, { start: number; end: number }, boolean, NodeNetwork][] = [['a1', { start: 0, end: 2 }, false, first]];
    for (const [name, span, spare] of specs) nets.push([name, span, spare, await startNet(span, boot)]);
    for (const [name, span, spare, net] of nets) {
      const compute = await ComputeClient.start({ threads: 1 });
      await compute.run({ type: 'initModel', config: cfg, seed: 0, span });
      const server = new InferenceHopServer(workerHopCompute(compute, cfg, () => span), HOP_LIMIT_DEFAULTS, net.scores);
      await server.register(net.rpc);
      hops.push({ name, span, net, compute, spare, killed: false });
    }
    entry = await startNet(undefined, boot);
    // dialled by address: the calls go by peer id, and the entry must not depend on learning addresses through the DHT
    for (const h of hops) await entry.p2p.dial(addr(h.net), { signal: AbortSignal.timeout(60_000) });
    entryCompute = await ComputeClient.start({ threads: 1 });
    await entryCompute.run({ type: 'initModel', config: cfg, seed: 0 });
    const model = genesisModelView(genesis);
    reference = Array.from((await entryCompute.run({ type: 'generate', prompt: Int32Array.from(model.encode(PROMPT)), maxTokens: MAX, temperature: 0, stopIds: [cfg.eos_token_id] })).tokens);
    assert.equal(reference.length, MAX, 'the reference runs to max_tokens (the kill points below are inside it)');
    const gen = new NodeGenerator({
      compute: entryCompute,
      genesis,
      selfPeerId: entry.peerId,
      localSpan: () => undefined,
      // the hops as they are (not through heartbeats, which lapse on a loaded machine); a killed hop is gone
      peers: () => hops.filter((h) => !h.killed).map((h) => ({ peerId: h.net.peerId, span: h.span, alive: true, rttMs: h.spare ? 1_000 : 1 })),
      remote: (chainHop, spec): HopSession => {
        const inner = new RemoteHopSession(entry.rpc, chainHop.peerId, chainHop.span, spec, { hiddenSize: C, vocabSize: cfg.vocab_size, wire: 'f32', scores: entry.scores });
        const h = hops.find((x) => x.net.peerId === chainHop.peerId)!;
        return {
          step: async (input, signal) => {
            const out = await inner.step(input, signal);
            const n = (answered.get(h.name) ?? 0) + 1;
            answered.set(h.name, n);
            if (victim?.name === h.name && n === victim.after) await kill(h);
            return out;
          },
          close: () => inner.close(),
        };
      },
      // a dead hop fails its step at once (its connection is gone); the deadline only guards a hang, and is long so
      // that a slow step on a loaded machine is not taken for a failure (a second failover would change `routes`)
      options: { stepTimeoutMs: 10_000, explore: 0 },
    });
    api = new ApiServer({ port: 0 }, { status: { status: () => { throw new Error('unused'); }, peers: () => [] }, generator: () => gen });
    url = (await api.listen()).url;
    await waitFor(() => entry.liveness.snapshot().filter((p) => p.state === 'alive').length >= hops.length, { timeoutMs: 120_000, intervalMs: 100, what: 'every hop alive' });
  });
  after(async () => {
    await api?.close();
    for (const h of hops) if (!h.killed) await kill(h);
    await entry?.stop();
    await entryCompute?.close();
  });

  const peerOf = (name: string): string => hop(name).net.peerId;

  it('JSON answer (through ApiClient): the validator killed after token 9; routes from 0 and from 10', async () => {
    answered.clear();
    victim = { name: 'b1', after: 10 };
    const r = await new ApiClient({ port: Number(new URL(url).port), timeoutMs: 300_000 }).generate({ prompt: PROMPT, maxTokens: MAX, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] });
    assert.ok(hop('b1').killed, 'b1 was killed');
    assert.deepEqual(r.tokens, reference, 'the tokens of one machine');
    assert.ok(r.failovers >= 1, `failovers ${r.failovers}`);
    assert.deepEqual(r.route.map((h) => h.peerId), [peerOf('a1'), peerOf('b1')], 'route: as first chosen');
    assert.equal(r.routes?.length, 2, JSON.stringify(r.routes));
    const [first, second] = r.routes!;
    assert.deepEqual(first, { fromToken: 0, hops: r.route });
    assert.equal(second!.fromToken, answered.get('b1'), 'the second route starts at the token of the failed step');
    assert.equal(second!.fromToken, 10);
    assert.deepEqual(second!.hops.map((h) => [h.peerId, h.span]), [[peerOf('a1'), [0, 2]], [peerOf('b2'), [2, L]]]);
  });

  it('SSE done event: the driver hop killed after token 6; routes from 0 and from 7, in the API\'s names', async () => {
    answered.clear();
    victim = { name: 'a1', after: 7 };
    const res = await fetch(`${url}/api/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: PROMPT, max_tokens: MAX, temperature: 0, stream: true }) });
    assert.equal(res.status, 200);
    const events = (await res.text())
      .split('\n\n')
      .filter((b) => b.startsWith('data: '))
      .map((b) => JSON.parse(b.slice(6)) as Record<string, any>);
    assert.ok(hop('a1').killed, 'a1 was killed');
    const done = events.at(-1)!;
    assert.equal(done.done, true, JSON.stringify(done));
    assert.deepEqual(done.tokens, reference, 'the tokens of one machine');
    assert.deepEqual(events.filter((e) => e.token !== undefined).map((e) => e.token), reference);
    assert.deepEqual(events[0]!.route, done.route, 'the first event and `route` name the route as first chosen');
    assert.deepEqual(done.route.map((h: { peerId: string }) => h.peerId), [peerOf('a1'), peerOf('b2')]);
    assert.equal(done.routes.length, 2, JSON.stringify(done.routes));
    assert.deepEqual(done.routes[0], { from_token: 0, hops: done.route });
    assert.equal(done.routes[1].from_token, answered.get('a1'));
    assert.equal(done.routes[1].from_token, 7);
    assert.deepEqual(done.routes[1].hops.map((h: { peerId: string; span: number[] }) => [h.peerId, h.span]), [[peerOf('a2'), [0, 2]], [peerOf('b2'), [2, L]]]);
  });
});

/**
 * The outer-sync RPCs of a node kept across training sessions (node/diloco.ts TrainingEndpoint; a chain holder's pool
 * move ends one session and starts another): in the gap the node answers as one that trains no layer (a status with
 * `layers: []`, `not_held` for a model layer's contribution, no state), and the caller's reusable stream to it lives
 * on (before, the handlers went with the session: the callers took it for a `--no-train` node and for an older node
 * without reusable streams, a stream per call for 10 min).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { keyFromPrivate } from '../../../src/identity/index.js';
import { TrainingEndpoint } from '../../../src/node/diloco.js';
import { MemoryHub } from '../../../src/p2p/memory.js';
import { encodeContribution } from '../../../src/protocols/training-contribution.js';
import { trainingContribution, trainingLayer, trainingStatus } from '../../../src/protocols/training-sync.js';
import { RemoteRpcError } from '../../../src/protocols/rpc/errors.js';
import { RpcNode } from '../../../src/protocols/rpc/service.js';
import { TrainingRoundGoneError } from '../../../src/training/sync.js';

const NET = 'testnet01';

describe('TrainingEndpoint: the outer-sync RPCs across sessions', () => {
  it('answers the gap between two sessions as a node that trains no layer, on the same reusable streams', async () => {
    const hub = new MemoryHub();
    const a = hub.createNode('peerA');
    const b = hub.createNode('peerB');
    await a.start();
    await b.start();
    let muxOpens = 0;
    const open = a.openStream.bind(a);
    a.openStream = (peer, protocol, o) => {
      if (protocol.endsWith('/mux/2.0.0')) muxOpens++;
      return open(peer, protocol, o);
    };
    const ra = new RpcNode({ network: a, networkId: NET, reuseStreams: true });
    const rb = new RpcNode({ network: b, networkId: NET });
    const ep = await TrainingEndpoint.start(rb, 4);
    const key = keyFromPrivate(randomBytes(32));
    const delta = (layer: string): Uint8Array => encodeContribution(key, { networkId: NET, round: 3, layer, compression: 'none', n: 2, payload: new Uint8Array(8) });

    // a session: its outer sync answers
    const session = {
      contribution: () => ({ verdict: 'accepted' as const }),
      status: () => ({ round: 3, phase: 'inner' as const, members: ['peerA', 'peerB'], closed: [], entered: 0, layers: ['embed', 'layers.0'] }),
      layer: () => new Uint8Array([0, 0, 0, 0, 0]),
    };
    ep.attach(session);
    assert.deepEqual((await ra.call('peerB', trainingStatus, {})).layers, ['embed', 'layers.0']);
    assert.equal((await ra.call('peerB', trainingContribution, delta('embed'))).verdict, 'accepted');

    // the session ends (a pool move): the gap
    ep.detach(session);
    const gap = await ra.call('peerB', trainingStatus, {});
    assert.deepEqual(gap.layers, [], 'trains no layer now');
    assert.equal(gap.phase, 'entering');
    assert.equal((await ra.call('peerB', trainingContribution, delta('layers.2'))).verdict, 'not_held', 'a model layer: not held, no penalty');
    const violations: string[] = [];
    rb.events.on('rpc:violation', (v) => violations.push(v.code));
    // the gap is the holder's state: typed, and the honest caller is not blamed (it was a violation before session 23)
    await assert.rejects(ra.call('peerB', trainingLayer, { round: 3, layer: 'embed' }), (e: unknown) => e instanceof RemoteRpcError && e.code === 'TRAINING_NOT_ATTACHED' && e.remoteFault === 'local');
    assert.deepEqual(violations, [], 'no violation recorded against the caller');

    // the next session (another span) answers at once, on the same streams
    const next = { ...session, status: () => ({ ...session.status(), layers: ['layers.2', 'head'] }) };
    ep.attach(next);
    ep.detach(session); // an older session's late detach leaves the new one alone
    assert.deepEqual((await ra.call('peerB', trainingStatus, {})).layers, ['layers.2', 'head']);
    assert.equal(muxOpens, 3, 'one reusable stream per method, opened once (status, contribution, layer)');
    assert.equal(ra.openChannels('peerB'), 3);

    await ep.close();
    await assert.rejects(ra.call('peerB', trainingStatus, {}));
    await ra.close();
    await rb.close();
  });

  it('a round that left the holder\'s window reaches the caller as typed TRAINING_ROUND_GONE, blaming neither side', async () => {
    const hub = new MemoryHub();
    const a = hub.createNode('peerA');
    const b = hub.createNode('peerB');
    await a.start();
    await b.start();
    const ra = new RpcNode({ network: a, networkId: NET });
    const rb = new RpcNode({ network: b, networkId: NET });
    const ep = await TrainingEndpoint.start(rb, 4);
    ep.attach({
      contribution: () => ({ verdict: 'accepted' as const }),
      status: () => ({ round: 9, phase: 'inner' as const, members: ['peerB'], closed: [], entered: 0, layers: ['embed'] }),
      // as OuterSync.serveLayer answers a round it closed but no longer keeps (training/sync.ts)
      layer: (req) => {
        throw new TrainingRoundGoneError(`the state of ${req.layer} after round ${req.round} is no longer kept here`, { round: req.round });
      },
    });
    await assert.rejects(ra.call('peerB', trainingLayer, { round: 2, layer: 'embed' }), (e: unknown) => e instanceof RemoteRpcError && e.code === 'TRAINING_ROUND_GONE' && e.remoteFault === 'caller' && e.fault === 'local');
    await ep.close();
    await ra.close();
    await rb.close();
  });
});

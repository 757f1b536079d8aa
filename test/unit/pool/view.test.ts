import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildView, layersReport } from '../../../src/pool/view.js';
import type { PeerLiveness } from '../../../src/protocols/liveness.js';
import type { HolderRecord } from '../../../src/protocols/holder-record.js';

const peer = (id: string, state: PeerLiveness['state'], span?: { start: number; end: number }, weights?: 'int8'): PeerLiveness => ({
  peer: id,
  state,
  lastSeenMs: 0,
  heartbeat: { peerId: id, span, load: 0, freeMemoryMb: 0, trainingStep: 0n, timestampMs: 0, seq: 1n, ...(weights === undefined ? {} : { weights }) },
});
const rec = (id: string, start: number, end: number, tokensPerSec: number, memoryMb: number, weights?: 'int8'): HolderRecord => ({
  networkId: 'n',
  peerId: id,
  multiaddrs: [],
  span: { start, end },
  capacity: { memoryMb, tokensPerSec },
  ...(weights === undefined ? {} : { weights }),
  timestampMs: 1,
  expiresMs: 2,
  signature: '',
});

describe('pool view', () => {
  it('spans from heartbeats, capacity from records, self as alive; peers without a span are not holders', () => {
    const v = buildView({
      numLayers: 4,
      self: { peerId: 'me', span: { start: 0, end: 2 }, tokensPerSec: 10, memoryMb: 100 },
      peers: [peer('b', 'alive', { start: 2, end: 4 }), peer('c', 'dead', { start: 0, end: 4 }), peer('d', 'alive'), peer('me', 'alive', { start: 0, end: 1 })],
      // c's record names an older span of 2 layers at 30 tok/s: 60 per layer → 15 over its 4 layers now
      records: new Map([
        ['b', rec('b', 2, 4, 20, 50)],
        ['c', rec('c', 0, 2, 30, 80)],
      ]),
    });
    assert.deepEqual(
      v.holders.map((h) => [h.peerId, h.span.start, h.span.end, h.state, h.tokensPerSec, h.memoryMb]),
      [
        ['b', 2, 4, 'alive', 20, 50],
        ['c', 0, 4, 'dead', 15, 80],
        ['me', 0, 2, 'alive', 10, 100],
      ],
    );
    const r = layersReport(v, 'abc');
    assert.equal(r.layers.length, 4);
    assert.deepEqual(
      r.layers[0]!.holders.map((h) => h.peerId),
      ['c', 'me'],
    );
    // live holders per layer: 1, 1, 1, 1 (c is dead)
    assert.equal(r.replicasMin, 1);
    assert.equal(r.modelHash, 'abc');
  });

  it('the weights format comes from the signed record; the heartbeat only stands in until the record is known', () => {
    const v = buildView({
      numLayers: 4,
      self: { peerId: 'me', span: { start: 0, end: 4 }, tokensPerSec: 10, memoryMb: 100, weights: 'int8' },
      peers: [
        peer('a', 'alive', { start: 0, end: 4 }), // record int8, heartbeat silent: int8
        peer('b', 'alive', { start: 0, end: 4 }, 'int8'), // record float32, heartbeat int8: the record wins
        peer('c', 'alive', { start: 0, end: 4 }, 'int8'), // no record yet: the heartbeat's hint
        peer('d', 'alive', { start: 0, end: 4 }), // neither: float32
      ],
      records: new Map([
        ['a', rec('a', 0, 4, 5, 10, 'int8')],
        ['b', rec('b', 0, 4, 5, 10)],
      ]),
    });
    assert.deepEqual(
      v.holders.map((h) => [h.peerId, h.weights ?? 'f32']),
      [
        ['a', 'int8'],
        ['b', 'f32'],
        ['c', 'int8'],
        ['d', 'f32'],
        ['me', 'int8'],
      ],
    );
  });
});

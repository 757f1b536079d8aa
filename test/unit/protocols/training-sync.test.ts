/**
 * The outer-sync wire (protocols/training-sync.ts): layer-state round trip and malformed bodies refused, status
 * bodies checked field by field, and the contribution header peeked without trusting the rest.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { keyFromPrivate } from '../../../src/identity/index.js';
import { encodeContribution, peekContribution } from '../../../src/protocols/training-contribution.js';
import { checkLayerRequest, checkStatus, decodeLayerState, encodeLayerState } from '../../../src/protocols/training-sync.js';
import { PeerMisbehaviourError } from '../../../src/util/errors.js';

describe('outer-sync wire', () => {
  it('layer state round trips bit-exactly, with and without momentum; bad lengths are refused', () => {
    const theta = new Float32Array([1.5, -0, Number.MIN_VALUE, 3e38]);
    const buf = new Float32Array([0.25, 1, 2, 3]);
    for (const b of [buf, null]) {
      const d = decodeLayerState(encodeLayerState({ theta, buf: b }));
      assert.deepEqual(Buffer.from(d.theta.buffer), Buffer.from(theta.buffer));
      assert.deepEqual(d.buf === null ? null : Buffer.from(d.buf.buffer), b === null ? null : Buffer.from(b.buffer));
    }
    const enc = encodeLayerState({ theta, buf });
    assert.throws(() => decodeLayerState(enc.subarray(0, enc.length - 1)), PeerMisbehaviourError);
    assert.throws(() => decodeLayerState(new Uint8Array([255, 255, 255, 255, 0])), PeerMisbehaviourError);
    const flag = enc.slice();
    flag[4 + 16] = 7;
    assert.throws(() => decodeLayerState(flag), PeerMisbehaviourError);
  });

  it('status and layer requests are checked field by field', () => {
    const ok = { round: 3, phase: 'inner', members: ['16Uiu2HAm'], closed: [{ round: 2, hashes: { embed: 'a'.repeat(64) } }] };
    assert.deepEqual(checkStatus(ok), ok);
    assert.throws(() => checkStatus({ ...ok, phase: 'x' }), PeerMisbehaviourError);
    assert.throws(() => checkStatus({ ...ok, round: 1.5 }), PeerMisbehaviourError);
    assert.throws(() => checkStatus({ ...ok, members: ['bad id!'] }), PeerMisbehaviourError);
    assert.throws(() => checkStatus({ ...ok, closed: [{ round: 2, hashes: { embed: 'zz' } }] }), PeerMisbehaviourError);
    assert.throws(() => checkStatus({ ...ok, members: Array(2000).fill('a') }), PeerMisbehaviourError);
    // `entered` (the round a node entered at) is optional; when present a round ≥ 0
    assert.deepEqual(checkStatus({ ...ok, entered: 2 }), { ...ok, entered: 2 });
    for (const entered of [-1, 1.5, '2', null]) assert.throws(() => checkStatus({ ...ok, entered }), PeerMisbehaviourError);
    // `chain` (a chain stage's last round boundary) is optional; when present every field is checked
    const chain = { step: 41, next: 9, drives: true };
    assert.deepEqual(checkStatus({ ...ok, chain }), { ...ok, chain });
    // `driver` (whose step counter `step` counts) is optional too: a peer id when present
    assert.deepEqual(checkStatus({ ...ok, chain: { ...chain, driver: '12D3KooWdrv' } }), { ...ok, chain: { ...chain, driver: '12D3KooWdrv' } });
    for (const bad of [null, 3, [], { ...chain, step: -1 }, { ...chain, next: 1.5 }, { ...chain, drives: 'yes' }, { step: 1, next: 2 }, { ...chain, driver: 7 }, { ...chain, driver: 'a b' }, { ...chain, driver: '' }]) assert.throws(() => checkStatus({ ...ok, chain: bad }), PeerMisbehaviourError);
    // `steps` (inner steps counted since start: the stall release reads it) is optional; when present an integer ≥ 0
    assert.deepEqual(checkStatus({ ...ok, steps: 120 }), { ...ok, steps: 120 });
    for (const steps of [-1, 1.5, '7', null, 2 ** 60]) assert.throws(() => checkStatus({ ...ok, steps }), PeerMisbehaviourError);
    assert.deepEqual(checkLayerRequest({ round: -1, layer: 'head' }), { round: -1, layer: 'head' });
    assert.throws(() => checkLayerRequest({ round: -2, layer: 'head' }), PeerMisbehaviourError);
    assert.throws(() => checkLayerRequest({ round: 0, layer: '../x' }), PeerMisbehaviourError);
  });

  it('peekContribution reads round and layer; garbage gives undefined', () => {
    const key = keyFromPrivate(randomBytes(32));
    const bytes = encodeContribution(key, { networkId: 'ns1-test', round: 7, layer: 'layers.3', compression: 'none', n: 2, payload: new Uint8Array(8) });
    assert.deepEqual(peekContribution(bytes), { round: 7, layer: 'layers.3' });
    assert.equal(peekContribution(new Uint8Array([1, 2])), undefined);
    assert.equal(peekContribution(new Uint8Array([9, 0, 0])), undefined);
  });
});

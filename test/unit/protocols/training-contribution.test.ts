import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { keyFromPrivate } from '../../../src/identity/index.js';
import { decodeContribution, encodeContribution, type ContributionExpectation } from '../../../src/protocols/training-contribution.js';
import { decodeDelta, encodeDelta } from '../../../src/training/compression/index.js';
import { isNeuroShardError } from '../../../src/util/errors.js';

const key = keyFromPrivate(randomBytes(32));
const other = keyFromPrivate(randomBytes(32));
const delta = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 1e-3);

function fields(over: Partial<Parameters<typeof encodeContribution>[1]> = {}): Parameters<typeof encodeContribution>[1] {
  return { networkId: 'ns1-test', round: 7, layer: 'layers.3', compression: 'int8', n: delta.length, payload: encodeDelta('int8', delta), ...over };
}

function expect(over: Partial<ContributionExpectation> = {}): ContributionExpectation {
  return {
    networkId: 'ns1-test',
    round: 7,
    layer: 'layers.3',
    n: delta.length,
    compression: 'int8',
    sender: key.publicKey,
    validatePayload: (kind, n, payload) => void decodeDelta(kind, n, payload),
    ...over,
  };
}

const code = (c: string) => (e: unknown) => isNeuroShardError(e, c) && e.fault === 'peer';

describe('training contribution wire format', () => {
  it('round-trips a signed contribution bound to network, round, layer and sender', () => {
    const bytes = encodeContribution(key, fields());
    const c = decodeContribution(bytes, expect());
    assert.equal(c.round, 7);
    assert.equal(c.layer, 'layers.3');
    assert.deepEqual(c.sender, key.publicKey);
    const d = decodeDelta(c.compression, c.n, c.payload);
    assert.ok(d.every((v, i) => Math.abs(v - delta[i]!) < 1e-5));
  });

  it('rejects the wrong round, layer, network, size, compression and sender key', () => {
    const bytes = encodeContribution(key, fields());
    assert.throws(() => decodeContribution(bytes, expect({ round: 8 })), code('CONTRIBUTION_WRONG_ROUND'));
    assert.throws(() => decodeContribution(bytes, expect({ layer: 'layers.4' })), code('CONTRIBUTION_WRONG_LAYER'));
    assert.throws(() => decodeContribution(bytes, expect({ networkId: 'ns1-other' })), code('CONTRIBUTION_WRONG_NETWORK'));
    assert.throws(() => decodeContribution(bytes, expect({ n: 999, maxBytes: 1 << 20 })), code('CONTRIBUTION_WRONG_SIZE'));
    assert.throws(() => decodeContribution(bytes, expect({ compression: 'fp16' })), code('CONTRIBUTION_WRONG_COMPRESSION'));
    assert.throws(() => decodeContribution(bytes, expect({ sender: other.publicKey })), code('CONTRIBUTION_WRONG_SENDER'));
    // signed by another key but claiming ours: the sender field is ours, the signature is not
    const forged = encodeContribution(other, fields());
    forged.set(key.publicKey, forged.length - 64 - 33);
    assert.throws(() => decodeContribution(forged, expect()), code('CONTRIBUTION_BAD_SIGNATURE'));
    // a flipped bit anywhere in the signed part breaks the signature (here: the round, re-labelled to the expected one is impossible)
    const tampered = encodeContribution(key, fields());
    tampered[tampered.length - 64 - 33 - 5]! ^= 1; // inside the payload
    assert.throws(() => decodeContribution(tampered, expect()), code('CONTRIBUTION_BAD_SIGNATURE'));
  });

  it('rejects oversized, truncated and trailing bytes, and non-finite payloads (validated after the signature)', () => {
    const bytes = encodeContribution(key, fields());
    assert.throws(() => decodeContribution(bytes, expect({ maxBytes: 100 })), code('CONTRIBUTION_TOO_LARGE'));
    const huge = encodeContribution(key, fields({ compression: 'none', payload: new Uint8Array(4 * delta.length + 4) }));
    assert.throws(() => decodeContribution(huge, expect({ compression: 'none' })), code('CONTRIBUTION_TOO_LARGE'));
    assert.throws(() => decodeContribution(bytes.subarray(0, bytes.length - 1), expect()), code('CONTRIBUTION_MALFORMED'));
    const trailing = new Uint8Array(bytes.length + 1);
    trailing.set(bytes);
    assert.throws(() => decodeContribution(trailing, expect()), code('CONTRIBUTION_MALFORMED'));
    const nanPayload = encodeDelta('none', delta);
    new DataView(nanPayload.buffer).setFloat32(0, NaN, true);
    const signedNan = encodeContribution(key, fields({ compression: 'none', payload: nanPayload }));
    assert.throws(() => decodeContribution(signedNan, expect({ compression: 'none' })), code('TRAINING_DELTA_MALFORMED'));
    const short = encodeContribution(key, fields({ payload: new Uint8Array(10) }));
    assert.throws(() => decodeContribution(short, expect()), code('TRAINING_DELTA_MALFORMED'));
    assert.throws(() => decodeContribution(new Uint8Array([2]), expect()), code('CONTRIBUTION_MALFORMED'));
  });

  it('refuses to encode bad fields', () => {
    assert.throws(() => encodeContribution(key, fields({ layer: 'bad layer' })), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => encodeContribution(key, fields({ round: -1 })), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
  });
});

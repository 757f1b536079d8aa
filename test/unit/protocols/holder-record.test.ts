import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import fc from 'fast-check';
import { keyFromPrivate, malleate, peerIdFromPublicKey, signingDigest, type NodeKey } from '../../../src/identity/index.js';
import {
  HOLDER_RECORD_DOMAIN,
  HOLDER_RECORD_LIMITS,
  canonicalEncode,
  decodeHolderRecord,
  dialAddresses,
  encodeHolderRecord,
  freshHolderRecord,
  holderRecordToJson,
  parseHolderRecord,
  parseHolderRecordJson,
  serializeHolderRecordJson,
  signHolderRecord,
  spanCovers,
  verifyHolderRecord,
  type HolderRecord,
  type HolderRecordFields,
} from '../../../src/protocols/holder-record.js';
import { isNeuroShardError } from '../../../src/util/errors.js';

const KEY_A = keyFromPrivate(new Uint8Array(32).fill(1));
const KEY_B = keyFromPrivate(new Uint8Array(32).fill(2));
const PEER_A = peerIdFromPublicKey(KEY_A.publicKey);
const PEER_B = peerIdFromPublicKey(KEY_B.publicKey);
const T0 = 1_700_000_000_000;

function fields(over: Partial<HolderRecordFields> = {}): HolderRecordFields {
  return {
    networkId: 'testnet',
    peerId: PEER_A,
    multiaddrs: ['/ip4/127.0.0.1/tcp/9000', `/ip4/127.0.0.1/tcp/9001/ws/p2p/${PEER_A}`],
    span: { start: 0, end: 4 },
    capacity: { memoryMb: 2048, tokensPerSec: 100 },
    timestampMs: T0,
    expiresMs: T0 + 60_000,
    ...over,
  };
}

function signed(over: Partial<HolderRecordFields> = {}, key: NodeKey = KEY_A): HolderRecord {
  return signHolderRecord(key, fields(over));
}

const NOW = { nowMs: T0 + 1000, maxSkewMs: 60_000 };

function rejectsWith(fn: () => unknown, code: 'HOLDER_RECORD_MALFORMED' | 'HOLDER_RECORD_TOO_LARGE', field?: string): void {
  assert.throws(fn, (e) => {
    assert.ok(isNeuroShardError(e, code), `expected ${code}, got ${String(e)}`);
    assert.equal(e.fault, 'peer');
    if (field !== undefined) assert.equal(e.meta?.field, field);
    return true;
  });
}

describe('HolderRecord: test vector (docs/PROTOCOL.md "## HolderRecord")', () => {
  it('encodes and signs the documented record exactly', () => {
    const r = signed();
    assert.equal(PEER_A, '16Uiu2HAmEWQnHq2jLKJypwVnVoQeFCULuyop6atvq2eWjYSUjzNi');
    assert.equal(
      Buffer.from(canonicalEncode(r)).toString('hex'),
      '010007746573746e6574003531365569753248416d4557516e4871326a4c4b4a797077566e566f51654643554c75796f7036617476713265576a5953556a7a4e69' +
        '0200172f6970342f3132372e302e302e312f7463702f3930303000542f6970342f3132372e302e302e312f7463702f393030312f77732f7032702f3136556975' +
        '3248416d4557516e4871326a4c4b4a797077566e566f51654643554c75796f7036617476713265576a5953556a7a4e69000000000000000400000800000000640000018bcfe568000000018bcfe65260',
    );
    assert.equal(Buffer.from(signingDigest(HOLDER_RECORD_DOMAIN, canonicalEncode(r))).toString('hex'), '55bc41e6c897ce9cec3533787dc5dff5ac68b2d09f383a683c6601b07e657273');
    assert.equal(r.signature, 'qo0l0+KT25E6hGAUaIPJT3yMZHG7PLbOlTfz/y0feLEY94GxhqY4zBpal+c/Pi/FrvxZnrLiPKMuaXxXrIDtbg==');
    assert.deepEqual(verifyHolderRecord(r, NOW).ok, true);
  });
});

describe('HolderRecord: int8 test vector (docs/PROTOCOL.md "## HolderRecord")', () => {
  it('encodes and signs the documented int8 record exactly', () => {
    const r = signed({ multiaddrs: [], weights: 'int8' });
    assert.equal(
      Buffer.from(canonicalEncode(r)).toString('hex'),
      '020007746573746e6574003531365569753248416d4557516e4871326a4c4b4a797077566e566f51654643554c75796f7036617476713265576a5953556a7a4e69' +
        '0000000000000000040000080000000064010000018bcfe568000000018bcfe65260',
    );
    assert.equal(Buffer.from(signingDigest(HOLDER_RECORD_DOMAIN, canonicalEncode(r))).toString('hex'), '1cf254a856002459c9d63833d4e2ca28827b5a1be3c3ac1720e1c8ad323eb31c');
    assert.equal(r.signature, 'EJ3YHkDyPqBQjxjxwcrGtX2qrEQAiXE5xhpqa+zJdCxkeXsn+rr1tImuhdJHxYWO2weOoc7AitG7NM3FGYML5g==');
  });
});

describe('HolderRecord: signing and verification', () => {
  it('a signed record verifies and returns the signer key', () => {
    const v = verifyHolderRecord(signed(), NOW);
    assert.equal(v.ok, true);
    assert.ok(v.ok && Buffer.from(v.publicKey).equals(Buffer.from(KEY_A.publicKey)));
  });

  it('freshHolderRecord fills in peerId and times', () => {
    const r = freshHolderRecord(KEY_B, { networkId: 'n', multiaddrs: [], span: { start: 2, end: 3 }, capacity: { memoryMb: 1, tokensPerSec: 2 } }, T0, 5000);
    assert.equal(r.peerId, PEER_B);
    assert.equal(r.timestampMs, T0);
    assert.equal(r.expiresMs, T0 + 5000);
    assert.equal(verifyHolderRecord(r, NOW).ok, true);
  });

  it('refuses to sign for a peerId that is not the key', () => {
    rejectsWith(() => signHolderRecord(KEY_B, fields()), 'HOLDER_RECORD_MALFORMED', 'peerId');
  });

  const tampers: [string, (r: HolderRecord) => HolderRecord][] = [
    ['networkId', (r) => ({ ...r, networkId: 'othernet' })],
    ['peerId (another valid key)', (r) => ({ ...r, peerId: PEER_B })],
    ['multiaddrs (changed)', (r) => ({ ...r, multiaddrs: ['/ip4/10.0.0.1/tcp/9000', r.multiaddrs[1]!] })],
    ['multiaddrs (dropped)', (r) => ({ ...r, multiaddrs: r.multiaddrs.slice(0, 1) })],
    ['multiaddrs (reordered)', (r) => ({ ...r, multiaddrs: [...r.multiaddrs].reverse() })],
    ['multiaddrs (added)', (r) => ({ ...r, multiaddrs: [...r.multiaddrs, '/ip4/1.2.3.4/tcp/1'] })],
    ['span.start', (r) => ({ ...r, span: { start: 1, end: r.span.end } })],
    ['span.end', (r) => ({ ...r, span: { start: r.span.start, end: 5 } })],
    ['capacity.memoryMb', (r) => ({ ...r, capacity: { ...r.capacity, memoryMb: 4096 } })],
    ['capacity.tokensPerSec', (r) => ({ ...r, capacity: { ...r.capacity, tokensPerSec: 101 } })],
    ['timestampMs', (r) => ({ ...r, timestampMs: r.timestampMs + 1 })],
    ['expiresMs', (r) => ({ ...r, expiresMs: r.expiresMs + 1 })],
    ['signature (one bit)', (r) => ({ ...r, signature: flipBit(r.signature) })],
  ];
  for (const [name, tamper] of tampers) {
    it(`tampering with ${name} is rejected as bad_signature`, () => {
      const r = tamper(signed({ multiaddrs: ['/ip4/127.0.0.1/tcp/9000', '/ip4/127.0.0.1/tcp/9001/ws'] }));
      // the tampered record is still well-formed: only the signature can catch it
      assert.doesNotThrow(() => parseHolderRecord(JSON.parse(JSON.stringify(r))));
      const v = verifyHolderRecord(r, NOW);
      assert.equal(v.ok, false);
      assert.equal(!v.ok && v.reason, 'bad_signature');
    });
  }

  it('rejects the high-S twin of a valid signature', () => {
    const r = signed();
    const sig = new Uint8Array(Buffer.from(r.signature, 'base64'));
    const twin = { ...r, signature: Buffer.from(malleate(sig)).toString('base64') };
    assert.notEqual(twin.signature, r.signature);
    const v = verifyHolderRecord(twin, NOW);
    assert.equal(!v.ok && v.reason, 'bad_signature');
  });

  it('rejects a record signed by a key other than the one in peerId', () => {
    // B signs a record that claims to be A's (built by hand: signHolderRecord refuses to)
    const byB = signed({ peerId: PEER_B, multiaddrs: ['/ip4/127.0.0.1/tcp/9000'] }, KEY_B);
    const forged = { ...byB, peerId: PEER_A };
    assert.doesNotThrow(() => parseHolderRecord(forged));
    const v = verifyHolderRecord(forged, NOW);
    assert.equal(!v.ok && v.reason, 'bad_signature');
  });

  it('rejects a peerId that is not a secp256k1 key', async () => {
    const ed = await generateKeyPairFromSeed('Ed25519', new Uint8Array(32).fill(7));
    const edId = peerIdFromPrivateKey(ed).toString();
    const r = { ...signed({ multiaddrs: ['/ip4/127.0.0.1/tcp/9000'] }), peerId: edId };
    assert.doesNotThrow(() => parseHolderRecord(r));
    const v = verifyHolderRecord(r, NOW);
    assert.equal(!v.ok && v.reason, 'peer_id_invalid');
  });

  it('checks the clock: expired, from the future, too old; within skew is fine', () => {
    const r = signed();
    const at = (nowMs: number, maxAgeMs?: number) => verifyHolderRecord(r, { nowMs, maxSkewMs: 60_000, maxAgeMs });
    assert.equal(at(T0 + 59_999).ok, true);
    assert.equal(((v) => !v.ok && v.reason)(at(T0 + 60_000)), 'expired');
    assert.equal(at(T0 - 60_000).ok, true, 'signed 60 s ahead of our clock: inside the skew');
    assert.equal(((v) => !v.ok && v.reason)(at(T0 - 60_001)), 'from_future');
    assert.equal(((v) => !v.ok && v.reason)(at(T0 + 30_001, 30_000)), 'too_old');
    assert.equal(at(T0 + 30_000, 30_000).ok, true);
  });

  it('dialAddresses pins every address to the signer', () => {
    const relay = PEER_B;
    const r = signed({ multiaddrs: ['/ip4/127.0.0.1/tcp/9000', `/ip4/127.0.0.1/tcp/9001/ws/p2p/${PEER_A}`, `/ip4/10.0.0.1/tcp/4001/p2p/${relay}/p2p-circuit`] });
    assert.deepEqual(dialAddresses(r), [
      `/ip4/127.0.0.1/tcp/9000/p2p/${PEER_A}`,
      `/ip4/127.0.0.1/tcp/9001/ws/p2p/${PEER_A}`,
      `/ip4/10.0.0.1/tcp/4001/p2p/${relay}/p2p-circuit/p2p/${PEER_A}`,
    ]);
  });

  it('spanCovers is start-inclusive, end-exclusive', () => {
    assert.equal(spanCovers({ start: 2, end: 4 }, 1), false);
    assert.equal(spanCovers({ start: 2, end: 4 }, 2), true);
    assert.equal(spanCovers({ start: 2, end: 4 }, 3), true);
    assert.equal(spanCovers({ start: 2, end: 4 }, 4), false);
  });
});

describe('HolderRecord: strict parsing', () => {
  const good = (): Record<string, unknown> => JSON.parse(serializeHolderRecordJson(signed())) as Record<string, unknown>;

  it('round-trips through JSON text and returns a fresh object', () => {
    const r = signed();
    const text = serializeHolderRecordJson(r);
    const back = parseHolderRecordJson(text);
    assert.deepEqual(back, r);
    const input = good();
    const parsed = parseHolderRecord(input);
    (input.multiaddrs as string[]).push('/ip4/1.1.1.1/tcp/1');
    assert.equal(parsed.multiaddrs.length, 2, 'the parsed record shares nothing with its input');
    assert.deepEqual(Object.keys(holderRecordToJson(r)), ['networkId', 'peerId', 'multiaddrs', 'span', 'capacity', 'timestampMs', 'expiresMs', 'signature']);
  });

  it('rejects unknown fields: nothing secret can ride along', () => {
    rejectsWith(() => parseHolderRecord({ ...good(), node_token: 'secret' }), 'HOLDER_RECORD_MALFORMED', 'record');
    rejectsWith(() => parseHolderRecord({ ...good(), span: { start: 0, end: 4, extra: 1 } }), 'HOLDER_RECORD_MALFORMED', 'span');
    rejectsWith(() => parseHolderRecord({ ...good(), capacity: { memoryMb: 1, tokensPerSec: 1, wallet: 'x' } }), 'HOLDER_RECORD_MALFORMED', 'capacity');
  });

  it('rejects missing fields and non-objects', () => {
    for (const k of Object.keys(good())) {
      const o = good();
      delete o[k];
      rejectsWith(() => parseHolderRecord(o), 'HOLDER_RECORD_MALFORMED');
    }
    for (const v of [null, 1, 'x', [], [good()], new Map()]) rejectsWith(() => parseHolderRecord(v), 'HOLDER_RECORD_MALFORMED');
    rejectsWith(() => parseHolderRecordJson('{'), 'HOLDER_RECORD_MALFORMED');
    rejectsWith(() => parseHolderRecordJson(' '.repeat(HOLDER_RECORD_LIMITS.maxJsonBytes + 1)), 'HOLDER_RECORD_TOO_LARGE');
  });

  it('rejects numbers that are not bounded integers', () => {
    const bad: [string, unknown][] = [
      ['timestampMs', 1.5],
      ['timestampMs', '1700000000000'],
      ['timestampMs', -1],
      ['timestampMs', 2 ** 53],
      ['expiresMs', T0], // not after timestampMs
      ['expiresMs', T0 + HOLDER_RECORD_LIMITS.maxLifetimeMs + 1],
      ['span', { start: -1, end: 4 }],
      ['span', { start: 4, end: 4 }],
      ['span', { start: 5, end: 4 }],
      ['span', { start: 0, end: HOLDER_RECORD_LIMITS.maxLayer + 1 }],
      ['span', { start: 0.5, end: 4 }],
      ['capacity', { memoryMb: -1, tokensPerSec: 0 }],
      ['capacity', { memoryMb: 2 ** 32, tokensPerSec: 0 }],
      ['capacity', { memoryMb: 1, tokensPerSec: Number.NaN }],
      ['capacity', { memoryMb: 1, tokensPerSec: Infinity }],
    ];
    for (const [k, v] of bad) {
      assert.throws(() => parseHolderRecord({ ...good(), [k]: v }), (e) => isNeuroShardError(e, 'HOLDER_RECORD_MALFORMED'), `${k}=${JSON.stringify(v)}`);
    }
  });

  it('rejects bad strings: network id, peer id, multiaddrs, signature', () => {
    rejectsWith(() => parseHolderRecord({ ...good(), networkId: '' }), 'HOLDER_RECORD_MALFORMED', 'networkId');
    rejectsWith(() => parseHolderRecord({ ...good(), networkId: 'a b' }), 'HOLDER_RECORD_MALFORMED', 'networkId');
    rejectsWith(() => parseHolderRecord({ ...good(), networkId: 'n'.repeat(129) }), 'HOLDER_RECORD_TOO_LARGE', 'networkId');
    rejectsWith(() => parseHolderRecord({ ...good(), peerId: '0OIl' }), 'HOLDER_RECORD_MALFORMED', 'peerId');
    rejectsWith(() => parseHolderRecord({ ...good(), peerId: '1'.repeat(129) }), 'HOLDER_RECORD_TOO_LARGE', 'peerId');
    rejectsWith(() => parseHolderRecord({ ...good(), multiaddrs: 'x' }), 'HOLDER_RECORD_MALFORMED', 'multiaddrs');
    rejectsWith(() => parseHolderRecord({ ...good(), multiaddrs: ['not-a-multiaddr'] }), 'HOLDER_RECORD_MALFORMED', 'multiaddrs[0]');
    rejectsWith(() => parseHolderRecord({ ...good(), multiaddrs: ['/ip4/999.0.0.1/tcp/1'] }), 'HOLDER_RECORD_MALFORMED', 'multiaddrs[0]');
    rejectsWith(() => parseHolderRecord({ ...good(), multiaddrs: ['/ip4/1.2.3.4/tcp/1/'] }), 'HOLDER_RECORD_MALFORMED', 'multiaddrs[0]'); // not canonical
    rejectsWith(() => parseHolderRecord({ ...good(), multiaddrs: ['/ip4/1.2.3.4/tcp/1', '/ip4/1.2.3.4/tcp/1'] }), 'HOLDER_RECORD_MALFORMED', 'multiaddrs');
    rejectsWith(() => parseHolderRecord({ ...good(), multiaddrs: [`/ip4/1.2.3.4/tcp/1/p2p/${PEER_B}`] }), 'HOLDER_RECORD_MALFORMED', 'multiaddrs[0]');
    rejectsWith(() => parseHolderRecord({ ...good(), multiaddrs: ['/dns4/' + 'a'.repeat(250) + '/tcp/1'] }), 'HOLDER_RECORD_TOO_LARGE', 'multiaddrs[0]');
    const seventeen = Array.from({ length: 17 }, (_, i) => `/ip4/10.0.0.${i}/tcp/1`);
    rejectsWith(() => parseHolderRecord({ ...good(), multiaddrs: seventeen }), 'HOLDER_RECORD_TOO_LARGE', 'multiaddrs');
    assert.doesNotThrow(() => parseHolderRecord({ ...good(), multiaddrs: seventeen.slice(0, 16) }));
    rejectsWith(() => parseHolderRecord({ ...good(), signature: 'AAAA' }), 'HOLDER_RECORD_MALFORMED', 'signature');
    rejectsWith(() => parseHolderRecord({ ...good(), signature: 'A'.repeat(200) }), 'HOLDER_RECORD_TOO_LARGE', 'signature');
    // the same 64 bytes spelled with stray low bits before the padding: not canonical
    const sig = good().signature as string;
    const last = sig[85]!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const sloppy = sig.slice(0, 85) + alphabet[alphabet.indexOf(last) ^ 1] + '==';
    rejectsWith(() => parseHolderRecord({ ...good(), signature: sloppy }), 'HOLDER_RECORD_MALFORMED', 'signature');
  });
});

describe('HolderRecord: binary codec', () => {
  it('round-trips and is at most maxEncodedBytes at the limits', () => {
    const r = signed();
    assert.deepEqual(decodeHolderRecord(encodeHolderRecord(r)), r);
    const big = signHolderRecord(
      KEY_A,
      fields({
        networkId: 'n'.repeat(128),
        multiaddrs: Array.from({ length: 16 }, (_, i) => `/dns4/${String(i).padStart(2, '0')}${'a'.repeat(238)}/tcp/65535`),
        span: { start: 65_535, end: 65_536 },
        capacity: { memoryMb: 2 ** 32 - 1, tokensPerSec: 2 ** 32 - 1 },
        timestampMs: Number.MAX_SAFE_INTEGER - 10,
        expiresMs: Number.MAX_SAFE_INTEGER,
      }),
    );
    assert.equal(big.multiaddrs[0]!.length, 256);
    const bytes = encodeHolderRecord(big);
    assert.ok(bytes.byteLength <= HOLDER_RECORD_LIMITS.maxEncodedBytes, `${bytes.byteLength} bytes`);
    assert.deepEqual(decodeHolderRecord(bytes), big);
  });

  it('rejects every truncation, trailing bytes, an unknown version and oversized input', () => {
    const bytes = encodeHolderRecord(signed());
    for (let n = 0; n < bytes.byteLength; n++) {
      assert.throws(() => decodeHolderRecord(bytes.subarray(0, n)), (e) => isNeuroShardError(e, 'HOLDER_RECORD_MALFORMED'), `truncated at ${n}`);
    }
    const trailing = new Uint8Array(bytes.byteLength + 1);
    trailing.set(bytes);
    rejectsWith(() => decodeHolderRecord(trailing), 'HOLDER_RECORD_MALFORMED');
    const v3 = new Uint8Array(bytes);
    v3[0] = 3;
    rejectsWith(() => decodeHolderRecord(v3), 'HOLDER_RECORD_MALFORMED', 'version');
    // a float32 record relabelled version 2 reads the timestamp's first byte (0) as its weights byte: not int8
    const v2 = new Uint8Array(bytes);
    v2[0] = 2;
    rejectsWith(() => decodeHolderRecord(v2), 'HOLDER_RECORD_MALFORMED', 'weights');
    rejectsWith(() => decodeHolderRecord(new Uint8Array(HOLDER_RECORD_LIMITS.maxEncodedBytes + 1)), 'HOLDER_RECORD_TOO_LARGE');
  });

  it('a flipped payload byte never verifies (property)', () => {
    const r = signed();
    const bytes = encodeHolderRecord(r);
    const payloadLen = bytes.byteLength - 64;
    fc.assert(
      fc.property(fc.integer({ min: 0, max: payloadLen - 1 }), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const b = new Uint8Array(bytes);
        b[i]! ^= x;
        let rec: HolderRecord;
        try {
          rec = decodeHolderRecord(b);
        } catch (e) {
          return isNeuroShardError(e, 'HOLDER_RECORD_MALFORMED') || isNeuroShardError(e, 'HOLDER_RECORD_TOO_LARGE');
        }
        return !verifyHolderRecord(rec, NOW).ok;
      }),
      { numRuns: 300, seed: 42 },
    );
  });

  it('random well-formed records survive sign → encode → decode → verify (property)', () => {
    const arb = fc.record({
      networkId: fc.stringMatching(/^[A-Za-z0-9._-]{1,40}$/),
      ports: fc.uniqueArray(fc.integer({ min: 1, max: 65535 }), { maxLength: 16 }),
      start: fc.integer({ min: 0, max: 1000 }),
      len: fc.integer({ min: 1, max: 100 }),
      memoryMb: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
      tokensPerSec: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
      ttl: fc.integer({ min: 1, max: HOLDER_RECORD_LIMITS.maxLifetimeMs }),
    });
    fc.assert(
      fc.property(arb, (a) => {
        const r = signHolderRecord(KEY_A, {
          networkId: a.networkId,
          peerId: PEER_A,
          multiaddrs: a.ports.map((p) => `/ip4/127.0.0.1/tcp/${p}`),
          span: { start: a.start, end: a.start + a.len },
          capacity: { memoryMb: a.memoryMb, tokensPerSec: a.tokensPerSec },
          timestampMs: T0,
          expiresMs: T0 + a.ttl,
        });
        const back = decodeHolderRecord(encodeHolderRecord(r));
        assert.deepEqual(back, r);
        assert.deepEqual(parseHolderRecordJson(serializeHolderRecordJson(r)), r);
        return verifyHolderRecord(back, { nowMs: T0, maxSkewMs: 0 }).ok;
      }),
      { numRuns: 40, seed: 7 },
    );
  });
});

function flipBit(b64: string): string {
  const b = Buffer.from(b64, 'base64');
  b[10]! ^= 1;
  return b.toString('base64');
}

describe('HolderRecord: weights format (int8 holders)', () => {
  it('a float32 record is version 1 and byte-identical with or without weights: "f32" (older records mean float32)', () => {
    const plain = signed();
    const f32 = signed({ weights: 'f32' });
    assert.deepEqual(f32, plain);
    assert.equal('weights' in f32, false);
    assert.equal(canonicalEncode(f32)[0], 1);
    assert.equal('weights' in holderRecordToJson(f32), false);
    // a JSON record that spells "f32" out is the same record (the signature covers the binary form)
    assert.deepEqual(parseHolderRecord({ ...holderRecordToJson(plain), weights: 'f32' }), plain);
  });

  it('an int8 record is version 2 with one weights byte after the capacity; it round-trips and verifies', () => {
    const r = signed({ weights: 'int8' });
    assert.equal(r.weights, 'int8');
    const p = canonicalEncode(r);
    const plain = canonicalEncode(signed());
    assert.equal(p[0], 2);
    assert.equal(p.byteLength, plain.byteLength + 1);
    // payloads agree up to the capacity (version byte aside), then the weights byte 1, then the same times
    const capEnd = plain.byteLength - 16;
    assert.deepEqual(p.subarray(1, capEnd), plain.subarray(1, capEnd));
    assert.equal(p[capEnd], 1);
    assert.deepEqual(p.subarray(capEnd + 1), plain.subarray(capEnd));
    assert.deepEqual(decodeHolderRecord(encodeHolderRecord(r)), r);
    assert.deepEqual(parseHolderRecordJson(serializeHolderRecordJson(r)), r);
    assert.equal(JSON.parse(serializeHolderRecordJson(r)).weights, 'int8');
    assert.equal(verifyHolderRecord(r, NOW).ok, true);
    assert.equal(freshHolderRecord(KEY_A, { networkId: 'testnet', multiaddrs: [], span: { start: 0, end: 1 }, capacity: { memoryMb: 1, tokensPerSec: 1 }, weights: 'int8' }, T0, 1000).weights, 'int8');
  });

  it('the format is signed: dropping or adding it breaks the signature', () => {
    const int8 = signed({ weights: 'int8' });
    const { weights: _dropped, ...asF32 } = int8;
    assert.equal(verifyHolderRecord(asF32, NOW).ok, false);
    const f32 = signed();
    const v = verifyHolderRecord({ ...f32, weights: 'int8' }, NOW);
    assert.equal(!v.ok && v.reason, 'bad_signature');
  });

  it('a bad format is a typed peer fault at every boundary (JSON, binary, signing)', () => {
    const json = holderRecordToJson(signed());
    for (const bad of ['int4', 'INT8', '', 8, null, true, { x: 1 }]) rejectsWith(() => parseHolderRecord({ ...json, weights: bad }), 'HOLDER_RECORD_MALFORMED', 'weights');
    rejectsWith(() => signHolderRecord(KEY_A, { ...fields(), weights: 'fp16' as never }), 'HOLDER_RECORD_MALFORMED', 'weights');
    // version 2 with a weights byte other than 1 (0 would be a second encoding of a float32 record)
    const bytes = encodeHolderRecord(signed({ weights: 'int8' }));
    const at = bytes.byteLength - 64 - 17;
    assert.equal(bytes[at], 1);
    for (const x of [0, 2, 255]) {
      const b = new Uint8Array(bytes);
      b[at] = x;
      rejectsWith(() => decodeHolderRecord(b), 'HOLDER_RECORD_MALFORMED', 'weights');
    }
    for (let n = 0; n < bytes.byteLength; n++) assert.throws(() => decodeHolderRecord(bytes.subarray(0, n)), (e) => isNeuroShardError(e, 'HOLDER_RECORD_MALFORMED'));
  });
});

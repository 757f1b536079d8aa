import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import fc from 'fast-check';
import { generateKeyPair, publicKeyFromProtobuf, publicKeyFromRaw, publicKeyToProtobuf } from '@libp2p/crypto/keys';
import { StrictSign } from '@libp2p/gossipsub';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id';
import {
  clearKeyCache,
  encodeDerSignature,
  installFastSecp256k1,
  keyCacheSize,
  keyCacheStats,
  parseDerSignature,
  setFastSecp256k1Paths,
  signSecp256k1,
  signStats,
  uncompressedKey,
  verifySecp256k1,
} from '../../../src/p2p/fast-secp256k1.js';
import { libsecp256k1 } from '../../../src/util/libsecp256k1.js';

function noble(pub: Uint8Array, msg: Uint8Array, sig: Uint8Array): boolean {
  try {
    return secp256k1.verify(sig, createHash('sha256').update(msg).digest(), pub, { prehash: false, format: 'der' });
  } catch {
    return false;
  }
}

const backends = libsecp256k1 !== undefined ? (['libsecp256k1', 'openssl'] as const) : (['openssl'] as const);

describe('fast secp256k1 verify agrees with @noble/curves', () => {
  const sk = secp256k1.utils.randomSecretKey();
  const pub = secp256k1.getPublicKey(sk, true);

  for (const backend of backends) {
  it(`${backend}: accepts valid signatures and rejects tampered, high-S and garbage ones exactly as noble does`, () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 200 }), fc.nat(80), (msg, flip) => {
        const digest = createHash('sha256').update(msg).digest();
        const der = secp256k1.sign(digest, sk, { prehash: false, format: 'der' });
        assert.equal(verifySecp256k1(pub, msg, der, backend), true);
        assert.equal(noble(pub, msg, der), true);
        const s = secp256k1.Signature.fromBytes(der, 'der');
        const high = new secp256k1.Signature(s.r, secp256k1.Point.Fn.ORDER - s.s).toBytes('der');
        assert.equal(verifySecp256k1(pub, msg, high, backend), false, 'high-S rejected');
        assert.equal(noble(pub, msg, high), false);
        const bad = der.slice();
        bad[flip % bad.length]! ^= 0x01;
        assert.equal(verifySecp256k1(pub, msg, bad, backend), noble(pub, msg, bad));
        const other = Uint8Array.of(...msg, 1);
        assert.equal(verifySecp256k1(pub, other, der, backend), false);
        const wrongKey = secp256k1.getPublicKey(secp256k1.utils.randomSecretKey(), true);
        assert.equal(verifySecp256k1(wrongKey, msg, der, backend), false);
      }),
      { numRuns: 50 },
    );
  });

  it(`${backend}: hashes iterable messages (Uint8ArrayList parts) like a single buffer; r or s out of range fails`, () => {
    const msg = Uint8Array.of(1, 2, 3, 4, 5);
    const der = secp256k1.sign(createHash('sha256').update(msg).digest(), sk, { prehash: false, format: 'der' });
    assert.equal(verifySecp256k1(pub, [msg.subarray(0, 2), msg.subarray(2)], der, backend), true);
    const s = secp256k1.Signature.fromBytes(der, 'der');
    const n = secp256k1.Point.Fn.ORDER;
    assert.equal(verifySecp256k1(pub, msg, encodeDerSignature(s.r + n, s.s), backend), false, 'r >= n');
    assert.equal(verifySecp256k1(pub, msg, encodeDerSignature(0n, s.s), backend), false, 'r = 0');
    assert.equal(verifySecp256k1(Uint8Array.of(2, ...new Uint8Array(32).fill(0xff)), msg, der, backend), false, 'x >= p');
  });
  }

  it('parses only strict DER', () => {
    assert.equal(parseDerSignature(Uint8Array.of(0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01))?.s, 1n);
    assert.equal(parseDerSignature(Uint8Array.of(0x30, 0x07, 0x02, 0x02, 0x00, 0x01, 0x02, 0x01, 0x01)), undefined, 'non-minimal');
    assert.equal(parseDerSignature(Uint8Array.of(0x30, 0x06, 0x02, 0x01, 0x81, 0x02, 0x01, 0x01)), undefined, 'negative');
    assert.equal(parseDerSignature(new Uint8Array(80)), undefined);
  });
});

// gossipsub's own per-message code (not in its package exports): the parse and checks every delivered message takes
type RawMessage = { from?: Uint8Array; data?: Uint8Array; seqno?: Uint8Array; topic: string; signature?: Uint8Array; key?: Uint8Array };
type Validated = { valid: true; message: { key: { raw: Uint8Array } } } | { valid: false; error: string };
const gossipDir = import.meta.resolve('@libp2p/gossipsub');
const { buildRawMessage, validateToRawMessage } = (await import(new URL('./utils/buildRawMessage.js', gossipDir).href)) as {
  buildRawMessage: (config: unknown, topic: string, data: Uint8Array, transformed: Uint8Array) => Promise<{ raw: RawMessage }>;
  validateToRawMessage: (policy: string, msg: RawMessage) => Promise<Validated>;
};
const { getPublishConfigFromPeerId } = (await import(new URL('./utils/publishConfig.js', gossipDir).href)) as {
  getPublishConfigFromPeerId: (policy: string, peerId: unknown, key: PrivateKey) => unknown;
};

async function signedMessage(key: PrivateKey, data: Uint8Array): Promise<RawMessage> {
  return (await buildRawMessage(getPublishConfigFromPeerId(StrictSign, peerIdFromPrivateKey(key), key), 'hb', data, data)).raw;
}

describe('installed on libp2p: one decompression per signer, the same checks', () => {
  it('installs all three parts here', async () => {
    assert.deepEqual(await installFastSecp256k1(), { verify: true, keyCache: true, sign: true });
  });

  it("gossipsub's StrictSign validation of 20 messages from one signer decompresses its key once", async () => {
    await installFastSecp256k1();
    const signer = await generateKeyPair('secp256k1');
    const msgs = [];
    for (let i = 0; i < 20; i++) msgs.push(await signedMessage(signer, Uint8Array.of(i, 1, 2)));
    clearKeyCache();
    for (const m of msgs) {
      const r = await validateToRawMessage(StrictSign, m);
      assert.equal(r.valid, true);
      if (r.valid) assert.deepEqual(r.message.key.raw, signer.publicKey.raw);
    }
    // per message: the `from` peer id and the `key` field are parsed, and libsecp256k1's verify takes the point
    const verifyLooks = libsecp256k1 !== undefined ? 1 : 0;
    assert.equal(keyCacheStats.decompressions, 1);
    assert.equal(keyCacheStats.hits, 20 * (2 + verifyLooks) - 1);
    // the old path (hook off) decompresses again on every parse
    setFastSecp256k1Paths({ keyCache: false });
    try {
      const before = keyCacheStats.decompressions + keyCacheStats.hits;
      assert.equal((await validateToRawMessage(StrictSign, msgs[0]!)).valid, true);
      assert.equal(keyCacheStats.decompressions + keyCacheStats.hits, before + verifyLooks, 'only verify looked the key up');
    } finally {
      setFastSecp256k1Paths({ keyCache: true });
    }
  });

  it('a tampered message, a wrong key or a wrong signer is still rejected once the key is cached', async () => {
    await installFastSecp256k1();
    const signer = await generateKeyPair('secp256k1');
    const other = await generateKeyPair('secp256k1');
    const m = await signedMessage(signer, Uint8Array.of(7, 7, 7));
    const o = await signedMessage(other, Uint8Array.of(7, 7, 7));
    assert.equal((await validateToRawMessage(StrictSign, m)).valid, true);
    assert.equal((await validateToRawMessage(StrictSign, o)).valid, true);
    const hits = keyCacheStats.hits;
    assert.deepEqual(await validateToRawMessage(StrictSign, { ...m, data: Uint8Array.of(7, 7, 8) }), { valid: false, error: 'invalid_signature' });
    assert.deepEqual(await validateToRawMessage(StrictSign, { ...m, seqno: o.seqno! }), { valid: false, error: 'invalid_signature' });
    // the other signer's valid (cached) key under this signer's id, and the other way round
    assert.deepEqual(await validateToRawMessage(StrictSign, { ...m, key: o.key! }), { valid: false, error: 'invalid_peerid' });
    assert.deepEqual(await validateToRawMessage(StrictSign, { ...o, signature: m.signature! }), { valid: false, error: 'invalid_signature' });
    // this signer's id and key with the other's signature over the same fields
    assert.deepEqual(await validateToRawMessage(StrictSign, { ...m, signature: (await signedMessage(other, Uint8Array.of(7, 7, 7))).signature! }), { valid: false, error: 'invalid_signature' });
    // a key one byte off: another point or none, never the cached one
    const key = m.key!.slice();
    key[key.length - 1]! ^= 1;
    assert.deepEqual(await validateToRawMessage(StrictSign, { ...m, key }), { valid: false, error: 'invalid_peerid' });
    assert.ok(keyCacheStats.hits > hits, 'the rejections above ran on cached keys');
  });

  it('keys that are not points are not cached and fail as before; x >= p is not a key', async () => {
    await installFastSecp256k1();
    clearKeyCache();
    const notPoint = Uint8Array.of(2, ...new Uint8Array(32).fill(0xff)); // x >= p
    assert.throws(() => publicKeyFromRaw(notPoint), /InvalidPublicKey|Point|invalid/i);
    let offCurve: Uint8Array | undefined;
    for (let x = 1; offCurve === undefined; x++) {
      const c = Uint8Array.of(2, ...new Uint8Array(31), x);
      try {
        secp256k1.Point.fromBytes(c);
      } catch {
        offCurve = c;
      }
    }
    assert.throws(() => publicKeyFromRaw(offCurve));
    assert.throws(() => publicKeyFromProtobuf(Uint8Array.of(8, 2, 18, 33, ...offCurve)));
    assert.throws(() => publicKeyFromProtobuf(Uint8Array.of(8, 2, 18, 33, ...notPoint)));
    assert.equal(uncompressedKey(offCurve), undefined);
    assert.equal(keyCacheSize(), 0);
    assert.equal(keyCacheStats.invalid, 3, 'both protobuf parses and the direct lookup were refused');
  });

  it("an entry is its own key's point, copies go out, and the cache stays bounded under fresh keys", async () => {
    await installFastSecp256k1();
    clearKeyCache();
    const a = (await generateKeyPair('secp256k1')).publicKey;
    const pa = publicKeyFromProtobuf(publicKeyToProtobuf(a));
    const id = peerIdFromString(peerIdFromPrivateKey(await generateKeyPair('secp256k1')).toString());
    assert.equal(id.type, 'secp256k1');
    assert.deepEqual(pa.raw, a.raw);
    assert.equal(pa.equals(a), true);
    assert.deepEqual(pa.toMultihash().bytes, a.toMultihash().bytes);
    // a key object's own array is a copy: writing into it changes no later parse
    ((pa as unknown as { _key: Uint8Array })._key).fill(0);
    assert.deepEqual(publicKeyFromProtobuf(publicKeyToProtobuf(a)).raw, a.raw);
    assert.deepEqual(uncompressedKey(a.raw), secp256k1.Point.fromBytes(a.raw).toBytes(false));
    // 5,000 fresh valid keys: the cache keeps at most 4,096, and `a`'s entry, evicted or not, is a's point
    for (let i = 0; i < 5000; i++) uncompressedKey(secp256k1.getPublicKey(secp256k1.utils.randomSecretKey(), true));
    assert.equal(keyCacheSize(), 4096);
    assert.deepEqual(uncompressedKey(a.raw), secp256k1.Point.fromBytes(a.raw).toBytes(false));
  });
});

describe('signing libp2p messages', () => {
  const sk = secp256k1.utils.randomSecretKey();
  const pub = secp256k1.getPublicKey(sk, true);

  it('libsecp256k1 signs the same DER bytes as noble (RFC 6979)', { skip: libsecp256k1 === undefined }, () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 300 }), (msg) => {
        const der = signSecp256k1(sk, msg, 'libsecp256k1');
        assert.deepEqual(der, secp256k1.sign(createHash('sha256').update(msg).digest(), sk, { prehash: false, format: 'der' }));
      }),
      { numRuns: 50 },
    );
  });

  it('OpenSSL (random nonce): 200 signatures of one message all verify under noble and all are low-S', () => {
    const msg = Buffer.from('one heartbeat');
    const digest = createHash('sha256').update(msg).digest();
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const der = signSecp256k1(sk, msg, 'openssl');
      seen.add(Buffer.from(der).toString('hex'));
      assert.ok(parseDerSignature(der)!.s <= secp256k1.Point.Fn.ORDER >> 1n, 'low-S');
      assert.equal(secp256k1.verify(der, digest, pub, { prehash: false, format: 'der' }), true);
      assert.equal(verifySecp256k1(pub, msg, der), true);
    }
    assert.equal(seen.size, 200, 'a fresh nonce each time');
  });

  it("libp2p's key signs through the installed path; noble accepts it; an aborted signal still throws", async () => {
    await installFastSecp256k1();
    const key = await generateKeyPair('secp256k1');
    const msg = Buffer.from('gossip');
    const signs = signStats.fast;
    const der = (await key.sign(msg)) as Uint8Array;
    assert.equal(signStats.fast, signs + 1);
    // libsecp256k1 is deterministic: the same bytes as a direct call (OpenSSL's nonce is random)
    if (libsecp256k1 !== undefined) assert.deepEqual(der, signSecp256k1(key.raw, msg));
    setFastSecp256k1Paths({ sign: false });
    try {
      // noble, the old path: RFC 6979 too, so with libsecp256k1 the same bytes
      const old = (await key.sign(msg)) as Uint8Array;
      assert.equal(signStats.fast, signs + 1, 'noble signed this one');
      if (libsecp256k1 !== undefined) assert.deepEqual(old, der);
    } finally {
      setFastSecp256k1Paths({ sign: true });
    }
    assert.equal(secp256k1.verify(der, createHash('sha256').update(msg).digest(), key.publicKey.raw, { prehash: false, format: 'der' }), true);
    assert.equal(await key.publicKey.verify(msg, der), true);
    assert.throws(() => key.sign(msg, { signal: AbortSignal.abort() }));
  });
});

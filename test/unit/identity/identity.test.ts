import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HDKey } from '@scure/bip32';
import { mnemonicToSeedSync } from '@scure/bip39';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import {
  addressFromPublicKey,
  generateMnemonic,
  isLowS,
  keyFromMnemonic,
  libp2pPrivateKey,
  malleate,
  parseAddress,
  peerIdFromPublicKey,
  publicKeyFromPeerId,
  signDomain,
  signingDigest,
  verifyDomain,
  accountIdFromPublicKey,
} from '../../../src/identity/index.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { toHex, fromHex } from '../../../src/util/bytes.js';

const enc = new TextEncoder();

/** The vectors published in docs/PROTOCOL.md "## Identity". Signatures: domain "neuroshard/test/v1", payload "hello". */
const VECTORS = [
  {
    mnemonic: 'abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon art',
    privateKey: 'b88571c00e471ec67e8273b1e483115de12deade667efb559e14e39dc1b833cd',
    publicKey: '02a3185516f41435c1bcfb309c9450446b23ff973222cd5806b2cbea7f4c3a88f8',
    peerId: '16Uiu2HAm6QKxJv2Ey5GccUp3Sb3Um4qqvgZr5qtEcSTRV1hfh2UP',
    address: 'neuro1p3sxareuk6ynkkmtw2qnm4ku66lt88kanugyf3',
    sig: 'f80acc83385672b74af63b7a3497458b8dfc285c30517b16504be0187feec38e2fc780af153f470844ddbc9fd05eedd813fea3789713081dfc2165e61e0b5781',
  },
  {
    mnemonic: 'legal winner thank year wave sausage worth useful legal winner thank year wave sausage worth useful legal winner thank year wave sausage worth title',
    privateKey: 'ad02cf5392577b1b05eefaa75f46cafdd0ac09d9c627f7fd96f5651ae5d6ea4d',
    publicKey: '02dd59779e6fa9299e31658d78e7a213866956f6e5d5ecb0f80245c36910e4dc93',
    peerId: '16Uiu2HAmAKjCvwRaHMbRzDEfXRhKiogfUbTrRVzxrLkzt756N1a2',
    address: 'neuro1m4utyqp5ldwqf6xu4t2uhz9tgj4r0p0r247udz',
    sig: '12e03d1d392f1c902dd163f54701f6861f7fffaaeaa6da624c3c9f71e1b3371739524e1306bce130ea4179fce1e58e2122e9985b21c6b6fffa043bc0cbdb1f10',
  },
  {
    mnemonic: 'zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo wrong',
    privateKey: 'e9c62a21b7e088ea790c8c373fe5f647d8510ae763823e9e5672a1711b7f56b6',
    publicKey: '02388ce8f4901440e89b5ba7ad210ed12e7589918a72e11e6aab9a240795406972',
    peerId: '16Uiu2HAkyERS3SoxKqT3LbLduv6bhosLC7Vr4MNPpykRWix1gWvd',
    address: 'neuro1aunrmgfvp8ral0vqdvqd6mz3mm7qw85pch5tn6',
    sig: '42768757e507b08d29777b0195df0c0923e6243e900fa333863714221cd642fb3b3d9a1ae440c416e7bdeae576ba726932c77c1ab9664fd2a824b85808204bad',
  },
];

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (isNeuroShardError(e)) return e.code;
    throw e;
  }
  return 'no error';
}

describe('identity: mnemonic and derivation', () => {
  it('generates 24-word mnemonics that derive valid, distinct keys', () => {
    const a = generateMnemonic();
    const b = generateMnemonic();
    assert.equal(a.split(' ').length, 24);
    assert.notEqual(a, b);
    const ka = keyFromMnemonic(a);
    assert.equal(ka.privateKey.byteLength, 32);
    assert.equal(ka.publicKey.byteLength, 33);
    assert.notDeepEqual(ka.publicKey, keyFromMnemonic(b).publicKey);
  });

  for (const v of VECTORS) {
    it(`matches the published vector for "${v.mnemonic.slice(0, 24)}…"`, () => {
      const k = keyFromMnemonic(v.mnemonic);
      assert.equal(toHex(k.privateKey), v.privateKey);
      assert.equal(toHex(k.publicKey), v.publicKey);
      assert.equal(peerIdFromPublicKey(k.publicKey), v.peerId);
      assert.equal(addressFromPublicKey(k.publicKey), v.address);
      assert.equal(toHex(signDomain(k, 'neuroshard/test/v1', enc.encode('hello'))), v.sig);
    });
  }

  it('uses BIP32 exactly as other wallets do (Ethereum path cross-check of the same library call)', () => {
    // The well-known vector: "abandon … about" at m/44'/60'/0'/0/0 is Ethereum address 0x9858EfFD…
    const m = 'abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about';
    const k = HDKey.fromMasterSeed(mnemonicToSeedSync(m, '')).derive("m/44'/60'/0'/0/0");
    const up = secp256k1.getPublicKey(k.privateKey!, false);
    assert.equal(toHex(keccak_256(up.subarray(1)).subarray(12)), '9858effd232b4033e47d90003d41ec34ecaeda94');
  });

  it('normalises spacing and case but rejects a wrong word or checksum', () => {
    const v = VECTORS[1]!;
    assert.deepEqual(keyFromMnemonic('  ' + v.mnemonic.toUpperCase().replace(/ /g, '   ') + '\n').publicKey, fromHex(v.publicKey));
    assert.equal(code(() => keyFromMnemonic(v.mnemonic.replace('title', 'zoo'))), 'MNEMONIC_INVALID');
    assert.equal(code(() => keyFromMnemonic(v.mnemonic.replace('legal', 'legall'))), 'MNEMONIC_INVALID');
    assert.equal(code(() => keyFromMnemonic('abandon abandon')), 'MNEMONIC_INVALID');
    assert.equal(code(() => keyFromMnemonic('')), 'MNEMONIC_INVALID');
  });
});

describe('identity: domain signatures', () => {
  const key = keyFromMnemonic(VECTORS[0]!.mnemonic);
  const payload = enc.encode('a payload');

  it('produces 64-byte low-S signatures that verify', () => {
    for (let i = 0; i < 50; i++) {
      const p = enc.encode(`message ${i}`);
      const sig = signDomain(key, 'neuroshard/test/v1', p);
      assert.equal(sig.byteLength, 64);
      assert.ok(isLowS(sig));
      assert.ok(verifyDomain(key.publicKey, 'neuroshard/test/v1', p, sig));
    }
  });

  it('rejects the malleated high-S twin, although plain ECDSA accepts it', () => {
    const sig = signDomain(key, 'neuroshard/test/v1', payload);
    const high = malleate(sig);
    assert.notDeepEqual(high, sig);
    // the twin is a valid ECDSA signature of the same digest: that is the attack
    assert.ok(secp256k1.verify(high, signingDigest('neuroshard/test/v1', payload), key.publicKey, { prehash: false, lowS: false }));
    assert.equal(isLowS(high), false);
    assert.equal(verifyDomain(key.publicKey, 'neuroshard/test/v1', payload, high), false);
  });

  it('separates domains, payloads and keys', () => {
    const sig = signDomain(key, 'neuroshard/a/v1', payload);
    assert.equal(verifyDomain(key.publicKey, 'neuroshard/b/v1', payload, sig), false);
    // "domain || 0 || payload" is unambiguous: moving a byte across the boundary changes the digest
    assert.equal(verifyDomain(key.publicKey, 'neuroshard/a/v', concat(enc.encode('1'), payload), sig), false);
    const other = keyFromMnemonic(VECTORS[1]!.mnemonic);
    assert.equal(verifyDomain(other.publicKey, 'neuroshard/a/v1', payload, sig), false);
    const bad = Uint8Array.from(payload);
    bad[0] ^= 1;
    assert.equal(verifyDomain(key.publicKey, 'neuroshard/a/v1', bad, sig), false);
  });

  it('returns false for malformed keys and signatures instead of throwing', () => {
    const sig = signDomain(key, 'neuroshard/test/v1', payload);
    assert.equal(verifyDomain(new Uint8Array(33), 'neuroshard/test/v1', payload, sig), false);
    assert.equal(verifyDomain(key.publicKey.subarray(0, 32), 'neuroshard/test/v1', payload, sig), false);
    assert.equal(verifyDomain(key.publicKey, 'neuroshard/test/v1', payload, sig.subarray(0, 63)), false);
    assert.equal(verifyDomain(key.publicKey, 'neuroshard/test/v1', payload, new Uint8Array(64)), false);
    const rHigh = Uint8Array.from(sig);
    rHigh.fill(0xff, 0, 32); // r >= n
    assert.equal(verifyDomain(key.publicKey, 'neuroshard/test/v1', payload, rHigh), false);
    const notOnCurve = Uint8Array.from(key.publicKey);
    notOnCurve[0] = 0x05;
    assert.equal(verifyDomain(notOnCurve, 'neuroshard/test/v1', payload, sig), false);
  });

  it('rejects a domain with spaces or NUL', () => {
    assert.equal(code(() => signDomain(key, 'bad domain', payload)), 'INVALID_ARGUMENT');
    assert.equal(code(() => signDomain(key, 'bad\0domain', payload)), 'INVALID_ARGUMENT');
  });
});

describe('identity: PeerId', () => {
  it('equals the PeerId libp2p derives from the same private key', () => {
    for (const v of VECTORS) {
      const k = keyFromMnemonic(v.mnemonic);
      assert.equal(peerIdFromPrivateKey(libp2pPrivateKey(k)).toString(), peerIdFromPublicKey(k.publicKey));
    }
  });

  it('round-trips through publicKeyFromPeerId', () => {
    const k = keyFromMnemonic(generateMnemonic());
    assert.deepEqual(publicKeyFromPeerId(peerIdFromPublicKey(k.publicKey)), k.publicKey);
  });

  it('rejects Ed25519 ids and malformed ids with typed errors', async () => {
    const ed = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString();
    assert.equal(code(() => publicKeyFromPeerId(ed)), 'PEER_ID_NOT_SECP256K1');
    assert.equal(code(() => publicKeyFromPeerId('16Uiu2HAm-not-a-peer-id')), 'PEER_ID_INVALID');
    assert.equal(code(() => publicKeyFromPeerId('')), 'PEER_ID_INVALID');
    assert.equal(code(() => publicKeyFromPeerId('x'.repeat(500))), 'PEER_ID_INVALID');
    const good = VECTORS[0]!.peerId;
    assert.equal(code(() => publicKeyFromPeerId(good.slice(0, -1))), 'PEER_ID_INVALID');
  });
});

describe('identity: addresses', () => {
  const v = VECTORS[0]!;
  it('parses its own addresses back to the account id', () => {
    assert.deepEqual(parseAddress(v.address), accountIdFromPublicKey(fromHex(v.publicKey)));
    assert.deepEqual(parseAddress(v.address.toUpperCase()), parseAddress(v.address));
  });

  it('rejects every single-character typo', () => {
    const alphabet = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
    let rejected = 0;
    for (let i = 6; i < v.address.length; i++) {
      for (const c of alphabet) {
        if (c === v.address[i]) continue;
        const typo = v.address.slice(0, i) + c + v.address.slice(i + 1);
        assert.equal(code(() => parseAddress(typo)), 'ADDRESS_INVALID', typo);
        rejected++;
      }
    }
    assert.equal(rejected, (v.address.length - 6) * 31);
  });

  it('rejects other prefixes, lengths, mixed case and bech32 (not bech32m)', () => {
    assert.equal(code(() => parseAddress('bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq')), 'ADDRESS_INVALID');
    assert.equal(code(() => parseAddress(v.address + 'q')), 'ADDRESS_INVALID');
    assert.equal(code(() => parseAddress(v.address.slice(0, 10) + v.address.slice(10).toUpperCase())), 'ADDRESS_INVALID');
    assert.equal(code(() => parseAddress('')), 'ADDRESS_INVALID');
  });
});

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const o = new Uint8Array(a.length + b.length);
  o.set(a);
  o.set(b, a.length);
  return o;
}

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { keyFromPrivate, peerIdFromPublicKey } from '../../../src/identity/index.js';
import { holderRecordNamespace } from '../../../src/protocols/dht-records.js';
import { encodeHolderRecord, freshHolderRecord, type HolderRecord } from '../../../src/protocols/holder-record.js';
import { heartbeatTopic, holderKey, layerContentKey, parseDhtKey, protocolId } from '../../../src/protocols/ids.js';
import { ManualClock } from '../../../src/util/clock.js';
import { isNeuroShardError } from '../../../src/util/errors.js';

const NET = 'net1';
const T0 = 1_800_000_000_000;

function holder(clock: ManualClock, over: Partial<{ networkId: string; ttl: number; start: number; addr: string }> = {}): { rec: HolderRecord; peerId: string; key: ReturnType<typeof keyFromPrivate> } {
  const key = keyFromPrivate(randomBytes(32));
  const rec = freshHolderRecord(
    key,
    { networkId: over.networkId ?? NET, multiaddrs: [over.addr ?? '/ip4/127.0.0.1/tcp/9000'], span: { start: over.start ?? 0, end: 4 }, capacity: { memoryMb: 100, tokensPerSec: 5 } },
    clock.now(),
    over.ttl ?? 60_000,
  );
  return { rec, peerId: peerIdFromPublicKey(key.publicKey), key };
}

describe('names on the wire carry the network id', () => {
  it('protocols, topics, DHT keys and provider keys', () => {
    assert.equal(protocolId(NET, 'echo'), '/neuroshard/net1/echo/1.0.0');
    assert.equal(heartbeatTopic(NET), '/neuroshard/net1/heartbeat/1');
    assert.equal(new TextDecoder().decode(holderKey(NET, 'P')), '/neuroshard/net1/holder/P');
    assert.equal(new TextDecoder().decode(layerContentKey(NET, 3)), 'net1/layer/3');
    assert.deepEqual(parseDhtKey(holderKey(NET, 'P')), { networkId: NET, kind: 'holder', subject: 'P' });
    assert.equal(parseDhtKey(new TextEncoder().encode('/pk/abc')), undefined);
    assert.equal(parseDhtKey(Uint8Array.of(0x2f, 0xff, 0xfe)), undefined);
    assert.throws(() => protocolId('bad/id', 'echo'));
    assert.throws(() => protocolId(NET, 'Echo'));
  });
});

describe('DHT holder-record validator and selector', () => {
  const clock = new ManualClock(T0);
  const ns = holderRecordNamespace({ networkId: NET, clock, maxSkewMs: 5000 });

  it('accepts a signed record under its own key', async () => {
    const { rec, peerId } = holder(clock);
    await ns.validate(holderKey(NET, peerId), encodeHolderRecord(rec));
  });

  it('rejects mis-keyed, forged, expired, future, foreign-network and unsigned records', () => {
    const a = holder(clock);
    const b = holder(clock);
    const expect = (key: Uint8Array, value: Uint8Array, code: string): void => {
      assert.throws(() => ns.validate(key, value), (e: unknown) => isNeuroShardError(e) && e.code === code && e.fault === 'peer', code);
    };
    // a's record stored under b's key
    expect(holderKey(NET, b.peerId), encodeHolderRecord(a.rec), 'DHT_MISKEYED');
    // b's fields with a's signature: forged
    const forged = { ...b.rec, signature: a.rec.signature };
    expect(holderKey(NET, b.peerId), encodeHolderRecord(forged), 'DHT_RECORD_FORGED');
    // tampered span
    expect(holderKey(NET, a.peerId), encodeHolderRecord({ ...a.rec, span: { start: 0, end: 9 } }), 'DHT_RECORD_FORGED');
    // unsigned: the bytes without the signature
    const bytes = encodeHolderRecord(a.rec);
    expect(holderKey(NET, a.peerId), bytes.subarray(0, bytes.length - 64), 'HOLDER_RECORD_MALFORMED');
    // wrong network in the key, and in the record
    expect(holderKey('net2', a.peerId), bytes, 'DHT_WRONG_NETWORK');
    const other = holder(clock, { networkId: 'net2' });
    expect(holderKey(NET, other.peerId), encodeHolderRecord(other.rec), 'DHT_WRONG_NETWORK');
    // unknown kind
    expect(new TextEncoder().encode(`/neuroshard/${NET}/other/${a.peerId}`), bytes, 'DHT_KEY_UNKNOWN');
    // expiry and the future
    const later = new ManualClock(T0 + 61_000);
    assert.throws(() => holderRecordNamespace({ networkId: NET, clock: later }).validate(holderKey(NET, a.peerId), bytes), (e: unknown) => isNeuroShardError(e, 'DHT_RECORD_EXPIRED'));
    const early = new ManualClock(T0 - 10_000);
    assert.throws(() => holderRecordNamespace({ networkId: NET, clock: early, maxSkewMs: 5000 }).validate(holderKey(NET, a.peerId), bytes), (e: unknown) => isNeuroShardError(e, 'DHT_RECORD_INVALID'));
  });

  it('selects the freshest valid record and never an invalid one', () => {
    const { key: nodeKey, peerId } = holder(clock);
    const older = encodeHolderRecord(freshHolderRecord(nodeKey, { networkId: NET, multiaddrs: [], span: { start: 0, end: 1 }, capacity: { memoryMb: 1, tokensPerSec: 1 } }, T0 - 1000, 60_000));
    const newer = encodeHolderRecord(freshHolderRecord(nodeKey, { networkId: NET, multiaddrs: [], span: { start: 0, end: 2 }, capacity: { memoryMb: 1, tokensPerSec: 1 } }, T0, 60_000));
    const junk = Uint8Array.of(1, 2, 3);
    const k = holderKey(NET, peerId);
    assert.equal(ns.select(k, [older, newer]), 1);
    assert.equal(ns.select(k, [newer, older]), 0);
    assert.equal(ns.select(k, [junk, older]), 1);
  });
});

describe('DHT holder records: per-address-block quota (issue 12, Sybil side)', () => {
  it('records of at most perBlock peers of one /24 at a time; a refresh, another block and an expired place pass', async () => {
    const clock = new ManualClock(T0);
    const ns = holderRecordNamespace({ networkId: NET, clock, perBlock: 3 });
    const flood = Array.from({ length: 5 }, (_, i) => holder(clock, { addr: `/ip4/203.0.113.${i + 1}/tcp/9000`, ttl: 60_000 }));
    for (const f of flood.slice(0, 3)) await ns.validate(holderKey(NET, f.peerId), encodeHolderRecord(f.rec));
    const over = flood[3]!;
    assert.throws(
      () => ns.validate(holderKey(NET, over.peerId), encodeHolderRecord(over.rec)),
      (e: unknown) => isNeuroShardError(e, 'DHT_BLOCK_QUOTA') && e.fault === 'local',
      'a fourth key of the block: refused, and no misbehaviour of the peer that passed it on',
    );
    // ... and never selected: beside an undecodable value it is not picked (index 0 is kad-dht's "none valid")
    assert.equal(ns.select(holderKey(NET, over.peerId), [Uint8Array.of(1, 2, 3), encodeHolderRecord(over.rec)]), 0);
    const fresh = holderRecordNamespace({ networkId: NET, clock, perBlock: 3 });
    assert.equal(fresh.select(holderKey(NET, over.peerId), [Uint8Array.of(1, 2, 3), encodeHolderRecord(over.rec)]), 1, 'with room in the block it is');
    // a refreshed record of a counted peer, and a peer of another block
    const first = flood[0]!;
    await ns.validate(holderKey(NET, first.peerId), encodeHolderRecord(freshHolderRecord(first.key, { networkId: NET, multiaddrs: ['/ip4/203.0.113.1/tcp/9000'], span: { start: 0, end: 2 }, capacity: { memoryMb: 1, tokensPerSec: 1 } }, clock.now(), 60_000)));
    const honest = holder(clock, { addr: '/ip4/192.0.2.10/tcp/9000' });
    await ns.validate(holderKey(NET, honest.peerId), encodeHolderRecord(honest.rec));
    // the flood's records expire (the first peer's refresh too): the places are free again
    clock.advance(61_000);
    const later = holder(clock, { addr: '/ip4/203.0.113.99/tcp/9000' });
    await ns.validate(holderKey(NET, later.peerId), encodeHolderRecord(later.rec));
  });
});


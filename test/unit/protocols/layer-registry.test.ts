import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { keyFromPrivate, peerIdFromPublicKey, type NodeKey } from '../../../src/identity/index.js';
import { MemoryHub, type MemoryNetwork } from '../../../src/p2p/memory.js';
import { holderRecordNamespace } from '../../../src/protocols/dht-records.js';
import { encodeHolderRecord, freshHolderRecord } from '../../../src/protocols/holder-record.js';
import { DHT_NAMESPACE, holderKey, layerContentKey } from '../../../src/protocols/ids.js';
import { LayerRegistry } from '../../../src/protocols/layer-registry.js';
import { ManualClock } from '../../../src/util/clock.js';

const NET = 'net1';

async function setup(n: number, clock: ManualClock, dead = new Set<string>()): Promise<{ hub: MemoryHub; nodes: { net: MemoryNetwork; reg: LayerRegistry; key: NodeKey }[] }> {
  const hub = new MemoryHub({ [DHT_NAMESPACE]: holderRecordNamespace({ networkId: NET, clock }) });
  const nodes = [];
  for (let i = 0; i < n; i++) {
    const key = keyFromPrivate(randomBytes(32));
    const net = hub.createNode(peerIdFromPublicKey(key.publicKey));
    await net.start();
    const reg = new LayerRegistry({
      network: net,
      networkId: NET,
      key,
      self: () => ({ multiaddrs: [`/ip4/127.0.0.1/tcp/${9000 + i}`], capacity: { memoryMb: 1000, tokensPerSec: 10 } }),
      isDead: (p) => dead.has(p),
      recordTtlMs: 60_000,
      republishMs: 20_000,
      cacheMs: 0,
      clock,
    });
    nodes.push({ net, reg, key });
  }
  return { hub, nodes };
}

describe('LayerRegistry', () => {
  it('answers "who holds layer i" from provider entries and signed records', async () => {
    const clock = new ManualClock(1_800_000_000_000);
    const { nodes } = await setup(3, clock);
    await nodes[0]!.reg.announce({ start: 0, end: 2 });
    await nodes[1]!.reg.announce({ start: 1, end: 3 });
    const ids = (layer: number) => nodes[2]!.reg.holdersOf(layer).then((rs) => rs.map((r) => r.peerId).sort());
    assert.deepEqual(await ids(0), [nodes[0]!.net.peerId]);
    assert.deepEqual(await ids(1), [nodes[0]!.net.peerId, nodes[1]!.net.peerId].sort());
    assert.deepEqual(await ids(2), [nodes[1]!.net.peerId]);
    assert.deepEqual(await ids(3), []);
    const rec = (await nodes[2]!.reg.holdersOf(0))[0]!;
    assert.deepEqual(rec.multiaddrs, ['/ip4/127.0.0.1/tcp/9000']);
    for (const n of nodes) await n.reg.withdraw();
  });

  it('leaves out dead peers, expired records and records that do not cover the layer', async () => {
    const clock = new ManualClock(1_800_000_000_000);
    const dead = new Set<string>();
    const { nodes } = await setup(4, clock, dead);
    for (let i = 0; i < 3; i++) await nodes[i]!.reg.announce({ start: 0, end: 1 });
    dead.add(nodes[1]!.net.peerId);
    // a provider whose record says it holds other layers (stale provider entry after a span change)
    await nodes[3]!.net.provide(layerContentKey(NET, 0));
    await nodes[3]!.net.dhtPut(
      holderKey(NET, nodes[3]!.net.peerId),
      encodeHolderRecord(freshHolderRecord(nodes[3]!.key, { networkId: NET, multiaddrs: [], span: { start: 5, end: 6 }, capacity: { memoryMb: 1, tokensPerSec: 1 } }, clock.now(), 60_000)),
    );
    let holders = (await nodes[2]!.reg.holdersOf(0)).map((r) => r.peerId);
    assert.deepEqual(holders.sort(), [nodes[0]!.net.peerId, nodes[2]!.net.peerId].sort());
    clock.advance(61_000); // every record expired; only node 2 re-publishes (the others' timers have not run)
    await nodes[2]!.reg.publishNow();
    holders = (await nodes[3]!.reg.holdersOf(0)).map((r) => r.peerId);
    assert.deepEqual(holders, [nodes[2]!.net.peerId]);
    for (const n of nodes) await n.reg.withdraw();
  });

  it('known holders (seen serving) are asked besides the providers: 64 fresh keys providing the layer first do not hide them', async () => {
    const clock = new ManualClock(1_800_000_000_000);
    const { hub, nodes } = await setup(2, clock);
    // 64 fresh keys provide layer 0 before the honest holder does; none has a record (they serve nothing)
    for (let i = 0; i < 64; i++) {
      const s = hub.createNode(`sybil${i}`);
      await s.start();
      await s.provide(layerContentKey(NET, 0));
    }
    await nodes[0]!.reg.announce({ start: 0, end: 2 });
    const honest = nodes[0]!.net.peerId;
    assert.deepEqual(await nodes[1]!.reg.holdersOf(0), [], 'the provider answer (64) is all Sybils: the layer is eclipsed');
    const reader = new LayerRegistry({
      network: nodes[1]!.net,
      networkId: NET,
      key: nodes[1]!.key,
      self: () => ({ multiaddrs: [], capacity: { memoryMb: 1, tokensPerSec: 1 } }),
      known: (layer) => (layer < 2 ? [honest, 'sybil3'] : []),
      cacheMs: 0,
      clock,
    });
    assert.deepEqual((await reader.holdersOf(0)).map((r) => r.peerId), [honest]);
    assert.deepEqual((await reader.holdersOf(1)).map((r) => r.peerId), [honest]);
    await nodes[0]!.reg.withdraw();
  });

  it('a new span stops providing the layers no longer held', async () => {
    const clock = new ManualClock(1_800_000_000_000);
    const { nodes } = await setup(2, clock);
    await nodes[0]!.reg.announce({ start: 0, end: 2 });
    await nodes[0]!.reg.announce({ start: 1, end: 3 });
    assert.deepEqual(await nodes[1]!.reg.holdersOf(0), []);
    assert.equal((await nodes[1]!.reg.holdersOf(2)).length, 1);
    assert.deepEqual(nodes[0]!.reg.currentRecord()?.span, { start: 1, end: 3 });
    await nodes[0]!.reg.withdraw();
  });

  it('asks the provider for its record first, and falls back to the DHT when the answer does not check out', async () => {
    const clock = new ManualClock(1_800_000_000_000);
    const { nodes } = await setup(3, clock);
    await nodes[0]!.reg.announce({ start: 0, end: 1 });
    await nodes[1]!.reg.announce({ start: 5, end: 6 });
    const asked: string[] = [];
    // node 0 "answers" with node 1's record: mis-keyed, so the registry must ignore it and read the DHT
    const lying = new LayerRegistry({
      network: nodes[2]!.net,
      networkId: NET,
      key: nodes[2]!.key,
      self: () => ({ multiaddrs: [], capacity: { memoryMb: 1, tokensPerSec: 1 } }),
      fetchDirect: async (peer) => {
        asked.push(peer);
        return encodeHolderRecord(nodes[1]!.reg.currentRecord()!);
      },
      cacheMs: 0,
      clock,
    });
    const holders = await lying.holdersOf(0);
    assert.deepEqual(asked, [nodes[0]!.net.peerId]);
    assert.deepEqual(holders.map((r) => r.peerId), [nodes[0]!.net.peerId]);
    assert.deepEqual(holders[0]!.span, { start: 0, end: 1 });
    const honest = new LayerRegistry({
      network: nodes[2]!.net,
      networkId: NET,
      key: nodes[2]!.key,
      self: () => ({ multiaddrs: [], capacity: { memoryMb: 1, tokensPerSec: 1 } }),
      fetchDirect: async () => encodeHolderRecord(nodes[0]!.reg.currentRecord()!),
      cacheMs: 0,
      clock,
    });
    assert.deepEqual((await honest.holdersOf(0)).map((r) => r.peerId), [nodes[0]!.net.peerId]);
    for (const n of nodes) await n.reg.withdraw();
  });

  it('retries soon when the record reached nobody, and reports it', async () => {
    const clock = new ManualClock(1_800_000_000_000);
    const { nodes } = await setup(1, clock);
    const ev = nodes[0]!.reg.events.waitFor('published', { timeoutMs: 2000 });
    await nodes[0]!.reg.announce({ start: 0, end: 1 });
    assert.equal((await ev).storedAt, 0);
    await nodes[0]!.reg.withdraw();
  });
});

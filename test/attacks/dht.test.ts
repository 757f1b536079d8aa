/**
 * Attack 10 (issue 11): DHT filling and eclipse.
 * - kad-dht stores every valid self-signed record and every provider announcement it is sent, with no quota and
 *   no sweep of records: fresh keys fill a node's memory without bound, and one layer's provider list with them.
 * - `holdersOf` sorted holders by the record's own timestamp, so a record dated up to the skew limit ahead always
 *   came first: the attacker chose to be every newcomer's first holder of a layer.
 * Now the node's datastore has quotas (records for others, providers per layer, layers per provider, providers in
 * all, peer-book entries) and sweeps entries not refreshed within their longest lifetime; and the lookup order is
 * the node's own (live peers first, then a keyed hash of the peer id with a per-node secret).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { Key } from 'interface-datastore';
import { keyFromPrivate, peerIdFromPublicKey } from '../../src/identity/index.js';
import { DHT_STORE_LIMITS, openNodeDatastore } from '../../src/p2p/datastore.js';
import { MemoryHub } from '../../src/p2p/memory.js';
import { holderRecordNamespace } from '../../src/protocols/dht-records.js';
import { DHT_NAMESPACE } from '../../src/protocols/ids.js';
import { LayerRegistry } from '../../src/protocols/layer-registry.js';
import { ManualClock } from '../../src/util/clock.js';
import { tally } from './tally.js';

const NET = 'attacknet';

async function put(ds: { put(k: Key, v: Uint8Array): unknown }, k: string): Promise<boolean> {
  try {
    await ds.put(new Key(k), Uint8Array.of(1));
    return true;
  } catch {
    return false;
  }
}

describe('attack 10: DHT filling and eclipse', () => {
  it('25,000 records from fresh keys and 2,000 providers of one layer: the store keeps to its quotas', async () => {
    const { datastore, memory } = await openNodeDatastore(undefined);
    let stored = 0;
    const R = DHT_STORE_LIMITS.maxRecords + 5_000;
    for (let i = 0; i < R; i++) if (await put(datastore, `/dht/record/${'a'.repeat(8)}${i.toString(32)}`)) stored++;
    let providers = 0;
    const P = 2_000;
    for (let i = 0; i < P; i++) if (await put(datastore, `/dht/provider/layer0key/16Uiu2Sybil${i}`)) providers++;
    // one fresh peer providing 5,000 different keys
    let keys = 0;
    for (let i = 0; i < 5_000; i++) if (await put(datastore, `/dht/provider/key${i}/16Uiu2Greedy`)) keys++;
    tally('dht records past quota', R, Math.max(0, stored - DHT_STORE_LIMITS.maxRecords));
    tally('dht providers of one layer past quota', P, Math.max(0, providers - DHT_STORE_LIMITS.maxProvidersPerKey));
    tally('dht keys of one provider past quota', 5_000, Math.max(0, keys - DHT_STORE_LIMITS.maxKeysPerProvider));
    assert.equal(stored, DHT_STORE_LIMITS.maxRecords);
    assert.equal(providers, DHT_STORE_LIMITS.maxProvidersPerKey);
    assert.equal(keys, DHT_STORE_LIMITS.maxKeysPerProvider);
    // an entry already held can always be refreshed
    assert.equal(await put(datastore, `/dht/record/${'a'.repeat(8)}${(0).toString(32)}`), true);
    assert.equal(await put(datastore, '/dht/provider/layer0key/16Uiu2Sybil0'), true);
    assert.ok(memory.refused > 0);
  });

  it('records and provider entries not refreshed within their lifetime are swept', async () => {
    let now = 1_800_000_000_000;
    const { QuotaMemoryDatastore } = await import('../../src/p2p/datastore.js');
    const ds = new QuotaMemoryDatastore({ maxRecords: 100 }, () => now);
    for (let i = 0; i < 100; i++) await put(ds, `/dht/record/r${i}`);
    for (let i = 0; i < 10; i++) await put(ds, `/dht/provider/k/p${i}`);
    assert.equal(await put(ds, '/dht/record/late'), false, 'full');
    now += DHT_STORE_LIMITS.recordMaxAgeMs + 1;
    assert.equal(await put(ds, '/dht/record/late'), true, 'the sweep made room');
    assert.equal(ds.recordCount, 1);
    assert.equal(ds.providerCount, 0);
    assert.equal(await ds.has(new Key('/dht/record/r0')), false);
  });

  it('a record dated 59 s ahead no longer sorts first: the lookup order is the node\'s own', async () => {
    const clock = new ManualClock(1_800_000_000_000);
    const hub = new MemoryHub({ [DHT_NAMESPACE]: holderRecordNamespace({ networkId: NET, clock }) });
    const node = async (c: ManualClock, alive?: Set<string>) => {
      const key = keyFromPrivate(randomBytes(32));
      const net = hub.createNode(peerIdFromPublicKey(key.publicKey));
      await net.start();
      const reg = new LayerRegistry({
        network: net,
        networkId: NET,
        key,
        self: () => ({ multiaddrs: ['/ip4/127.0.0.1/tcp/9000'], capacity: { memoryMb: 1000, tokensPerSec: 10 } }),
        recordTtlMs: 600_000,
        cacheMs: 0,
        clock: c,
        ...(alive === undefined ? {} : { isAlive: (p: string) => alive.has(p) }),
      });
      return { net, reg };
    };
    const honest = await node(clock);
    const attacker = await node(new ManualClock(clock.now() + 59_000));
    await honest.reg.announce({ start: 0, end: 1 });
    await attacker.reg.announce({ start: 0, end: 1 });
    // a newcomer that hears the honest holder's heartbeats
    const alive = new Set([honest.net.peerId]);
    const victim = await node(clock, alive);
    const first = (await victim.reg.holdersOf(0)).map((r) => r.peerId);
    assert.equal(first.length, 2);
    // and 20 newcomers with no liveness view yet: the order is each one's own draw, not the attacker's claim
    let attackerFirst = 0;
    for (let i = 0; i < 20; i++) {
      const v = await node(clock);
      if ((await v.reg.holdersOf(0))[0]?.peerId === attacker.net.peerId) attackerFirst++;
    }
    tally('dht record dated ahead sorts first', 21, (first[0] === attacker.net.peerId ? 1 : 0) + (attackerFirst === 20 ? 20 : 0));
    assert.equal(first[0], honest.net.peerId, 'the live holder comes first');
    assert.ok(attackerFirst < 20, `the attacker came first for ${attackerFirst} of 20 newcomers`);
  });
});

/**
 * Holder records from strangers against the layer registry (protocols/layer-registry.ts holdersOf):
 *
 * - Records dated in 2001 or 2099, claiming every layer, absurd capacity, or of another network: none is returned
 *   as a holder (and a claim of capacity is not believed before it was measured: router/route.ts capacityOf).
 * - Tarpit: providers that never answer. holdersOf asked providers for their records 8 at a time, each fetch
 *   holding its worker up to the lookup's deadline, so a node with no known holders (a joiner: no measured peers
 *   yet) whose provider answer listed a few dozen silent keys before the honest holders found none of them (session
 *   22). Now a fetch that has not answered after the slow mark frees its slot, every fetch has its own deadline
 *   under the lookup's, and providers found silent are asked last (then not at all) in later lookups.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { keyFromPrivate, peerIdFromPublicKey, type NodeKey } from '../../src/identity/index.js';
import type { P2PNetwork } from '../../src/p2p/types.js';
import { encodeHolderRecord, freshHolderRecord, signHolderRecord } from '../../src/protocols/holder-record.js';
import { holderKey } from '../../src/protocols/ids.js';
import { LayerRegistry } from '../../src/protocols/layer-registry.js';
import { ManualClock } from '../../src/util/clock.js';
import { tally } from './tally.js';

const NET = 'attacknet';
const NOW = 1_800_000_000_000;

function newKey(): { key: NodeKey; id: string } {
  const key = keyFromPrivate(randomBytes(32));
  return { key, id: peerIdFromPublicKey(key.publicKey) };
}

const hang = (signal: AbortSignal): Promise<never> =>
  new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason as Error);
    signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
  });

/** A registry whose network lists `providers` (in that order) for every layer; `records` answer, the rest hang. */
function registry(providers: string[], records: Map<string, Uint8Array>, opTimeoutMs: number, clock = new ManualClock(NOW), asked: string[] = []): LayerRegistry {
  const me = newKey();
  const hex = (k: Uint8Array): string => Buffer.from(k).toString('hex');
  const byKey = new Map([...records].map(([peer, bytes]) => [hex(holderKey(NET, peer)), bytes]));
  const network = {
    peerId: me.id,
    findProviders: () => Promise.resolve(providers.map((id) => ({ id, multiaddrs: [] }))),
    dhtGet: (key: Uint8Array, o: { signal: AbortSignal }) => (byKey.has(hex(key)) ? Promise.resolve(byKey.get(hex(key))) : hang(o.signal)),
  } as unknown as P2PNetwork;
  return new LayerRegistry({
    network,
    networkId: NET,
    key: me.key,
    self: () => ({ multiaddrs: [], capacity: { memoryMb: 1, tokensPerSec: 1 } }),
    fetchDirect: (peer, signal) => {
      asked.push(peer);
      return records.has(peer) ? Promise.resolve(records.get(peer)) : hang(signal);
    },
    opTimeoutMs,
    clock,
  });
}

describe('holder records from strangers against the layer registry', () => {
  it('records dated 2001 or 2099, of another network, or tampered are not holders; an absurd capacity claim is only a claim', async () => {
    const honest = newKey();
    const records = new Map<string, Uint8Array>();
    const content = { networkId: NET, multiaddrs: ['/ip4/127.0.0.1/tcp/9000'], span: { start: 0, end: 4 }, capacity: { memoryMb: 1000, tokensPerSec: 10 } };
    records.set(honest.id, encodeHolderRecord(freshHolderRecord(honest.key, content, NOW, 600_000)));
    const bad: string[] = [];
    const add = (bytes: (k: NodeKey, id: string) => Uint8Array): void => {
      const k = newKey();
      records.set(k.id, bytes(k.key, k.id));
      bad.push(k.id);
    };
    const y2001 = Date.UTC(2001, 0, 1);
    const y2099 = Date.UTC(2099, 0, 1);
    add((k) => encodeHolderRecord(freshHolderRecord(k, content, y2001, 600_000)));
    add((k) => encodeHolderRecord(freshHolderRecord(k, content, y2099, 600_000)));
    add((k) => encodeHolderRecord(freshHolderRecord(k, { ...content, networkId: 'othernet' }, NOW, 600_000)));
    add((k, id) => {
      const r = signHolderRecord(k, { ...content, peerId: id, timestampMs: NOW, expiresMs: NOW + 600_000 });
      return encodeHolderRecord({ ...r, span: { start: 0, end: 65_536 } });
    });
    // a valid record claiming 2^32-1 tokens/s over a huge span is a valid record: it holds, but its claim is not
    // believed before this node measures it (router/route.ts capacityOf); here it only must not hide the honest one
    const greedy = newKey();
    records.set(greedy.id, encodeHolderRecord(freshHolderRecord(greedy.key, { ...content, span: { start: 0, end: 65_535 }, capacity: { memoryMb: 2 ** 32 - 1, tokensPerSec: 2 ** 32 - 1 } }, NOW, 600_000)));
    const reg = registry([...bad, greedy.id, honest.id], records, 2_000);
    const found = (await reg.holdersOf(1)).map((r) => r.peerId);
    const accepted = found.filter((p) => bad.includes(p)).length;
    tally('registry: stale, future, foreign or tampered records', bad.length, accepted);
    assert.equal(accepted, 0, 'a bad record was returned as a holder');
    assert.ok(found.includes(honest.id));
  });

  it('silent providers listed first do not hide the honest holders of a layer from a node that knows none', async () => {
    const honest = [newKey(), newKey()];
    const records = new Map<string, Uint8Array>();
    for (const h of honest) records.set(h.id, encodeHolderRecord(freshHolderRecord(h.key, { networkId: NET, multiaddrs: [], span: { start: 0, end: 4 }, capacity: { memoryMb: 1000, tokensPerSec: 10 } }, NOW, 600_000)));
    const silent = Array.from({ length: 16 }, () => newKey().id);
    // a 1 s lookup deadline stands for the default 15 s (3 s direct deadline): 16 silent keys here, ~40 there
    const clock = new ManualClock(NOW);
    const asked: string[] = [];
    const reg = registry([...silent, ...honest.map((h) => h.id)], records, 1_000, clock, asked);
    // the registry's deadline timers are unref'd and the silent providers hold nothing: keep the loop up meanwhile
    const alive = setInterval(() => {}, 100);
    try {
      const lookup = async (): Promise<{ found: string[]; ms: number; silentAsked: number }> => {
        asked.length = 0;
        const started = Date.now();
        const found = (await reg.holdersOf(0)).map((r) => r.peerId);
        return { found, ms: Date.now() - started, silentAsked: asked.filter((p) => silent.includes(p)).length };
      };
      const first = await lookup();
      const hidden = honest.filter((h) => !first.found.includes(h.id)).length;
      process.stdout.write(`registry tarpit: ${silent.length} silent providers hid ${hidden} of ${honest.length} honest holders (lookup ${first.ms} ms)\n`);
      tally('registry: silent providers hiding honest holders (first lookup)', 1, hidden > 0 ? 1 : 0);
      assert.equal(hidden, 0, `${hidden} honest holders hidden by ${silent.length} silent providers`);
      assert.equal(first.silentAsked, silent.length);
      // each silent provider is remembered: asked after the honest ones while doubted, and not at all once it was
      // silent three times in a row (31 s apart: past the negative cache and the honest records' 30 s)
      assert.deepEqual([...reg.silentProviders().values()], silent.map(() => 1));
      for (let k = 2; k <= 3; k++) {
        clock.advance(31_000);
        const again = await lookup();
        assert.deepEqual(asked.slice(0, honest.length).sort(), honest.map((h) => h.id).sort(), 'the honest providers are asked first');
        assert.equal(again.found.length, honest.length);
        assert.equal(again.silentAsked, silent.length);
      }
      clock.advance(31_000);
      const fourth = await lookup();
      assert.equal(fourth.silentAsked, 0, 'providers silent three times in a row are not asked');
      assert.equal(fourth.found.length, honest.length);
      tally('registry: silent providers asked after 3 silent lookups', silent.length, fourth.silentAsked);
    } finally {
      clearInterval(alive);
    }
  });

  it('a provider that answers after being silent is trusted again', async () => {
    const h = newKey();
    const records = new Map<string, Uint8Array>();
    const clock = new ManualClock(NOW);
    const asked: string[] = [];
    const reg = registry([h.id], records, 1_000, clock, asked);
    const alive = setInterval(() => {}, 100);
    try {
      assert.deepEqual(await reg.holdersOf(0), []);
      assert.equal(reg.silentProviders().get(h.id), 1);
      records.set(h.id, encodeHolderRecord(freshHolderRecord(h.key, { networkId: NET, multiaddrs: [], span: { start: 0, end: 4 }, capacity: { memoryMb: 1000, tokensPerSec: 10 } }, NOW, 600_000)));
      clock.advance(3_000);
      assert.deepEqual((await reg.holdersOf(0)).map((r) => r.peerId), [h.id]);
      assert.equal(reg.silentProviders().size, 0);
    } finally {
      clearInterval(alive);
    }
  });
});

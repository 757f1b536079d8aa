import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryHub, MemoryStream, StreamResetError } from '../../../src/p2p/memory.js';
import { isNeuroShardError } from '../../../src/util/errors.js';

async function collect(s: MemoryStream): Promise<string> {
  const parts: Uint8Array[] = [];
  for await (const c of s) parts.push(c.subarray());
  return Buffer.concat(parts).toString();
}

describe('in-memory P2P network', () => {
  it('streams half-close and reset like libp2p streams', async () => {
    const [a, b] = MemoryStream.pair('/p');
    a.send(Buffer.from('hi'));
    await a.close();
    assert.equal(await collect(b), 'hi');
    const [c, d] = MemoryStream.pair('/p');
    let closeErr: Error | undefined;
    d.addEventListener('close', (e) => (closeErr = e.error));
    const reading = collect(d);
    c.abort(new Error('boom'));
    await assert.rejects(reading, StreamResetError);
    assert.ok(closeErr instanceof StreamResetError);
    assert.throws(() => c.send(Uint8Array.of(1)));
  });

  it('routes protocol streams, pubsub with validators, and one shared DHT', async () => {
    const hub = new MemoryHub({ t: { validate: (_k, v) => assert.ok(v[0] === 1), select: (_k, vs) => (vs[0]![1]! >= vs[1]![1]! ? 0 : 1) } });
    const a = hub.createNode('A');
    const b = hub.createNode('B');
    await a.start();
    await b.start();
    await b.handle('/echo', async (s, info) => {
      const msg = await collect(s as MemoryStream);
      s.send(Buffer.from(`${info.peer}:${msg}`));
      await s.close();
    });
    const s = await a.openStream('B', '/echo');
    s.send(Buffer.from('x'));
    await s.close();
    assert.equal(await collect(s as MemoryStream), 'A:x');
    await assert.rejects(a.openStream('B', '/nope'), (e: unknown) => isNeuroShardError(e, 'PROTOCOL_UNSUPPORTED'));

    const got: string[] = [];
    b.subscribe('t', (m) => got.push(`${m.from}:${Buffer.from(m.data).toString()}`));
    b.setTopicValidator('t', (m) => (m.data[0] === 0x21 ? 'reject' : 'accept'));
    assert.equal(await a.publish('t', Buffer.from('ok')), 1);
    await a.publish('t', Buffer.from('!bad'));
    assert.deepEqual(got, ['A:ok']);

    const key = new TextEncoder().encode('/t/k');
    await assert.rejects(a.dhtPut(key, Uint8Array.of(2, 9)));
    assert.equal(await a.dhtPut(key, Uint8Array.of(1, 5)), 1);
    await b.dhtPut(key, Uint8Array.of(1, 3)); // older: the selector keeps 5
    assert.deepEqual([...(await b.dhtGet(key))!], [1, 5]);
    await a.provide(Uint8Array.of(7));
    assert.deepEqual((await b.findProviders(Uint8Array.of(7))).map((p) => p.id), ['A']);

    hub.disconnect('A', 'B');
    await assert.rejects(a.openStream('B', '/echo'), (e: unknown) => isNeuroShardError(e, 'DIAL_FAILED'));
    assert.equal(await a.publish('t', Buffer.from('cut')), 0);
  });
});

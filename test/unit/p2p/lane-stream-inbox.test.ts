/**
 * A lane stream's inbox (src/p2p/lane/stream.ts): small DATA payloads are copied together into blocks and the queue
 * is read from a head index. What the reader is handed must be exactly the bytes sent, in order, whatever mix of
 * sizes arrives and whenever the reader takes them, and a chunk once handed over must never change.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { LaneStream, type StreamHost } from '../../../src/p2p/lane/stream.js';
import { Rng } from '../../../src/util/rng.js';

const host = (): StreamHost => ({
  sendData: () => {},
  sendDataParts: () => {},
  maxDataPartsBytes: 1 << 22,
  placing: false,
  sendWindow: () => {},
  sendClose: () => {},
  sendReset: () => {},
  congested: () => false,
  writable: () => Promise.resolve(),
  forget: () => {},
});

describe('lane stream inbox', () => {
  it('hands the reader every byte in order, chunks never changing after, for random sizes and take times', async () => {
    for (let seed = 1; seed <= 20; seed++) {
      const rng = new Rng(seed);
      const s = new LaneStream(1, '/t', host(), 1 << 30);
      const it = s[Symbol.asyncIterator]();
      const sent: number[] = [];
      const got: { chunk: Uint8Array; copy: Uint8Array }[] = [];
      let next = 0;
      for (let i = 0; i < 3000; i++) {
        // mostly small payloads (copied into blocks), some empty, some large (queued as they are)
        const r = rng.int(100);
        const n = r < 5 ? 0 : r < 80 ? 1 + rng.int(512) : r < 95 ? 513 + rng.int(2000) : 16_000 + rng.int(20_000);
        const p = new Uint8Array(n);
        for (let k = 0; k < n; k++) p[k] = (next++ * 31 + seed) & 0xff;
        for (const b of p) sent.push(b);
        s.pushData(p);
        // the reader takes some chunks now and then
        if (rng.int(4) === 0) {
          for (let t = rng.int(5); t > 0 && s.bufferedIn > 0; t--) {
            const c = (await it.next()).value as Uint8Array;
            got.push({ chunk: c, copy: c.slice() });
          }
        }
      }
      s.remoteClose();
      for (;;) {
        const r = await it.next();
        if (r.done === true) break;
        got.push({ chunk: r.value, copy: r.value.slice() });
      }
      for (const g of got) assert.deepEqual(g.chunk, g.copy, `seed ${seed}: a chunk changed after it was handed over`);
      const all = Buffer.concat(got.map((g) => g.copy));
      assert.equal(all.length, sent.length, `seed ${seed}: byte count`);
      assert.ok(all.equals(Buffer.from(sent)), `seed ${seed}: bytes differ`);
      assert.ok(got.every((g) => g.chunk.byteLength > 0), `seed ${seed}: an empty chunk was handed over`);
    }
  });

  it('a WINDOW for a read that waited is decided after the rest of its sealed frame: none when a CLOSE follows', async () => {
    const windows: number[] = [];
    const h = { ...host(), sendWindow: (_id: number, n: number) => void windows.push(n) };
    const s = new LaneStream(1, '/t', h, 1000);
    const it = s[Symbol.asyncIterator]();
    const r = it.next();
    s.pushData(new Uint8Array(900)); // past half the window: a read of it would grant
    s.remoteClose(); // in the same sealed frame: the far end sends no more
    assert.equal(((await r).value as Uint8Array).byteLength, 900);
    assert.deepEqual(windows, []);
    // without the CLOSE the WINDOW goes
    const t = new LaneStream(2, '/t', h, 1000);
    const it2 = t[Symbol.asyncIterator]();
    const r2 = it2.next();
    t.pushData(new Uint8Array(900));
    await r2;
    await Promise.resolve();
    assert.deepEqual(windows, [900]);
  });
});

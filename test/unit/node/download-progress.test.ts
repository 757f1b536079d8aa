/** The download meter over the pool's checkpoint streams: heads give the total, data chunks the progress. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { meteredRpc, SpanDownloadMeter } from '../../../src/node/download-progress.js';
import * as methods from '../../../src/protocols/methods.js';
import type { CheckpointChunk, CheckpointRequest } from '../../../src/protocols/pb/node.js';
import type { RpcNode } from '../../../src/protocols/rpc/service.js';

const UNIT = 1000;
const HEAD = 2n ** 62n;

/** An RpcNode whose checkpoint streams answer heads and data for units of UNIT bytes, in chunks of 250. */
function fakeRpc(calls: string[]): RpcNode {
  return {
    async *serverStream(_peer: string, method: unknown, req: CheckpointRequest): AsyncGenerator<CheckpointChunk> {
      calls.push(method === methods.checkpoint ? `checkpoint ${req.span?.start ?? 'config'}` : 'other');
      const base = { name: 'x', totalSize: BigInt(UNIT), modelHash: 'h', sha256: new Uint8Array(32) };
      if (req.offset >= BigInt(UNIT)) {
        yield { ...base, offset: BigInt(UNIT), data: new Uint8Array(0) };
        return;
      }
      for (let o = Number(req.offset); o < UNIT; o += 250) yield { ...base, offset: BigInt(o), data: new Uint8Array(250) };
    },
    peerId: 'me',
  } as unknown as RpcNode;
}

async function drain(g: AsyncGenerator<unknown>): Promise<number> {
  let n = 0;
  for await (const _ of g) n++;
  return n;
}

describe('download progress', () => {
  it('plain lines: heads make the total, data moves the percentage, the pool ends it', async () => {
    const out: string[] = [];
    let t = 0;
    const meter = new SpanDownloadMeter({ mode: 'plain', write: (s) => out.push(s), now: () => (t += 100) });
    const calls: string[] = [];
    const rpc = meteredRpc(fakeRpc(calls), meter);
    assert.equal((rpc as unknown as { peerId: string }).peerId, 'me', 'other members pass through');
    // heads of layers 2 and 3 from two holders each (counted once), then the data
    for (const l of [2, 3]) for (let k = 0; k < 2; k++) await drain(rpc.serverStream('p', methods.checkpoint, { modelHash: '', span: { start: l, end: l + 1 }, offset: HEAD }));
    for (const l of [2, 3]) assert.equal(await drain(rpc.serverStream('p', methods.checkpoint, { modelHash: '', span: { start: l, end: l + 1 }, offset: 0n })), 4);
    // a config request is not a download
    await drain(rpc.serverStream('p', methods.checkpoint, { modelHash: 'config', offset: 0n }));
    meter.finish();
    assert.equal(calls.length, 7);
    assert.deepEqual(
      out.map((l) => l.replace(/in [\d.]+s/, 'in Ts')),
      ['download layers 2:4 0% 0 B/2.0 KiB\n', 'download layers 2:4 25% 500 B/2.0 KiB\n', 'download layers 2:4 50% 1000 B/2.0 KiB\n', 'download layers 2:4 75% 1.5/2.0 KiB\n', 'download layers 2:4 done 2.0 KiB in Ts\n'],
    );
  });

  it('a tty bar is redrawn in place and ended by abandon() on a failed download; the next download starts afresh', async () => {
    const out: string[] = [];
    let t = 0;
    const meter = new SpanDownloadMeter({ mode: 'tty', write: (s) => out.push(s), now: () => (t += 1000) });
    const rpc = meteredRpc(fakeRpc([]), meter);
    await drain(rpc.serverStream('p', methods.checkpoint, { modelHash: '', span: { start: 0, end: 1 }, offset: HEAD }));
    await drain(rpc.serverStream('p', methods.checkpoint, { modelHash: '', span: { start: 0, end: 1 }, offset: 500n }));
    meter.abandon();
    assert.ok(out.slice(0, -1).every((f) => f.startsWith('\r\x1b[2K') && !f.includes('\n')));
    assert.match(out.at(-2)!, /download layers 0:1 \[#+\.*\] 50% 500\/1000 B/);
    assert.equal(out.at(-1), '\n');
    out.length = 0;
    await drain(rpc.serverStream('p', methods.checkpoint, { modelHash: '', span: { start: 1, end: 2 }, offset: HEAD }));
    await drain(rpc.serverStream('p', methods.checkpoint, { modelHash: '', span: { start: 1, end: 2 }, offset: 0n }));
    meter.finish();
    assert.match(out.at(-1)!, /download layers 1:2 \[#+\] 100% 1000\/1000 B .*\n$/);
  });
});

/**
 * Attack 9 (issue 11): RPC slot exhaustion. The in-flight limit of a method was one counter across all peers, and
 * the slot was taken when the stream opened, before the request frame was read: sixteen silent streams (four
 * connections of four) held every `ledger-range` slot for the whole call deadline, and every honest caller got
 * RPC_BUSY. Now the slot is taken only once the request frame has been read (under its own short read deadline),
 * and each method has a per-peer limit beside the global one, so one peer's expensive calls cannot starve others.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryHub, type MemoryNetwork } from '../../src/p2p/memory.js';
import type { DuplexStream } from '../../src/p2p/types.js';
import * as methods from '../../src/protocols/methods.js';
import { RemoteRpcError } from '../../src/protocols/rpc/errors.js';
import { encodeFrame, FRAME_MESSAGE } from '../../src/protocols/rpc/frame.js';
import { perPeerLimit, requestReadMs } from '../../src/protocols/rpc/method.js';
import { RpcNode } from '../../src/protocols/rpc/service.js';
import * as pb from '../../src/protocols/pb/node.js';
import { waitFor } from '../../src/util/abort.js';
import { tally } from './tally.js';

const NET = 'attacknet';
const honestReq = { after: new Uint8Array(0), limit: 1 };

async function victim(hub: MemoryHub, handler: (peer: string) => Promise<void> | void = () => {}): Promise<{ net: MemoryNetwork; rpc: RpcNode; served: string[] }> {
  const net = hub.createNode('victim');
  // libp2p caps inbound streams per connection, not per peer, and an attacker can open several connections: the
  // victim's own per-peer and global limits are what is tested here, so the transport's cap is lifted
  net.inboundStreamCaps = false;
  await net.start();
  const rpc = new RpcNode({ network: net, networkId: NET });
  const served: string[] = [];
  await rpc.handle(methods.ledgerRange, async (_req, ctx) => {
    await handler(ctx.peer);
    served.push(ctx.peer);
    return { events: [] };
  });
  return { net, rpc, served };
}

async function peer(hub: MemoryHub, id: string): Promise<{ net: MemoryNetwork; rpc: RpcNode }> {
  const net = hub.createNode(id);
  await net.start();
  return { net, rpc: new RpcNode({ network: net, networkId: NET }) };
}

describe('attack 9: RPC slot exhaustion', () => {
  it('silent streams (4 connections x 4, then 400 more) hold no ledger-range slot: honest callers are served at once', async () => {
    const hub = new MemoryHub();
    const v = await victim(hub);
    const protocol = v.rpc.protocolOf(methods.ledgerRange);
    const silent: DuplexStream[] = [];
    let sent = 0;
    // four attackers, each opening four streams (its connection's maxInboundStreams) and never sending a frame
    for (let a = 0; a < 4; a++) {
      const att = await peer(hub, `attacker${a}`);
      for (let i = 0; i < methods.ledgerRange.maxInboundStreams; i++) {
        silent.push(await att.net.openStream('victim', protocol));
        sent++;
      }
    }
    // and one more that opens 400 silent streams (over as many connections as it likes: the transport's per-connection cap is lifted above)
    const many = await peer(hub, 'attacker-many');
    for (let i = 0; i < 400; i++) {
      silent.push(await many.net.openStream('victim', protocol));
      sent++;
    }
    const honest = await peer(hub, 'honest');
    let refused = 0;
    for (let i = 0; i < 10; i++) {
      try {
        await honest.rpc.call('victim', methods.ledgerRange, honestReq, { timeoutMs: 5_000 });
      } catch (e) {
        if (e instanceof RemoteRpcError && e.code === 'RPC_BUSY') refused++;
        else throw e;
      }
    }
    tally('rpc silent slot holders', sent, refused);
    assert.equal(refused, 0, 'no honest call was refused while silent streams were open');
    assert.equal(v.served.filter((p) => p === 'honest').length, 10);
    for (const s of silent) s.abort(new Error('done'));
  });

  it('a silent stream is reset by the request read deadline', async () => {
    const hub = new MemoryHub();
    const v = await victim(hub);
    const att = await peer(hub, 'attacker');
    const s = await att.net.openStream('victim', v.rpc.protocolOf(methods.ledgerRange));
    const opened = Date.now();
    const closed = new Promise<void>((resolve) => s.addEventListener('close', () => resolve(), { once: true }));
    // the server answers with an error frame and closes, or resets; either way the stream ends
    await closed;
    const took = Date.now() - opened;
    tally('rpc silent stream outlives the read deadline', 1, took > methods.ledgerRange.timeoutMs ? 1 : 0);
    assert.ok(requestReadMs(methods.ledgerRange) < methods.ledgerRange.timeoutMs, 'the request read deadline is shorter than the call deadline');
    assert.ok(took < methods.ledgerRange.timeoutMs, `the silent stream ended after ${took} ms`);
  });

  it('one peer flooding valid, slow requests gets its per-peer share; another peer is still served', async () => {
    const hub = new MemoryHub();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    // the attacker's requests are the expensive kind (they take as long as the gate stays shut)
    const v = await victim(hub, (p) => (p === 'flooder' ? gate : undefined));
    const flooder = await peer(hub, 'flooder');
    const body = encodeFrame(FRAME_MESSAGE, pb.LedgerRangeRequest.encode({ after: new Uint8Array(0), limit: 512 }));
    const protocol = v.rpc.protocolOf(methods.ledgerRange);
    const streams: DuplexStream[] = [];
    const N = 200;
    for (let i = 0; i < N; i++) {
      const s = await flooder.net.openStream('victim', protocol);
      s.send(body);
      streams.push(s);
    }
    await waitFor(() => v.rpc.inFlight(methods.ledgerRange) >= perPeerLimit(methods.ledgerRange), { timeoutMs: 30_000, what: 'flooder holds its share' });
    const honest = await peer(hub, 'honest');
    let refused = 0;
    for (let i = 0; i < 10; i++) {
      try {
        await honest.rpc.call('victim', methods.ledgerRange, honestReq, { timeoutMs: 10_000 });
      } catch (e) {
        if (e instanceof RemoteRpcError && e.code === 'RPC_BUSY') refused++;
        else throw e;
      }
    }
    const held = v.rpc.inFlight(methods.ledgerRange, 'flooder');
    tally('rpc one-peer slot flood', N, refused + Math.max(0, held - perPeerLimit(methods.ledgerRange)));
    assert.equal(refused, 0, 'the honest peer was never refused');
    assert.equal(held, perPeerLimit(methods.ledgerRange), 'the flooder holds exactly its per-peer share');
    assert.ok(perPeerLimit(methods.ledgerRange) < methods.ledgerRange.maxConcurrent);
    release();
    for (const s of streams) s.abort(new Error('done'));
  });
});

/**
 * The direct data lane's port (src/p2p/lane/manager.ts) faces the internet: anyone may connect to it. A stranger
 * (no libp2p connection, no keys) hammering it with connections, junk, slow bytes or forged lane ids, and a
 * connected peer replaying a hello, asking for lane ids without end or sealing with the wrong key, must get no lane,
 * hold no socket past the short hello deadline, and cost bounded memory: at most `maxUnauthSockets` sockets are
 * waiting to authenticate at once (more are closed on accept), each holding a fixed 62-byte buffer.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Sealer, deriveLaneKeys, ephemeralKey } from '../../src/p2p/lane/aead.js';
import { HELLO_MAGIC, SUB_HELLO, subFrame } from '../../src/p2p/lane/codec.js';
import { LaneManager } from '../../src/p2p/lane/manager.js';
import type { Libp2pNetwork } from '../../src/p2p/libp2p-node.js';
import { laneProtocolId } from '../../src/protocols/ids.js';
import { waitFor } from '../../src/util/abort.js';
import { tally } from './tally.js';
import { startLoopbackLibp2p } from '../utils/network.js';

const NET = 'laneattack';
const AUTH_MS = 400;
const MAX_UNAUTH = 32;

function node(): Promise<Libp2pNetwork> {
  return startLoopbackLibp2p(NET, { connections: { inboundConnectionThreshold: 1000 } });
}

/** Opens a socket to the lane port; resolves when it is closed by the victim (or errors), with how long it lived. */
function probe(port: number, onOpen: (s: Socket) => void): Promise<number> {
  return new Promise<number>((resolve) => {
    const t0 = performance.now();
    const s = connect(port, '127.0.0.1');
    s.on('connect', () => onOpen(s));
    s.on('error', () => {});
    s.on('data', () => {});
    s.on('close', () => resolve(performance.now() - t0));
  });
}

describe('attack: strangers and cheats on the lane port', () => {
  let victim: Libp2pNetwork;
  let lanes: LaneManager;
  let port: number;
  let maxUnauthSeen = 0;
  let sampler: NodeJS.Timeout;

  before(async () => {
    victim = await node();
    lanes = new LaneManager(victim, laneProtocolId(NET), { listenHost: '127.0.0.1', authMs: AUTH_MS, maxUnauthSockets: MAX_UNAUTH, handshakeMs: 3000 });
    await lanes.start();
    port = lanes.port!;
    // the number of sockets waiting to authenticate, sampled all along
    sampler = setInterval(() => (maxUnauthSeen = Math.max(maxUnauthSeen, (lanes as unknown as { unauth: number }).unauth)), 1);
  });
  after(async () => {
    clearInterval(sampler);
    await lanes.stop();
    await victim.stop();
  });

  it('a flood of silent connections: at most maxUnauthSockets wait at once, each closed by the hello deadline', async () => {
    const waves = 10;
    const perWave = 300;
    let sent = 0;
    let longLived = 0;
    for (let w = 0; w < waves; w++) {
      const lives = await Promise.all(Array.from({ length: perWave }, () => probe(port, () => {})));
      sent += perWave;
      longLived += lives.filter((ms) => ms > AUTH_MS + 2000).length;
    }
    const s = lanes.stats();
    assert.equal(s.lanesMade, 0);
    assert.equal(longLived, 0, 'a silent socket outlived the hello deadline');
    assert.ok(maxUnauthSeen <= MAX_UNAUTH, `${maxUnauthSeen} sockets waited at once`);
    assert.ok(s.socketsRefused > 0, 'the flood never hit the cap');
    tally('lane: silent connection flood', sent, s.lanesMade + longLived);
  });

  it('junk, slow bytes and forged lane ids get no lane', async () => {
    const before = lanes.stats();
    let sent = 0;
    // junk: random bytes of every size
    const junk = await Promise.all(Array.from({ length: 300 }, (_, i) => probe(port, (s) => s.write(randomBytes(1 + ((i * 37) % 5000))))));
    sent += junk.length;
    // slowloris: a byte every 50 ms, never a whole hello before the deadline
    const slow = await Promise.all(
      Array.from({ length: 24 }, () =>
        probe(port, (s) => {
          const t = setInterval(() => (s.destroyed ? clearInterval(t) : s.write(Buffer.from([7]))), 50);
          s.on('close', () => clearInterval(t));
        }),
      ),
    );
    sent += slow.length;
    // forged: a random lane id, the hello's exact length, a random body
    const forged = await Promise.all(
      Array.from({ length: 300 }, () =>
        probe(port, (s) => {
          const len = Buffer.alloc(4);
          len.writeUInt32BE(42);
          s.write(Buffer.concat([randomBytes(16), len, randomBytes(42)]));
        }),
      ),
    );
    sent += forged.length;
    const s = lanes.stats();
    const late = [...junk, ...slow, ...forged].filter((ms) => ms > AUTH_MS + 2000).length;
    assert.equal(s.lanesMade, before.lanesMade);
    assert.equal(late, 0);
    assert.ok(maxUnauthSeen <= MAX_UNAUTH);
    tally('lane: junk, slowloris, forged ids', sent, s.lanesMade - before.lanesMade + late);
  });

  it('a connected peer: lane ids are capped per peer, single use, and useless without the keys', async () => {
    const cheat = await node();
    try {
      const peer = await cheat.dial(victim.multiaddrs()[0]!);
      const protocol = laneProtocolId(NET);
      /** One setup: our ephemeral key out, the victim's key, lane id and port back (undefined when refused). */
      const setup = async (): Promise<{ laneId: Buffer; keys: ReturnType<typeof deriveLaneKeys> } | undefined> => {
        try {
          const eph = ephemeralKey();
          const st = await cheat.openStream(peer, protocol, { signal: AbortSignal.timeout(3000) });
          st.send(Buffer.concat([Buffer.from([1]), eph.publicRaw]));
          const parts: Buffer[] = [];
          for await (const c of st) parts.push(Buffer.from(c instanceof Uint8Array ? c : c.subarray()));
          const m = Buffer.concat(parts);
          if (m.length !== 51) return undefined;
          const serverPublic = m.subarray(1, 33);
          const laneId = m.subarray(33, 49);
          const keys = deriveLaneKeys(eph, serverPublic, { clientPeer: cheat.peerId, serverPeer: peer, clientPublic: eph.publicRaw, serverPublic, laneId });
          return { laneId, keys };
        } catch {
          return undefined;
        }
      };
      const hello = (laneId: Buffer, key: Buffer): Buffer => Buffer.concat([laneId, ...new Sealer(key).seal([subFrame(SUB_HELLO, 0, HELLO_MAGIC)])]);
      // asking for lane ids without end: at most maxLanesPerPeer (2) are issued and unused at once
      const before = lanes.stats();
      const asked: Awaited<ReturnType<typeof setup>>[] = [];
      for (let i = 0; i < 20; i++) asked.push(await setup());
      const issued = asked.filter((a) => a !== undefined);
      assert.ok(issued.length <= lanes.options.maxLanesPerPeer, `${issued.length} lane ids issued to one peer`);
      assert.ok(issued.length >= 1, 'no lane id was issued at all');
      let succeeded = Math.max(0, issued.length - lanes.options.maxLanesPerPeer);
      // the wrong key (the server's direction key, or a random one) under a real lane id: refused
      const a = issued[0]!;
      for (const k of [a.keys.serverToClient, randomBytes(32)]) {
        await probe(port, (s) => s.write(hello(a.laneId, k)));
      }
      // the right hello once: a lane; the same bytes again (a replay by whoever saw them): refused
      const good = hello(a.laneId, a.keys.clientToServer);
      const first = connect(port, '127.0.0.1');
      first.on('error', () => {});
      first.on('data', () => {});
      await new Promise<void>((r) => first.once('connect', r));
      first.write(good);
      await waitFor(() => lanes.stats().lanesMade === before.lanesMade + 1, { timeoutMs: 5000, what: 'the honest hello makes a lane' });
      const replayLife = await probe(port, (s) => s.write(good));
      succeeded += lanes.stats().lanesMade - (before.lanesMade + 1);
      assert.equal(lanes.stats().lanesMade, before.lanesMade + 1, 'the replayed hello made a second lane');
      assert.ok(replayLife < AUTH_MS + 2000);
      first.destroy();
      tally('lane: setup flood, wrong key, replayed hello', 20 + 2 + 1, succeeded);
    } finally {
      await cheat.stop();
    }
  });

  it('after the attacks nothing is left waiting', async () => {
    await waitFor(() => (lanes as unknown as { unauth: number }).unauth === 0, { timeoutMs: AUTH_MS + 3000, what: 'every unauthenticated socket closed' });
    assert.ok(maxUnauthSeen <= MAX_UNAUTH);
  });
});

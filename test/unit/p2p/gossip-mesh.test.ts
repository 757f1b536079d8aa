/**
 * Gossipsub's mesh parameters as a node option (p2p/libp2p-node.ts `pubsub.mesh`, docs/LIMITS.md "Session 30:
 * heartbeat fan-out, measured"): absent, js-gossipsub's defaults stand; given, every parameter is resolved and a
 * set that cannot form a mesh is refused with a typed error naming it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { createLibp2pNetwork, GOSSIP_MESH_DEFAULTS, meshOptions, type GossipMesh } from '../../../src/p2p/libp2p-node.js';
import { isNeuroShardError } from '../../../src/util/errors.js';

describe('gossipsub mesh options', () => {
  it('absent: nothing is passed, so js-gossipsub keeps its own defaults', () => {
    assert.deepEqual(meshOptions(undefined), {});
  });

  it('reaches gossipsub: the defaults named are its own, and given ones replace them (a node built, not started)', async () => {
    const build = async (mesh?: Partial<GossipMesh>): Promise<Record<string, unknown>> => {
      const net = await createLibp2pNetwork({ privateKey: randomBytes(32), protocolPrefix: '/neuroshard/unit', listen: [], genesis: true, mdns: false, upnp: false, autonat: false, dcutr: false, pubsub: { mesh } });
      return (net.libp2p.services.pubsub as unknown as { opts: Record<string, unknown> }).opts;
    };
    const pick = (o: Record<string, unknown>): Record<string, unknown> => Object.fromEntries(Object.keys(GOSSIP_MESH_DEFAULTS).map((k) => [k, o[k]]));
    assert.deepEqual(pick(await build()), { ...GOSSIP_MESH_DEFAULTS });
    assert.deepEqual(pick(await build({ D: 3, Dlazy: 3, idontwantMinDataSize: 0, floodPublish: false })), { ...GOSSIP_MESH_DEFAULTS, D: 3, Dlo: 3, Dout: 1, Dlazy: 3, idontwantMinDataSize: 0, floodPublish: false });
  });

  it('fills the rest: Dlo and Dhi around a smaller or larger D, Dout the largest the others allow', () => {
    assert.deepEqual(meshOptions({}), { ...GOSSIP_MESH_DEFAULTS });
    assert.deepEqual(meshOptions({ D: 3 }), { ...GOSSIP_MESH_DEFAULTS, D: 3, Dlo: 3, Dhi: 12, Dout: 1 });
    assert.deepEqual(meshOptions({ D: 2, Dlo: 1, Dhi: 3 }), { ...GOSSIP_MESH_DEFAULTS, D: 2, Dlo: 1, Dhi: 3, Dout: 0 });
    assert.deepEqual(meshOptions({ D: 16 }), { ...GOSSIP_MESH_DEFAULTS, D: 16, Dhi: 16 });
    assert.deepEqual(meshOptions({ idontwantMinDataSize: 0, Dlazy: 2, gossipFactor: 0.1 }), { ...GOSSIP_MESH_DEFAULTS, idontwantMinDataSize: 0, Dlazy: 2, gossipFactor: 0.1 });
  });

  it('refuses a set that cannot form a mesh, or a bad number, naming it', () => {
    const bad: [Record<string, unknown>, string][] = [
      [{ D: 0 }, 'D'],
      [{ D: 4, Dlo: 5 }, 'Dlo'],
      [{ D: 6, Dhi: 5 }, 'Dhi'],
      [{ D: 4, Dlo: 2, Dout: 2 }, 'Dout'],
      [{ D: 2.5 }, 'D'],
      [{ Dlazy: -1 }, 'Dlazy'],
      [{ gossipFactor: 1.5 }, 'gossipFactor'],
      [{ gossipFactor: Number.NaN }, 'gossipFactor'],
      [{ idontwantMinDataSize: -1 }, 'idontwantMinDataSize'],
      [{ floodPublish: 'no' }, 'floodPublish'],
    ];
    for (const [m, name] of bad) {
      assert.throws(
        () => meshOptions(m as Partial<GossipMesh>),
        (e: unknown) => isNeuroShardError(e, 'INVALID_ARGUMENT') && e.message.includes(name),
        JSON.stringify(m),
      );
    }
  });
});

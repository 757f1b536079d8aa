/**
 * RPC nodes on the in-memory transport (unit tests only): the started network node, its RpcNode and the score
 * table that records the penalties it gives, as the tests of pool/ downloads build them for a client and each peer.
 */
import type { MemoryHub, MemoryNetwork } from '../../src/p2p/memory.js';
import { PeerScoreTable } from '../../src/p2p/peer-score.js';
import { RpcNode } from '../../src/protocols/rpc/service.js';

export interface MemoryRpcNode {
  net: MemoryNetwork;
  rpc: RpcNode;
  scores: PeerScoreTable;
}

/** Starts node `id` on `hub` with an RpcNode for `networkId` and a fresh score table. */
export async function memoryRpcNode(hub: MemoryHub, id: string, networkId: string): Promise<MemoryRpcNode> {
  const net = hub.createNode(id);
  await net.start();
  const scores = new PeerScoreTable();
  return { net, scores, rpc: new RpcNode({ network: net, networkId, scores }) };
}

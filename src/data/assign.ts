/**
 * Which training shards a node works on, from its id alone (no coordination needed).
 *
 * Rule (rendezvous hashing): for every training shard, score = SHA-256 of the UTF-8 string
 * `neuroshard-shard-assign-v1:<manifestName>:<nodeId>:<shardId>`, compared as bytes; the node's order is the
 * shards sorted by ascending score (ties, which need a SHA-256 collision, by shard id). A node holding k shards
 * takes the first k of its order. Different node ids give independent orders, so k-shard nodes spread evenly
 * over the corpus, and adding a shard moves only the nodes that now rank it in their first k.
 */
import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '../util/errors.js';

/** The node's shard order over `shardIds`, truncated to `count` (default all). */
export function assignShards(nodeId: string, shardIds: readonly number[], opts: { manifestName: string; count?: number }): number[] {
  if (nodeId.length === 0 || nodeId.length > 256) throw new InvalidArgumentError('node id must be 1–256 characters');
  const count = opts.count ?? shardIds.length;
  if (!Number.isInteger(count) || count < 1) throw new InvalidArgumentError(`shard count must be a positive integer, got ${count}`);
  const scored = shardIds.map((id) => ({
    id,
    score: createHash('sha256').update(`neuroshard-shard-assign-v1:${opts.manifestName}:${nodeId}:${id}`).digest('hex'),
  }));
  scored.sort((a, b) => (a.score < b.score ? -1 : a.score > b.score ? 1 : a.id - b.id));
  return scored.slice(0, count).map((s) => s.id);
}

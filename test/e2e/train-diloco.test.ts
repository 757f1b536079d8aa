/**
 * The network trains together, as users run it (issue 9 §4 e2e): three `neuroshard start` processes with training
 * on (the default), each in its own process group (killed by group), real libp2p on 127.0.0.1, the layer pool
 * assigning spans (no `--span`). The genesis node trains the model it holds; the joiners take layers from it and
 * train them; every H = 2 inner steps the holders of each layer close an outer round (DiLoCo). Within a bound,
 * GET /api/training on each node shows the same closed round with equal per-layer hashes for every layer two nodes
 * both hold, rounds advance, and the training loss falls.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { waitFor } from '../../src/util/abort.js';
import { killAll, killGroup, LOCAL_NODE_FLAGS, startCli, type CliProcess } from '../utils/cli-process.js';
import { apiGet, bootFlag, statusAt } from '../utils/serving-e2e.js';
import { tempDir } from '../utils/paths.js';

after(killAll);

interface TrainingBody {
  round: number | null;
  innerStep: number;
  trainLoss: number | null;
  outerSync: { bytesSent: number; bytesReceived: number; lastRound: { round: number; accepted: number } | null };
  layerHashes: Record<string, string>;
}

// A joiner of a network whose holders train takes the weights of their last closed outer round (src/pool/transfer.ts:
// the holders agree on those; their live weights change with every step) and enters the next round.
describe('neuroshard start processes train together (DiLoCo outer rounds)', () => {
  const root = tempDir('ns-train-diloco-');
  const procs: CliProcess[] = [];
  after(() => {
    for (const p of procs) killGroup(p);
    root.cleanup();
  });
  const env = { NEUROSHARD_HEARTBEAT_INTERVAL_MS: '1000', NEUROSHARD_PEER_STALE_MS: '15000', NEUROSHARD_PEER_DEAD_MS: '60000' };
  // 2 inner steps: rounds close every few seconds, faster than a joiner's weights download (19 MiB); the joiner
  // pins the round it takes on the holders it downloads from (src/training/keep.ts), so they keep it until it is done
  const common = [...LOCAL_NODE_FLAGS, '--threads', '1', '--inner-steps', '2', '--outer-sync-timeout-ms', '120000', '--eval-every', '0', '--checkpoint-every', '0'];

  const start = async (name: string, args: string[]): Promise<string> => {
    const proc = startCli(['start', '--data-dir', join(root.dir, name), ...common, ...args], env, { detached: true });
    procs.push(proc);
    const m = await proc.waitLine(/status at (http:\/\/[^/]+)\/api\/status/, 300_000);
    await statusAt(m[1]!);
    return m[1]!;
  };

  it('three processes: rounds close on each, the same round number, equal per-layer hashes, falling loss', { timeout: 1_200_000 }, async () => {
    const g = await start('genesis', ['--genesis']);
    // the loss of the untrained model, on the genesis node's first steps: every node must end well below it
    let initialLoss = Number.NaN;
    await waitFor(
      async () => {
        const b = (await apiGet(g, '/api/training')) as TrainingBody | undefined;
        if (b?.trainLoss == null) return false;
        initialLoss = b.trainLoss;
        return true;
      },
      { timeoutMs: 300_000, intervalMs: 250, what: 'the genesis node\'s first training step' },
    );
    const boot = await bootFlag(g);
    const j1 = await start('j1', boot);
    // the second joiner comes to a network whose holders train together: the genesis node and the first joiner
    // have closed an outer round with each other (their live weights move with every step; a joiner takes the
    // weights of a closed round that both serve)
    await waitFor(async () => ((await apiGet(j1, '/api/training')) as TrainingBody | undefined)?.outerSync.lastRound != null, { timeoutMs: 600_000, intervalMs: 1000, what: 'the first joiner in a closed outer round' });
    const urls = [g, j1, await start('j2', boot)];
    const seen = async (): Promise<TrainingBody[]> => (await Promise.all(urls.map((u) => apiGet(u, '/api/training')))) as TrainingBody[];
    // every node closed at least two rounds (the first of a joiner may be the one it entered with)
    let bodies: TrainingBody[] = [];
    try {
      await waitFor(
        async () => {
          bodies = await seen();
          // bytesSent: a joiner has closed a round past its entry round (it only listens to that one, sending nothing)
          return bodies.every((b) => b !== undefined && b.outerSync.lastRound !== null && b.outerSync.lastRound.round >= 2 && b.outerSync.bytesSent > 0);
        },
        { timeoutMs: 900_000, intervalMs: 2000, what: 'two closed outer rounds on every node' },
      );
    } catch (e) {
      const logs = procs.map((p, i) => `--- node ${i}: ${JSON.stringify(bodies[i] ?? null)}\n${p.err.split('\n').filter((l) => !l.includes(' debug ')).slice(-25).join('\n')}`).join('\n');
      assert.fail(`${String(e)}\n${logs}`);
    }
    // the hashes of a closed round, compared where two nodes hold the same layer: poll until the nodes stand at the
    // same boundary (a node may be a round ahead while the others close theirs)
    let compared = 0;
    // nodes that share a layer with another node whose hash equals theirs: every node, the last joiner included
    const paired = new Set<number>();
    const diagnose = (e: unknown): never => {
      const logs = procs.map((p, i) => `--- node ${i}: ${JSON.stringify(bodies[i] ?? null)}\n${p.err.split('\n').filter((l) => !l.includes(' debug ')).slice(-25).join('\n')}`).join('\n');
      assert.fail(`${String(e)}\n${logs}`);
    };
    await waitFor(
      async () => {
        bodies = await seen();
        if (bodies.some((b) => b === undefined || b.outerSync.lastRound === null)) return false;
        const rounds = bodies.map((b) => b.outerSync.lastRound!.round);
        if (rounds.some((r) => r !== rounds[0])) return false;
        compared = 0;
        paired.clear();
        for (let i = 0; i < bodies.length; i++) {
          for (let j = i + 1; j < bodies.length; j++) {
            for (const [layer, h] of Object.entries(bodies[i]!.layerHashes)) {
              const o = bodies[j]!.layerHashes[layer];
              if (o === undefined) continue;
              if (o !== h) return false;
              compared++;
              paired.add(i).add(j);
            }
          }
        }
        return compared > 0 && paired.size === bodies.length;
      },
      { timeoutMs: 600_000, intervalMs: 500, what: 'every node at the same closed round with equal per-layer hashes' },
    ).catch(diagnose);
    assert.ok(compared > 0, 'some layer is held by two nodes and its hashes were compared');
    assert.equal(paired.size, 3, 'every node, the joiners included, holds a layer whose hash equals another holder\'s');
    // how each joiner took its span: from peers, at a closed round (the weights its holders agreed on)
    const joins = procs.slice(1).map((p) => /holding layers span=(\S+) source=(\S+) hash=\S+ ms=(\d+)(?: round=(-?\d+))?/.exec(p.err));
    const fetched = /weights fetched from peers and verified span=\S+ sources=(\d+)/.exec(procs[2]!.err);
    for (const [k, m] of joins.entries()) {
      assert.ok(m !== null, `joiner ${k + 1} logged the span it holds`);
      assert.equal(m[2], 'peers', `joiner ${k + 1} took its weights from peers`);
    }
    // the second joiner joined a network whose holders were training: its weights are a closed round's
    assert.ok(joins[1]![4] !== undefined, 'the second joiner downloaded the weights of a closed outer round');
    assert.ok(fetched !== null, 'the second joiner logged its download');
    // ... and the round it took was pinned for it on a holder it downloaded from (src/training/keep.ts), so the
    // holders kept it while the download lasted, however fast their rounds closed
    const j2 = ((await apiGet(urls[2]!, '/api/status')) as { peerId: string }).peerId;
    const pinnedFor = procs.slice(0, 2).flatMap((p) => [...p.err.matchAll(/a joiner pinned a closed round peer=(\S+) round=(-?\d+)/g)].filter((m) => m[1] === j2).map((m) => Number(m[2])));
    assert.ok(pinnedFor.includes(Number(joins[1]![4])), `the second joiner's round ${joins[1]![4]} was pinned on a holder (pins: ${pinnedFor.join(', ')})`);
    console.log(`# train-diloco e2e: round ${bodies[0]!.outerSync.lastRound!.round}; layers per node: ${bodies.map((b) => Object.keys(b.layerHashes).join(',')).join(' | ')}; ${compared} hash pairs equal; joins: ${joins.map((m) => `${m![1]} in ${m![3]} ms at round ${m![4] ?? 'none'}`).join(', ')}; second joiner's sources: ${fetched![1]}`);
    for (const [i, b] of bodies.entries()) {
      assert.ok(b.outerSync.bytesSent > 0 && b.outerSync.bytesReceived > 0, `node ${i} exchanged contributions`);
      assert.ok(b.outerSync.lastRound!.accepted >= 2, `node ${i}: its last round aggregated contributions`);
    }
    // the training loss falls: every node, the joiners included, trains weights far better than the untrained model
    // (a single step's loss is noisy, so a joiner's first steps are not compared with its last few: it may have
    // joined only a few rounds ago)
    console.log(`# train-diloco e2e: training loss ${initialLoss.toFixed(3)} at the first step; now ${bodies.map((b) => b.trainLoss?.toFixed(3)).join(', ')}`);
    for (const [i, b] of bodies.entries()) {
      assert.ok(b.trainLoss !== null, `node ${i} reports its training loss`);
      assert.ok(b.trainLoss < initialLoss - 0.25, `node ${i}: training loss ${b.trainLoss} is well below the untrained ${initialLoss}`);
    }
  });
});

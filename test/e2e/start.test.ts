/**
 * `neuroshard start` as users run it: real processes, real libp2p on 127.0.0.1, the real compute worker, the local
 * status endpoint. The genesis node trains and checkpoints; Ctrl-C/SIGTERM leaves cleanly; a restart resumes; a
 * second node joins through the tracker and both see each other alive; a node stopped with SIGTERM has withdrawn
 * its record from the tracker by the time it exits.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { waitFor } from '../../src/util/abort.js';
import { cliJson, killAll, LOCAL_NODE_FLAGS, startCli } from '../utils/cli-process.js';
import { tempDir } from '../utils/paths.js';

const NET_FLAGS = LOCAL_NODE_FLAGS;
const run = startCli;

after(killAll);

describe('neuroshard start', () => {
  const a = tempDir('ns-start-a-');
  const b = tempDir('ns-start-b-');
  const t = tempDir('ns-start-t-');
  after(() => {
    a.cleanup();
    b.cleanup();
    t.cleanup();
  });

  it('the genesis node trains, serves its status, and stops cleanly with a checkpoint', async () => {
    const node = run(['start', '--data-dir', a.dir, ...NET_FLAGS, '--eval-every', '0', '--checkpoint-every', '0']);
    await node.waitLine(/step 10\/\d+ loss [\d.]+/, 120_000);
    const status = (await cliJson(['status', '--json', '--data-dir', a.dir])) as { peerId: string; span: { start: number; end: number }; networkId: string };
    assert.match(status.peerId, /^16Uiu2/);
    assert.deepEqual(status.span, { start: 0, end: 4 });
    assert.match(status.networkId, /^ns1-[0-9a-f]{32}$/);
    // Ctrl-C under `npm start` arrives twice at once (from the terminal, and forwarded by npm): still a clean stop
    node.child.kill('SIGINT');
    node.child.kill('SIGINT');
    assert.equal(await node.exited, 0);
    assert.match(node.err, /checkpoint step \d+ reason stopped/);
    assert.ok(!existsSync(join(a.dir, 'node.lock')), 'node.lock is removed on a clean stop');
    assert.equal(readdirSync(join(a.dir, 'checkpoints')).length, 1);
  });

  it('a restart resumes training from the checkpoint', async () => {
    const node = run(['start', '--data-dir', a.dir, ...NET_FLAGS, '--eval-every', '0', '--checkpoint-every', '0']);
    const m = await node.waitLine(/training .* from (\S+), step (\d+)/, 120_000);
    assert.ok(Number(m[2]) >= 10, `resumed at step ${m[2]}`);
    node.child.kill('SIGINT');
    assert.equal(await node.exited, 0);
  });

  it('two nodes find each other through a tracker, see each other alive, and a stopped node leaves the tracker', async () => {
    const tracker = run(['tracker', '--port', '0', '--host', '127.0.0.1', '--data-dir', t.dir]);
    const url = JSON.parse((await tracker.waitLine(/\{"listening".*\}/, 30_000))[0]) as { listening: { url: string } };
    const common = [...NET_FLAGS, '--tracker', url.listening.url];
    const genesis = run(['start', '--data-dir', a.dir, ...common, '--genesis', '--no-train', '--span', '0:2']);
    await genesis.waitLine(/status at/, 60_000);
    const joiner = run(['start', '--data-dir', b.dir, ...common, '--no-train', '--span', '2:4']);
    await joiner.waitLine(/status at/, 60_000);
    // each sees the other alive through signed heartbeats (default period 5 s)
    for (const dir of [a.dir, b.dir]) {
      await waitFor(
        async () => ((await cliJson(['peers', '--json', '--data-dir', dir])) as { peers: { liveness: string }[] }).peers.some((p) => p.liveness === 'alive'),
        { timeoutMs: 60_000, intervalMs: 500, what: `an alive peer seen from ${dir}` },
      );
    }
    const idOf = async (dir: string): Promise<string> => ((await cliJson(['status', '--json', '--data-dir', dir])) as { peerId: string }).peerId;
    const [genesisId, joinerId] = [await idOf(a.dir), await idOf(b.dir)];
    const listed = async (): Promise<string[]> => {
      const res = await fetch(`${url.listening.url}/peers?limit=200`);
      assert.equal(res.status, 200);
      return ((await res.json()) as { peers: { peerId: string }[] }).peers.map((p) => p.peerId);
    };
    await waitFor(
      async () => {
        const ids = await listed();
        return ids.includes(joinerId) && ids.includes(genesisId);
      },
      { timeoutMs: 30_000, intervalMs: 500, what: 'both nodes listed by the tracker' },
    );
    // graceful leave: the joiner withdraws its record before it exits, so one query after the exit suffices
    joiner.child.kill('SIGTERM');
    assert.equal(await joiner.exited, 0);
    const remaining = await listed();
    assert.ok(!remaining.includes(joinerId), 'the stopped node is no longer listed');
    assert.ok(remaining.includes(genesisId), 'the running node still is');
    for (const p of [genesis, tracker]) p.child.kill('SIGTERM');
    assert.equal(await genesis.exited, 0);
  });
});

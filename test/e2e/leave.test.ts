/**
 * A node stopped with SIGTERM tells its peers it leaves (a signed leaving heartbeat, protocols/heartbeat.ts), so a
 * generation started on another node right after the stop neither routes through it nor fails over: three
 * `neuroshard start` processes on 127.0.0.1 (the entry holds 0:2, two holders of 2:4); the entry generates once, the
 * 2:4 holder its route took is SIGTERMed, and as soon as that process has exited the entry generates again: the
 * same tokens, through the other holder, `failovers: 0`, and `/api/peers` says the stopped node is dead.
 *
 * Before the leaving heartbeat (docs/LIMITS.md, session 29's walkthrough) the stopped node stayed `alive` in its
 * peers' views for ~7 s: the second route named it (the entry prefers the holder it measured) and the hop failed
 * over (`failovers: 1`).
 */
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../../src/util/abort.js';
import { killAll, LOCAL_NODE_FLAGS, startCli, type CliProcess } from '../utils/cli-process.js';
import { apiGet, bootFlag, PROMPT, statusAt, saveGenesisCheckpoint } from '../utils/serving-e2e.js';
import { tempDir } from '../utils/paths.js';

after(killAll);

interface Generated {
  tokens: number[];
  route: { peerId: string; span: number[] }[];
  failovers: number;
}

async function generate(url: string): Promise<Generated> {
  const res = await fetch(`${url}/api/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: PROMPT, max_tokens: 8, temperature: 0 }) });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as Generated;
}

describe('a node stopped with SIGTERM (three neuroshard start processes)', () => {
  const root = tempDir('ns-leave-');
  let entryUrl = '';
  const holders = new Map<string, CliProcess>();

  before(async () => {
    // one checkpoint (the seeded genesis model) in every node's data dir, so that nobody downloads layers
    const ck = join(root.dir, 'ck');
    await saveGenesisCheckpoint(ck);
    const common = [...LOCAL_NODE_FLAGS, '--no-train', '--threads', '1'];
    const start = (name: string, span: string, boot: string[]): CliProcess => {
      const dir = join(root.dir, name);
      cpSync(ck, join(dir, 'checkpoints'), { recursive: true });
      return startCli(['start', '--data-dir', dir, ...common, '--span', span, ...boot], {}, { detached: true });
    };
    const entry = start('a', '0:2', ['--genesis']);
    entryUrl = (await entry.waitLine(/status at (http:\/\/[^/]+)\/api\/status/, 300_000))[1]!;
    const boot = await bootFlag(entryUrl);
    for (const name of ['b', 'c']) {
      const p = start(name, '2:4', boot);
      const url = (await p.waitLine(/status at (http:\/\/[^/]+)\/api\/status/, 300_000))[1]!;
      holders.set((await statusAt(url)).peerId, p);
    }
    await waitFor(
      async () => ((await apiGet(entryUrl, '/api/peers')) as { peers: { peerId: string; liveness: string; span: unknown }[] } | undefined)?.peers.filter((p) => holders.has(p.peerId) && p.liveness === 'alive' && p.span !== null).length === 2,
      { timeoutMs: 300_000, intervalMs: 500, what: 'both 2:4 holders alive in the entry view' },
    );
  });

  it('a generation right after the stop routes around the stopped node without a failover', async () => {
    const first = await generate(entryUrl);
    assert.equal(first.failovers, 0);
    const used = first.route.find((h) => holders.has(h.peerId))?.peerId;
    assert.ok(used !== undefined, JSON.stringify(first.route));
    const [other] = [...holders.keys()].filter((p) => p !== used);
    const stopped = holders.get(used)!;
    stopped.child.kill('SIGTERM');
    assert.equal(await stopped.exited, 0, stopped.err.slice(-2000));
    const told = /told our peers we are leaving.*/.exec(stopped.err);
    assert.ok(told !== null, stopped.err.slice(-2000));
    // at once: no wait for heartbeats to go missing
    const t0 = performance.now();
    const second = await generate(entryUrl);
    console.log(`${told[0]}; the next generation took ${(performance.now() - t0).toFixed(0)} ms`);
    assert.deepEqual(second.tokens, first.tokens);
    assert.deepEqual(second.route.map((h) => h.peerId).filter((p) => holders.has(p)), [other], JSON.stringify(second.route));
    assert.equal(second.failovers, 0);
    const peers = (await apiGet(entryUrl, '/api/peers')) as { peers: { peerId: string; liveness: string }[] };
    assert.equal(peers.peers.find((p) => p.peerId === used)?.liveness, 'dead');
    assert.equal(peers.peers.find((p) => p.peerId === other)?.liveness, 'alive');
  });
});

/**
 * Inference across separate `neuroshard start` processes on 127.0.0.1, every node in its own process group: six
 * holders with pinned spans (each span twice: 0:1, 1:3, 3:4; each loads its own copy of the seeded genesis model,
 * which the fixed checkpoint also is), and an entry node with `--span none`. The entry answers POST /api/generate
 * (greedy) with exactly the tokens `neuroshard generate --checkpoint` gives, through a route of three hops; SIGKILL
 * of the validator, the middle and the driver hop after the 10th streamed token: each stream completes with the
 * same tokens and failovers >= 1. (The layer pool's own placement: chain-pool.test.ts.)
 */
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../../src/util/abort.js';
import { cliJson, killAll, killGroup, LOCAL_NODE_FLAGS, startCli, type CliProcess } from '../utils/cli-process.js';
import { apiGet, bootFlag, PROMPT, statusAt, streamWithKill, saveGenesisCheckpoint } from '../utils/serving-e2e.js';
import { tempDir } from '../utils/paths.js';

after(killAll);

// long enough that the kill after the 10th streamed token lands while the chain still works (the entry may run ahead of the reader)
const MAX = 400;

interface Holder {
  proc: CliProcess;
  dir: string;
  peerId: string;
  span: string;
}

describe('a chain of neuroshard start processes (pinned spans)', () => {
  const root = tempDir('ns-chain-');
  const holders: Holder[] = [];
  let entryUrl = '';
  let reference: number[] = [];
  let entryProc: CliProcess | undefined;
  after(() => { if (process.env.CHAIN_DEBUG) console.log(entryProc?.err, holders.map((h) => h.proc.err).join('\n----\n')); });

  before(async () => {
    // one fixed checkpoint (the seeded genesis model), copied into every holder's data dir
    const ck = join(root.dir, 'ck');
    await saveGenesisCheckpoint(ck);
    const ref = (await cliJson(['generate', '--checkpoint', ck, '--prompt', PROMPT, '--temperature', '0', '--max-tokens', String(MAX), '--json', '--threads', '1'])) as { tokens: number[] };
    reference = ref.tokens;

    const common = [...LOCAL_NODE_FLAGS, '--no-train', '--threads', '1'];
    const spans = ['0:1', '1:3', '3:4', '0:1', '1:3', '3:4'];
    const start = (i: number, span: string, boot: string[]): { proc: CliProcess; dir: string } => {
      const dir = join(root.dir, `h${i}`);
      cpSync(ck, join(dir, 'checkpoints'), { recursive: true });
      return { proc: startCli(['start', '--data-dir', dir, ...common, '--span', span, ...(i === 0 ? ['--genesis'] : boot)], {}, { detached: true }), dir };
    };
    const first = start(0, spans[0]!, []);
    const url0 = (await first.proc.waitLine(/status at (http:\/\/[^/]+)\/api\/status/, 300_000))[1]!;
    const boot = await bootFlag(url0);
    holders.push({ ...first, peerId: (await statusAt(url0)).peerId, span: spans[0]! });
    // the others start together (the machine may be slow: each loads a worker and its layers)
    const rest = spans.slice(1).map((span, k) => ({ ...start(k + 1, span, boot), span }));
    for (const r of rest) {
      const url = (await r.proc.waitLine(/status at (http:\/\/[^/]+)\/api\/status/, 300_000))[1]!;
      holders.push({ proc: r.proc, dir: r.dir, span: r.span, peerId: (await statusAt(url)).peerId });
    }
    const edir = join(root.dir, 'entry');
    const entry = startCli(['start', '--data-dir', edir, ...common, '--span', 'none', '--hop-timeout-ms', '15000', ...boot], {}, { detached: true });
    const m = await entry.waitLine(/status at (http:\/\/[^/]+)\/api\/status/, 300_000);
    entryUrl = m[1]!;
    entryProc = entry;
    // the entry routes over peers whose heartbeats it has seen (a busy node may not answer a poll: that is "not yet")
    await waitFor(
      async () => ((await apiGet(entryUrl, '/api/peers')) as { peers: { liveness: string; span: unknown }[] } | undefined)?.peers.filter((p) => (p.liveness === 'alive' || p.liveness === 'stale') && p.span !== null).length === 6,
      // stale (heartbeats late on a loaded machine) is still routed to, behind alive peers
      { timeoutMs: 300_000, intervalMs: 1000, what: 'six live holders seen from the entry' },
    );
  });

  it('answers with the tokens of neuroshard generate --checkpoint, over three hops', async () => {
    const res = await fetch(`${entryUrl}/api/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: PROMPT, max_tokens: MAX, temperature: 0 }) });
    const json = (await res.json()) as { tokens: number[]; route: { peerId: string; span: number[] }[]; failovers: number };
    assert.equal(res.status, 200, JSON.stringify(json));
    assert.deepEqual(json.tokens, reference);
    assert.deepEqual(json.route.map((h) => h.span), [[0, 1], [1, 3], [3, 4]]);
  });

  it('neuroshard generate without --checkpoint answers through the node running on the data dir', async () => {
    const r = (await cliJson(['generate', '--data-dir', join(root.dir, 'entry'), '--prompt', PROMPT, '--temperature', '0', '--max-tokens', String(MAX), '--json'])) as { tokens: number[] };
    assert.deepEqual(r.tokens, reference);
  });

  for (const [name, hop] of [['validator', 2], ['middle', 1], ['driver', 0]] as const) {
    it(`survives SIGKILL of the ${name} hop after the 10th token`, async () => {
      const { route } = await streamWithKill(entryUrl, MAX, reference, () => hop, (peerId) => killGroup(holders.find((h) => h.peerId === peerId)!.proc));
      assert.equal(route.length, 3);
    });
  }
});


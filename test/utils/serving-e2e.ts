/**
 * Helpers of the process-level serving e2e tests (test/e2e/chain*.test.ts): polling a node's API without failing on
 * a busy node, the SSE stream of POST /api/generate, and a stream with a SIGKILL of one hop after the 10th token.
 */
import assert from 'node:assert/strict';
import { ComputeClient } from '../../src/compute/index.js';
import { bundledGenesis } from '../../src/node/genesis.js';
import { waitFor } from '../../src/util/abort.js';

export const PROMPT = 'The county grand jury said';

/** Writes the seeded genesis model (the network's model when a node is started without --checkpoint) as a checkpoint at `dir`. */
export async function saveGenesisCheckpoint(dir: string): Promise<void> {
  const genesis = bundledGenesis();
  const compute = await ComputeClient.start({ threads: 1 });
  try {
    await compute.run({ type: 'initModel', config: genesis.config, seed: 0 });
    await compute.run({ type: 'saveCheckpoint', root: dir, step: 0, tokenizerPath: genesis.tokenizerPath });
  } finally {
    await compute.close();
  }
}

/** GET a JSON route of a node's API; undefined when the node does not answer (yet, or busy: the machine may be loaded). */
export async function apiGet(url: string, path: string): Promise<any> {
  try {
    const res = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(20_000) });
    return res.status === 200 ? await res.json() : undefined;
  } catch {
    return undefined;
  }
}

/** GET /api/status, polled until the node answers (bounded). */
export async function statusAt(url: string, ms = 120_000): Promise<{ peerId: string; addresses: string[] }> {
  let st: { peerId: string; addresses: string[] } | undefined;
  await waitFor(async () => (st = (await apiGet(url, '/api/status')) as typeof st) !== undefined && st!.peerId !== '', { timeoutMs: ms, intervalMs: 500, what: `${url}/api/status` });
  return st!;
}

/** The --bootstrap flag that joins through the node at `url`. */
export async function bootFlag(url: string): Promise<string[]> {
  const st = await statusAt(url);
  return ['--bootstrap', st.addresses.find((a) => a.includes('/tcp/'))!.replace(/\/p2p\/.*$/, '') + `/p2p/${st.peerId}`];
}

export interface LayersBody {
  layers: { layer: number; holders: { peerId: string; state: string; tokensPerSec: number }[] }[];
  replicasMin: number;
  modelHash: string;
}

export async function sse(url: string, body: object, onEvent: (e: any, tokens: number) => void): Promise<any[]> {
  const res = await fetch(`${url}/api/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, stream: true }) });
  // read the body for the message only on failure: `await res.clone().text()` as an argument waits for the whole
  // stream, so the kill "after the 10th token" landed after the generation had ended (failovers 0)
  if (res.status !== 200) assert.fail(`POST /api/generate: ${res.status} ${await res.text()}`);
  const events: any[] = [];
  let buf = '';
  const dec = new TextDecoder();
  for await (const chunk of res.body!) {
    buf += dec.decode(chunk as Uint8Array, { stream: true });
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (!block.startsWith('data: ')) continue;
      const e = JSON.parse(block.slice(6));
      events.push(e);
      onEvent(e, events.filter((x) => x.token !== undefined).length);
    }
  }
  return events;
}

type Route = { peerId: string; span: number[] }[];

/** A greedy generation streamed with `kill(route[pick(route)])` after the 10th token: it completes, same tokens, failovers >= 1. */
export async function streamWithKill(url: string, maxTokens: number, reference: number[], pick: (route: Route) => number, kill: (peerId: string) => void): Promise<{ route: Route; killed: string }> {
  let route: Route = [];
  let killed: string | undefined;
  const events = await sse(url, { prompt: PROMPT, max_tokens: maxTokens, temperature: 0 }, (e, n) => {
    if (e.route !== undefined) route = e.route;
    if (e.token !== undefined && n === 10) {
      killed = route[pick(route)]!.peerId;
      kill(killed);
    }
  });
  assert.ok(killed !== undefined, 'a hop was killed');
  const done = events.at(-1);
  assert.equal(done.done, true, JSON.stringify(done));
  assert.deepEqual(done.tokens, reference);
  assert.deepEqual(events.filter((e) => e.token !== undefined).map((e) => e.token), reference);
  assert.ok(done.failovers >= 1, `failovers ${done.failovers}`);
  return { route, killed };
}

/**
 * Crash safety: a child process ingesting a stream is killed with SIGKILL at random moments. After each kill the
 * database reopens consistent (the persisted state equals a replay of the stored events, the supply invariant
 * holds) and every event the child had acknowledged is there. The last child finishes, and the result equals a
 * ledger that ingested everything without interruption.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Ledger } from '../../../src/ledger/ledger.js';
import { fromHex } from '../../../src/util/bytes.js';
import { Rng } from '../../../src/util/rng.js';
import { tempDir } from '../../utils/paths.js';
import { generateTraffic, GEN_LAYERS } from '../../unit/ledger/generate.js';
import { NET } from '../../unit/ledger/helpers.js';

const here = fileURLToPath(import.meta.url);
const fromSource = here.endsWith('.ts');
const child = here.replace(/crash\.test\.(ts|js)$/, `crash-child.$1`);

interface RunResult {
  acked: Map<string, string>;
  done: boolean;
}

/** Runs the child; kills it with SIGKILL after `killAfter` acks (never when undefined). */
function runChild(args: string[], killAfter: number | undefined): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [...(fromSource ? ['--import', 'tsx'] : []), child, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const acked = new Map<string, string>();
    let done = false;
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const rl = createInterface({ input: p.stdout });
    rl.on('line', (line) => {
      if (line === 'done') done = true;
      const m = /^ack ([0-9a-f]{64}) (\w+)$/.exec(line);
      if (m === null) return;
      acked.set(m[1]!, m[2]!);
      if (killAfter !== undefined && acked.size >= killAfter) p.kill('SIGKILL');
    });
    p.on('error', reject);
    p.on('close', (code, signal) => {
      if (signal !== 'SIGKILL' && code !== 0) reject(new Error(`child exited ${code}: ${stderr}`));
      else resolve({ acked, done });
    });
  });
}

describe('ledger crash safety', () => {
  it('loses nothing acknowledged when SIGKILLed at random moments', async () => {
    const t = tempDir('neuroshard-crash-');
    try {
      const { events } = generateTraffic(1500, 4242);
      // Jitter the order in blocks, so the children also rewind.
      const rng = new Rng(11);
      const order: Uint8Array[] = [];
      for (let i = 0; i < events.length; i += 100) order.push(...rng.shuffle(events.slice(i, i + 100)));
      const file = join(t.dir, 'events.bin');
      writeFileSync(file, Buffer.concat(order.flatMap((e) => [lenPrefix(e.length), Buffer.from(e)])));
      const db = join(t.dir, 'ledger.db');
      const allAcked = new Map<string, string>();
      let kills = 0;
      for (let round = 0; round < 8; round++) {
        const last = round === 7;
        const killAfter = last ? undefined : 1 + rng.int(800);
        const r = await runChild([db, file, NET, String(GEN_LAYERS), String(round)], killAfter);
        for (const [id, s] of r.acked) allAcked.set(id, s);
        if (!r.done) kills++;
        const l = new Ledger({ path: db, networkId: NET, modelLayers: GEN_LAYERS });
        try {
          for (const id of allAcked.keys()) assert.ok(l.eventStatus(fromHex(id)) !== undefined, `acknowledged event ${id} lost (round ${round})`);
          assert.equal(l.supplyGap(), 0n);
          assert.equal(l.replayHash(), l.stateHash(), `round ${round}: persisted state differs from a replay of the stored events`);
        } finally {
          l.close();
        }
        if (last) assert.ok(r.done, 'the last child must finish');
      }
      assert.ok(kills >= 5, `only ${kills} children were killed before finishing`);
      const ref = new Ledger({ path: join(t.dir, 'ref.db'), networkId: NET, modelLayers: GEN_LAYERS });
      ref.ingestMany(events);
      const final = new Ledger({ path: db, networkId: NET, modelLayers: GEN_LAYERS, readonly: true });
      try {
        assert.deepEqual(final.status(), ref.status());
      } finally {
        final.close();
        ref.close();
      }
    } finally {
      t.cleanup();
    }
  });
});

function lenPrefix(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/**
 * Counts what the attack suite throws at the ledger: every attack event sent, and every one that succeeded (did
 * what the attacker wanted: stored, applied, minted, spent, stalled). Each test file records its counts under
 * `NEUROSHARD_ATTACK_TALLY` (a folder; scripts/test.mjs sets it and prints the suite's total) and prints its own
 * summary line when it ends.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after } from 'node:test';

export interface AttackCount {
  attack: string;
  sent: number;
  succeeded: number;
}

const counts = new Map<string, AttackCount>();

/** Records `sent` attack events of `attack`, of which `succeeded` got through. */
export function tally(attack: string, sent: number, succeeded: number): void {
  const c = counts.get(attack) ?? { attack, sent: 0, succeeded: 0 };
  c.sent += sent;
  c.succeeded += succeeded;
  counts.set(attack, c);
}

after(() => {
  const all = [...counts.values()];
  if (all.length === 0) return;
  const sent = all.reduce((a, c) => a + c.sent, 0);
  const succeeded = all.reduce((a, c) => a + c.succeeded, 0);
  process.stdout.write(`attacks: ${all.map((c) => `${c.attack} ${c.sent} sent/${c.succeeded} succeeded`).join(', ')}; total ${sent} sent, ${succeeded} succeeded\n`);
  const dir = process.env.NEUROSHARD_ATTACK_TALLY;
  if (dir !== undefined && dir !== '') {
    mkdirSync(dir, { recursive: true });
    appendFileSync(join(dir, `${process.pid}.jsonl`), all.map((c) => JSON.stringify(c)).join('\n') + '\n');
  }
});

/**
 * Helpers shared by `neuroshard wallet` and `neuroshard ledger`: the data dir, the ledger opened read-only next to
 * a possibly running node, terminal prompts, and output as JSON or as plain lines.
 */
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';
import { readNetworkFile } from '../../node/genesis-key.js';
import { DEFAULTS, LEDGER_DEFAULTS, loadOptions } from '../../node/options.js';
import { Ledger, ledgerPath, outboxMaxNonce, rewardRulesOf, type EventKind } from '../../ledger/index.js';
import { fromHex } from '../../util/bytes.js';
import { stringFlag, UsageError, type CommandIO, type FlagValues } from '../command.js';

export function dataDirOf(flags: FlagValues): string {
  return loadOptions({ flags: { dataDir: stringFlag(flags, 'data-dir'), logLevel: stringFlag(flags, 'log-level') } }).dataDir;
}

/** The network id and model depth recorded in the ledger by the node that created it. */
export function ledgerMeta(dataDir: string): { networkId: string; modelLayers: number } | undefined {
  const path = ledgerPath(dataDir);
  if (!existsSync(path)) return undefined;
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const has = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get();
    if (has === undefined) return undefined;
    const get = (k: string): string | undefined => (db.prepare('SELECT v FROM meta WHERE k = ?').get(k) as { v: string } | undefined)?.v;
    const networkId = get('networkId');
    const layers = get('modelLayers');
    if (networkId === undefined || layers === undefined) return undefined;
    return { networkId, modelLayers: Number(layers) };
  } finally {
    db.close();
  }
}

/**
 * The node's ledger, read-only (safe while the node writes); undefined when the node never created one. It judges
 * events under the rules the node runs (the genesis key from `<data-dir>/network.json`, witnessed rewards minted at
 * checkpoints of the configured period): without them a replay (`ledger status --verify`) judged the Genesis event
 * and the rewards as a bare Ledger does and called every healthy ledger inconsistent (session 30's walkthrough).
 */
export function openLedgerReadOnly(dataDir: string, checkpointPeriodMs: number = DEFAULTS.checkpointPeriodMs): Ledger | undefined {
  const meta = ledgerMeta(dataDir);
  if (meta === undefined) return undefined;
  const genesisKey = readNetworkFile(dataDir)?.genesisKey;
  const rewards = rewardRulesOf(
    { checkpointPeriodMs },
    { witnessedRewards: LEDGER_DEFAULTS.witnessedRewards, checkpointPeriodMs: DEFAULTS.checkpointPeriodMs, checkpointSettleMs: LEDGER_DEFAULTS.checkpointSettleMs },
    genesisKey === undefined ? undefined : fromHex(genesisKey),
  );
  return new Ledger({ path: ledgerPath(dataDir), networkId: meta.networkId, modelLayers: meta.modelLayers, readonly: true, rewards });
}

/**
 * The next free nonce of `kind` for `signer`: one past the largest in the outbox and in the node's ledger. The
 * outbox is read first: the node stores an event in its ledger before it deletes the outbox file, so an event
 * moving between the two while we look is seen in one or the other (read the other way round it could be seen in
 * neither, and its nonce handed out again: an equivocation). `between` is a test hook run between the two reads.
 * Call it holding the outbox lock, so two wallet commands do not pick the same nonce either.
 */
export function nextWalletNonce(dataDir: string, signer: Uint8Array, kind: EventKind, between?: () => void): bigint {
  const queued = outboxMaxNonce(dataDir, signer, kind) + 1n;
  between?.();
  const ledger = openLedgerReadOnly(dataDir);
  let stored = 0n;
  try {
    stored = ledger?.nextNonce(signer, kind) ?? 0n;
  } finally {
    ledger?.close();
  }
  return stored > queued ? stored : queued;
}

export function isTerminal(): boolean {
  return process.stdin.isTTY === true && process.stderr.isTTY === true;
}

/** Asks a question on the terminal (stderr), returns the answer line. */
export async function ask(question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  try {
    return await new Promise<string>((resolve) => rl.question(question, resolve));
  } finally {
    rl.close();
  }
}

/**
 * Confirms an action: passes with --yes, asks on a terminal, and refuses otherwise (a script must say --yes).
 */
export async function confirm(flags: FlagValues, io: CommandIO, summary: string, typed?: string): Promise<void> {
  if (flags.yes === true) return;
  if (!isTerminal()) throw new UsageError(`${summary}\nrefusing without a terminal to confirm on: pass --yes`);
  io.stderr(summary + '\n');
  const answer = (await ask(typed === undefined ? 'proceed? [y/N] ' : `type "${typed}" to proceed: `)).trim();
  const ok = typed === undefined ? /^y(es)?$/i.test(answer) : answer === typed;
  if (!ok) throw new UsageError('cancelled');
}

/** Reads all of standard input (at most `max` bytes). */
export async function readStdin(max = 4096): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of process.stdin) {
    const b = c as Buffer;
    n += b.length;
    if (n > max) throw new UsageError(`standard input is longer than ${max} bytes`);
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Prints `value` as JSON with --json, otherwise as "key: value" lines. */
export function output(io: CommandIO, flags: FlagValues, value: unknown): void {
  if (flags.json === true) {
    io.stdout(JSON.stringify(value, null, 2) + '\n');
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) io.stdout(lines(v) + '\n\n');
    return;
  }
  io.stdout(lines(value) + '\n');
}

function lines(v: unknown): string {
  if (v === null || typeof v !== 'object') return String(v);
  return Object.entries(v as Record<string, unknown>)
    .map(([k, x]) => `${k}: ${typeof x === 'object' && x !== null ? JSON.stringify(x) : String(x)}`)
    .join('\n');
}

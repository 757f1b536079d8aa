/**
 * `neuroshard wallet <create|import|export|show|balance|history|send|stake|unstake>`: the node's key as a wallet.
 * Amounts are decimal NEURO strings in and out, never JSON numbers. Signed events go to the node running on the
 * data dir through its local endpoint (POST /api/ledger/events, port from node.lock), which answers with the
 * ledger's verdict; with no node running, or one whose endpoint does not answer, they wait in the outbox, which the
 * node publishes when it starts (a running node polls it too).
 */
import {
  addressFromPublicKey,
  assertNoNodeRunning,
  checkMnemonic,
  createKeystore,
  generateMnemonic,
  keystoreExists,
  openKeystore,
  parseAddress,
  peerIdFromPublicKey,
  promptHidden,
  readKeystorePublic,
  readNodeLock,
  resolvePassphrase,
  accountIdFromPublicKey,
  type NodeKey,
} from '../../identity/index.js';
import {
  EventKind,
  buildStake,
  buildTransfer,
  buildUnstake,
  formatAmount,
  parseAmount,
  readOutcome,
  transferFee,
  withOutboxLock,
  writeOutbox,
  DECIMALS,
  MAX_AMOUNT,
  MAX_LOCK_DAYS,
  MIN_LOCK_DAYS,
  REASONS,
  type LedgerEvent,
  type ReasonCode,
} from '../../ledger/index.js';
import { toHex } from '../../util/bytes.js';
import { ConfigError, errorMessage, isNeuroShardError } from '../../util/errors.js';
import { intFlag, shown, stringFlag, UsageError, type Command, type CommandIO, type FlagValues } from '../command.js';
import { runningNodeClient } from '../local-endpoint.js';
import { confirm, dataDirOf, isTerminal, ledgerMeta, nextWalletNonce, openLedgerReadOnly, output, readStdin } from './common.js';

const SUBCOMMANDS = ['create', 'import', 'export', 'show', 'balance', 'history', 'send', 'stake', 'unstake'] as const;
type Sub = (typeof SUBCOMMANDS)[number];

/** How long `send`/`stake`/`unstake` wait for a running node to take the event from the outbox. */
const NODE_PICKUP_MS = 15_000;

/** What an amount argument may be, for every refusal: the smallest unit up to the largest amount an event carries. */
const AMOUNT_RANGE = `a NEURO amount in 0.${'0'.repeat(DECIMALS - 1)}1..${formatAmount(MAX_AMOUNT)}, with at most ${DECIMALS} decimals`;

/**
 * A positional NEURO amount, or a UsageError that names the argument, what was wrong and the allowed range: a
 * negative amount (`-5`, read as a value by parseFlags, not as a flag) is "must be positive", more decimals than
 * NEURO has is said as such, never rounded.
 */
export function amountArg(s: string | undefined, what: string): bigint {
  if (s === undefined) throw new UsageError(`missing ${what}`, { arg: what });
  const refuse = (why: string): never => {
    throw new UsageError(`${what} ${why} (${AMOUNT_RANGE})`, { arg: what });
  };
  if (s.length > 64) refuse(`is ${s.length} characters long`);
  if (/^\s*-/.test(s)) refuse(`must be positive, not ${shown(s)}`);
  const decimals = /^\d+\.(\d+)$/.exec(s)?.[1]?.length ?? 0;
  if (decimals > DECIMALS) refuse(`${shown(s)} has ${decimals} decimals, more than NEURO has`);
  let v: bigint;
  try {
    v = parseAmount(s);
  } catch {
    if (/^0\d/.test(s)) refuse(`${shown(s)} starts with a 0`);
    // digits with at most 18 decimals that do not parse: too large
    if (/^\d+(\.\d+)?$/.test(s)) throw new UsageError(`${what} ${s} is larger than the maximum, ${formatAmount(MAX_AMOUNT)}`, { arg: what });
    return refuse(`${shown(s)} is not a decimal number`);
  }
  if (v === 0n) refuse('must be more than 0');
  return v;
}

function addressArg(s: string | undefined): Uint8Array {
  if (s === undefined) throw new UsageError('missing address');
  try {
    return parseAddress(s);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

async function passphraseFor(flags: FlagValues, creating: boolean): Promise<string | undefined> {
  return resolvePassphrase({
    file: stringFlag(flags, 'passphrase-file'),
    prompt: true,
    confirm: creating,
    promptText: creating ? 'passphrase to encrypt the keystore (empty for none): ' : 'keystore passphrase: ',
  });
}

async function unlock(dataDir: string, flags: FlagValues): Promise<{ key: NodeKey; mnemonic: string }> {
  const pub = readKeystorePublic(dataDir);
  const passphrase = pub.encrypted ? await passphraseFor(flags, false) : undefined;
  return openKeystore(dataDir, { passphrase });
}

function refuseExisting(dataDir: string, flags: FlagValues): void {
  assertNoNodeRunning(dataDir);
  if (keystoreExists(dataDir) && flags.force !== true) {
    throw new ConfigError(`a keystore already exists in ${dataDir}; pass --force to replace it (the old key is lost unless you kept its mnemonic)`, undefined, 'KEYSTORE_EXISTS');
  }
}

async function create(dataDir: string, flags: FlagValues, io: CommandIO): Promise<number> {
  refuseExisting(dataDir, flags);
  const passphrase = await passphraseFor(flags, true);
  const mnemonic = generateMnemonic();
  const key = createKeystore(dataDir, mnemonic, { passphrase, force: flags.force === true });
  if (flags.json !== true) io.stderr('Write the mnemonic down and keep it safe: it is shown only this once and is the only way to recover the wallet.\n');
  output(io, flags, { address: addressFromPublicKey(key.publicKey), peerId: peerIdFromPublicKey(key.publicKey), mnemonic });
  return 0;
}

async function importWallet(dataDir: string, flags: FlagValues, io: CommandIO): Promise<number> {
  refuseExisting(dataDir, flags);
  const text = isTerminal() ? await promptHidden('mnemonic: ') : await readStdin();
  let mnemonic: string;
  try {
    mnemonic = checkMnemonic(text);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const passphrase = await passphraseFor(flags, true);
  const key = createKeystore(dataDir, mnemonic, { passphrase, force: flags.force === true });
  output(io, flags, { address: addressFromPublicKey(key.publicKey), peerId: peerIdFromPublicKey(key.publicKey) });
  return 0;
}

async function exportWallet(dataDir: string, flags: FlagValues, io: CommandIO): Promise<number> {
  readKeystorePublic(dataDir); // fail early with KEYSTORE_MISSING
  await confirm(flags, io, 'This prints the mnemonic: anyone who sees it controls the wallet.', 'show mnemonic');
  const { mnemonic } = await unlock(dataDir, flags);
  output(io, flags, flags.json === true ? { mnemonic } : mnemonic);
  return 0;
}

function show(dataDir: string, flags: FlagValues, io: CommandIO): number {
  const p = readKeystorePublic(dataDir);
  output(io, flags, { address: p.address, peerId: p.peerId, publicKey: toHex(p.publicKey) });
  return 0;
}

function ownAccount(dataDir: string): Uint8Array {
  return accountIdFromPublicKey(readKeystorePublic(dataDir).publicKey);
}

function balance(dataDir: string, flags: FlagValues, positionals: string[], io: CommandIO): number {
  const account = positionals[0] !== undefined ? addressArg(positionals[0]) : ownAccount(dataDir);
  const ledger = openLedgerReadOnly(dataDir);
  try {
    const v = ledger?.account(account);
    output(io, flags, {
      address: v?.address ?? (positionals[0] as string | undefined) ?? readKeystorePublic(dataDir).address,
      balance: formatAmount(v?.balance ?? 0n),
      staked: formatAmount(v?.staked ?? 0n),
      // issue 11 §3: earned, minted once the checkpoint covering it is signed
      unminted: formatAmount(v?.unminted ?? 0n),
      unlocksAt: v !== undefined && v.unlocksAt > 0 ? new Date(v.unlocksAt).toISOString() : null,
    });
  } finally {
    ledger?.close();
  }
  return 0;
}

function history(dataDir: string, flags: FlagValues, positionals: string[], io: CommandIO): number {
  // read before the ledger: a bad --limit is refused even where there is no ledger yet (it printed [] there)
  const limit = intFlag(flags, 'limit', 100, 1, 10_000);
  const account = positionals[0] !== undefined ? addressArg(positionals[0]) : ownAccount(dataDir);
  const ledger = openLedgerReadOnly(dataDir);
  try {
    output(io, flags, ledger?.history(account, limit) ?? []);
  } finally {
    ledger?.close();
  }
  return 0;
}

/**
 * Signs an event with the next free nonce of its kind and hands it to the running node's endpoint, or leaves it
 * in the outbox (no node, or its endpoint did not take it) and waits a while for a running node to pick it up.
 * The endpoint is asked while the outbox lock is held, so a second wallet command picks its nonce only after the
 * node has stored this event. Falling back after a request that did reach the node is safe: the outbox holds the
 * same bytes (same id), and the node reports the stored verdict of an event it already has.
 */
async function submit(
  dataDir: string,
  flags: FlagValues,
  io: CommandIO,
  kind: EventKind,
  build: (key: NodeKey, env: { networkId: string; nonce: bigint; timestampMs: number }) => LedgerEvent,
): Promise<{ event: LedgerEvent; status: string; reason?: string }> {
  const meta = ledgerMeta(dataDir);
  if (meta === undefined) throw new ConfigError(`no ledger in ${dataDir}: start the node once so it joins a network`, undefined, 'LEDGER_MISSING');
  const { key } = await unlock(dataDir, flags);
  const node = runningNodeClient(dataDir);
  const sent = await withOutboxLock(dataDir, async (): Promise<{ event: LedgerEvent; status?: string; reason?: string }> => {
    const nonce = nextWalletNonce(dataDir, key.publicKey, kind);
    const e = build(key, { networkId: meta.networkId, nonce, timestampMs: Date.now() });
    if (node !== undefined) {
      try {
        const o = await node.submitLedgerEvent(e.bytes);
        return { event: e, status: o.status, ...(o.reason !== undefined ? { reason: o.reason } : {}) };
      } catch (err) {
        io.stderr(`the node's local endpoint did not take the event (${errorMessage(err)}); leaving it in the outbox\n`);
      }
    }
    writeOutbox(dataDir, e);
    return { event: e };
  });
  const event = sent.event;
  if (sent.status !== undefined) return sent.reason === undefined ? { event, status: sent.status } : { event, status: sent.status, reason: sent.reason };
  if (readNodeLock(dataDir) === undefined) return { event, status: 'queued' };
  const id = toHex(event.id);
  const deadline = Date.now() + NODE_PICKUP_MS;
  while (Date.now() < deadline) {
    const o = readOutcome(dataDir, id);
    if (o !== undefined) return o.reason === undefined ? { event, status: o.status } : { event, status: o.status, reason: o.reason };
    await new Promise((r) => setTimeout(r, 100));
  }
  return { event, status: 'queued' };
}

async function send(dataDir: string, flags: FlagValues, positionals: string[], io: CommandIO): Promise<number> {
  const to = addressArg(positionals[0]);
  const amount = amountArg(positionals[1], 'amount');
  const fee = transferFee(amount);
  const mine = ownAccount(dataDir);
  if (Buffer.compare(to, mine) === 0) throw new UsageError('cannot send to your own address');
  await confirm(
    flags,
    io,
    `send ${formatAmount(amount)} NEURO to ${positionals[0]}\nfee ${formatAmount(fee)} NEURO (5 %, paid on top and burned)\ntotal ${formatAmount(amount + fee)} NEURO`,
  );
  const r = await submit(dataDir, flags, io, EventKind.Transfer, (key, env) => buildTransfer(key, env, to, amount));
  output(io, flags, { id: toHex(r.event.id), nonce: r.event.nonce.toString(), amount: formatAmount(amount), fee: formatAmount(fee), status: r.status, ...(r.reason !== undefined ? { reason: r.reason } : {}) });
  return verdictExit(io, flags, 'transfer', r);
}

async function stake(dataDir: string, flags: FlagValues, positionals: string[], io: CommandIO): Promise<number> {
  const amount = amountArg(positionals[0], 'amount');
  if (flags['lock-days'] === undefined) throw new UsageError('stake needs --lock-days D');
  const days = intFlag(flags, 'lock-days', 30, MIN_LOCK_DAYS, MAX_LOCK_DAYS);
  const r = await submit(dataDir, flags, io, EventKind.Stake, (key, env) => buildStake(key, env, amount, days));
  output(io, flags, { id: toHex(r.event.id), nonce: r.event.nonce.toString(), amount: formatAmount(amount), lockDays: days, status: r.status, ...(r.reason !== undefined ? { reason: r.reason } : {}) });
  return verdictExit(io, flags, 'stake', r);
}

async function unstake(dataDir: string, flags: FlagValues, positionals: string[], io: CommandIO): Promise<number> {
  const amount = amountArg(positionals[0], 'amount');
  const r = await submit(dataDir, flags, io, EventKind.Unstake, (key, env) => buildUnstake(key, env, amount));
  output(io, flags, { id: toHex(r.event.id), nonce: r.event.nonce.toString(), amount: formatAmount(amount), status: r.status, ...(r.reason !== undefined ? { reason: r.reason } : {}) });
  return verdictExit(io, flags, 'unstake', r);
}

/**
 * The ledger's refusal in words on stderr (the verdict printed on stdout names only its code, e.g. `reason:
 * STAKE_LOCKED`), and the exit code: 1 when the ledger refused the event.
 */
function verdictExit(io: CommandIO, flags: FlagValues, what: string, r: { status: string; reason?: string }): number {
  const message = refusalMessage(what, r.status, r.reason);
  if (message === undefined) return 0;
  if (flags.json !== true) io.stderr(`neuroshard wallet: ${message}\n`);
  return 1;
}

/** "the ledger refused this unstake: stake is still locked (STAKE_LOCKED) …", or undefined when it was not refused. */
export function refusalMessage(what: string, status: string, reason: string | undefined): string | undefined {
  if (status !== 'rejected' && status !== 'dropped' && status !== 'void') return undefined;
  const text = reason !== undefined && Object.hasOwn(REASONS, reason) ? REASONS[reason as ReasonCode] : undefined;
  const why = reason === undefined ? status : text === undefined ? reason : `${text} (${reason})`;
  const hint = reason === 'STAKE_LOCKED' ? '; `neuroshard wallet balance` shows when it unlocks (unlocksAt)' : reason === 'INSUFFICIENT_BALANCE' ? '; `neuroshard wallet balance` shows what you hold' : '';
  return `the ledger refused this ${what}: ${why}${hint}`;
}

/** What each subcommand takes, for the usage line and its error. */
const SUB_ARGS: Record<Sub, string> = {
  create: '',
  import: '',
  export: '',
  show: '',
  balance: '[ADDRESS]',
  history: '[ADDRESS]',
  send: '<address> <amount>',
  stake: '<amount>',
  unstake: '<amount>',
};

export const walletCommand: Command = {
  name: 'wallet',
  summary: 'the node key as a NEURO wallet: create, import, export, show, balance, history, send, stake, unstake',
  args: '<create|import|export|show|balance [ADDRESS]|history [ADDRESS]|send <address> <amount>|stake <amount>|unstake <amount>>',
  flags: {
    json: { type: 'boolean', description: 'print JSON' },
    force: { type: 'boolean', description: 'create/import: replace an existing keystore' },
    yes: { type: 'boolean', short: 'y', description: 'send/export: skip the confirmation' },
    'passphrase-file': { type: 'string', value: 'FILE', description: 'read the keystore passphrase from the first line of FILE (or set NEUROSHARD_PASSPHRASE)' },
    'lock-days': { type: 'string', value: 'D', description: `stake: lock period in days (${MIN_LOCK_DAYS}..${MAX_LOCK_DAYS})` },
    limit: { type: 'string', value: 'N', description: 'history: at most N events, 1..10000 (default 100)' },
  },
  async run(flags, positionals, io) {
    const [sub, ...rest] = positionals;
    if (sub === undefined || !(SUBCOMMANDS as readonly string[]).includes(sub)) {
      throw new UsageError(`wallet needs a subcommand: ${SUBCOMMANDS.join(', ')}`);
    }
    const dataDir = dataDirOf(flags);
    const expect = (n: number, m = n): void => {
      if (rest.length < n || rest.length > m) {
        // name the arguments, not only their count: "wallet send takes <address> <amount>"
        const shape = SUB_ARGS[sub as Sub];
        throw new UsageError(shape === '' ? `wallet ${sub} takes no argument` : `wallet ${sub} takes ${shape}`);
      }
    };
    try {
      switch (sub as Sub) {
        case 'create':
          expect(0);
          return await create(dataDir, flags, io);
        case 'import':
          expect(0);
          return await importWallet(dataDir, flags, io);
        case 'export':
          expect(0);
          return await exportWallet(dataDir, flags, io);
        case 'show':
          expect(0);
          return show(dataDir, flags, io);
        case 'balance':
          expect(0, 1);
          return balance(dataDir, flags, rest, io);
        case 'history':
          expect(0, 1);
          return history(dataDir, flags, rest, io);
        case 'send':
          expect(2);
          return await send(dataDir, flags, rest, io);
        case 'stake':
          expect(1);
          return await stake(dataDir, flags, rest, io);
        case 'unstake':
          expect(1);
          return await unstake(dataDir, flags, rest, io);
      }
    } catch (e) {
      if (isNeuroShardError(e, 'KEYSTORE_MISSING')) throw new ConfigError(`${e.message}: run 'neuroshard wallet create' or 'neuroshard start' first`, undefined, 'KEYSTORE_MISSING');
      throw e;
    }
  },
};

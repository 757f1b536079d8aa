/**
 * The real bootstrap of a network under the witnessed reward rules (issue 11 §2, docs/ECONOMICS.md "Genesis
 * bootstrap"), for tests: the genesis operator funds each other node from the allocation with a transfer, and each
 * node bonds (stakes at least MIN_REWARD_BOND) from it. Two forms: on in-process node ledgers (`fundAndBond`), and
 * on `neuroshard start` processes through the wallet CLI (`fundAndBondCli`), exactly as an operator would.
 * Nothing here opts out of a rule: a node bonded this way earns under the node's default rules.
 */
import { accountIdFromPublicKey, type NodeKey } from '../../src/identity/index.js';
import { NEURO } from '../../src/ledger/amount.js';
import { buildStake, buildTransfer } from '../../src/ledger/build.js';
import { MIN_REWARD_BOND } from '../../src/ledger/economics.js';
import { EventKind } from '../../src/ledger/events.js';
import type { NodeLedgerService } from '../../src/node/ledger.js';
import { waitFor } from '../../src/util/abort.js';
import type { Clock } from '../../src/util/clock.js';
import { cliJson } from './cli-process.js';

export interface BootstrapAmounts {
  /** Sent to each node (the fee, 5 %, is paid on top by the genesis account). Default 150 NEURO. */
  fund?: bigint;
  /** Staked by each node from it. Default MIN_REWARD_BOND (100 NEURO). */
  bond?: bigint;
  /** Lock of the bond. Default 30 days. */
  lockDays?: number;
}

export interface LedgerNode {
  key: NodeKey;
  l: NodeLedgerService;
}

const DEFAULT_FUND = 150n * NEURO;

/**
 * Funds and bonds `nodes` from `genesis` (whose key must be the network's genesis key, allocation minted), on node
 * ledgers that gossip to each other: each transfer is submitted on the genesis node, each stake on its node once the
 * transfer reached it, and it resolves once every node's ledger holds every bond.
 */
export async function fundAndBond(genesis: LedgerNode, nodes: readonly LedgerNode[], networkId: string, clock: Clock, o: BootstrapAmounts & { timeoutMs?: number } = {}): Promise<void> {
  const fund = o.fund ?? DEFAULT_FUND;
  const bond = o.bond ?? MIN_REWARD_BOND;
  const timeoutMs = o.timeoutMs ?? 60_000;
  // a shared manual clock may stand still: each event is dated after the one it depends on (canonical order is
  // (time, id), so a transfer in the Genesis event's millisecond could sort before the allocation it spends)
  const g = accountIdFromPublicKey(genesis.key.publicKey);
  await waitFor(() => genesis.l.ledger.account(g).balance > 0n, { timeoutMs, intervalMs: 25, what: 'the genesis allocation' });
  let last = Math.max(...genesis.l.ledger.history(g, 1).map((h) => h.timestampMs as number));
  const transfers: Uint8Array[] = [];
  for (const n of nodes) {
    const nonce = genesis.l.ledger.nextNonce(genesis.key.publicKey, EventKind.Transfer);
    last = Math.max(clock.now(), last + 1);
    const t = buildTransfer(genesis.key, { networkId, nonce, timestampMs: last }, accountIdFromPublicKey(n.key.publicKey), fund);
    const r = await genesis.l.service.submit(t.bytes);
    if (r.status !== 'applied') throw new Error(`funding transfer ${r.status} ${r.reason ?? ''}`);
    transfers.push(t.id);
  }
  for (const [i, n] of nodes.entries()) {
    // the transfer itself applied on the node, not its balance: a node may spend from it at once (fundAndBondCli)
    const id = transfers[i]!;
    await waitFor(() => n.l.ledger.eventStatus(id)?.status === 'applied', { timeoutMs, intervalMs: 25, what: 'the funding transfer reaches the node' });
    const s = buildStake(n.key, { networkId, nonce: n.l.ledger.nextNonce(n.key.publicKey, EventKind.Stake), timestampMs: Math.max(clock.now(), last + 1) }, bond, o.lockDays ?? 30);
    const r = await n.l.service.submit(s.bytes);
    if (r.status !== 'applied') throw new Error(`bond ${r.status} ${r.reason ?? ''}`);
  }
  const all = [genesis, ...nodes];
  await waitFor(() => all.every((m) => nodes.every((n) => m.l.ledger.account(accountIdFromPublicKey(n.key.publicKey)).locked >= bond)), {
    timeoutMs,
    intervalMs: 25,
    what: 'every bond on every node',
  });
}

/** `neuroshard wallet …` as JSON on a data dir (a running node there takes the event from its endpoint or outbox). */
export type WalletRunner = (dataDir: string, args: string[]) => Promise<unknown>;

const cliWallet: WalletRunner = (dataDir, args) => cliJson(['wallet', ...args, '--json', '--data-dir', dataDir]);

/**
 * Events of a node's own account that `wallet history` lists while the bootstrap looks for its funding transfer
 * (newest first, so the transfer must be among the latest this many: the wallet's largest page).
 */
const HISTORY_LIMIT = 10_000;

/** An entry of `wallet history --json`. */
interface HistoryLine {
  id?: string;
  status?: string;
}

/**
 * The operator's bootstrap on running `neuroshard start` processes: `wallet send <address> <fund>` on the genesis
 * node's data dir for each node, then on each node, once its ledger holds that transfer applied, `wallet stake
 * <bond> --lock-days D`. Amounts in decimal NEURO. Resolves when every stake was applied by its node.
 *
 * The arrival is the transfer's own id in the node's `wallet history`, not its balance reaching `fund`: a funded
 * node serving generations pays for the ones it drives from that balance at once (`--pay-inference auto`, a market
 * request's escrow: node/market.ts), so under a generation load its balance is below `fund` by the time it is read
 * (a chaos run's node1 paid 1.65 s after its 150 NEURO arrived and stayed at 149.994: docs/LIMITS.md "Session 24:
 * ledger events under serving load").
 */
export async function fundAndBondCli(genesisDir: string, dirs: readonly string[], o: { fund?: string; bond?: string; lockDays?: number; timeoutMs?: number; run?: WalletRunner } = {}): Promise<void> {
  const run = o.run ?? cliWallet;
  const fund = o.fund ?? '150';
  const bond = o.bond ?? '100';
  const timeoutMs = o.timeoutMs ?? 180_000;
  const sent: { dir: string; id: string }[] = [];
  for (const dir of dirs) {
    const { address } = (await run(dir, ['show'])) as { address: string };
    const r = (await run(genesisDir, ['send', address, fund, '--yes'])) as { id?: string; status?: string; reason?: string };
    if (r.status !== 'applied' || typeof r.id !== 'string') throw new Error(`funding ${address}: ${JSON.stringify(r)}`);
    sent.push({ dir, id: r.id });
  }
  // each node's wallet is its own: the nodes bond at once (a wallet command is a process of its own, seconds each)
  await Promise.all(
    sent.map(async ({ dir, id }) => {
      await waitFor(
        async () => {
          const h = (await run(dir, ['history', '--limit', String(HISTORY_LIMIT)])) as HistoryLine[];
          return Array.isArray(h) && h.some((e) => e.id === id && e.status === 'applied');
        },
        { timeoutMs, intervalMs: 1000, what: `the funding transfer reaches ${dir}` },
      );
      const r = (await run(dir, ['stake', bond, '--lock-days', String(o.lockDays ?? 30), '--yes'])) as { status?: string; reason?: string };
      if (r.status !== 'applied') throw new Error(`bond on ${dir}: ${JSON.stringify(r)}`);
    }),
  );
}

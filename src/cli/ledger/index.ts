/**
 * `neuroshard ledger status|backup`: the node's ledger as anyone can compare it (`status`), and a consistent copy
 * of the database taken while the node runs (`backup`, SQLite's online backup). `status` asks the node running on
 * the data dir (GET /api/ledger/status) and reads the file itself when none runs, its endpoint does not answer, or
 * `--verify` needs the stored events.
 */
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { ledgerStatusView } from '../../ledger/index.js';
import { loadOptions } from '../../node/options.js';
import { ConfigError } from '../../util/errors.js';
import { UsageError, type Command } from '../command.js';
import { runningNodeClient } from '../local-endpoint.js';
import { dataDirOf, openLedgerReadOnly, output } from '../wallet/common.js';

export const ledgerCommand: Command = {
  name: 'ledger',
  summary: "the node's NEURO ledger: status (state hash and totals) or backup <file>",
  args: '<status|backup <file>>',
  flags: {
    json: { type: 'boolean', description: 'print JSON' },
    verify: { type: 'boolean', description: 'status: also re-derive the state from the stored events and report whether it matches' },
    force: { type: 'boolean', description: 'backup: overwrite an existing file' },
  },
  async run(flags, positionals, io) {
    const [sub, ...rest] = positionals;
    const dataDir = dataDirOf(flags);
    if (sub === 'status') {
      if (rest.length !== 0) throw new UsageError('ledger status takes no arguments');
      const node = flags.verify === true ? undefined : runningNodeClient(dataDir);
      if (node !== undefined) {
        try {
          output(io, flags, await node.ledgerStatus());
          return 0;
        } catch {
          // starting, stopping or unreachable: the file answers the same question
        }
      }
      // the checkpoint period the node runs (config.json may set it): rewards are minted at its cuts
      const ledger = openLedgerReadOnly(dataDir, loadOptions({ flags: { dataDir } }).checkpointPeriodMs);
      if (ledger === undefined) throw new ConfigError(`no ledger in ${dataDir}: the node has not run there yet`, undefined, 'LEDGER_MISSING');
      try {
        const s = ledger.status();
        const out: Record<string, unknown> = { ...ledgerStatusView(s) };
        // null while the node has stored events waiting for a replay (mid-sync): the state does not include them yet
        if (flags.verify === true) out.consistent = ledger.replayPending() ? null : ledger.replayHash() === s.stateHash;
        output(io, flags, out);
        return out.consistent === false ? 1 : 0;
      } finally {
        ledger.close();
      }
    }
    if (sub === 'backup') {
      if (rest.length !== 1) throw new UsageError('ledger backup takes one argument: the file to write');
      const file = resolve(rest[0]!);
      if (existsSync(file) && flags.force !== true) throw new UsageError(`${file} exists; pass --force to overwrite it`);
      const ledger = openLedgerReadOnly(dataDir);
      if (ledger === undefined) throw new ConfigError(`no ledger in ${dataDir}: the node has not run there yet`, undefined, 'LEDGER_MISSING');
      try {
        await ledger.backup(file);
      } finally {
        ledger.close();
      }
      output(io, flags, { file, bytes: statSync(file).size });
      return 0;
    }
    throw new UsageError('ledger needs a subcommand: status or backup <file>');
  },
};

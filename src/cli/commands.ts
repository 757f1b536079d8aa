/** The registry of subcommands. Each lives in its own folder; add one line here per command. */
import type { Command } from './command.js';
import { startCommand } from './start/index.js';
import { trackerCommand } from './tracker/index.js';
import { statusCommand } from './status/index.js';
import { peersCommand } from './peers/index.js';
import { walletCommand } from './wallet/index.js';
import { ledgerCommand } from './ledger/index.js';
import { trainCommand } from './train/index.js';
import { generateCommand } from './generate/index.js';
import { evalCommand } from './eval/index.js';
import { layersCommand } from './layers/index.js';

export const COMMANDS: Command[] = [startCommand, trackerCommand, statusCommand, peersCommand, walletCommand, ledgerCommand, trainCommand, generateCommand, evalCommand, layersCommand];

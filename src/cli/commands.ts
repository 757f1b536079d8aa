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
import { stopCommand } from './stop/index.js';
import { logsCommand } from './logs/index.js';
import { configCommand } from './config/index.js';
import { swarmCommand } from './swarm/index.js';
import { chatCommand } from './chat/index.js';
import { exportCommand } from './export/index.js';
import { apikeyCommand } from './apikey/index.js';
import { layersCommand } from './layers/index.js';

export const COMMANDS: Command[] = [startCommand, trackerCommand, statusCommand, peersCommand, walletCommand, ledgerCommand, trainCommand, generateCommand, evalCommand, exportCommand, apikeyCommand, layersCommand, stopCommand, logsCommand, configCommand, swarmCommand, chatCommand];

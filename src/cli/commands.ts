/** The registry of subcommands. Each lives in its own folder; add one line here per command. */
import type { Command } from './command.js';
import { startCommand } from './start/index.js';

export const COMMANDS: Command[] = [startCommand];

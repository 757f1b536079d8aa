/**
 * The model commands (train, generate, eval) report runtime errors as one JSON object on stderr, so scripts can
 * tell the cases apart by code:
 *
 *   {"error": {"code": "CHECKPOINT_MISSING", "message": "no checkpoint at /x: the directory does not exist"}}
 *
 * with exit code 1 (under --json also on stdout, with "exit": 1). Bad usage (an unknown flag, a missing or malformed flag value) is still reported by main.ts as
 * text with exit code 2: it is thrown as a UsageError before the command's work starts.
 */
import { isNeuroShardError } from '../util/errors.js';
import { EXIT_RUNTIME, UsageError, type CommandIO } from './command.js';

export function errorJson(e: unknown, exit?: number): string {
  const code = isNeuroShardError(e) ? e.code : 'INTERNAL_ERROR';
  const message = e instanceof Error ? e.message : String(e);
  return JSON.stringify({ error: exit === undefined ? { code, message } : { code, message, exit } });
}

/**
 * Runs `fn`; a thrown error other than a UsageError becomes the JSON error line on stderr and exit code 1. Under
 * `--json` (`json` true) the same document, with `"exit": 1`, is also the command's one document on stdout, as for
 * every other command (main.ts).
 */
export async function withJsonErrors(io: CommandIO, fn: () => Promise<number>, json = false): Promise<number> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof UsageError) throw e;
    io.stderr(errorJson(e) + '\n');
    if (json) io.stdout(errorJson(e, EXIT_RUNTIME) + '\n');
    return EXIT_RUNTIME;
  }
}

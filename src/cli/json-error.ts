/**
 * The model commands (train, generate, eval) report runtime errors as one JSON object on stderr, so scripts can
 * tell the cases apart by code:
 *
 *   {"error": {"code": "CHECKPOINT_MISSING", "message": "no checkpoint at /x: the directory does not exist"}}
 *
 * with exit code 1. Bad usage (an unknown flag, a missing or malformed flag value) is still reported by main.ts as
 * text with exit code 2: it is thrown as a UsageError before the command's work starts.
 */
import { isNeuroShardError } from '../util/errors.js';
import { EXIT_RUNTIME, UsageError, type CommandIO } from './command.js';

export function errorJson(e: unknown): string {
  const code = isNeuroShardError(e) ? e.code : 'INTERNAL_ERROR';
  const message = e instanceof Error ? e.message : String(e);
  return JSON.stringify({ error: { code, message } });
}

/** Runs `fn`; a thrown error other than a UsageError becomes the JSON error line and exit code 1. */
export async function withJsonErrors(io: CommandIO, fn: () => Promise<number>): Promise<number> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof UsageError) throw e;
    io.stderr(errorJson(e) + '\n');
    return EXIT_RUNTIME;
  }
}

/**
 * The `neuroshard` command. Dispatches to subcommands; exit codes: 0 ok, 1 runtime error, 2 bad usage, 130 stopped
 * by a second Ctrl-C. With `--json` a failure is also one JSON document on stdout,
 * {"error": {"code", "message", "exit"}}, so a script that reads stdout always gets one document; the text for
 * people stays on stderr.
 */
import '../util/polyfill.js';
import { PACKAGE_VERSION } from '../params/index.js';
import { isNeuroShardError } from '../util/errors.js';
import { checkGlobalFlags, EXIT_RUNTIME, EXIT_USAGE, GLOBAL_FLAGS, helpText, nearest, optionFlagError, orList, parseFlags, UsageError, type CommandIO } from './command.js';
import { COMMANDS } from './commands.js';

function topHelp(): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return [
    'usage: neuroshard <command> [flags]',
    '',
    'NeuroShard: many ordinary machines holding, serving and training one language model.',
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(w)}${c.summary}`),
    '',
    'global flags: --data-dir DIR, --log-level LEVEL, --threads N, --help, --version',
    "run 'neuroshard <command> --help' for a command's flags",
  ].join('\n');
}

/** True when `--json` is among the arguments (before a `--`): checked on the raw argv, since a bad flag fails parsing. */
export function wantsJson(args: readonly string[]): boolean {
  for (const a of args) {
    if (a === '--') return false;
    if (a === '--json') return true;
  }
  return false;
}

/** The one JSON document a failed `--json` command prints on stdout. */
export function jsonFailure(code: string, message: string, exit: number): string {
  return JSON.stringify({ error: { code, message, exit } }) + '\n';
}

/**
 * The global flags that come before the command (`neuroshard --data-dir D status`) moved after it, where the command's
 * parser reads them: the top help calls them global, and people write them first as with git or docker. Only the
 * global flags that take a value move (as `--flag value` or `--flag=value`); anything else before the command is left
 * where it is, to be named as an unknown command.
 */
export function hoistGlobalFlags(argv: readonly string[]): string[] {
  const lead: string[] = [];
  let i = 0;
  while (i < argv.length) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const name = a.startsWith('--') ? a.slice(2, eq < 0 ? undefined : eq) : '';
    const spec = GLOBAL_FLAGS[name];
    if (spec === undefined || spec.type !== 'string') break;
    if (eq >= 0) {
      lead.push(a);
      i += 1;
    } else {
      if (i + 1 >= argv.length) break;
      lead.push(a, argv[i + 1]!);
      i += 2;
    }
  }
  if (lead.length === 0) return [...argv];
  // global flags and no command: the top help, as with no arguments at all
  if (i >= argv.length) return [];
  // right after the command, so that they stay before a `--` that ends the flags
  return [argv[i]!, ...lead, ...argv.slice(i + 1)];
}

export async function main(argv: string[], io: CommandIO): Promise<number> {
  const [name, ...rest] = hoistGlobalFlags(argv);
  const json = wantsJson(rest);
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout(topHelp() + '\n');
    return name === undefined ? EXIT_USAGE : 0;
  }
  if (name === '--version' || name === '-v' || name === 'version') {
    io.stdout(PACKAGE_VERSION + '\n');
    return 0;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  if (cmd === undefined) {
    const hints = nearest(name, COMMANDS.map((c) => c.name));
    io.stderr(`neuroshard: unknown command "${name}"${hints.length === 0 ? '' : ` (did you mean ${orList(hints.map((h) => `"${h}"`))}?)`}\n\n${topHelp()}\n`);
    if (json) io.stdout(jsonFailure('USAGE', `unknown command "${name}"`, EXIT_USAGE));
    return EXIT_USAGE;
  }
  try {
    const { values, positionals } = parseFlags(cmd, rest);
    if (values.help === true) {
      io.stdout(helpText(cmd) + '\n');
      return 0;
    }
    checkGlobalFlags(values);
    return await cmd.run(values, positionals, io);
  } catch (caught) {
    // a node option refusing a flag's value (--data-dir, --threads, …) names the flag as typed
    const e = optionFlagError(caught) ?? caught;
    if (e instanceof UsageError) {
      io.stderr(`neuroshard ${cmd.name}: ${e.message}\nrun 'neuroshard ${cmd.name} --help' for usage\n`);
      if (json) io.stdout(jsonFailure('USAGE', e.message, EXIT_USAGE));
      return EXIT_USAGE;
    }
    if (isNeuroShardError(e)) {
      const exit = e.fault === 'caller' && e.code === 'INVALID_ARGUMENT' ? EXIT_USAGE : EXIT_RUNTIME;
      io.stderr(`neuroshard ${cmd.name}: ${e.message} [${e.code}]\n`);
      if (json) io.stdout(jsonFailure(e.code, e.message, exit));
      return exit;
    }
    // stopped by Ctrl-C while waiting on something that rejects with the signal's reason: not a crash
    if (io.signal.aborted) {
      io.stderr(`neuroshard ${cmd.name}: stopped\n`);
      if (json) io.stdout(jsonFailure('ABORTED', 'stopped by a signal', EXIT_RUNTIME));
      return EXIT_RUNTIME;
    }
    io.stderr(`neuroshard ${cmd.name}: ${(e as Error)?.stack ?? String(e)}\n`);
    if (json) io.stdout(jsonFailure('INTERNAL_ERROR', e instanceof Error ? e.message : String(e), EXIT_RUNTIME));
    return EXIT_RUNTIME;
  }
}

/** Process entry: wires signals to an AbortController and exits with the command's code. */
export async function run(): Promise<void> {
  const ac = new AbortController();
  let firstSignalAt = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    // Under `npm start` a terminal's Ctrl-C reaches us twice at once: from the terminal and forwarded by npm.
    // Only a second signal well after the first means "stop now, skip the clean shutdown".
    if (firstSignalAt !== 0) {
      if (Date.now() - firstSignalAt < 1500) return;
      process.stderr.write(`\nneuroshard: second ${sig}, exiting now without a clean shutdown\n`);
      process.exit(130);
    }
    firstSignalAt = Date.now();
    ac.abort(new Error(sig));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // The reader of stdout went away (`neuroshard config list | head -2`, `logs -f | head`): Node raised EPIPE as an
  // unhandled 'error' event, a stack trace and exit 1 (session 30's walkthrough). Stop writing and stop as on
  // Ctrl-C, so a long-running command ends cleanly and a short one finishes with its own exit code.
  let stdoutGone = false;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    stdoutGone = true;
    if (!ac.signal.aborted) ac.abort(new Error('EPIPE'));
  });
  const code = await main(process.argv.slice(2), {
    stdout: (s) => {
      if (!stdoutGone) process.stdout.write(s);
    },
    stderr: (s) => process.stderr.write(s),
    signal: ac.signal,
  });
  process.exitCode = code;
}

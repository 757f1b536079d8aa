/**
 * Running test files with `node --test` in a child process and reading the outcome from its exit code and from
 * our own reporter (summary-reporter.ts), never from the runner's default output, whose format changes between
 * Node versions.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunSummary } from './summary-reporter.js';

export type { RunSummary } from './summary-reporter.js';

const here = fileURLToPath(import.meta.url);
/** True when the tests run from TypeScript sources (through tsx) rather than compiled into dist/. */
const fromSource = here.endsWith('.ts');
const REPORTER = join(dirname(here), fromSource ? 'summary-reporter.ts' : 'summary-reporter.js');

export interface NodeTestResult {
  /** The child's exit code (null when it was killed, e.g. by the timeout). */
  status: number | null;
  signal: NodeJS.Signals | null;
  /** Parsed from the reporter's JSON line; undefined when the child printed none (it crashed or was killed). */
  summary: RunSummary | undefined;
  stdout: string;
  stderr: string;
}

/**
 * Runs `node --test` on `files` with this process's Node and `env` added to this process's environment.
 * Blocks until the child exits or `timeoutMs` passes (then it is killed).
 */
export function runNodeTest(files: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): NodeTestResult {
  const args = [...(fromSource ? ['--import', 'tsx'] : []), '--test', `--test-reporter=${REPORTER}`, '--test-reporter-destination=stdout', ...files];
  // NODE_TEST_CONTEXT (set by a parent test runner) would make the child skip its files as a recursive run.
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
  delete env.NODE_TEST_CONTEXT;
  const r = spawnSync(process.execPath, args, { env, encoding: 'utf8', timeout: opts.timeoutMs ?? 300_000, maxBuffer: 64 * 1024 * 1024 });
  const stdout = r.stdout ?? '';
  let summary: RunSummary | undefined;
  for (const line of stdout.split('\n').reverse()) {
    if (!line.startsWith('{')) continue;
    try {
      summary = JSON.parse(line) as RunSummary;
      break;
    } catch {
      // not our line
    }
  }
  return { status: r.status, signal: r.signal, summary, stdout, stderr: r.stderr ?? '' };
}

/** A short account of a run for assertion messages. */
export function describeRun(r: NodeTestResult): string {
  const failures = r.summary?.failures.map((f) => `  not ok: ${f.name}: ${f.error}`).join('\n') ?? '';
  return `exit ${r.status ?? r.signal}; ${JSON.stringify({ ...r.summary, failures: undefined })}\n${failures}\nstderr tail:\n${r.stderr.slice(-3000)}`;
}

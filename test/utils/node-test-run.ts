/**
 * Running test files with `node --test` in a child process and reading the outcome from its exit code and from
 * our own reporter (summary-reporter.mjs), never from the runner's default output, whose format changes between
 * Node versions.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { REPO_ROOT } from './paths.js';

/** What summary-reporter.mjs prints (one line of JSON). */
export interface RunSummary {
  /** Tests (not suites) that ran or were skipped. */
  tests: number;
  pass: number;
  /** Failed, timed out or cancelled (a file that fails to load counts as one failed test). */
  fail: number;
  skipped: number;
  todo: number;
  failures: { name: string; file?: string; error: string }[];
}

/** True when the tests run from TypeScript sources (through tsx) rather than compiled into dist/. */
const fromSource = fileURLToPath(import.meta.url).endsWith('.ts');
// Always the source-tree file (plain JavaScript, not compiled into dist/).
const REPORTER = join(REPO_ROOT, 'test', 'utils', 'summary-reporter.mjs');

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

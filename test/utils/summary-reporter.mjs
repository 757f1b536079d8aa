// A node:test reporter that prints one JSON line: the counts of a run and the tests that failed (see RunSummary in
// node-test-run.ts). Tests that run `node --test` in a child process ask for it (`--test-reporter=<this file>`)
// instead of reading the runner's default output, which differs between Node versions (TAP on 20 and 22 when
// stdout is not a terminal, the spec reporter on 23 and later). It reads only the reporter events, whose shape is
// the same on Node 20, 22 and 24.
//
// Plain JavaScript, loaded from the source tree both when the tests run compiled and from TypeScript sources:
// the runner loads reporters before an `--import tsx` hook applies on Node 20.

/** @param {unknown} e */
function describeError(e) {
  if (!(e instanceof Error)) return String(e);
  // The runner wraps a test's own error: report the cause, which holds the assertion message.
  const inner = e.cause instanceof Error ? e.cause : e;
  return `${inner.name}: ${inner.message}`.slice(0, 2000);
}

/** @param {AsyncIterable<{ type: string, data: any }>} source */
export default async function* summaryReporter(source) {
  const s = { tests: 0, pass: 0, fail: 0, skipped: 0, todo: 0, failures: [] };
  for await (const ev of source) {
    if (ev.type !== 'test:pass' && ev.type !== 'test:fail') continue;
    const d = ev.data;
    // Node 20 marks suites only (details.type === 'suite'); 22 and later also mark tests ('test').
    if (d.details?.type === 'suite') continue;
    s.tests++;
    if (d.skip !== undefined && d.skip !== false) s.skipped++;
    else if (d.todo !== undefined && d.todo !== false) s.todo++;
    else if (ev.type === 'test:pass') s.pass++;
    else {
      s.fail++;
      s.failures.push({ name: d.name, ...(d.file !== undefined ? { file: d.file } : {}), error: describeError(d.details?.error) });
    }
  }
  yield `${JSON.stringify(s)}\n`;
}

// Issue 12 (chaos memory growth): on Node 20 `AbortSignal.any` leaves an entry on every source signal that is never
// removed, so composing with a node-lifetime signal grows the heap per call (util/abort.ts). The code uses
// linkSignals / deadlineSignal instead; this guard keeps new calls out of src/ (comments may still name it).
import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { linkSignals } from '../../../src/util/abort.js';
import { REPO_ROOT } from '../../utils/paths.js';

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

test('no AbortSignal.any call in src/ (use linkSignals or deadlineSignal)', () => {
  const hits: string[] = [];
  for (const f of tsFiles(join(REPO_ROOT, 'src'))) {
    for (const [i, line] of readFileSync(f, 'utf8').split('\n').entries()) {
      const code = line.replace(/\/\/.*$/, '').replace(/^\s*\*.*$/, '');
      if (/AbortSignal\.any\s*\(/.test(code)) hits.push(`${f.slice(REPO_ROOT.length + 1)}:${i + 1}`);
    }
  }
  assert.deepEqual(hits, []);
});

test('linkSignals leaves no listener on a long-lived source once disposed or fired (counted, 1,000 calls)', () => {
  const lifetime = new AbortController();
  let added = 0;
  let removed = 0;
  const add = lifetime.signal.addEventListener.bind(lifetime.signal);
  const remove = lifetime.signal.removeEventListener.bind(lifetime.signal);
  lifetime.signal.addEventListener = ((...a: Parameters<typeof add>) => {
    added++;
    add(...a);
  }) as typeof add;
  lifetime.signal.removeEventListener = ((...a: Parameters<typeof remove>) => {
    removed++;
    remove(...a);
  }) as typeof remove;
  for (let i = 0; i < 1000; i++) {
    const own = new AbortController();
    const link = linkSignals(lifetime.signal, own.signal);
    if (i % 2 === 0) link.dispose();
    else own.abort(); // fires: detaches itself
  }
  assert.equal(added, 1000);
  assert.equal(removed, 1000);
});

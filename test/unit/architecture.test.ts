/**
 * Enforces the import table of docs/ARCHITECTURE.md §2: every import under src/ must stay inside its folder's
 * row, and there must be no import cycle between modules (type-only imports excluded from the cycle check, since
 * they vanish at run time).
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT } from '../utils/paths.js';

const SRC = join(REPO_ROOT, 'src');

interface ImportRef {
  file: string;
  spec: string;
  typeOnly: boolean;
  line: number;
}

function listTs(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...listTs(p));
    else if ((e.endsWith('.ts') || e.endsWith('.tsx')) && !e.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Finds static imports, re-exports and dynamic imports with a string literal. */
export function parseImports(file: string, text: string): ImportRef[] {
  const out: ImportRef[] = [];
  // Strip comments so that examples in doc comments are not taken for imports.
  const code = text.replace(/\/\*[\s\S]*?\*\//g, (m) => m.replace(/[^\n]/g, ' ')).replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
  const re = /(?:^|[;\s])(import|export)\s+(type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
  for (let m = re.exec(code); m !== null; m = re.exec(code)) {
    const spec = m[3] ?? m[4]!;
    const line = code.slice(0, m.index).split('\n').length;
    out.push({ file, spec, typeOnly: m[2] !== undefined, line });
  }
  return out;
}

/** Reads the folder table from docs/ARCHITECTURE.md. */
function readTable(): Map<string, Set<string>> {
  const md = readFileSync(join(REPO_ROOT, 'docs', 'ARCHITECTURE.md'), 'utf8');
  const start = md.indexOf('| folder | may import |');
  assert.ok(start >= 0, 'docs/ARCHITECTURE.md must contain the import table');
  const rows = md.slice(start).split('\n').slice(2);
  const table = new Map<string, Set<string>>();
  const names: string[] = [];
  const raw: [string, string][] = [];
  for (const r of rows) {
    if (!r.startsWith('|')) break;
    const cells = r.split('|').map((c) => c.trim());
    raw.push([cells[1]!, cells[2]!]);
    names.push(cells[1]!);
  }
  for (const [folder, allowed] of raw) {
    const set = new Set<string>();
    if (folder === 'node') {
      for (const n of names) if (n !== 'node' && n !== 'cli' && n !== 'ui') set.add(n);
    } else {
      // only the words before any parenthesis count ("p2p (it receives …)" lists p2p, not "node")
      const listed = allowed.replace(/\([^)]*\)/g, '');
      for (const word of listed.split(/[^a-z0-9]+/)) if (names.includes(word)) set.add(word);
    }
    table.set(folder, set);
  }
  return table;
}

function folderOf(file: string): string {
  return relative(SRC, file).split(/[\\/]/)[0]!;
}

function resolveLocal(from: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined;
  const base = resolve(dirname(from), spec).replace(/\.js$/, '');
  // the dashboard's .tsx modules are imported as .js like the rest
  return existsSync(base + '.tsx') ? base + '.tsx' : base + '.ts';
}

describe('architecture', () => {
  const files = listTs(SRC);
  const table = readTable();
  const imports = files.flatMap((f) => parseImports(f, readFileSync(f, 'utf8')));

  it('has a row for every folder under src/', () => {
    for (const f of files) {
      const folder = folderOf(f);
      if (folder.endsWith('.ts')) assert.fail(`${relative(REPO_ROOT, f)}: files belong in a folder of the table`);
      assert.ok(table.has(folder), `src/${folder}/ has no row in docs/ARCHITECTURE.md's import table`);
    }
  });

  it('imports stay inside the table', () => {
    const bad: string[] = [];
    for (const imp of imports) {
      const target = resolveLocal(imp.file, imp.spec);
      if (target === undefined) continue; // a package or node: built-in
      const from = folderOf(imp.file);
      if (!target.startsWith(SRC)) {
        bad.push(`${relative(REPO_ROOT, imp.file)}:${imp.line} imports ${imp.spec}, outside src/`);
        continue;
      }
      const to = folderOf(target);
      if (to === from) continue;
      if (!table.get(from)?.has(to)) bad.push(`${relative(REPO_ROOT, imp.file)}:${imp.line} (${from}) imports ${to}: not in the table`);
    }
    assert.deepEqual(bad, []);
  });

  it('has no import cycles', () => {
    const graph = new Map<string, string[]>();
    for (const f of files) graph.set(f, []);
    for (const imp of imports) {
      if (imp.typeOnly) continue;
      const t = resolveLocal(imp.file, imp.spec);
      if (t !== undefined && graph.has(t)) graph.get(imp.file)!.push(t);
    }
    const state = new Map<string, 0 | 1 | 2>();
    const stack: string[] = [];
    const cycles: string[] = [];
    const visit = (n: string): void => {
      state.set(n, 1);
      stack.push(n);
      for (const m of graph.get(n)!) {
        const s = state.get(m) ?? 0;
        if (s === 1) cycles.push([...stack.slice(stack.indexOf(m)), m].map((x) => relative(SRC, x)).join(' → '));
        else if (s === 0) visit(m);
      }
      stack.pop();
      state.set(n, 2);
    };
    for (const f of files) if ((state.get(f) ?? 0) === 0) visit(f);
    assert.deepEqual(cycles, []);
  });

  it('the parser finds the imports it must', () => {
    const sample = [
      "import { a } from '../x/a.js';",
      "import type { B } from '../y/b.js';",
      "export * from './c.js';",
      "const m = await import('../z/d.js');",
      "// import { no } from '../comment.js';",
    ].join('\n');
    const got = parseImports('/src/q/file.ts', sample).map((i) => `${i.spec}${i.typeOnly ? ' (type)' : ''}`);
    assert.deepEqual(got, ['../x/a.js', '../y/b.js (type)', './c.js', '../z/d.js']);
  });
});

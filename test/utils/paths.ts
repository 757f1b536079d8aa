import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(start: string): string {
  let d = start;
  for (;;) {
    const p = join(d, 'package.json');
    if (existsSync(p) && (JSON.parse(readFileSync(p, 'utf8')) as { name?: string }).name === 'neuroshard') return d;
    const up = dirname(d);
    if (up === d) throw new Error('repository root not found');
    d = up;
  }
}

/** The repository root, whether tests run compiled (dist/test/…) or from source. */
export const REPO_ROOT = findRoot(dirname(fileURLToPath(import.meta.url)));

export function fixturePath(...parts: string[]): string {
  return join(REPO_ROOT, 'test', 'fixtures', ...parts);
}

/** A fresh temporary directory, removed by the returned cleanup function. */
export function tempDir(prefix = 'neuroshard-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

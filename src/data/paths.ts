/**
 * Where the package's own files are, whether this code runs compiled (dist/src/data/…) or from source
 * (src/data/…): the folder holding the package.json named `neuroshard`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../util/errors.js';
import { PACKAGE_NAME } from '../params/index.js';

let root: string | undefined;

export function packageRoot(): string {
  if (root !== undefined) return root;
  let d = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const p = join(d, 'package.json');
    if (existsSync(p)) {
      try {
        if ((JSON.parse(readFileSync(p, 'utf8')) as { name?: unknown }).name === PACKAGE_NAME) return (root = d);
      } catch {
        // not our package.json; keep walking up
      }
    }
    const up = dirname(d);
    if (up === d) throw new ConfigError(`cannot find the ${PACKAGE_NAME} package root above ${fileURLToPath(import.meta.url)}`);
    d = up;
  }
}

/** The committed genesis files: the tokenizer and the manifest (src/data/genesis, shipped with the package). */
export function genesisDir(): string {
  return join(packageRoot(), 'src', 'data', 'genesis');
}

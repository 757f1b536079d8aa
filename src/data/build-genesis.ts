/**
 * Regenerates the committed genesis files from the corpus package: `src/data/genesis/neuroshard-tokenizer.json`
 * and `src/data/genesis/manifest.json` (and, with `--shards DIR`, the shard files themselves).
 *
 *   npm run build && node scripts/build-genesis.mjs [--check] [--shards DIR]
 *
 * `--check` writes nothing and exits 1 when a rebuild differs from the committed files. Changing the genesis
 * tokenizer changes every token id on the network: it is a new network, not an update.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TOKENIZER_FILE_NAME } from '../model/tokenizer/index.js';
import { buildGenesisShards, learnGenesisTokenizer } from './genesis.js';
import { MANIFEST_FILE_NAME, serializeManifest } from './manifest.js';
import { genesisDir } from './paths.js';

export interface GenesisFiles {
  tokenizer: string;
  manifest: string;
  shards: { file: string; bytes: Uint8Array }[];
}

/** Learns the tokenizer and builds the manifest from scratch (a few seconds). */
export function buildGenesisFiles(): GenesisFiles {
  const tok = learnGenesisTokenizer();
  const { manifest, shards } = buildGenesisShards(tok);
  return { tokenizer: tok.toJSON(), manifest: serializeManifest(manifest), shards: shards.map((s) => ({ file: s.entry.file, bytes: s.bytes })) };
}

/** The command: returns its exit code. */
export function main(argv: string[]): number {
  const check = argv.includes('--check');
  const si = argv.indexOf('--shards');
  const shardDir = si >= 0 ? argv[si + 1] : undefined;
  const t0 = Date.now();
  const files = buildGenesisFiles();
  const dir = genesisDir();
  const targets: [string, string][] = [
    [join(dir, TOKENIZER_FILE_NAME), files.tokenizer],
    [join(dir, MANIFEST_FILE_NAME), files.manifest],
  ];
  let differ = 0;
  for (const [path, text] of targets) {
    let old: string | undefined;
    try {
      old = readFileSync(path, 'utf8');
    } catch {
      old = undefined;
    }
    const same = old === text;
    if (!same) differ++;
    if (check) process.stdout.write(`${same ? 'same' : 'DIFFERS'} ${path}\n`);
    else if (!same) {
      mkdirSync(dir, { recursive: true });
      writeFileSync(path, text);
      process.stdout.write(`wrote ${path}\n`);
    } else process.stdout.write(`unchanged ${path}\n`);
  }
  if (shardDir !== undefined && !check) {
    mkdirSync(shardDir, { recursive: true });
    writeFileSync(join(shardDir, MANIFEST_FILE_NAME), files.manifest);
    writeFileSync(join(shardDir, TOKENIZER_FILE_NAME), files.tokenizer);
    for (const s of files.shards) writeFileSync(join(shardDir, s.file), s.bytes);
    process.stdout.write(`wrote ${files.shards.length} shards, the manifest and the tokenizer to ${shardDir}\n`);
  }
  process.stdout.write(`genesis built in ${Date.now() - t0} ms\n`);
  return check && differ > 0 ? 1 : 0;
}

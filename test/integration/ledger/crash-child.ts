/**
 * Child process of crash.test.ts: opens the ledger, ingests the events of a file (u32 length ‖ bytes, repeated)
 * in batches of varying size, and prints "ack <id> <status>" for every stored event after its transaction has
 * committed. The parent kills it with SIGKILL at a random moment.
 */
import { readFileSync } from 'node:fs';
import { Ledger } from '../../../src/ledger/ledger.js';
import { Rng } from '../../../src/util/rng.js';

const [path, file, networkId, layers, seed] = process.argv.slice(2);
const buf = readFileSync(file!);
const events: Uint8Array[] = [];
for (let o = 0; o < buf.length; ) {
  const n = buf.readUInt32BE(o);
  events.push(new Uint8Array(buf.subarray(o + 4, o + 4 + n)));
  o += 4 + n;
}
const ledger = new Ledger({ path: path!, networkId: networkId!, modelLayers: Number(layers) });
const rng = new Rng(Number(seed));
process.stdout.write('ready\n');
for (let i = 0; i < events.length; ) {
  const n = rng.next() < 0.5 ? 1 : 1 + rng.int(64);
  const batch = events.slice(i, i + n);
  const results = ledger.ingestMany(batch);
  let out = '';
  for (const r of results) if (r.status !== 'dropped') out += `ack ${r.id} ${r.status}\n`;
  if (out !== '') process.stdout.write(out); // pipes are synchronous on Linux: written before the next ingest
  i += n;
}
process.stdout.write('done\n');
ledger.close();

/**
 * Naming a network's genesis key (issue 11 §2; docs/ECONOMICS.md "Genesis: naming the key and founding"): the one
 * key whose Genesis event mints the initial allocation and whose signature starts the checkpoint chain. Every node
 * of a network must use the same key, or their ledgers differ from the first event on.
 *
 * Where a node gets it, first match wins:
 *   1. `--genesis-key HEX` (option genesisKey: flag, NEUROSHARD_GENESIS_KEY, config.json): pinned by the operator;
 *   2. `<dataDir>/network.json`, written the first time the key is known: a restart keeps it, whatever its peers say;
 *   3. a founding node (`--genesis`, or the automatic founder) takes its own key;
 *   4. a joiner asks the peers it connects to (ledger-genesis/2.0.0) and adopts the first answer, trust on first
 *      use: the peers it joins through decide which network's ledger it keeps (as they already do for the model and
 *      the history). It is persisted at once, so no later peer can move it; an operator who wants it verified
 *      passes --genesis-key.
 * A pinned key that disagrees with the stored one is a ConfigError (GENESIS_KEY_MISMATCH): the data dir belongs to
 * another network, and the node refuses to start rather than re-judge its ledger under another key.
 *
 * network.json also records that this node emitted the network's Genesis event (`genesisEmitted`), one of the two
 * guards (the other: the ledger holds an event of that kind from us) that make founding happen exactly once.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bytesEqual, fromHex, toHex } from '../util/bytes.js';
import { ConfigError } from '../util/errors.js';

export const NETWORK_FILE = 'network.json';
/** network.json is a few hundred bytes; anything larger is not ours. */
const MAX_NETWORK_FILE_BYTES = 4096;
/** A compressed secp256k1 public key in hex. */
export const GENESIS_KEY_RE = /^0[23][0-9a-f]{64}$/;

export interface NetworkFile {
  version: 1;
  /** The network's genesis public key, 66 hex characters. */
  genesisKey: string;
  /** How this node came to know it: pinned by the operator, its own as the founder, or learned from a peer. */
  source: 'option' | 'founder' | 'peer';
  /** True once this node (holding the genesis key) emitted the Genesis event. */
  genesisEmitted?: boolean;
}

/** Reads `<dataDir>/network.json`; undefined when absent. A malformed file is a ConfigError, never ignored. */
export function readNetworkFile(dataDir: string): NetworkFile | undefined {
  const path = join(dataDir, NETWORK_FILE);
  if (!existsSync(path)) return undefined;
  let v: unknown;
  try {
    const text = readFileSync(path, 'utf8');
    if (text.length > MAX_NETWORK_FILE_BYTES) throw new Error(`larger than ${MAX_NETWORK_FILE_BYTES} bytes`);
    v = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`cannot read ${path}: ${(e as Error).message}`, { file: path });
  }
  const o = (typeof v === 'object' && v !== null && !Array.isArray(v) ? v : {}) as Record<string, unknown>;
  if (o.version !== 1) throw new ConfigError(`${path}: version must be 1`, { file: path });
  if (typeof o.genesisKey !== 'string' || !GENESIS_KEY_RE.test(o.genesisKey)) throw new ConfigError(`${path}: genesisKey must be 66 hex characters starting 02 or 03`, { file: path });
  if (o.source !== 'option' && o.source !== 'founder' && o.source !== 'peer') throw new ConfigError(`${path}: source must be option, founder or peer`, { file: path });
  if (o.genesisEmitted !== undefined && typeof o.genesisEmitted !== 'boolean') throw new ConfigError(`${path}: genesisEmitted must be true or false`, { file: path });
  return { version: 1, genesisKey: o.genesisKey, source: o.source, ...(o.genesisEmitted === true ? { genesisEmitted: true } : {}) };
}

/** Writes network.json atomically (a crash leaves the old file or the new one, never half of one). */
export function writeNetworkFile(dataDir: string, f: NetworkFile): void {
  const path = join(dataDir, NETWORK_FILE);
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, JSON.stringify(f, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, path);
}

export interface GenesisKeyChoice {
  /** The key, or undefined: a joiner that has not learned it yet. */
  key: Uint8Array | undefined;
  source: NetworkFile['source'] | 'file' | 'none';
}

/**
 * Which genesis key a starting node uses (the order in the file comment), as a pure function of what it was told.
 * Throws GENESIS_KEY_MISMATCH when the pinned key is not the stored one.
 */
export function chooseGenesisKey(o: { pinned: string | undefined; stored: NetworkFile | undefined; founder: boolean; own: Uint8Array }): GenesisKeyChoice {
  if (o.pinned !== undefined && !GENESIS_KEY_RE.test(o.pinned)) {
    throw new ConfigError('genesisKey must be a compressed public key: 66 hex characters starting 02 or 03', { option: 'genesisKey' });
  }
  if (o.pinned !== undefined && o.stored !== undefined && o.pinned !== o.stored.genesisKey) {
    throw new ConfigError(
      `this data dir belongs to the network whose genesis key is ${o.stored.genesisKey} (network.json), not ${o.pinned}: use another --data-dir for another network`,
      { option: 'genesisKey', stored: o.stored.genesisKey, pinned: o.pinned },
      'GENESIS_KEY_MISMATCH',
    );
  }
  if (o.pinned !== undefined) return { key: fromHex(o.pinned), source: 'option' };
  if (o.stored !== undefined) return { key: fromHex(o.stored.genesisKey), source: 'file' };
  if (o.founder) return { key: o.own, source: 'founder' };
  return { key: undefined, source: 'none' };
}

/** The node's genesis key, its persistence and the founding guard, over one data dir. */
export class GenesisKeyStore {
  private file: NetworkFile | undefined;
  private current: Uint8Array | undefined;

  constructor(
    private readonly dataDir: string,
    o: { pinned: string | undefined; founder: boolean; own: Uint8Array },
  ) {
    this.file = readNetworkFile(dataDir);
    const c = chooseGenesisKey({ ...o, stored: this.file });
    this.current = c.key;
    if (c.key !== undefined && this.file === undefined) this.persist({ version: 1, genesisKey: toHex(c.key), source: c.source === 'file' || c.source === 'none' ? 'option' : c.source });
  }

  get key(): Uint8Array | undefined {
    return this.current;
  }

  /** Adopts a key learned from a peer; false when one is known already (the known one stays). */
  learn(key: Uint8Array): boolean {
    if (this.current !== undefined) return false;
    if (!GENESIS_KEY_RE.test(toHex(key))) return false;
    this.current = key;
    this.persist({ version: 1, genesisKey: toHex(key), source: 'peer' });
    return true;
  }

  /** True when `own` is the genesis key and this node has not emitted the Genesis event yet (per network.json). */
  mayFound(own: Uint8Array): boolean {
    return this.current !== undefined && bytesEqual(this.current, own) && this.file?.genesisEmitted !== true;
  }

  markEmitted(): void {
    if (this.file === undefined) return;
    this.persist({ ...this.file, genesisEmitted: true });
  }

  private persist(f: NetworkFile): void {
    writeNetworkFile(this.dataDir, f);
    this.file = f;
  }
}

/**
 * The genesis of a network: the model shape it starts from, the tokenizer and the genesis corpus manifest. Their
 * hash is the network id, which goes into every protocol id, topic, DHT key and tracker record, so nodes of two
 * networks never exchange a message.
 *
 *   networkId = "ns1-" + hex(SHA-256("neuroshard-genesis-v1\n" ‖ canonical JSON of the LlamaConfig ‖ "\n"
 *                                     ‖ SHA-256(tokenizer file) hex ‖ "\n" ‖ SHA-256(manifest file) hex))[0..32]
 *
 * 128 bits of the hash: enough that two different geneses never collide, short enough for topics and keys.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { genesisDir, MANIFEST_FILE_NAME } from '../data/index.js';
import { presetConfig, type LlamaConfig } from '../model/index.js';
import { TOKENIZER_FILE_NAME } from '../model/tokenizer/index.js';
import { sha256Hex } from '../util/bytes.js';

export interface Genesis {
  networkId: string;
  config: LlamaConfig;
  tokenizerPath: string;
  manifestPath: string;
}

/** JSON with object keys sorted at every level, so equal configs hash equally whatever their key order. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

export function networkIdOf(config: LlamaConfig, tokenizerBytes: Uint8Array, manifestBytes: Uint8Array): string {
  const h = sha256Hex(`neuroshard-genesis-v1\n${canonicalJson(config)}\n${sha256Hex(tokenizerBytes)}\n${sha256Hex(manifestBytes)}`);
  return `ns1-${h.slice(0, 32)}`;
}

/** The bundled genesis: the `preset` model shape (default nano) over the committed tokenizer and manifest. */
export function bundledGenesis(preset = 'nano'): Genesis {
  const dir = genesisDir();
  const tokenizerPath = join(dir, TOKENIZER_FILE_NAME);
  const manifestPath = join(dir, MANIFEST_FILE_NAME);
  const config = presetConfig(preset);
  return { networkId: networkIdOf(config, readFileSync(tokenizerPath), readFileSync(manifestPath)), config, tokenizerPath, manifestPath };
}

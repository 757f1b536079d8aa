import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { bundledManifestPath, ManifestError, parseManifest, serializeManifest } from '../../../src/data/index.js';

const committed = readFileSync(bundledManifestPath(), 'utf8');

function mutate(fn: (o: { shards: Record<string, unknown>[] } & Record<string, unknown>) => void): string {
  const o = JSON.parse(committed) as { shards: Record<string, unknown>[] } & Record<string, unknown>;
  fn(o);
  return JSON.stringify(o);
}

function rejects(text: string, pattern: RegExp, fault: 'peer' | 'config' = 'peer'): void {
  assert.throws(
    () => parseManifest(text, fault),
    (e: unknown) => e instanceof ManifestError && e.code === 'MANIFEST_INVALID' && e.fault === fault && pattern.test(e.message),
  );
}

describe('genesis manifest', () => {
  it('the committed manifest is valid and canonical', () => {
    const m = parseManifest(committed, 'config');
    assert.equal(serializeManifest(m), committed);
    assert.equal(m.tokenizer.vocab_size, 4096);
    assert.equal(m.shards.filter((s) => s.split === 'val').length, 1);
    assert.ok(m.shards.length >= 16 && m.shards.length <= 32, `${m.shards.length} shards`);
    assert.equal(m.total_tokens, m.shards.reduce((n, s) => n + s.tokens, 0));
  });

  it('rejects what would be unsafe or inconsistent, blaming the given party', () => {
    rejects('{', /not JSON/);
    rejects(mutate((o) => (o.version = 2)), /version/);
    rejects(mutate((o) => (o.shards[1].file = '../../etc/passwd')), /plain file name/);
    rejects(mutate((o) => (o.shards[1].file = '/abs.bin')), /plain file name/);
    rejects(mutate((o) => (o.shards[2].file = o.shards[1].file)), /listed twice/);
    rejects(mutate((o) => (o.shards[1].bytes = 12)), /16 \+ 2·tokens/);
    rejects(mutate((o) => (o.shards[1].id = 7)), /ids must be 0…n−1/);
    rejects(mutate((o) => (o.shards[1].sha256 = 'abc')), /sha256/);
    rejects(mutate((o) => (o.shards[0].split = 'train')), /no val shard/, 'config');
    rejects(mutate((o) => (o.total_tokens = 5)), /total_tokens/);
    rejects(mutate((o) => ((o.tokenizer as Record<string, unknown>).file = 'a/b.json')), /tokenizer.file/);
    rejects(mutate((o) => (o.shards = Array.from({ length: 10_001 }, () => ({})))), /limit/);
    rejects(' '.repeat(1024 * 1024 + 1), /limit/);
  });
});

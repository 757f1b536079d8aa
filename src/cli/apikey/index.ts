/**
 * `neuroshard apikey <create|list|revoke>`: the API keys an exposed node (`--api-host`) accepts on /v1, kept hashed
 * in `<data-dir>/api-keys.json` (mode 0600; api/keys.ts). `create` prints the key once; the node keeps only its
 * SHA-256. A running node picks up changes without a restart.
 */
import { mkdirSync } from 'node:fs';
import { createApiKey, readApiKeys, revokeApiKey } from '../../api/index.js';
import { loadOptions } from '../../node/options.js';
import { intFlag, stringFlag, UsageError, type Command } from '../command.js';

const SUBCOMMANDS = ['create', 'list', 'revoke'] as const;

export const apikeyCommand: Command = {
  name: 'apikey',
  summary: 'create, list or revoke the API keys an exposed node (--api-host) requires on /v1',
  args: '<create|list|revoke> [ID|NAME]',
  flags: {
    name: { type: 'string', value: 'NAME', description: 'create: a name for the key (letters, digits, . _ @ -; default key-<n>)' },
    'rate-limit': { type: 'string', value: 'N', description: "create: this key's requests per minute (default: the node's --api-rate-limit)" },
    json: { type: 'boolean', description: 'print one JSON document' },
  },
  async run(flags, positionals, io) {
    const sub = positionals[0];
    if (sub === undefined || !(SUBCOMMANDS as readonly string[]).includes(sub)) throw new UsageError(`apikey takes one of ${SUBCOMMANDS.join(', ')}`);
    const { dataDir } = loadOptions({ flags: { dataDir: stringFlag(flags, 'data-dir') } });
    const json = flags.json === true;
    const out = (o: unknown, text: string): void => io.stdout(json ? JSON.stringify(o, null, 2) + '\n' : text);
    const view = (r: { id: string; name: string; createdAt: string; rateLimitPerMin?: number }) => ({
      id: r.id,
      name: r.name,
      createdAt: r.createdAt,
      rateLimitPerMin: r.rateLimitPerMin ?? null,
    });
    switch (sub) {
      case 'create': {
        if (positionals.length > 1) throw new UsageError('apikey create takes no positional argument (use --name)');
        const rl = flags['rate-limit'] === undefined ? undefined : intFlag(flags, 'rate-limit', 0, 1, 1_000_000);
        mkdirSync(dataDir, { recursive: true, mode: 0o700 });
        const name = stringFlag(flags, 'name') ?? `key-${readApiKeys(dataDir).length + 1}`;
        const { key, record } = createApiKey(dataDir, { name, ...(rl === undefined ? {} : { rateLimitPerMin: rl }) });
        out({ key, ...view(record) }, `${key}\n(key ${record.id} "${record.name}": shown once; the node stores only its hash)\n`);
        return 0;
      }
      case 'list': {
        const keys = readApiKeys(dataDir).map(view);
        const text =
          keys.length === 0
            ? 'no API keys\n'
            : keys.map((k) => `${k.id}  ${k.name.padEnd(20)}  ${k.createdAt}  ${k.rateLimitPerMin === null ? 'default rate' : `${k.rateLimitPerMin}/min`}`).join('\n') + '\n';
        out({ keys }, text);
        return 0;
      }
      case 'revoke': {
        const which = positionals[1];
        if (which === undefined || positionals.length > 2) throw new UsageError('apikey revoke takes one key id or name');
        const r = revokeApiKey(dataDir, which);
        if (r === null) {
          out({ revoked: null }, `no key ${which}\n`);
          return 1;
        }
        out({ revoked: view(r) }, `revoked ${r.id} "${r.name}"\n`);
        return 0;
      }
    }
    return 2;
  },
};

import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, it } from 'node:test';
import { Bootstrapper, PEER_BOOK_HINT_ROUND } from '../../../src/p2p/bootstrap.js';
import { createLogger } from '../../../src/util/logger.js';
import type { BootstrapStatus } from '../../../src/p2p/types.js';

describe('Bootstrapper', () => {
  it('a node given unreachable peers retries with backoff and never claims to be genesis', async () => {
    let dials = 0;
    const b = new Bootstrapper({
      genesis: false,
      candidates: async () => ['/ip4/127.0.0.1/tcp/1/p2p/x'],
      dial: async () => {
        dials++;
        throw new Error('connection refused');
      },
      memberCount: () => 0,
      retryBaseMs: 5,
      retryMaxMs: 20,
    });
    const seen: BootstrapStatus[] = [];
    b.events.on('state', (s) => seen.push(s));
    b.start();
    await b.events.waitFor('state', { timeoutMs: 5000, pred: (s) => s.failedRounds >= 3 });
    await b.stop();
    assert.ok(dials >= 3);
    assert.ok(seen.every((s) => s.state !== 'genesis' && s.state !== 'connected'));
    assert.ok(seen.some((s) => s.state === 'retrying' && s.lastError?.includes('connection refused') === true));
    assert.equal(b.status().state, 'stopped');
  });

  it('a dial that ends takes its abort listener off the bootstrapper\'s lifetime signal (no pile-up before the deadline)', async () => {
    // 32 targets a round that fail at once, with a dial deadline far away: each dial's listener used to stay on the
    // bootstrapper's signal until its deadline (Node's "11 abort listeners added to [AbortSignal]" warning)
    const b = new Bootstrapper({
      genesis: false,
      candidates: async () => Array.from({ length: 32 }, (_, i) => `peer${i}`),
      dial: async (target, signal) => {
        assert.ok(target.startsWith('peer') && !signal.aborted);
        throw new Error('connection refused');
      },
      memberCount: () => 0,
      dialTimeoutMs: 600_000,
      retryBaseMs: 5,
      retryMaxMs: 20,
    });
    const lifetime = (b as unknown as { ac: AbortController }).ac.signal;
    const between: number[] = [];
    b.events.on('state', (s) => {
      if (s.state === 'retrying') between.push(getEventListeners(lifetime, 'abort').length);
    });
    b.start();
    await b.events.waitFor('state', { timeoutMs: 5000, pred: (s) => s.failedRounds >= 3 });
    await b.stop();
    assert.ok(between.length >= 3);
    assert.deepEqual(between, between.map(() => 0), `listeners left on the lifetime signal after each round: ${between.join(', ')}`);
  });

  it('counts a peer as joined only once it identifies as a member', async () => {
    let members = 0;
    const b = new Bootstrapper({
      genesis: false,
      candidates: async () => ['peerA'],
      dial: async () => {
        // the connection opens; identify says "member" a little later
        setImmediate(() => {
          members = 1;
          b.membershipChanged();
        });
      },
      memberCount: () => members,
      retryBaseMs: 5,
    });
    b.start();
    await b.events.waitFor('state', { timeoutMs: 5000, pred: (s) => s.state === 'connected' });
    // losing the last member starts over
    members = 0;
    b.membershipChanged();
    assert.equal(b.status().state, 'connecting');
    await b.stop();
  });

  it('a genesis node stays genesis and still redials known peers once', async () => {
    const dialled: string[] = [];
    let bothDialled!: () => void;
    const done = new Promise<void>((r) => (bothDialled = r));
    const b = new Bootstrapper({
      genesis: true,
      candidates: async () => ['known1', 'known2'],
      dial: async (t) => {
        dialled.push(t);
        if (dialled.length === 2) bothDialled();
        throw new Error('gone');
      },
      memberCount: () => 0,
      identifyWaitMs: 1,
    });
    b.start();
    assert.equal(b.status().state, 'genesis');
    await done;
    assert.equal(b.status().state, 'genesis', 'failed dials do not turn a founder into a joiner');
    await b.stop();
    assert.deepEqual(dialled.sort(), ['known1', 'known2']);
  });

  it('kick() retries at once when new candidates arrive', async () => {
    let list: string[] = [];
    let members = 0;
    const b = new Bootstrapper({
      genesis: false,
      candidates: async () => list,
      dial: async () => {
        members = 1;
      },
      memberCount: () => members,
      retryBaseMs: 60_000,
      retryMaxMs: 60_000,
    });
    b.start();
    await b.events.waitFor('state', { timeoutMs: 5000, pred: (s) => s.state === 'retrying' });
    assert.equal(b.status().lastError, 'no peers to dial');
    list = ['tracker-peer'];
    b.kick();
    await b.events.waitFor('state', { timeoutMs: 5000, pred: (s) => s.state === 'connected' });
    await b.stop();
  });
});

describe('Bootstrapper: a node that knows peers only from its peer book', () => {
  async function warnings(fromPeerBook: boolean): Promise<string[]> {
    const lines: string[] = [];
    const b = new Bootstrapper({
      genesis: false,
      candidates: async () => ['/ip4/127.0.0.1/tcp/1/p2p/x'],
      dial: async () => {
        throw new Error('connection refused');
      },
      memberCount: () => 0,
      retryBaseMs: 2,
      retryMaxMs: 5,
      log: createLogger({ level: 'warn', module: 'test', write: (l) => lines.push(l) }),
    });
    if (fromPeerBook) b.setGenesis(false);
    b.start();
    await b.events.waitFor('state', { timeoutMs: 5000, pred: (s) => s.failedRounds >= PEER_BOOK_HINT_ROUND + 2 });
    await b.stop();
    return lines.filter((l) => l.includes('--genesis'));
  }

  it('is told once, after a few failed rounds, that --genesis goes on alone; a node given --bootstrap is not', async () => {
    const hints = await warnings(true);
    assert.equal(hints.length, 1, hints.join('\n'));
    assert.match(hints[0]!, /none of the peers this node remembers .* restart it with --genesis to go on alone/);
    assert.deepEqual(await warnings(false), []);
  });
});

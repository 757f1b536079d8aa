import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULTS, loadOptions } from '../../../src/node/options.js';
import { isNeuroShardError } from '../../../src/util/errors.js';

const env = { NEUROSHARD_DATA_DIR: '/nonexistent/neuroshard-test' };

describe('P2P node options', () => {
  it('defaults: TCP 9000 and WebSocket 9001 on all interfaces, mDNS and UPnP on, no relay, 5 s / 15 s / 60 s liveness', () => {
    assert.deepEqual(DEFAULTS.listen, ['/ip4/0.0.0.0/tcp/9000', '/ip4/0.0.0.0/tcp/9001/ws']);
    assert.equal(DEFAULTS.mdns, true);
    assert.equal(DEFAULTS.upnp, true);
    assert.equal(DEFAULTS.relay, false);
    assert.deepEqual([DEFAULTS.heartbeatIntervalMs, DEFAULTS.peerStaleMs, DEFAULTS.peerDeadMs], [5000, 15_000, 60_000]);
  });

  it('reads flags and environment, canonicalises multiaddrs, parses --span a:b', () => {
    const o = loadOptions({
      flags: { listen: ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/tcp/0/ws'], mdns: false, span: '2:5', relay: true },
      env: { ...env, NEUROSHARD_UPNP: 'false', NEUROSHARD_BOOTSTRAP: '/ip4/10.0.0.1/tcp/9000/p2p/16Uiu2HAmAKXmqkheWcCYYQpurpxSQniL73eg2Ds7AL726foH24jN' },
    });
    assert.deepEqual(o.listen, ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/tcp/0/ws']);
    assert.equal(o.mdns, false);
    assert.equal(o.upnp, false);
    assert.equal(o.relay, true);
    assert.deepEqual(o.span, { start: 2, end: 5 });
    assert.equal(o.bootstrap.length, 1);
  });

  it('rejects bad values with a typed error naming the option', () => {
    const bad: Record<string, unknown>[] = [
      { listen: ['not a multiaddr'] },
      { listen: [] },
      { bootstrap: ['/ip4/1.2.3.4/tcp/1'] },
      { span: '5:2' },
      { span: '1-3' },
      { relayDataLimitMb: '0' },
      { mdns: 'maybe' },
    ];
    for (const flags of bad) {
      assert.throws(
        () => loadOptions({ flags, env }),
        (e: unknown) => isNeuroShardError(e, 'INVALID_ARGUMENT') && e.message.includes(Object.keys(flags)[0]!),
        JSON.stringify(flags),
      );
    }
  });
});

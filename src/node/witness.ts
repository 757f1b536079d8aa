/**
 * Uptime witnessed by peers (issue 11 §2), wired to a running node: the node answers peers' liveness challenges
 * (protocols/handlers/liveness-witness.ts), challenges up to `witnessesPerWindow` random connected peers once per
 * 60 s window (protocols/liveness-witness.ts: each call has its deadline), and early in the next window submits an
 * Uptime ledger event carrying the attestations it received for the window just ended, when it has at least the
 * quorum. Whether the event pays (bonded subject and witnesses) is the ledger's rule (ledger/apply.ts); a refused
 * event is dropped, not stored, so trying costs nothing.
 */
import type { NodeKey } from '../identity/index.js';
import { buildUptime } from '../ledger/build.js';
import type { LedgerEvent } from '../ledger/events.js';
import { PROOF_WINDOW_MS, UPTIME_QUORUM, UPTIME_SUBMIT_GRACE_MS } from '../ledger/economics.js';
import type { PeerScoreTable } from '../p2p/peer-score.js';
import { LivenessWitnessServer } from '../protocols/handlers/liveness-witness.js';
import { witnessPeer } from '../protocols/liveness-witness.js';
import type { RpcNode } from '../protocols/rpc/service.js';
import { systemClock, type Clock } from '../util/clock.js';
import { errorMessage } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/logger.js';

export interface UptimeWitnessOptions {
  rpc: RpcNode;
  key: NodeKey;
  networkId: string;
  /** Connected peers to pick witnesses' subjects from. */
  peers(): string[];
  /** Submits a signed ledger event (the node's ledger service). */
  submit(bytes: Uint8Array): Promise<{ status: string; reason?: string }>;
  /**
   * The local ledger's state verdict on an event (null = it would apply). An Uptime event it refuses (an unbonded
   * node, too few bonded witnesses) is not submitted: peers would refuse to relay it too.
   */
  precheck?(e: LedgerEvent): string | null;
  scores?: PeerScoreTable;
  clock?: Clock;
  log?: Logger;
  /** Peers challenged per window. Default 3. */
  witnessesPerWindow?: number;
  /** How often the loop looks whether something is due. Default 1,000 ms. */
  tickMs?: number;
}

export interface UptimeWitness {
  readonly server: LivenessWitnessServer;
  /** Counters: challenges sent that produced an attestation, failed ones, Uptime events submitted and applied. */
  readonly counts: { witnessed: number; failed: number; submitted: number; applied: number };
  /** One step of the loop now (the timer calls it; tests may). */
  tick(): Promise<void>;
  stop(): Promise<void>;
}

export async function startUptimeWitness(o: UptimeWitnessOptions): Promise<UptimeWitness> {
  const clock = o.clock ?? systemClock;
  const log = o.log ?? silentLogger;
  const per = o.witnessesPerWindow ?? 3;
  const server = new LivenessWitnessServer(o.key, o.networkId, { clock, scores: o.scores });
  await server.register(o.rpc);
  const stopping = new AbortController();
  const counts = { witnessed: 0, failed: 0, submitted: 0, applied: 0 };
  let witnessedEpoch = -1;
  let submittedEpoch = -1;
  let busy = false;

  const tick = async (): Promise<void> => {
    if (busy || stopping.signal.aborted) return;
    busy = true;
    try {
      const now = clock.now();
      const epoch = Math.floor(now / PROOF_WINDOW_MS);
      // submit last window's attestations (inside the grace the ledger allows)
      const prev = epoch - 1;
      if (submittedEpoch < prev && now < (prev + 1) * PROOF_WINDOW_MS + UPTIME_SUBMIT_GRACE_MS) {
        submittedEpoch = prev;
        const atts = server.attestations(prev);
        if (atts.length >= UPTIME_QUORUM) {
          const ev = buildUptime(o.key, { networkId: o.networkId, timestampMs: now }, atts, prev);
          const no = o.precheck?.(ev) ?? null;
          if (no !== null) {
            log.debug('uptime event not submitted', { epoch: prev, witnesses: atts.length, reason: no });
          } else {
            counts.submitted++;
            const r = await o.submit(ev.bytes);
            if (r.status === 'applied') counts.applied++;
            log.debug('uptime event', { epoch: prev, witnesses: atts.length, status: r.status, reason: r.reason });
          }
        }
      }
      // witness up to `per` random peers once this window
      if (witnessedEpoch < epoch) {
        witnessedEpoch = epoch;
        const peers = shuffle(o.peers()).slice(0, per);
        await Promise.all(
          peers.map(async (peer) => {
            try {
              await witnessPeer(o.rpc, o.key, { networkId: o.networkId, peer, nowMs: clock.now(), epoch, signal: stopping.signal });
              counts.witnessed++;
            } catch (e) {
              counts.failed++;
              log.debug('liveness challenge failed', { peer, error: errorMessage(e) });
            }
          }),
        );
      }
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void tick().catch((e: unknown) => log.warn('uptime witness step failed', { error: errorMessage(e) })), o.tickMs ?? 1000);
  timer.unref?.();
  return {
    server,
    counts,
    tick,
    stop: async () => {
      stopping.abort();
      clearInterval(timer);
      await server.unregister(o.rpc).catch(() => {});
    },
  };
}

function shuffle<T>(a: T[]): T[] {
  const b = [...a];
  for (let i = b.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [b[i], b[j]] = [b[j]!, b[i]!];
  }
  return b;
}

/**
 * An in-memory network of OuterSync nodes over a tiny 3-layer model (training/sync.ts without libp2p), for the
 * rejoin and drift tests: each node runs its rounds concurrently at its own pace (`stepMs` per inner step, which a
 * test may change), the view lists every started node until the test unlists it, and a killed node is unreachable at
 * once while the view still lists it (its heartbeats are only late).
 */
import { ParamLayout } from '../../../src/model/layout.js';
import { decodeDelta } from '../../../src/training/compression/index.js';
import { AppliedSteps } from '../../../src/training/applied-steps.js';
import { OuterSync, type LastRoundReport, type LayerState, type PeerTrainingStatus, type SendVerdict } from '../../../src/training/sync.js';
import { createLogger, type Logger } from '../../../src/util/logger.js';
import { tinyConfig } from '../model/helpers.js';

export const cfg = tinyConfig(); // 3 layers
export const H = 3;

export interface Node {
  id: string;
  span: { start: number; end: number };
  params: Float32Array;
  sync: OuterSync;
  ac: AbortController;
  /** Rounds closed (as closeRound returned them). */
  closed: number[];
  /** Their reports (solo nodes). */
  reports: LastRoundReport[];
  /** A chain stage's closes as `round@step` (the chain step it closed after). */
  closedAt: string[];
  /** A chain stage's closeRound durations (ms), in order. */
  closeMs: number[];
  /** Warnings logged by its outer sync (download failures). */
  warnings: string[];
  /** Info lines logged by its outer sync. */
  infos: string[];
  running: Promise<void>;
  stepMs: number;
}

const layerIndex = (layer: string): number => (layer === 'embed' ? 0 : layer === 'head' ? cfg.num_hidden_layers - 1 : Number(layer.slice('layers.'.length)));

function capture(id: string, warnings: string[], infos: string[]): Logger {
  const base = process.env.SYNC_UNIT_LOG === undefined ? undefined : createLogger({ level: 'debug', module: id });
  const mk = (): Logger => ({
    level: 'debug',
    error: (m, c) => base?.error(m, c),
    warn: (m, c) => {
      warnings.push(`${m} ${JSON.stringify(c ?? {})}`);
      base?.warn(m, c);
    },
    info: (m, c) => {
      infos.push(`${m} ${JSON.stringify(c ?? {})}`);
      base?.info(m, c);
    },
    debug: (m, c) => base?.debug(m, c),
    trace: () => {},
    child: () => mk(),
  });
  return mk();
}

/** The network: nodes by id (reachable ones), and the view's holders (listed ones, reachable or not). */
export class Net {
  readonly nodes = new Map<string, Node>();
  readonly listed = new Map<string, { start: number; end: number }>();
  /**
   * Nodes that left their layers (a pool move): they answer `not_held` to a contribution and a status that lists
   * none of their old layers, as a moved node's new outer sync does, while the view still lists them.
   */
  readonly left = new Set<string>();
  /** Status calls that fail (a timeout under load): `statusFails(from, to)` true makes that call throw. */
  statusFails: (from: string, to: string) => boolean = () => false;
  /**
   * Holds a contribution's delivery until the promise `sendHold(from, to, round)` returns settles (a slow link, a busy
   * receiver); undefined: delivered at once.
   */
  sendHold: (from: string, to: string, round: number) => Promise<void> | undefined = () => undefined;
  /** Holds the answer of a layer download (`from` fetches from `to`) until the promise it returns settles (a slow link). */
  fetchHold: (from: string, to: string) => Promise<void> | undefined = () => undefined;
  /** Solo nodes that take no inner step while listed here (a replica whose steps stall). */
  readonly frozen = new Set<string>();
  /** Views that differ: `hides(viewer, peer)` true leaves `peer` out of `viewer`'s holders (its view lacks it). */
  hides: (viewer: string, peer: string) => boolean = () => false;

  /** `syncTimeoutMs` (default 3000) and the outer sync's `stalledMs` (default: OuterSync's) of the nodes it creates. */
  constructor(private readonly tuning: { syncTimeoutMs?: number; stalledMs?: number } = {}) {}

  /** The holders of `layer` in `viewer`'s view (every listed node's, without a viewer). */
  holders(layer: string, viewer?: string): string[] {
    const i = layerIndex(layer);
    return [...this.listed].filter(([id, s]) => s.start <= i && i < s.end && (viewer === undefined || id === viewer || !this.hides(viewer, id))).map(([id]) => id).sort();
  }

  /** `firstRound`: the number its rounds start at when nobody is ahead (OuterSync's option; default 0). */
  start(id: string, span: { start: number; end: number }, stepMs: number, params?: Float32Array, firstRound?: number): Node {
    const n = this.create(id, span, stepMs, params, firstRound);
    n.running = this.solo(n);
    return n;
  }

  /**
   * A pipeline chain (training/chain-outer.ts over ChainTrainer and HopInnerLoop, without the pipeline): the first
   * stage drives; every chain step (ids 0, 1, …, `stepMs` apart) is applied by every stage that has entered its
   * rounds; each stage counts the steps it applied and closes its round after `roundSteps()` of them, passing its
   * chain position; while any stage closes, no step passes (a paused hop refuses steps, a paused driver issues
   * none). `extraStep` names stages that applied one more step than the others before the counting began (a step
   * whose acknowledgement the driver lost): their rounds end one step apart from the driver's. `lostAck` (a chain
   * step id): the driver does not count that step (its acknowledgement lost after every hop applied it) while the
   * hops do, after their boundaries were published: each hop then reaches its boundary one step before the driver,
   * and the driver, still in its round's steps, asks the paused hops for its next step (a paused hop refuses it and
   * says so in its chain position's `asked`, as protocols/train-stage.ts does). A stage named twice in `extraStep`
   * applied two more. `skip` (chain step ids): steps nobody applies (PipelineTrainer's NaN skip: the id is used up).
   * Chain positions carry the steps each stage applied after an id (ChainPosition.appliedAfter, as ChainTrainer's
   * and HopInnerLoop's), unless `countApplied` is false.
   */
  startChain(stages: { id: string; span: { start: number; end: number }; firstRound?: number }[], stepMs: number, extraStep: string[] = [], lostAck?: number, o: { skip?: number[]; countApplied?: boolean } = {}): Node[] {
    const nodes = stages.map((st) => this.create(st.id, st.span, stepMs, undefined, st.firstRound));
    const ac = new AbortController();
    for (const n of nodes) n.ac.signal.addEventListener('abort', () => ac.abort(), { once: true });
    const running = (async () => {
      const signal = ac.signal;
      try {
        await Promise.all(nodes.map((n) => n.sync.enter(signal)));
        const count = new Map(nodes.map((n) => [n.id, extraStep.filter((x) => x === n.id).length]));
        const driver = nodes[0]!;
        const ids = new Map(nodes.map((n) => [n.id, new AppliedSteps()]));
        for (let step = 0; !signal.aborted; step++) {
          await new Promise((r) => setTimeout(r, driver.stepMs));
          if (o.skip?.includes(step) === true) continue;
          for (const n of nodes) {
            const k = nodes.indexOf(n) + 1;
            for (let i = 0; i < n.params.length; i++) n.params[i] = n.params[i]! - 0.001 * k * Math.cos(i + step);
            if (n === driver && step === lostAck) continue;
            ids.get(n.id)!.add(step, driver.id);
            n.sync.innerStep();
            count.set(n.id, count.get(n.id)! + 1);
          }
          const closing = nodes.filter((n) => count.get(n.id)! >= n.sync.roundSteps());
          // a driver that does not close now asks its hops for the next step, which the closing (paused) ones refuse
          const asked = new Set<string>();
          const ask = closing.includes(driver) ? undefined : setTimeout(() => asked.add(driver.id), driver.stepMs);
          await Promise.all(
            closing.map(async (n) => {
              const partners = n === driver ? nodes.slice(1).map((x) => x.id) : [driver.id];
              const t0 = Date.now();
              const applied = ids.get(n.id)!;
              const after = o.countApplied === false ? {} : { appliedAfter: (id: number) => applied.after(id) };
              const r = (await n.sync.closeRound(signal, { step, partners, drives: n === driver, asked: (p) => n !== driver && asked.has(p), ...after })).round;
              n.closed.push(r);
              n.closedAt.push(`${r}@${step}`);
              n.closeMs.push(Date.now() - t0);
              count.set(n.id, 0);
            }),
          );
          clearTimeout(ask);
        }
      } catch (e) {
        if (!signal.aborted) throw e;
      }
    })();
    for (const n of nodes) n.running = running;
    return nodes;
  }

  /** A node's OuterSync over its own params, listed in the view; nothing runs it (a test's own loop does). */
  create(id: string, span: { start: number; end: number }, stepMs: number, params?: Float32Array, firstRound?: number): Node {
    const layout = new ParamLayout(cfg, span);
    const warnings: string[] = [];
    const infos: string[] = [];
    const n = { id, span, params: params ?? new Float32Array(layout.size).map((_, i) => Math.sin(i + layout.entries[0]!.offset)), closed: [], reports: [], closedAt: [], closeMs: [], warnings, infos, stepMs, ac: new AbortController() } as unknown as Node;
    const whole = new ParamLayout(cfg);
    // every node starts from the same model: its span's slice of one whole-model init
    if (params === undefined) {
      const init = new Float32Array(whole.size).map((_, i) => Math.sin(i));
      let o = 0;
      for (const e of layout.entries) {
        const w = whole.entries.find((x) => x.name === e.name)!;
        n.params.set(init.subarray(w.offset, w.offset + w.size), o);
        o += e.size;
      }
    }
    n.sync = new OuterSync({
      self: id,
      layout,
      inner: { getParams: () => Promise.resolve(n.params.slice()), setParams: (p) => Promise.resolve(void n.params.set(p)) },
      round: { innerSteps: H, quorum: 2 / 3, syncTimeoutMs: this.tuning.syncTimeoutMs ?? 3000 },
      ...(this.tuning.stalledMs === undefined ? {} : { stalledMs: this.tuning.stalledMs }),
      aggregator: 'mean',
      compress: 'none',
      outerLr: 0.7,
      outerMomentum: 0.9,
      holders: (layer) => this.holders(layer, id),
      transport: {
        send: async (peer, c): Promise<SendVerdict> => {
          await new Promise((r) => setTimeout(r, 2));
          await this.sendHold(id, peer, c.round);
          const to = this.nodes.get(peer);
          if (to === undefined) throw new Error('unreachable');
          if (this.left.has(peer)) return 'not_held';
          if (to.sync.round < 0) return 'too_early';
          return to.sync.receive(id, c.round, c.layer, decodeDelta(c.compression, c.n, c.payload), c.payload.byteLength);
        },
        status: async (peer): Promise<PeerTrainingStatus> => {
          await new Promise((r) => setTimeout(r, 2));
          const to = this.nodes.get(peer);
          if (to === undefined || this.statusFails(id, peer)) throw new Error('unreachable');
          if (this.left.has(peer)) return { round: -1, phase: 'entering', members: [], closed: [], layers: [] };
          return structuredClone(to.sync.status());
        },
        fetchLayer: async (peer, round, layer): Promise<LayerState> => {
          await new Promise((r) => setTimeout(r, 2));
          const s = this.nodes.get(peer)?.sync.serveLayer(id, round, layer);
          if (s === undefined) throw new Error('no such state');
          // a slow transfer of the answer (the holder served it: its copy is taken)
          await this.fetchHold(id, peer);
          return { theta: s.theta.slice(), buf: s.buf === null ? null : s.buf.slice() };
        },
      },
      clock: { now: () => Date.now() },
      pollMs: 10,
      log: capture(id, warnings, infos),
      ...(firstRound === undefined ? {} : { firstRound }),
    });
    this.nodes.set(id, n);
    this.listed.set(id, span);
    return n;
  }

  private solo(n: Node): Promise<void> {
    const k = [...n.id].reduce((a, c) => a + c.charCodeAt(0), 0) % 7;
    return (async () => {
      const signal = n.ac.signal;
      try {
        while (!signal.aborted) {
          await n.sync.enter(signal);
          for (let s = 0; s < H; s++) {
            await new Promise((r) => setTimeout(r, n.stepMs));
            while (this.frozen.has(n.id) && !signal.aborted) await new Promise((r) => setTimeout(r, 5));
            for (let i = 0; i < n.params.length; i++) n.params[i] = n.params[i]! - 0.001 * (k + 1) * Math.cos(i + s);
            n.sync.innerStep();
          }
          const r = await n.sync.closeRound(signal);
          n.reports.push(r);
          n.closed.push(r.round);
        }
      } catch (e) {
        if (!signal.aborted) throw e;
      }
    })();
  }

  /** SIGKILL: unreachable at once; the view still lists it (its heartbeats are only late). */
  kill(id: string): Node {
    const n = this.nodes.get(id)!;
    this.nodes.delete(id);
    n.ac.abort();
    return n;
  }

  async stop(): Promise<void> {
    for (const n of this.nodes.values()) n.ac.abort();
    await Promise.allSettled([...this.nodes.values()].map((n) => n.running));
  }
}

export async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * The node's inference side, wired: the model view (genesis config + tokenizer) the router needs, the hop sessions
 * on this node's own compute worker, the holders view (ourselves plus the peers whose heartbeats name a span), and
 * the Generator behind POST /api/generate (router/driver.ts does the work).
 *
 * The weights served are the layer pool's (pool/: it loads, adopts and moves the span in the worker); nothing here
 * loads a model. (`loadServingModel`, which loaded a span from the newest checkpoint or the seeded initialisation,
 * had no caller since the pool took over and was removed in session 28.)
 */
import { randomBytes } from 'node:crypto';
import type { Generator, GenerateListener, GenerateOutput, GenerateParams } from '../api/index.js';
import type { ComputeClient } from '../compute/index.js';
import type { LlamaConfig } from '../model/index.js';
import { Tokenizer } from '../model/tokenizer/index.js';
import type { TextTokenizer } from '../model/tokenizer/hf.js';
import { BanList, DRIVER_DEFAULTS, holderViews, LatencyTable, runGeneration, type PeerHolding, type DriverDeps, type DriverOptions, type GenerationResult, type HolderView, type HopInput, type HopOpener, type HopOutput, type HopSession, type ModelView, type SessionSpec } from '../router/index.js';
import { AbortedError, NeuroShardError } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { connectedBlocks } from '../protocols/address-block.js';
import { inferencePush, inferenceStream } from '../protocols/methods.js';
import { HOP_LIMIT_DEFAULTS, InferenceHopServer, RemoteHopSession, type HopCompute, type HopFaultsForTests, type HopTranscripts } from '../protocols/inference.js';
import type { HopMarket } from '../protocols/hop-commitment.js';
import type { Clock } from '../util/clock.js';
import type { Genesis } from './genesis.js';
import type { NodeNetwork } from './network.js';
import type { NodeOptions } from './options.js';

export interface Span {
  start: number;
  end: number;
}

export function genesisModelView(genesis: Genesis): ModelView {
  const tok = Tokenizer.load(genesis.tokenizerPath);
  const c = genesis.config;
  return {
    numLayers: c.num_hidden_layers,
    hiddenSize: c.hidden_size,
    contextLength: c.max_position_embeddings,
    eosId: c.eos_token_id,
    encode: (text) => Array.from(tok.encode(text, { bos: true, eos: false })),
    decode: (ids) => tok.decode(ids),
  };
}

/**
 * The model view of a network whose model came with its own tokenizer (a `--checkpoint` directory holding a
 * Hugging Face tokenizer.json or our tokenizer file): the entry encodes with it ('chat' prompts: the rendered
 * template's special-token strings become their ids, nothing added) and stops on the config's EOS and the
 * tokenizer's stop ids (EOS, end-of-turn), exactly as `neuroshard generate --checkpoint` does on one node.
 */
export function modelViewOf(config: LlamaConfig, tok: TextTokenizer): ModelView {
  return {
    numLayers: config.num_hidden_layers,
    hiddenSize: config.hidden_size,
    contextLength: config.max_position_embeddings,
    eosId: config.eos_token_id,
    stopIds: [...new Set([config.eos_token_id, ...tok.stopIds])],
    encode: (text, kind) => Array.from(tok.encodePrompt(text, kind ?? 'text')),
    decode: (ids) => tok.decode(ids),
  };
}

/** A session on this node's own worker: no network, the same jobs a remote hop runs. */
export class LocalHopSession implements HopSession {
  private opened: Promise<unknown> | undefined;
  private closed = false;

  constructor(
    private readonly compute: ComputeClient,
    private readonly spec: SessionSpec,
  ) {}

  async step(input: HopInput, signal: AbortSignal): Promise<HopOutput> {
    if (this.closed) throw new AbortedError('session closed');
    this.opened ??= this.compute.run({ type: 'sessionOpen', id: this.spec.id, maxLen: this.spec.maxLen, sampling: this.spec.sampling });
    await this.opened;
    const job = { type: 'sessionStep' as const, id: this.spec.id, chunks: input.chunks, ...(input.ids === undefined ? {} : { ids: input.ids }), ...(input.hidden === undefined ? {} : { hidden: input.hidden }) };
    const r = await this.compute.run(job, { signal, copy: true });
    return { ...(r.hidden === undefined ? {} : { hidden: r.hidden }), ...(r.tokens === undefined ? {} : { tokens: r.tokens }) };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.opened !== undefined) {
      void this.opened.then(() => this.compute.run({ type: 'sessionClose', id: this.spec.id })).catch(() => {});
    }
  }
}

export interface ServingInit {
  compute: ComputeClient;
  genesis: Genesis;
  selfPeerId: string;
  /** Layers this node serves now (undefined: none, or not loaded yet). */
  localSpan(): Span | undefined;
  /** How our own worker holds its weights (`--weights`); default f32. */
  weights?: 'f32' | 'int8';
  /** Peers and what they hold (from heartbeats, measured latencies); ourselves excluded. */
  peers?(): HolderView[];
  /** Opens a session on a remote hop (protocols/inference.ts); without it only local routes exist. */
  remote?: (hop: { peerId: string; span: Span }, spec: SessionSpec) => HopSession;
  options?: Partial<DriverOptions>;
  log?: Logger;
  /** The model view (default: the bundled genesis', genesisModelView). */
  model?: ModelView;
  /** Pays each generation from a market request (issue 11 §2; router DriverDeps.settle). */
  settle?: DriverDeps['settle'];
  /** The measured round-trip floor to a peer (router DriverDeps.rttFloorMs; `--hop-push auto` decides by it). */
  rttFloorMs?: (peer: string) => number | undefined;
}

/** The generator of a node. */
export class NodeGenerator implements Generator {
  readonly bans = new BanList();
  private readonly model: ModelView;
  private readonly log: Logger;
  private readonly options: DriverOptions;
  /** Failover stalls of recent generations (ms), for the benchmark. */
  readonly stalls: number[] = [];

  constructor(private readonly init: ServingInit) {
    this.model = init.model ?? genesisModelView(init.genesis);
    this.log = init.log ?? silentLogger;
    this.options = { ...DRIVER_DEFAULTS, ...init.options };
  }

  holders(): HolderView[] {
    const out: HolderView[] = [];
    const span = this.init.localSpan();
    // our own worker: no network round trip
    if (span !== undefined) out.push({ peerId: this.init.selfPeerId, span, alive: true, rttMs: 0, ...(this.init.weights === 'int8' ? { weights: 'int8' as const } : {}) });
    for (const p of this.init.peers?.() ?? []) if (p.peerId !== this.init.selfPeerId) out.push(p);
    return out;
  }

  async generate(params: GenerateParams, listener: GenerateListener, signal: AbortSignal): Promise<GenerateOutput> {
    const r = await this.run(params, listener, signal);
    return { text: r.text, tokens: r.tokens, finishReason: r.finishReason, route: r.route, routes: r.routes, failovers: r.failovers, ...(r.settlement === undefined ? {} : { payment: r.settlement }) };
  }

  /** As generate(), with the driver's extra figures. */
  async run(params: GenerateParams, listener: GenerateListener, signal: AbortSignal): Promise<GenerationResult> {
    const self = this.init.selfPeerId;
    const opener: HopOpener = {
      open: (hop, spec) => {
        if (hop.peerId === self) return new LocalHopSession(this.init.compute, spec);
        if (this.init.remote === undefined) throw new NeuroShardError('NOT_SERVING', 'this node has no inference transport', { fault: 'local' });
        return this.init.remote(hop, spec);
      },
    };
    const r = await runGeneration(params, {
      model: this.model,
      holders: () => this.holders(),
      opener,
      bans: this.bans,
      now: () => performance.now(),
      random: Math.random,
      newSessionId: () => randomBytes(16).toString('hex'),
      options: this.options,
      selfPeerId: self,
      log: this.log,
      ...(this.init.settle === undefined ? {} : { settle: this.init.settle }),
      ...(this.init.rttFloorMs === undefined ? {} : { rttFloorMs: this.init.rttFloorMs }),
    }, listener, signal);
    this.stalls.push(...r.stallsMs);
    if (this.stalls.length > 1000) this.stalls.splice(0, this.stalls.length - 1000);
    return r;
  }
}

export interface StartServingInit {
  opts: NodeOptions;
  genesis: Genesis;
  compute: ComputeClient;
  network: NodeNetwork;
  /** The layer pool's span, read on every route choice and hop session (the pool loads and swaps the weights). */
  localSpan: () => Span | undefined;
  /** Peers' stated tokens/s through their spans (the pool's view of their HolderRecords), read per route choice. */
  speeds?: () => ReadonlyMap<string, number>;
  /**
   * Peers' weights formats as the pool's view states them (their signed HolderRecords; pool/view.ts), read per route
   * choice; a peer missing from it is taken at its heartbeat's word.
   */
  formats?: () => ReadonlyMap<string, 'f32' | 'int8'>;
  /**
   * Locked stake per peer from the ledger state (ledger/stakes.ts `stakesByPeer`) and the stake that counts as a
   * bond: route choice weighs unbonded holders less (router/route.ts UNBONDED_WEIGHT). Unset: no stake weighting.
   */
  bonds?: () => Bonds;
  clock: Clock;
  log: Logger;
  /** The network's model when it is not the bundled genesis (a `--checkpoint` node): its config and view. */
  model?: { config: LlamaConfig; view: ModelView };
  /** Signs this node's hop commitments and submits completions as a driver (issue 11 §2; node/market.ts). */
  market?: HopMarket;
  /** Issue 11 §2: the hop keeps and seals its sessions' inputs for validators (node/validator.ts nodeTranscripts). */
  transcripts?: HopTranscripts;
  /** Test-only faults of the hop server (NodeModules.hopFaultsForTests; never from options or the CLI). */
  faultsForTests?: HopFaultsForTests;
  /** Pays for the generations this node drives (issue 11 §2, `--pay-inference`; node/market.ts nodeInferencePayer). */
  settle?: DriverDeps['settle'];
}

export interface NodeServing {
  generator: NodeGenerator;
  /** The hop side: peers' sessions on our span (undefined when we hold none). */
  hops: InferenceHopServer | undefined;
  /** Measured round trips to the peers this node drove hops on. */
  latency: LatencyTable;
  stop(): Promise<void>;
}

/** The hop's math on our compute worker. */
export function workerHopCompute(compute: ComputeClient, config: LlamaConfig, span: () => Span | undefined): HopCompute {
  return {
    span,
    numLayers: config.num_hidden_layers,
    hiddenSize: config.hidden_size,
    vocabSize: config.vocab_size,
    contextLength: config.max_position_embeddings,
    kvBytesPerPosition: (s) => 2 * (s.end - s.start) * config.num_key_value_heads * config.head_dim * 4,
    open: async (id, maxLen, sampling) => {
      await compute.run({ type: 'sessionOpen', id, maxLen, sampling });
    },
    step: async (id, input, signal) => {
      const r = await compute.run({ type: 'sessionStep', id, chunks: input.chunks, ...(input.ids === undefined ? {} : { ids: input.ids }), ...(input.hidden === undefined ? {} : { hidden: input.hidden }) }, { signal });
      return { ...(r.hidden === undefined ? {} : { hidden: r.hidden }), ...(r.tokens === undefined ? {} : { tokens: r.tokens }), batch: r.batch };
    },
    close: async (id) => {
      await compute.run({ type: 'sessionClose', id });
    },
  };
}

/** The cost a stale peer is given in route choice (ms), so that live replicas come first. */
const STALE_RTT_MS = 50;

/**
 * The address block (IPv4 /24, IPv6 /48) each connected peer is observed at, from the addresses its open
 * connections run over (protocols/address-block.ts `connectedBlocks`): route choice's exploration draws per block.
 */
export function observedBlocks(network: Pick<NodeNetwork, 'p2p'>): Map<string, string> {
  return connectedBlocks(
    network.p2p.libp2p
      .getConnections()
      .filter((c) => c.status === 'open')
      .map((c) => ({ peer: c.remotePeer.toString(), remoteAddr: c.remoteAddr.toString(), limited: c.limits != null })),
  );
}

/**
 * The route choice's view of peers: heartbeats' spans and liveness, measured round trips, records' tokens/s, and
 * the address block each is connected from (`observedBlocks`; a peer without a connection has none).
 */
/** What route choice weighs holders' bonds by: locked stake per peer (base units) and the bond it must reach. */
export interface Bonds {
  stakes: ReadonlyMap<string, bigint>;
  minBond: bigint;
}

export function peerHolderViews(network: NodeNetwork, latency: LatencyTable, speeds: ReadonlyMap<string, number>, heartbeatIntervalMs?: number, blocks: ReadonlyMap<string, string> = observedBlocks(network), formats: ReadonlyMap<string, 'f32' | 'int8'> = new Map(), bonds?: Bonds): HolderView[] {
  const peers: PeerHolding[] = [];
  const now = network.liveness.now();
  for (const p of network.liveness.snapshot()) {
    const span = p.heartbeat.span;
    if (span === undefined || network.scores.isBanned(p.peer)) continue;
    const tps = speeds.get(p.peer);
    const block = blocks.get(p.peer);
    // the signed record's format wins; the heartbeat's is a hint for a peer whose record is not known yet
    const int8 = (formats.get(p.peer) ?? (p.heartbeat.weights === 'int8' ? 'int8' : 'f32')) === 'int8';
    peers.push({ peerId: p.peer, span: { start: span.start, end: span.end }, state: p.state, silentMs: Math.max(0, now - p.lastSeenMs), ...(tps === undefined ? {} : { tokensPerSec: tps }), ...(block === undefined ? {} : { block }), ...(int8 ? { weights: 'int8' as const } : {}) });
  }
  return holderViews({ peers, rttMs: (peer) => latency.rttMs(peer), stepMs: (peer) => latency.stepMs(peer), stalePenaltyMs: STALE_RTT_MS, ...(heartbeatIntervalMs === undefined ? {} : { heartbeatIntervalMs }), ...(bonds === undefined ? {} : { stakes: bonds.stakes, minBond: bonds.minBond }) });
}

/** Serves peers' hop sessions on the pool's span and builds the generator. */
export async function startServing(init: StartServingInit): Promise<NodeServing> {
  const { compute, genesis, network, log, opts } = init;
  const config = init.model?.config ?? genesis.config;
  // read on every session, since the pool loads and moves the span. A pool node registers the hop protocol even
  // before it holds layers (it answers NOT_SERVING until then): registering only when a span was passed in left every
  // pool node without a hop server, so an entry's first step failed on every holder and the failovers banned them
  // all (503 layers_uncovered).
  const spanNow = (): Span | undefined => (stopped ? undefined : init.localSpan());
  let stopped = false;
  let hops: InferenceHopServer | undefined;
  if (opts.span !== 'none') {
    hops = new InferenceHopServer(workerHopCompute(compute, config, spanNow), { ...HOP_LIMIT_DEFAULTS, memoryBudgetBytes: opts.inferenceMemoryMb * 1024 * 1024 }, network.scores, log.child('hop'), init.market, {
      ...(init.transcripts === undefined ? {} : { transcripts: init.transcripts }),
      ...(init.faultsForTests === undefined ? {} : { faultsForTests: init.faultsForTests }),
    });
    await hops.register(network.rpc);
  }
  const latency = new LatencyTable();
  // peers this node has measured serving a step keep their place in a full liveness table (fresh keys rotate
  // among the rest instead of locking joiners out: protocols/liveness.ts `keep`)
  network.liveness.setKeep((peer) => latency.samples(peer) > 0);
  const generator = new NodeGenerator({
    compute,
    genesis,
    selfPeerId: network.peerId,
    localSpan: init.localSpan,
    weights: opts.weights,
    // a stale peer (heartbeats late) is still routed to, behind alive ones; a dead one never
    peers: () => peerHolderViews(network, latency, init.speeds?.() ?? new Map(), opts.heartbeatIntervalMs, undefined, init.formats?.(), init.bonds?.()),
    remote: (hop, spec) =>
      new RemoteHopSession(network.rpc, hop.peerId, hop.span, spec, {
        hiddenSize: config.hidden_size,
        vocabSize: config.vocab_size,
        wire: opts.wire,
        scores: network.scores,
        onStepTimed: (peer, wallMs, hopMs) => latency.observeStep(peer, wallMs, hopMs),
      }),
    options: { stepTimeoutMs: opts.hopTimeoutMs, explore: opts.routeExplore, push: opts.hopPush },
    rttFloorMs: (peer) => latency.floorMs(peer),
    log,
    ...(init.model === undefined ? {} : { model: init.model.view }),
    ...(init.settle === undefined ? {} : { settle: init.settle }),
  });
  return {
    generator,
    hops,
    latency,
    stop: async () => {
      stopped = true;
      if (hops !== undefined) await network.rpc.unhandle(inferenceStream).catch(() => {});
      if (hops !== undefined) await network.rpc.unhandle(inferencePush).catch(() => {});
    },
  };
}

/**
 * The composition root: `NeuroShardNode.init(opts, modules)` builds a node's parts in dependency order and hands
 * each only what it needs; `close()` tears them down in reverse. The node class owns wiring and lifecycle, no
 * domain logic.
 *
 *   keystore ─▶ compute worker ─▶ network (libp2p, RPC, DHT registry, heartbeats, tracker) ─▶ ledger + proofs
 *                     │                                                                        ▲
 *                     └──────── genesis training (solo, checkpoints) ── work counters ─────────┘
 *   local HTTP API (status, peers, ledger events and status) on 127.0.0.1, and `<data-dir>/node.lock` naming our
 *   pid and API port.
 *
 * The layer pool (node/pool.ts over src/pool/) decides the span: `--span auto` (default) chooses from the live view,
 * `--span a:b` pins one, `--span none` holds nothing. A genesis node that takes the whole model without
 * `--checkpoint` trains it on the genesis corpus; every other holder serves the weights it loaded (its checkpoint,
 * the seeded initialisation, or hash-verified weights from peers).
 */
import { mkdirSync } from 'node:fs';
import { ApiServer, readApiKeys, LedgerNotReadyError, type LedgerSubmitter, type NodeStatus, type PeerStatus, type StatusProvider } from '../api/index.js';
import { ComputeClient } from '../compute/index.js';
import { assertNoNodeRunning, writeNodeLock, addressFromPublicKey, type NodeKey } from '../identity/index.js';
import { openNodeKey } from './key.js';
import { MAX_SLASH_BYTES, MIN_REWARD_BOND } from '../ledger/index.js';
import { stakesByPeer } from '../ledger/stakes.js';
import { PACKAGE_VERSION } from '../params/index.js';
import { systemClock, type Clock } from '../util/clock.js';
import { errorMessage, InvalidArgumentError } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { bundledGenesis, type Genesis } from './genesis.js';
import { fetchNetworkModel, resolveNetworkModel } from './network-model.js';
import { ledgerSubmitter, startNodeLedgerService, WorkTally, type NodeLedgerService } from './ledger.js';
import { startUptimeWitness } from './witness.js';
import { receiptsWiring } from './training-receipts.js';
import { nodeTranscripts, startNodeValidator, type NodeValidator } from './validator.js';
import { effectiveValidationRate, MAX_VALIDATION_RATE } from '../protocols/sampling.js';
import type { HopFaultsForTests } from '../protocols/inference.js';
import type { PeerLiveness } from '../protocols/liveness.js';
import { createNodeNetwork, type NetworkTuning, type NodeNetwork } from './network.js';
import { ourTextTokenizer } from '../model/tokenizer/hf.js';
import { Tokenizer } from '../model/tokenizer/index.js';
import { checkpointTokenizer, generateDefaultsOf, OpenAiGenerator } from './openai.js';
import { readGenerationConfig } from '../model/generation-config.js';
import { OPENAI_SERVING, type NodeOptions } from './options.js';

import { createNodePool, genesisModelConfig, POOL_TUNING_DEFAULTS, type PoolTuning } from './pool.js';
import { SaveProgress, TrainProgress } from './progress.js';
import { meteredRpc, SpanDownloadMeter } from './download-progress.js';
import type { PoolService } from '../pool/index.js';
import { genesisModelView, modelViewOf, startServing, type NodeServing } from './serving.js';
import { nodeHopMarket, nodeInferencePayer } from './market.js';
import { trainSolo, type SoloTrainResult, type TrainEvent } from './train.js';
import { corpusHeldOut, holdersFromView, roundWeightsOf, startOuterSync, trainingReport, workerHeldOutLoss, workerParams, type OuterSyncWiring } from './diloco.js';
import { NodeChainTraining } from './chain.js';
import type { TrainStepResult } from '../training/index.js';
import type { NodeLog } from './logs.js';
import { dashboardDir, NodeTelemetry, replicasFromLayersView } from './telemetry.js';
import { startHeapTrimmer, type HeapTrimmer } from './heap-trim.js';

/** What the node reports about its training, for the status endpoint, heartbeats and proofs. */
export interface WorkCounters {
  startedAtMs: number;
  trainingSteps: number;
  trainingTokens: number;
  lastLoss: number | null;
  lastValLoss: number | null;
}

export interface NodeModules {
  log?: Logger;
  clock?: Clock;
  /** Where human-readable progress goes (default: process.stderr). */
  progress?: (s: string) => void;
  progressIsTty?: boolean;
  /** Network knobs that are not options (tests shorten intervals). */
  networkTuning?: Partial<NetworkTuning>;
  /** Passphrase of an encrypted keystore, when the caller already has it. */
  passphrase?: string;
  /** The node's log file and ring of recent lines (the dashboard's log panel); `neuroshard start` opens it. */
  nodeLog?: NodeLog;
  /** Where the built dashboard lives (default: this package's dist/ui). */
  dashboardDir?: string;
  /** Layer-pool timing (tests shorten it). */
  poolTuning?: Partial<PoolTuning>;
  /** Test-only faults of the hop server (a hop that corrupts its outputs); never set from options or the CLI. */
  hopFaultsForTests?: HopFaultsForTests;
  /**
   * Test-only: the ceiling rate of the transcript rule and of --validation-rate (default MAX_VALIDATION_RATE), so that a
   * test's few validators all sample the one hop it checks; never set from options or the CLI.
   */
  maxValidationRateForTests?: number;
}

/** Most addresses `GET /api/peers` (and `neuroshard peers`) shows per peer. */
const PEER_ADDRESSES_SHOWN = 8;

/**
 * The peers view of the local API: each peer's liveness and span from its heartbeats, and its addresses from the
 * peer book (`addressesOf`; until session 29 this was always `[]`, so `neuroshard peers` printed `-` in every row).
 */
export async function peerStatuses(peers: readonly PeerLiveness[], addressesOf: (peer: string) => Promise<string[]>): Promise<PeerStatus[]> {
  return Promise.all(
    peers.map(async (p) => ({
      peerId: p.peer,
      addresses: (await addressesOf(p.peer).catch(() => [])).slice(0, PEER_ADDRESSES_SHOWN),
      span: p.heartbeat.span === undefined ? null : { start: p.heartbeat.span.start, end: p.heartbeat.span.end },
      liveness: p.state,
      lastSeenMs: p.lastSeenMs,
    })),
  );
}

type Status = 'starting' | 'started' | 'closing' | 'closed';

export class NeuroShardNode {
  private status: Status = 'starting';
  private readonly stopTraining = new AbortController();
  private training: Promise<SoloTrainResult | undefined> = Promise.resolve(undefined);
  private releaseLock: (() => void) | undefined;
  private trainingStarted = false;
  /** DiLoCo between the holders of our layers (node/diloco.ts); set once training starts. */
  outerSync: OuterSyncWiring | undefined;
  private tokensPerSec = 0;
  private lastStepAt: number | undefined;
  /** The chain's last counted step (its tokens/s: chainStep). */
  private lastChainStepAt: number | undefined;
  readonly counters: WorkCounters;
  /** What the node's proofs of work claim: fed by training, read by the ledger's proof emitter. */
  readonly tally = new WorkTally();
  ledger: NodeLedgerService | undefined;
  telemetry: NodeTelemetry | undefined;
  /** Gives free C-heap pages back to the OS (node/heap-trim.ts). */
  heapTrimmer: HeapTrimmer | undefined;
  /** The layer pool: span, capacity, weights from peers, rebalancing. */
  pool: PoolService | undefined;
  /** Inference: hop sessions for peers, and the generator behind POST /api/generate. */
  serving: NodeServing | undefined;
  /** The OpenAI-compatible routes' view of the generator (src/node/openai.ts). */
  openai: OpenAiGenerator | undefined;
  /** Chain training (node/chain.ts): the train-stage server over our span, a driver when it starts at layer 0. */
  chain: NodeChainTraining | undefined;
  /** Issue 11 §2: the validator role over our span (node/validator.ts); undefined on a node that holds no layers. */
  validator: NodeValidator | undefined;

  private constructor(
    readonly opts: NodeOptions,
    readonly genesis: Genesis,
    readonly key: NodeKey,
    readonly compute: ComputeClient,
    readonly network: NodeNetwork,
    readonly api: ApiServer,
    readonly apiUrl: string,
    private readonly log: Logger,
    private readonly clock: Clock,
  ) {
    this.counters = { startedAtMs: clock.now(), trainingSteps: 0, trainingTokens: 0, lastLoss: null, lastValLoss: null };
  }

  /** The span pinned by `--span a:b`, undefined for auto and none. */
  static pinnedSpan(opts: NodeOptions): { start: number; end: number } | undefined {
    return typeof opts.span === 'object' ? opts.span : undefined;
  }

  static async init(opts: NodeOptions, modules: NodeModules = {}): Promise<NeuroShardNode> {
    const log = modules.log ?? silentLogger;
    const clock = modules.clock ?? systemClock;
    mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
    assertNoNodeRunning(opts.dataDir);

    // 1. identity: the one key that is PeerId, wallet and signer
    const key = await openNodeKey(opts.dataDir, modules.passphrase, { log });

    const bundled = bundledGenesis();
    // the network and its model: the checkpoint's config and tokenizer files (the network id commits to them), or a
    // --network-id whose files come from peers (node/network-model.ts), or the bundled genesis
    const netModel = resolveNetworkModel(opts, bundled);
    const genesis: Genesis = { ...bundled, networkId: netModel.networkId };
    // the network's model: the genesis checkpoint's config when given (a joiner learns it from its holders)
    let modelConfig = netModel.files?.config ?? genesisModelConfig(opts.checkpoint, genesis.config);
    const span = NeuroShardNode.pinnedSpan(opts);
    const checkSpan = (): void => {
      if (span !== undefined && span.end > modelConfig.num_hidden_layers) {
        throw new InvalidArgumentError(`--span ${span.start}:${span.end} is past the model's ${modelConfig.num_hidden_layers} layers`);
      }
    };
    // a node that fetches the model's config checks its span against that config, not the bundled one (a network
    // founded from a checkpoint may have more layers than the bundled model)
    if (!netModel.fetch) checkSpan();

    // 2. compute worker: all math off the event loop
    const compute = await ComputeClient.start({ threads: opts.threads, weights: opts.weights });
    const info = compute.info;
    if (info !== undefined) {
      log.info(`engine: ${info.description}${info.fallbackReason === undefined ? '' : ` (native addon not used: ${info.fallbackReason})`}`);
    }

    const cleanups: (() => Promise<void> | void)[] = [() => compute.close()];
    try {
      // 3. network
      // the network reports the node's training figures, and the node is built after the network
      const ref: { node?: NeuroShardNode } = {};
      const network = await createNodeNetwork({
        networkId: genesis.networkId,
        key,
        // heartbeats name a span only once the pool holds its weights (a pinned span too): two pinned nodes that
        // announced it before loading took each other for holders and waited on each other's weights forever
        options: { ...opts, span: undefined, holdsLayersLater: opts.span !== 'none' },
        tuning: modules.networkTuning,
        clock,
        log: log.child('net'),
        status: {
          trainingStep: () => BigInt(ref.node?.counters.trainingSteps ?? 0),
          // entries prefer routes of one weights format (router/route.ts chooseRouteOneFormat)
          weights: () => opts.weights,
          totalLayers: () => ref.node?.pool?.modelConfig().num_hidden_layers ?? modelConfig.num_hidden_layers,
          // the hash of the weights held now (pool/held-hash.ts): the one API, shard-info and proofs name
          modelHash: () => ref.node?.pool?.modelHash() ?? '',
          // what our HolderRecord states: measured memory offered and tokens/s through the span held
          capacity: () => ref.node?.pool?.recordCapacity() ?? { memoryMb: 0, tokensPerSec: 0 },
          // jobs queued or running in the compute worker: 1 = busy, more = queued
          load: () => compute.pendingJobs,
        },
      });
      cleanups.push(() => network.stop());
      await network.start();
      // a node on a network founded from a checkpoint it does not have: config, tokenizer and chat template from
      // peers, verified against the network id, before anything is sized or served by them
      let modelDir = opts.checkpoint;
      if (netModel.fetch) {
        const got = await fetchNetworkModel({ rpc: network.rpc, scores: network.scores, peers: () => network.p2p.connectedPeers(), dataDir: opts.dataDir, networkId: genesis.networkId, genesis, timeoutMs: opts.modelFetchTimeoutMs, log: log.child('model') });
        netModel.files = got.set;
        modelConfig = got.set.config;
        modelDir = got.dir;
        checkSpan();
      }

      // 4. local API on 127.0.0.1, then the lock that tells CLI commands where it is
      let provider: StatusProvider = { status: () => placeholderStatus(), peers: () => [] };
      // the ledger starts after the lock is written: until then its routes answer 503 and the wallet uses the outbox
      const ledgerRef: { current?: LedgerSubmitter } = {};
      const servingRef: { current?: NodeServing } = {};
      const ledgerNow = (): LedgerSubmitter => {
        if (ledgerRef.current === undefined) throw new LedgerNotReadyError();
        return ledgerRef.current;
      };
      // a --checkpoint node encodes with the checkpoint's own tokenizer (chat template, special tokens) when it has one
      const ownTokenizer = modelDir === undefined ? undefined : checkpointTokenizer(modelDir, modelConfig);
      // the checkpoint's (or the fetched network model's) generation_config.json: defaults a request leaves out, on
      // /v1 and POST /api/generate alike (its end ids are the tokenizer's stop ids: model/tokenizer/hf.ts)
      const sampling = modelDir === undefined ? {} : readGenerationConfig(modelDir).sampling;
      // the OpenAI-compatible routes go through the same generator as POST /api/generate (503 until it exists)
      const openai = new OpenAiGenerator({
        ...OPENAI_SERVING,
        generator: () => servingRef.current?.generator,
        config: modelConfig,
        tokenizer: ownTokenizer ?? ourTextTokenizer(Tokenizer.load(genesis.tokenizerPath)),
        created: Math.floor(clock.now() / 1000),
        log: log.child('openai'),
        sampling,
      });
      const nodeRef: { node?: NeuroShardNode; url: string } = { url: '' };
      const telemetry = new NodeTelemetry({
        network,
        publicKey: key.publicKey,
        totalLayers: modelConfig.num_hidden_layers,
        engine: () => compute.info?.description ?? 'starting',
        workerMemory: () => compute.workerMemory,
        apiUrl: () => nodeRef.url,
        ledger: () => nodeRef.node?.ledger,
        poolCoverage: () => {
          const view = nodeRef.node?.pool?.layers();
          return view === undefined ? undefined : replicasFromLayersView(view, modelConfig.num_hidden_layers);
        },
        ...(modules.nodeLog === undefined ? {} : { log: modules.nodeLog }),
        clock,
        startedAtMs: clock.now(),
      });
      const api = new ApiServer(
        { port: opts.apiPort, host: opts.apiHost, corsOrigins: opts.apiCorsOrigins, rateLimitPerMin: opts.apiRateLimit },
        {
          dashboard: { feed: telemetry, staticDir: modules.dashboardDir ?? dashboardDir() },
          status: { status: () => provider.status(), peers: () => provider.peers() },
          ledger: { maxEventBytes: MAX_SLASH_BYTES, submit: (bytes) => ledgerNow().submit(bytes), status: () => ({ ...ledgerNow().status(), ...(ref.node?.validator === undefined ? {} : { validator: ref.node.validator.view() }) }) },
          // modelHash: the pool's hash of the weights held now (pool/held-hash.ts), which follows them as they train
          layers: { layers: () => ref.node?.pool?.layers() },
          generator: () => servingRef.current?.generator,
          generateDefaults: generateDefaultsOf(sampling),
          training: { training: () => ref.node?.trainingReport() },
          openai,
          dataDir: opts.dataDir,
          logger: log.child('api'),
        },
      );
      if (api.exposed && readApiKeys(opts.dataDir).length === 0) {
        log.warn('the API is exposed but there are no API keys: every /v1 request is refused until `neuroshard apikey create`', { host: opts.apiHost });
      }
      const bound = await api.listen();
      cleanups.push(() => api.close());

      const node = new NeuroShardNode(opts, genesis, key, compute, network, api, bound.url, log, clock);
      node.openai = openai;
      ref.node = node;
      nodeRef.node = node;
      nodeRef.url = bound.url;
      node.telemetry = telemetry;
      node.heapTrimmer = startHeapTrimmer({ everyMs: opts.heapTrimIntervalMs, log: log.child('heap') });
      provider = node.statusProvider();
      node.releaseLock = writeNodeLock(opts.dataDir, { apiPort: bound.port, peerId: network.peerId });
      log.info('node up', { peerId: network.peerId, address: addressFromPublicKey(key.publicKey), networkId: genesis.networkId, api: bound.url, span: span === undefined ? opts.span : `${span.start}:${span.end}` });

      // 5. ledger: gossip, sync, the wallet outbox, and one proof of work per minute
      if (span !== undefined) node.tally.setLayers(span);
      node.ledger = await startNodeLedgerService({
        network,
        key,
        dataDir: opts.dataDir,
        networkId: genesis.networkId,
        modelLayers: modelConfig.num_hidden_layers,
        counters: node.tally,
        weights: opts.weights,
        clock,
        log: log.child('ledger'),
        ...(opts.genesisKey !== undefined ? { genesisKey: Buffer.from(opts.genesisKey, 'hex') } : {}),
        checkpointPeriodMs: opts.checkpointPeriodMs,
      });
      const ledger = node.ledger;
      cleanups.push(() => ledger.stop());
      ledgerRef.current = ledgerSubmitter(ledger, clock);
      // issue 11 §2: peers witness our uptime (liveness challenges), we witness theirs; src/node/witness.ts
      const uptime = await startUptimeWitness({ rpc: network.rpc, key, networkId: genesis.networkId, peers: () => network.p2p.connectedPeers(), submit: (b) => ledger.service.submit(b), precheck: (e) => ledger.ledger.stateVerdict(e), scores: network.scores, clock, log: log.child('witness') });
      cleanups.push(() => uptime.stop());

      // 6. the layer pool: measure capacity, take a span (training starts when the genesis node takes it all)
      const poolTuning = { ...POOL_TUNING_DEFAULTS, ...modules.poolTuning };
      // weights taken from peers show their progress on stderr (a bar on a terminal, plain lines otherwise)
      const downloads = new SpanDownloadMeter({ mode: (modules.progressIsTty ?? process.stderr.isTTY === true) ? 'tty' : 'plain', write: modules.progress ?? ((s: string) => process.stderr.write(s)) });
      const pool = createNodePool({
        opts,
        config: modelConfig,
        // files we know are served to nodes without them; a fetched config is verified, not asked of a holder again
        modelFiles: () => netModel.files,
        ...(netModel.fetch ? { verifiedConfig: modelConfig } : {}),
        compute,
        network,
        rpc: meteredRpc(network.rpc, downloads),
        tuning: poolTuning,
        startTraining: () => node.startTraining(modules),
        // a move drains the hop sessions on the old span first (bounded; the rest fail over), then takes new ones
        // and leaves the old span's outer rounds (their holders stop waiting for us); the new span's rounds are
        // entered as a joiner enters them once it is held (node/chain.ts), the old one's again if the move failed
        beforeMove: async () => {
          const r = await servingRef.current?.hops?.drain(poolTuning.drainMs);
          if (r !== undefined) log.info('hop sessions drained before a move', r);
          await node.chain?.leave();
        },
        afterMove: () => {
          servingRef.current?.hops?.resume();
          node.chain?.resume();
        },
        // joiners download the weights of our last closed outer round (holders agree on them), not the moving ones
        roundWeights: () => roundWeightsOf(node.outerSync ?? node.chain?.outerSync()),
        // ... and keep the round a joiner is downloading until it is done (pins with quotas: training/keep.ts)
        pinRound: (peer, round) => void (node.outerSync ?? node.chain?.outerSync())?.sync.pin(peer, round),
        clock,
        log: log.child('pool'),
      });
      node.pool = pool;
      // proofs claim training only when this hash moved since the previous proof (ledger/work.ts proofClaim); a proof
      // reads it afresh after taking the counters (freshWork), as the held one lags the weights by up to 5 s
      node.tally.setModelHash({ current: () => pool.modelHash(), refresh: () => pool.refreshHash() });
      cleanups.push(() => pool.stop());
      pool.events.on('span:error', () => downloads.abandon());
      pool.events.on('span:held', ({ span: held, hash, source, ms, round }) => {
        downloads.finish();
        node.tally.setLayers(held);
        node.tally.setCapacity(pool.recordCapacity());
        log.info('holding layers', { span: `${held.start}:${held.end}`, source, ...(source === 'external' ? {} : { hash: hash.slice(0, 16) }), ms, ...(round === undefined ? {} : { round }) });
        // a replica of the whole model trains too (DiLoCo with the other holders, node/diloco.ts)
        // from the weights just downloaded and verified (in the worker now), not a seeded initialisation. Not an
        // int8 one (inference only, as pool.ts externalWeights): its trainer failed, but the outer sync it started
        // answered the training-status RPC, so float32 replicas took it for a round member that never contributes
        if (source === 'peers' && opts.train && opts.weights === 'f32' && held.start === 0 && held.end === pool.modelConfig().num_hidden_layers) node.startTraining(modules, { ...(round === undefined ? {} : { round }) });
      });
      await pool.start();
      node.tally.setCapacity(pool.recordCapacity());
      // 7. inference: hop sessions and the generator over the span the pool holds (the pool loads the weights); hops
      // keep their sessions' inputs for validators (issue 11 §2, node/validator.ts)
      const maxRate = modules.maxValidationRateForTests ?? MAX_VALIDATION_RATE;
      const transcripts = opts.span === 'none' ? undefined : await nodeTranscripts(compute, network, ledger, key, { maxRate });
      if (transcripts !== undefined) cleanups.push(() => transcripts.stop());
      node.serving = await startServing({
        opts,
        genesis,
        compute,
        network,
        localSpan: () => pool.span(),
        speeds: () => new Map(pool.view().holders.map((h) => [h.peerId, h.tokensPerSec])),
        // each holder's weights format as its signed record states it (pool/view.ts: the heartbeat only until then)
        formats: () => new Map(pool.view().holders.map((h) => [h.peerId, h.weights ?? 'f32'])),
        // issue 12 §3: holders' locked stake from the ledger state; unbonded ones are routed to less
        bonds: () => ({ stakes: stakesByPeer(pool.view().holders.map((h) => h.peerId), (id) => ledger.ledger.account(id).locked), minBond: MIN_REWARD_BOND }),
        clock,
        log: log.child('serve'),
        market: nodeHopMarket(key, genesis.networkId, ledger, clock), // issue 11 §2: hops sign commitments, drivers submit completions
        ...(opts.payInference === 'auto' ? { settle: nodeInferencePayer(key, genesis.networkId, ledger, clock) } : {}), // and the entry pays its routes
        ...(transcripts === undefined ? {} : { transcripts }),
        ...(modules.hopFaultsForTests === undefined ? {} : { faultsForTests: modules.hopFaultsForTests }),
        // a --checkpoint node serves the checkpoint's shape, and its own tokenizer when it has one (else the bundled one)
        ...(modelDir === undefined ? {} : { model: { config: modelConfig, view: ownTokenizer === undefined ? { ...genesisModelView(genesis), numLayers: modelConfig.num_hidden_layers, hiddenSize: modelConfig.hidden_size, contextLength: modelConfig.max_position_embeddings, eosId: modelConfig.eos_token_id } : modelViewOf(modelConfig, ownTokenizer) } }),
      });
      servingRef.current = node.serving;
      const serving = node.serving;
      cleanups.push(() => serving.stop());
      // issue 11 §2: a node holding layers re-executes a sample of other hops' sessions on its span and has a hop
      // whose outputs do not match slashed (--validation-rate; 0 = off)
      if (opts.span !== 'none') {
        // above the network's ceiling a validator would sample hops that serve it no transcript (session 29): it runs at it
        const { rate, message } = effectiveValidationRate(opts.validationRate, maxRate);
        if (message !== undefined) log.warn(message);
        node.validator = await startNodeValidator({ key, networkId: genesis.networkId, network, compute, config: modelConfig, span: () => pool.span(), ledger, rate, clock, log: log.child('validator') });
        const validator = node.validator;
        cleanups.push(() => validator.stop());
      }
      // 8. chain training across holders (a lone genesis node trains solo above: a one-node chain)
      node.chain = new NodeChainTraining({
        opts,
        config: modelConfig,
        compute,
        network,
        pool,
        log: log.child('chain'),
        outer: {
          key,
          networkId: genesis.networkId,
          clock,
          receipts: receiptsWiring(ledger, modelConfig, opts.innerSteps),
          onRound: (r) => {
            // the round replaced our span's weights: name their hash now, not at the next refresh
            void pool.refreshHash();
            log.info('outer round closed', { round: r.round, accepted: r.accepted, rejected: r.rejected, late: r.late.length, repaired: r.repaired.length, ms: r.syncMs });
          },
        },
        onStep: (r) => node.chainStep(r),
      });
      const chain = node.chain;
      cleanups.push(() => chain.stop());
      node.status = 'started';
      return node;
    } catch (e) {
      for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => {});
      throw e;
    }
  }

  /**
   * One step of the chain this node drives. A step driven while the driver waited to enter the outer rounds is
   * discarded (the entry replaced its update to our span with the holders' verified state): not counted in the
   * steps, tokens, loss and tokens/s that GET /api/training and the work tally report.
   */
  private chainStep(r: TrainStepResult & { discarded: boolean; counted: number }): void {
    this.counters.trainingSteps = r.counted;
    if (r.discarded) return;
    // tokens/s of the chain's counted steps (was never set for a chain driver: GET /api/training said 0)
    const now = this.clock.now();
    if (this.lastChainStepAt !== undefined && now > this.lastChainStepAt) {
      const rate = (r.tokens * 1000) / (now - this.lastChainStepAt);
      this.tokensPerSec = this.tokensPerSec === 0 ? rate : 0.9 * this.tokensPerSec + 0.1 * rate;
    }
    this.lastChainStepAt = now;
    if (r.applied) this.tally.recordTrainingStep({ tokens: r.tokens, loss: r.loss, gradNorm: r.gradNorm });
    this.counters.trainingTokens += r.tokens;
    this.counters.lastLoss = r.loss;
  }

  /** GET /api/training's body. */
  trainingReport(): ReturnType<typeof trainingReport> {
    // a whole-model replica's outer sync, or a chain holder's (DiLoCo between partial holders)
    const stats = (this.outerSync ?? this.chain?.outerSync())?.sync.stats();
    return trainingReport(stats, {
      innerStep: Math.max(this.counters.trainingSteps, stats?.innerStep ?? 0),
      trainLoss: this.counters.lastLoss,
      valLoss: this.counters.lastValLoss,
      tokensPerSec: Math.round(this.tokensPerSec),
    });
  }

  /**
   * `fromPeers`: train the whole model the worker holds, taken from peers (the state after closed outer round
   * `round`, when they train it); else the genesis node's run (its checkpoint in the data dir, or the seeded
   * initialisation).
   */
  private startTraining(modules: NodeModules, fromPeers?: { round?: number }): void {
    if (this.trainingStarted) return;
    this.trainingStarted = true;
    this.training = this.startTrainingAsync(modules, fromPeers);
  }

  private async startTrainingAsync(modules: NodeModules, fromPeers: { round?: number } | undefined): Promise<SoloTrainResult | undefined> {
    const pool = this.pool!;
    const config = pool.modelConfig();
    try {
      this.outerSync = await startOuterSync({
        rpc: this.network.rpc,
        scores: this.network.scores,
        peerId: this.network.peerId,
        key: this.key,
        networkId: this.genesis.networkId,
        config,
        span: { start: 0, end: config.num_hidden_layers },
        inner: workerParams(this.compute),
        holders: (layer) => holdersFromView(pool.view(), layer),
        options: this.opts,
        clock: this.clock,
        log: this.log.child('diloco'),
        ...(this.ledger === undefined ? {} : { receipts: receiptsWiring(this.ledger, config, this.opts.innerSteps) }),
        ...(this.opts.aggregator === 'gauntlet' ? { heldOutLoss: workerHeldOutLoss(this.compute, corpusHeldOut(this.opts, config, this.log)) } : {}),
        onRound: (r) => {
          void pool.refreshHash();
          modules.nodeLog?.note('node/train', `outer round ${r.round} closed: ${r.accepted} accepted, ${r.rejected} rejected, ${r.syncMs} ms`);
          this.log.info('outer round closed', { round: r.round, accepted: r.accepted, rejected: r.rejected, late: r.late.length, repaired: r.repaired.length, ms: r.syncMs });
        },
      });
    } catch (e) {
      this.log.error('the outer sync did not start; training solo', { error: errorMessage(e) });
    }
    const write = modules.progress ?? ((s: string) => process.stderr.write(s));
    const tty = modules.progressIsTty ?? process.stderr.isTTY === true;
    let progress: TrainProgress | undefined;
    // checkpoint saves show their bytes on stderr (a bar on a terminal, plain lines otherwise)
    const saves = new SaveProgress({ mode: tty ? 'tty' : 'plain', write });
    const onEvent = (e: TrainEvent): void => {
      this.telemetry?.onTrainEvent(e);
      switch (e.type) {
        case 'start':
          write(
            `training ${e.config.num_hidden_layers} layers × ${e.config.hidden_size} (${(e.paramCount / 1e6).toFixed(2)} M parameters) ` +
              `${e.resumedFrom === null ? 'from scratch' : `from ${e.resumedFrom}`}, step ${e.step}; ${e.backend}\n`,
          );
          progress = new TrainProgress({ write, tty, startStep: e.step, targetStep: e.targetStep });
          this.counters.trainingSteps = e.step;
          // the trainer loaded the model: its hash now, not at the pool's next refresh (/api/layers named none)
          void pool.refreshHash();
          break;
        case 'step': {
          const now = this.clock.now();
          if (this.lastStepAt !== undefined && now > this.lastStepAt) {
            const rate = (e.tokens * 1000) / (now - this.lastStepAt);
            this.tokensPerSec = this.tokensPerSec === 0 ? rate : 0.9 * this.tokensPerSec + 0.1 * rate;
          }
          this.lastStepAt = now;
          if (e.applied) this.tally.recordTrainingStep({ tokens: e.tokens, loss: e.loss, gradNorm: e.gradNorm });
          this.counters.trainingSteps = e.step;
          this.counters.trainingTokens += e.tokens;
          this.counters.lastLoss = e.loss;
          progress?.onStep(e);
          break;
        }
        case 'eval':
          this.counters.lastValLoss = e.loss;
          progress?.onEval(e);
          // progress goes to stderr only; the log file and the dashboard's log panel get these events too
          modules.nodeLog?.note('node/train', `eval step ${e.step} val_loss ${e.loss.toFixed(4)}`);
          break;
        case 'checkpoint:progress':
          saves.onProgress(e);
          break;
        case 'checkpoint':
          saves.saved();
          progress?.onCheckpoint(e);
          modules.nodeLog?.note('node/train', `checkpoint step ${e.step} reason ${e.reason} dir ${e.dir}`);
          break;
      }
    };
    return trainSolo({
      dataDir: this.opts.dataDir,
      client: this.compute,
      targetStep: this.opts.trainSteps,
      evalEvery: this.opts.evalEvery,
      checkpointEvery: this.opts.checkpointEvery,
      aside: { keep: this.opts.checkpointsAsideKeep, maxBytes: this.opts.checkpointsAsideMaxMb * 2 ** 20 },
      ...(this.opts.corpus === undefined ? {} : { corpus: this.opts.corpus }),
      signal: this.stopTraining.signal,
      logger: this.log.child('train'),
      onEvent,
      ...(this.outerSync === undefined ? {} : { wrapStepper: (st) => this.outerSync!.stepper(st, this.stopTraining.signal) }),
      // the genesis node trains on every shard (as a solo run); a replica on its own shards
      ...(this.network.genesis ? {} : { dataNodeId: this.network.peerId }),
      // a replica trains the network's weights and shape (node/train.ts `adopted`), whatever its data dir holds
      ...(fromPeers === undefined ? {} : { adopted: { config, params: async () => (await this.compute.run({ type: 'getParams' })).params, ...fromPeers } }),
      // checkpoints record the closed outer round their weights descend from: a restart that adopts that round's
      // weights again keeps the optimizer moments
      outerRound: () => {
        const st = this.outerSync?.sync.stats();
        return st === undefined || st.phase === 'entering' || st.round < 0 ? undefined : st.round - 1;
      },
    })
      .then((r) => {
        progress?.done();
        this.log.info(r.stoppedBy === 'signal' ? 'training stopped' : 'training reached its target step', { step: r.step, checkpoint: r.checkpoint });
        return r;
      })
      .catch(async (e: unknown) => {
        progress?.done();
        this.log.error('training failed', { error: errorMessage(e) });
        // the outer sync started for this run stops with it: left up, it answered training-status listing our
        // layers, and the other holders counted us a member of their rounds whose Δ never comes
        const outer = this.outerSync;
        this.outerSync = undefined;
        await outer?.stop().catch((err: unknown) => this.log.warn('stopping the outer sync failed', { error: errorMessage(err) }));
        return undefined;
      });
  }

  private statusProvider(): StatusProvider {
    return {
      status: (): NodeStatus => {
        const s = this.network.status();
        const peers = s.peers;
        return {
          peerId: s.peerId,
          networkId: s.networkId,
          version: PACKAGE_VERSION,
          addresses: s.addresses,
          span: s.span ?? null,
          uptimeMs: Math.max(0, this.clock.now() - this.counters.startedAtMs),
          peers: { known: peers.length, alive: peers.filter((p) => p.state === 'alive').length },
        };
      },
      peers: (): Promise<PeerStatus[]> => peerStatuses(this.network.status().peers, (peer) => this.network.p2p.peerAddresses(peer)),
    };
  }

  /** Resolves when training ends (immediately when the node does not train). */
  trainingDone(): Promise<SoloTrainResult | undefined> {
    return this.training;
  }

  /** Leaves gracefully: stop training (a checkpoint is cut), withdraw records, close connections and the worker. */
  async close(): Promise<void> {
    if (this.status === 'closing' || this.status === 'closed') return;
    this.status = 'closing';
    // first of all, tell our peers (one signed leaving heartbeat, ≤ 1 s): new routes and the layer pool's replica
    // restoration stop counting on us now, not after peerDeadMs of silence, while we finish what is running below
    await this.network.leave();
    // then: no more events of ours (proofs, outbox, wallet submits) while the slower steps below run (node/ledger.ts)
    await this.ledger?.quiesce().catch((e: unknown) => this.log.warn('quiescing the ledger failed', { error: errorMessage(e) }));
    this.stopTraining.abort();
    this.pool?.stop();
    this.heapTrimmer?.stop();
    await this.training;
    await this.outerSync?.stop();
    const steps: [string, () => Promise<void> | void][] = [
      ['chain', () => this.chain?.stop()],
      ['api', () => this.api.close()],
      ['validator', () => this.validator?.stop()],
      ['serving', () => this.serving?.stop()],
      ['ledger', () => this.ledger?.stop()],
      ['network', () => this.network.stop()],
      ['compute', () => this.compute.close()],
      ['lock', () => this.releaseLock?.()],
    ];
    for (const [name, fn] of steps) {
      try {
        await fn();
      } catch (e) {
        this.log.warn(`closing ${name} failed`, { error: errorMessage(e) });
      }
    }
    this.status = 'closed';
  }
}

function placeholderStatus(): NodeStatus {
  return { peerId: '', networkId: null, version: PACKAGE_VERSION, addresses: [], span: null, uptimeMs: 0, peers: { known: 0, alive: 0 } };
}

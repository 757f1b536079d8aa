/**
 * The entry node's side of one generation: tokenize, choose a chain, push every step through its hops, stream the
 * tokens back, and replace a hop that fails.
 *
 * The entry drives the chain (as the Petals client does): it sends hop 1 its input, receives hop 1's output, sends
 * that to hop 2, …; the last hop (the validator: final norm, LM head, sampling) answers with the next token. So the
 * entry holds every hop's input, which is what a failover needs: when a hop does not answer a step within its
 * deadline (`stepTimeoutMs`, plus `msPerPosition` for each position of a prefill or replay), or answers with an
 * error, the entry bans the peer for a while, chooses another chain for that hop's layers (one holder or several
 * whose spans tile them), and replays that hop's stored inputs there — the same chunks as the original steps
 * ([P], [1], [1], …), so the new KV cache holds the bits the old one held and greedy output does not change. The
 * replacement's sampler (on the validator) redraws once per replayed chunk, so seeded sampling continues exactly.
 * The stored inputs live as long as the generation (bounded by the context length).
 *
 * With `DriverOptions.push` (session 29, docs/PROTOCOL.md "Pushed activations") a decode token's hops after the first
 * get a placeholder at the token's start and run on the output the hop before them pushes to them directly; each still
 * answers the entry, which checks the input's digest against the pusher's answer, so it holds every input as before.
 *
 * Stop conditions match model/generate.ts: the end-of-sequence id (not included), a stop string (text cut before
 * it), max tokens, or a full context (the last token is the one predicted at position context − 1).
 */
import { AbortedError, InvalidArgumentError, NeuroShardError, TimeoutError, errorMessage } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { RunningCommitment, type SettleHop, type Settlement, type TopKStep } from '../protocols/hop-commitment.js';
import { hopCommitQueue, type HopCommitQueue, type QueuedCommitment } from '../protocols/hop-commit-queue.js';
import { type BanList, chooseRouteAvoiding, type ChainHop, type HolderView, LayersUncoveredError, planFailover, ROUTE_DEFAULTS } from './route.js';
import { TextAssembler } from './text.js';
import { spanText } from '../util/span-text.js';

export interface GenerationRequest {
  prompt: string;
  maxTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
  stop: string[];
  /** How the entry encodes `prompt` (ModelView.encode); default 'text'. */
  kind?: 'text' | 'chat';
}

/** A hop of the route as the answer names it: its peer, its layers and how it holds their weights. */
export interface RouteHop {
  peerId: string;
  span: [number, number];
  weights: 'f32' | 'int8';
}

/**
 * A route the generation used and the first token it produced: tokens [fromToken, the next route's fromToken) came
 * through `hops` (fromToken may equal the number of tokens when a failover happened on the step that ended the
 * generation: an end-of-sequence token, which the answer leaves out).
 */
export interface UsedRoute {
  fromToken: number;
  hops: RouteHop[];
}

export interface GenerationListener {
  onRoute?(route: RouteHop[]): void;
  onToken?(token: number, text: string): void;
}

export interface GenerationResult {
  text: string;
  tokens: number[];
  finishReason: 'stop' | 'length';
  /** The route as first chosen. */
  route: RouteHop[];
  /**
   * Every route that produced tokens, in order (the first from token 0; one more after each failover that completed,
   * the chain with its replaced hops). A failover before the route's first token replaces the entry instead of adding
   * one, so fromToken rises strictly from one entry to the next. After failovers the only way to tell which chain
   * produced which tokens (issue 8).
   */
  routes: UsedRoute[];
  failovers: number;
  /** How the payment for this generation ended (issue 11 §2), when the caller asked for one (`DriverDeps.settle`). */
  settlement?: Settlement;
  /** Extra figures (not part of the API answer): ms from each hop failure to the step's completion. */
  stallsMs: number[];
  /** Hop steps that ran on an input pushed by the hop before them (session 29, `DriverOptions.push`), and placeholders answered push_missing. */
  pushes?: { used: number; missing: number };
  promptTokens: number;
}

/** A hop's input for one call: token ids [T] (driver) or hidden states [T, C], cut into forward chunks. */
export interface HopInput {
  ids?: Int32Array;
  hidden?: Float32Array;
  /** Positions per forward; they sum to T. */
  chunks: number[];
}

/** Hidden states [T, C] of every position, or (validator) one sampled token per chunk. */
export interface HopOutput {
  hidden?: Float32Array;
  tokens?: Int32Array;
}

export interface SessionSpec {
  /** This hop session's id: a fresh one per hop session, so that no hop learns another's (runGeneration). */
  id: string;
  /** KV positions the hop reserves. */
  maxLen: number;
  sampling: { temperature: number; topK: number; topP: number; seed: number };
}

/** One hop's session: its steps run in order; close() frees the hop's KV cache (idempotent, never throws). */
export interface HopSession {
  /**
   * `signal` is the same object on every step of the session (the driver's one per route entry); it aborts at a
   * deadline or the generation's abort, after which the session is not stepped again. So a session must not leave a
   * listener on it per step (RemoteHopSession keeps one for its life; the compute client removes its own per job).
   * A session neither changes nor transfers its input's buffers (the entry keeps them for a replay, and its
   * commitment queue reads them after the call), and its output's buffers are the entry's from then on.
   */
  step(input: HopInput, signal: AbortSignal, push?: HopPush): Promise<HopOutput>;
  close(): void;
  /** Session 29: whether the hop said it takes push fields (after its first answer); absent or false: never asked to. */
  readonly pushCapable?: boolean;
  /**
   * Session 29: a placeholder step whose input the previous hop pushes (RemoteHopSession.stepByPush): sent at once,
   * answered by the promise; nothing else is sent on the session until it settles.
   */
  stepByPush?(chunks: number[], waitMs: number, signal: AbortSignal, pushOutput: boolean): Promise<PushedHopOutput>;
  /** Session 29: the digest a placeholder's answer names when the hop ran on `hidden` (its bytes as step() would send them). */
  pushDigest?(hidden: Float32Array): Uint8Array;
  /** Session 30: whether the hop signs its pushes and attests the ones it takes (after its first answer); pushes go only between two that do. */
  readonly pushSigned?: boolean;
  /** Session 30: the key this session signs its pushes with (its answer to the step that set `push.to`). */
  readonly pushKey?: Uint8Array | undefined;
  /**
   * Session 30: on a placeholder answer whose digest is not pushDigest(`answer`), which hop lied, from the pusher's
   * attestation in the answer (protocols/push-attestation.ts judgePushMismatch): `answer` is the entry's copy of
   * the pusher's output, `pusherKey` its push_key, `position` the step's first position.
   */
  pushBlame?(answer: Float32Array, out: PushedHopOutput, pusherKey: Uint8Array | undefined, position: number): 'receiver' | 'pusher';
  /** Signs the hop's commitments for a market request (remote hops; protocols/hop-commitment.ts). */
  commit?: SettleHop['session']['commit'];
  /** The driver submits the completion from the requester's receipt. */
  submitReceipt?: SettleHop['session']['submitReceipt'];
}

/** Session 29 push fields of a step (sent only to a hop whose answers said it takes them). */
export interface HopPush {
  /** Set once: push this session's outputs (when asked) to that peer, whose session id is `session`. */
  to?: { peer: string; session: string };
  /** Push this step's output there. */
  output?: boolean;
  /** Set once: take pushes for this session only from this peer. */
  from?: string;
  /** Session 30, with `from`: that peer's push_key for this boundary (its pushes must verify under it). */
  fromKey?: Uint8Array;
}

/** A placeholder step's answer: the output and the SHA-256 of the input the hop ran on (HopSession.pushDigest), or that no push came. */
export interface PushedHopOutput extends HopOutput {
  inputDigest?: Uint8Array;
  /** Session 30: the pusher's signed statement of what it pushed (dtype, SHA-256 of the bytes as sent, signature). */
  attestation?: { dtype: 'fp32' | 'fp16' | 'bf16'; digest: Uint8Array; signature: Uint8Array };
  pushMissing?: boolean;
}

/** Opens sessions on hops (the node's own worker for its own peer id, an RPC stream for a peer). Errors surface at step. */
export interface HopOpener {
  open(hop: ChainHop, spec: SessionSpec): HopSession;
}

export interface ModelView {
  numLayers: number;
  hiddenSize: number;
  contextLength: number;
  eosId: number;
  /** Ids that also end a generation (a Hugging Face tokenizer's EOS and end-of-turn tokens). */
  stopIds?: readonly number[];
  /** The prompt's ids: 'text' with BOS; 'chat' a rendered chat template (its special-token strings as ids, nothing added). */
  encode(text: string, kind?: 'text' | 'chat'): number[];
  decode(ids: readonly number[]): string;
}

export interface DriverOptions {
  /** Deadline of one decode step through one hop (ms). */
  stepTimeoutMs: number;
  /** Added to a hop's deadline per position it is given (prefill, replay). */
  msPerPosition: number;
  /** Hop replacements one generation may make before it fails. */
  maxFailovers: number;
  /**
   * Deadline of a step on the entry node's own worker: nothing to fail over to that would be faster, and the
   * worker may be busy with a training step.
   */
  localStepTimeoutMs: number;
  /** Added to the deadline of a session's first step on a hop: dialling the peer and opening the stream. */
  openTimeoutMs: number;
  /**
   * Share of fresh generations whose first route takes one unproven holder (route.ts `explore`); 0: never, the
   * route is always the usual near-best chain (failovers never explore).
   */
  explore: number;
  /**
   * Session 29 (`--hop-push`): decode steps go hop to hop. Hop k pushes its output straight to hop k+1 as well as
   * answering the entry; hop k+1 got a placeholder at the token's start and runs as soon as the push arrives. The
   * entry checks each pushed input's digest against hop k's answer. Off after any failover (for that generation).
   * `'auto'` (session 30): a boundary is set up only when the entry has measured both its hops' round-trip floors
   * (`DriverDeps.rttFloorMs`) at `PUSH_AUTO_MIN_RTT_MS` or more: where a push saves a real link's one-way trips, not on
   * loopback or a LAN, where its extra message and signatures cost more than the trip saved.
   */
  push: boolean | 'auto';
}

/**
 * `push: 'auto'`: the round-trip floor (router/measure.ts LatencyTable.floorMs: the least of the last 16 timed
 * decode steps' wall time less the compute the hop stated, at least 4 of them) both hops of a boundary must have for
 * it to push. A boundary's push saves about the entry's one-way trips to its two hops less the one between them,
 * and costs one more message and a signature pair (~0.12 ms of CPU, 0.1–0.4 ms a boundary on loopback on this
 * host, docs/LIMITS.md "Session 30: signed pushes"). Loopback floors measured 0.17–0.20 ms here at load 5, a 1 ms
 * one-way link's (emulated) 1.4–2.5 ms, where pushes measured 0.71–0.82 of the explicit token time: 1.5 ms leaves
 * loopback and LANs explicit with a wide margin and takes links of ~0.75 ms one way and more (not measured between
 * 0 and 1 ms: the emulation's timers have 1 ms resolution).
 */
export const PUSH_AUTO_MIN_RTT_MS = 1.5;

export const DRIVER_DEFAULTS: DriverOptions = { stepTimeoutMs: 200, msPerPosition: 5, maxFailovers: 8, localStepTimeoutMs: 60_000, openTimeoutMs: 10_000, explore: ROUTE_DEFAULTS.explore, push: false };

export interface DriverDeps {
  model: ModelView;
  /** The current view of who holds what (liveness, measured latency and speed). */
  holders(): HolderView[];
  opener: HopOpener;
  bans: BanList;
  now(): number;
  random(): number;
  newSessionId(): string;
  options: DriverOptions;
  /** This node's peer id: hops on it get `localStepTimeoutMs`. */
  selfPeerId?: string;
  log?: Logger;
  /**
   * Pays for the generation once it is done (issue 11 §2): gets the final route with the commitments the entry
   * computed over every hop's inputs and outputs (protocols/hop-commitment.ts settleRoute); never throws.
   */
  settle?: (hops: SettleHop[], usage: { promptTokens: number; completionTokens: number }, signal: AbortSignal) => Promise<Settlement>;
  /**
   * Where the entry takes its commitments over every hop's inputs and outputs (`entryCommits`): a queue and its
   * worker thread (default: this process's, protocols/hop-commit-queue.ts), or null for this thread, inline in each
   * call (before session 25; `NEUROSHARD_ENTRY_COMMITS=inline` chooses it when this is unset).
   */
  commits?: HopCommitQueue | null;
  /** Session 30, `push: 'auto'`: the entry's round-trip floor to a peer (ms; router/measure.ts LatencyTable.floorMs), undefined until measured enough. */
  rttFloorMs?: (peer: string) => number | undefined;
}

/**
 * The entry's commitments by default (session 25, docs/LIMITS.md "Session 25: the entry's part of a hop step"): on
 * this process's commitment worker, as the hop side takes its own, rather than on the event loop between one hop's
 * answer and the next hop's request (a [1, 768] output's records cost ~15–20 µs hot, ~40–50 µs in the chain, three
 * times a 4-hop token and twice more for its token ids). `NEUROSHARD_ENTRY_COMMITS=inline` restores the old path
 * (read per generation, for A/B in one build). Same bytes either way: the worker runs the same ledger/commitment.ts
 * functions over the same values in the same order.
 */
export function entryCommits(): HopCommitQueue | null {
  return process.env.NEUROSHARD_ENTRY_COMMITS === 'inline' ? null : hopCommitQueue();
}

/** A hop failed the step: which one and why (the cause decides whether the peer is penalised by the caller). */
class HopFailure extends Error {
  constructor(readonly reason: unknown) {
    super(errorMessage(reason));
  }
}

/**
 * A pushed step ran on an input other than the one the entry holds for it (session 29), and who lied by the pusher's
 * attestation (session 30): the receiver (it misreported its input: it is replaced) or the pusher (it pushed other
 * values than it answered: it is replaced).
 */
class PushMismatch extends Error {
  constructor(readonly blame: 'receiver' | 'pusher') {
    super(`pushed input digest mismatch (${blame})`);
  }
}

/** The placeholder's answer said no push came: the step's input goes explicitly. */
const PUSH_MISSING: HopOutput = Object.freeze({});


interface RouteEntry {
  hop: ChainHop;
  session: HopSession;
  /** The hop session's id (the previous hop pushes to it). */
  id: string;
  /** Session 29: the peer this session was told to push to, the one it takes pushes from, and whether pushes into it stopped. */
  pushTo?: string;
  pushFrom?: string;
  /** Session 30: the pusher's session key this session was given (push_from_key), for the entry's verdict on a mismatch. */
  pushFromKey?: Uint8Array;
  pushOff?: boolean;
  /** Every input this hop was given, in order: ids (driver) or hidden states. */
  parts: (Int32Array | Float32Array)[];
  /** Calls made on this session (the first one also opens it). */
  calls?: number;
  chunks: number[];
  /**
   * What the entry sent this hop and got back, committed as the hop commits it (one step per chunk): running here
   * (RunningCommitment) or queued on the commitment worker (QueuedCommitment, final once the queue has settled).
   */
  inC: RunningCommitment | QueuedCommitment;
  outC: RunningCommitment | QueuedCommitment;
  /**
   * The signal this hop's calls get: one for the entry's life, not one per call (an AbortController, its signal and
   * the session's listener moved onto it cost ~5 µs of the driver's ~20 µs a hop step). It aborts only at a
   * deadline or when the generation is aborted, and either ends the entry's session; a later call (an entry copied
   * by a widened failover) gets a fresh one.
   */
  ac?: AbortController;
}

function concat<T extends Int32Array | Float32Array>(parts: T[], make: (n: number) => T): T {
  const n = parts.reduce((s, p) => s + p.length, 0);
  const out = make(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export async function runGeneration(req: GenerationRequest, deps: DriverDeps, listener: GenerationListener, signal: AbortSignal): Promise<GenerationResult> {
  const { model, options: o } = deps;
  const log = deps.log ?? silentLogger;
  const L = model.numLayers;
  const C = model.hiddenSize;
  const prompt = model.encode(req.prompt, req.kind ?? 'text');
  const ctx = model.contextLength;
  if (prompt.length === 0) throw new InvalidArgumentError('the prompt encodes to no tokens', undefined, 'PROMPT_TOO_LONG');
  if (prompt.length >= ctx) {
    throw new InvalidArgumentError(`the prompt encodes to ${prompt.length} tokens (with BOS); the model's context holds ${ctx}, and at least one must be left to generate`, { tokens: prompt.length, context: ctx }, 'PROMPT_TOO_LONG');
  }
  // `spec.id` names the generation (logs); every hop session gets an id of its own (`hopSpec`). With one id for the
  // whole route, each hop learned the others' session id: a hostile hop could open it first on the hop after it
  // (SESSION_TAKEN there), and the entry failed over from that honest hop and banned it (session 27)
  const spec: SessionSpec = {
    id: deps.newSessionId(),
    maxLen: Math.min(ctx, prompt.length + req.maxTokens),
    sampling: { temperature: req.temperature, topK: req.topK, topP: req.topP, seed: req.seed },
  };
  const hopSpec = (): SessionSpec => ({ ...spec, id: deps.newSessionId() });
  const failed = new Set<string>();
  const commits = deps.commits === undefined ? entryCommits() : deps.commits;
  /** Every queued commitment this generation opened (dropped from the worker at its end). */
  const queued: QueuedCommitment[] = [];
  const commitment = (): RunningCommitment | QueuedCommitment => {
    if (commits === null) return new RunningCommitment();
    const c = commits.open();
    queued.push(c);
    return c;
  };
  // each hop's weights format as the holder view states it (its signed record; route.ts prefers chains of one format),
  // kept for every peer this generation planned on
  const formats = new Map<string, 'f32' | 'int8'>();
  // the options of every plan: banned peers only when nobody else covers the range (route.ts chooseRouteAvoiding),
  // this generation's failures never; `format`: the running chain's, so that a failover keeps it
  const planOptions = (format?: 'f32' | 'int8'): Parameters<typeof chooseRouteAvoiding>[2] => ({ random: deps.random, explore: o.explore, banned: deps.bans.banned(deps.now()), failed, ...(format === undefined ? {} : { format }) });
  /** The holder view, with every holder's format noted. */
  const view = (): HolderView[] => {
    const holders = deps.holders();
    for (const h of holders) formats.set(h.peerId, h.weights ?? 'f32');
    return holders;
  };

  const openEntry = (hop: ChainHop): RouteEntry => {
    const sp = hopSpec();
    return { hop, id: sp.id, session: deps.opener.open(hop, sp), parts: [], chunks: [], inC: commitment(), outC: commitment() };
  };
  const route: RouteEntry[] = chooseRouteAvoiding(view(), { start: 0, end: L }, planOptions()).map(openEntry);
  const hopsNow = (): RouteHop[] => route.map((e) => ({ peerId: e.hop.peerId, span: [e.hop.span.start, e.hop.span.end] as [number, number], weights: formats.get(e.hop.peerId) ?? 'f32' }));
  const firstRoute = hopsNow();
  const routes: UsedRoute[] = [{ fromToken: 0, hops: firstRoute }];
  /** The format every hop of the route has (the failed hop's included), or undefined for a mixed route. */
  const chainFormat = (): 'f32' | 'int8' | undefined => {
    const fs = new Set(route.map((e) => formats.get(e.hop.peerId) ?? 'f32'));
    return fs.size === 1 ? [...fs][0] : undefined;
  };
  listener.onRoute?.(firstRoute);
  let failovers = 0;
  const stallsMs: number[] = [];
  /** Session 29: whether this generation still uses pushes (off after any failover or a pushed input that did not match). */
  let pushOn = o.push === true || o.push === 'auto';

  /**
   * Whether the route's layers can be planned without `peer` (and this generation's failed peers) in the chain's
   * weights format. Only holders of that format count: a slow hop replaced by one of the other format (or a mix)
   * would give the rest of the answer from another model (an int8 entry whose float32 hop missed 200 ms under load
   * went on through its own int8 worker: tokens 9-10 of test/integration/pool/int8-net swapped), so the step waits
   * on it instead, as on a hop nobody else holds. A hop that fails outright is still replaced by what exists.
   */
  const replaceable = (peer: string): boolean => {
    const format = chainFormat();
    const banned = deps.bans.banned(deps.now());
    // banned holders of the format too are left out, as the failover's plan leaves them out before it takes the
    // other format (route.ts chooseRouteAvoiding)
    const holders = format === undefined ? deps.holders() : deps.holders().filter((h) => (h.weights ?? 'f32') === format && !banned.has(h.peerId));
    try {
      chooseRouteAvoiding(holders, { start: 0, end: L }, { random: () => 0, banned, failed: new Set([...failed, peer]) }); // only whether the layers are covered
      return true;
    } catch (e) {
      // (runs in a timer: any other failure of the plan fails over as before rather than throwing there)
      return !(e instanceof LayersUncoveredError);
    }
  };

  /**
   * The records of the last hidden output committed (the next hop's input, the same tensor in the same chunks): the
   * next hop's input commitment takes them instead of computing them again (ledger/commitment.ts `addSteps`).
   */
  let lastOut: { values: Float32Array; chunks: readonly number[]; steps: TopKStep[] } | undefined;
  const sameChunks = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((n, i) => n === b[i]);

  /** Fails the call in flight (its deadline or the generation's abort); set while a call waits. */
  let inFlight: ((reason: Error) => void) | undefined;

  /** The input's commitment (queued or running); for a forwarded tensor the records of the output just committed. */
  const commitInput = (entry: RouteEntry, input: HopInput): void => {
    if (commits !== null) {
      const c = entry.inC as QueuedCommitment;
      if (input.ids !== undefined) commits.tokens(c, input.ids, input.chunks);
      else commits.hidden(c, input.hidden!, C, input.chunks);
    } else {
      const c = entry.inC as RunningCommitment;
      if (input.ids !== undefined) c.tokens(input.ids, input.chunks);
      else if (lastOut !== undefined && lastOut.values === input.hidden && sameChunks(lastOut.chunks, input.chunks)) c.addSteps(lastOut.steps);
      else c.hidden(input.hidden!, C, input.chunks);
    }
    lastOut = undefined;
  };
  /** The signal of an entry's calls (a fresh one after a deadline aborted the last). */
  const acOf = (entry: RouteEntry): AbortController => (entry.ac === undefined || entry.ac.signal.aborted ? (entry.ac = new AbortController()) : entry.ac);

  /**
   * Runs one call on a hop with its deadline; a failure is a HopFailure. `how.pending`: the answer to a placeholder
   * already sent (session 29), whose deadline runs at least until `how.until` (performance.now() ms: its push wait
   * and a step's deadline after it); its answer is PUSH_MISSING when no push came, and a PushMismatch is thrown when
   * the hop ran on other bytes than `input` (the entry's copy of the previous hop's answer). `how.push`: push fields.
   */
  const call = async (entry: RouteEntry, input: HopInput, positions: number, how?: { pending?: Promise<PushedHopOutput>; until?: number; push?: HopPush }): Promise<HopOutput> => {
    const session = entry.session;
    const first = (entry.calls = (entry.calls ?? 0) + 1) === 1;
    const pending = how?.pending;
    let ms = (entry.hop.peerId === deps.selfPeerId ? o.localStepTimeoutMs : o.stepTimeoutMs) + positions * o.msPerPosition + (first ? o.openTimeoutMs : 0);
    if (how?.until !== undefined) ms = Math.max(ms, how.until - performance.now());
    // committed (or queued) before the call; a failed call discards the entry. A session never changes nor hands on
    // (transfers) its input's buffer: the entry keeps it for a replay (`parts`), and the queue reads it later. A
    // placeholder's input is committed once its answer shows the hop ran on it (a push_missing one is sent again).
    if (pending === undefined) commitInput(entry, input);
    if (signal.aborted) throw new AbortedError('generation aborted');
    const ac = acOf(entry);
    // The step deadline is the failover trigger: past it, another holder would likely answer sooner. When no other
    // holder could take this hop's layers (windows around it included: the whole route is planned without it),
    // failing over cannot help and only turns a slow answer into 503 layers_uncovered (a single holder under load
    // missed 200 ms on its first decode step: test/integration/router/paid-generate). Then the step waits on, the
    // check is repeated every deadline (a replacement that appears is taken), and the hard bound is the one of a
    // step on our own worker, which has nothing to fail over to either.
    const hardMs = entry.hop.peerId === deps.selfPeerId ? ms : ms - o.stepTimeoutMs + o.localStepTimeoutMs;
    const t0 = performance.now(); // wall time, as the timers count it (deps.now may be a test clock)
    let timer: NodeJS.Timeout | undefined;
    try {
      // one promise settled by the session's answer, the deadline or the generation's abort (inFlight), whichever
      // comes first: the session's step is aborted through `ac` so that it lets go of its stream
      const out = await new Promise<HopOutput>((resolve, reject) => {
        const fail = (reason: Error): void => {
          inFlight = undefined;
          ac.abort(reason);
          reject(reason);
        };
        const onDeadline = (): void => {
          const waited = performance.now() - t0;
          if (ms < hardMs && waited < hardMs && !replaceable(entry.hop.peerId)) {
            timer = setTimeout(onDeadline, Math.min(o.stepTimeoutMs, hardMs - waited));
            return;
          }
          fail(new TimeoutError(`hop did not answer within ${Math.round(waited)} ms`, { ms: Math.round(waited) }));
        };
        timer = setTimeout(onDeadline, ms);
        inFlight = fail;
        (pending ?? session.step(input, ac.signal, how?.push)).then(resolve, reject);
      });
      if (pending !== undefined) {
        const p = out as PushedHopOutput;
        if (p.pushMissing === true) return PUSH_MISSING;
        const want = input.hidden === undefined ? undefined : session.pushDigest?.(input.hidden);
        if (want === undefined || p.inputDigest === undefined || !Buffer.from(want).equals(p.inputDigest)) {
          // session 30: the pusher's attestation says which of the two lied (the step's first position here: the
          // positions this session was given before it)
          const position = entry.chunks.reduce((a, b) => a + b, 0) - positions;
          throw new PushMismatch(input.hidden === undefined || session.pushBlame === undefined ? 'pusher' : session.pushBlame(input.hidden, p, entry.pushFromKey, position));
        }
        commitInput(entry, input);
      }
      checkOutput(out, input, positions);
      // the output is the entry's own (a session's answer): nothing changes it after this, so the queue may read it later
      if (commits !== null) {
        const c = entry.outC as QueuedCommitment;
        if (out.tokens !== undefined) commits.tokens(c, out.tokens, input.chunks.map(() => 1));
        else commits.hidden(c, out.hidden!, C, input.chunks);
      } else {
        const c = entry.outC as RunningCommitment;
        if (out.tokens !== undefined) c.tokens(out.tokens, input.chunks.map(() => 1));
        else lastOut = { values: out.hidden!, chunks: input.chunks, steps: c.hidden(out.hidden!, C, input.chunks) };
      }
      return out;
    } catch (e) {
      if (signal.aborted) throw new AbortedError('generation aborted');
      if (e instanceof PushMismatch) throw e;
      throw new HopFailure(e);
    } finally {
      inFlight = undefined;
      clearTimeout(timer);
    }
  };

  const checkOutput = (out: HopOutput, input: HopInput, positions: number): void => {
    if (out.tokens !== undefined) {
      if (out.tokens.length !== input.chunks.length) throw new NeuroShardError('HOP_BAD_OUTPUT', `the hop sampled ${out.tokens.length} tokens for ${input.chunks.length} chunks`, { fault: 'peer' });
    } else if (out.hidden === undefined || out.hidden.length !== positions * C) {
      throw new NeuroShardError('HOP_BAD_OUTPUT', `the hop returned ${out.hidden?.length ?? 0} values for [${positions}, ${C}]`, { fault: 'peer' });
    }
  };

  /**
   * The window route[j..k] around the failed hop i whose layers are planned again without the failed peers, and that
   * plan (route.ts planFailover): the window whose replacement has the fewest unproven hops, then the narrowest (its
   * own layers first: a replica, or holders whose spans tile them; when nobody holds exactly those, a live holder of
   * more layers, a joiner holding [0, 3) when the dead hop held [1, 3), replaces the dead hop and its neighbours
   * together). Throws LayersUncoveredError when nothing covers it.
   */
  const widen = (i: number): { j: number; k: number; sub: ChainHop[] } => {
    const holders = view();
    return planFailover(holders, route.map((e) => e.hop), i, planOptions(chainFormat()));
  };

  /**
   * Replaces route[i] by another chain for its layers (or, when none exists, a window of hops around it: widen) and
   * replays the window's inputs there (the current step's input is already stored on every hop of the window that
   * has run this step, i included). Returns the current step's output of the replacement's last hop, and where the
   * step goes on: the index after the replacement.
   */
  const failover = async (i: number, cause: unknown): Promise<{ out: HopOutput; next: number }> => {
    const t0 = deps.now();
    // the simplest sound rule: replacements are not set up for pushes, and no boundary is trusted again
    pushOn = false;
    let badPeer = route[i].hop.peerId;
    route[i].session.close();
    for (;;) {
      failovers++;
      failed.add(badPeer);
      deps.bans.fail(badPeer, deps.now());
      const dead = route[i].hop;
      log.info('replacing a hop', { session: spec.id, peer: badPeer, span: `${dead.span.start}:${dead.span.end}`, cause: errorMessage(cause) });
      if (failovers > o.maxFailovers) throw new NeuroShardError('GENERATE_FAILOVERS', `gave up after ${o.maxFailovers} hop replacements: ${errorMessage(cause)}`, { fault: 'local' });
      const { j, k, sub } = widen(i); // throws LayersUncoveredError
      // the window's first hop saw every input the window was given (the same chunks all along the route)
      const head = route[j];
      const chunks = [...head.chunks];
      const T = chunks.reduce((a, b) => a + b, 0);
      const first: HopInput =
        head.hop.span.start === 0 ? { ids: concat(head.parts as Int32Array[], (n) => new Int32Array(n)), chunks } : { hidden: concat(head.parts as Float32Array[], (n) => new Float32Array(n)), chunks };
      for (let w = j; w <= k; w++) if (w !== i) route[w].session.close();
      if (j !== i || k !== i) log.info('replacing hops around it', { session: spec.id, span: spanText({ start: head.hop.span.start, end: route[k].hop.span.end }), hops: k - j + 1, by: sub.map((h) => `${h.peerId}[${spanText(h.span)}]`).join(' -> ') });
      // every replacement gets a session id of its own (a peer of the window chosen again too: its old session may
      // not be closed there yet)
      const fresh: RouteEntry[] = sub.map(openEntry);
      // replay: the window's inputs through the new sub-chain, in the original chunks
      let x = first;
      let out: HopOutput | undefined;
      try {
        for (const f of fresh) {
          f.parts.push(x.ids ?? x.hidden!);
          f.chunks.push(...chunks);
          try {
            out = await call(f, x, T);
          } catch (e) {
            if (e instanceof HopFailure) badPeer = f.hop.peerId;
            throw e;
          }
          if (out.hidden !== undefined) x = { hidden: out.hidden, chunks };
        }
      } catch (e) {
        for (const f of fresh) f.session.close();
        if (!(e instanceof HopFailure)) throw e;
        cause = e.reason; // the replacement failed too: ban it and choose again
        // the window's other hops are closed: from now on the replacement must cover the whole window
        if (j !== i || k !== i) {
          route.splice(j, k - j + 1, { ...route[i], hop: { peerId: route[i].hop.peerId, span: { start: head.hop.span.start, end: route[k].hop.span.end } }, parts: head.parts, chunks: head.chunks });
          i = j;
        }
        continue;
      }
      if (route[k].hop.span.end === L && out!.tokens !== undefined) {
        // the replayed draws must give back the tokens already streamed (same weights, same chunks)
        const replayed = Array.from(out!.tokens.subarray(0, out!.tokens.length - 1));
        if (replayed.some((t, n) => t !== tokensSoFar[n])) log.warn('a replayed validator disagrees with the tokens streamed so far', { session: spec.id });
      }
      route.splice(j, k - j + 1, ...fresh);
      stallsMs.push(deps.now() - t0);
      // this step's token (index tokensSoFar.length) is the new chain's first; a chain that produced none is replaced
      const used = { fromToken: tokensSoFar.length, hops: hopsNow() };
      if (routes[routes.length - 1].fromToken === used.fromToken) routes[routes.length - 1] = used;
      else routes.push(used);
      // the current step's output: the last chunk's rows or token
      const last = chunks[chunks.length - 1];
      const cur: HopOutput = out!.tokens !== undefined ? { tokens: out!.tokens.subarray(out!.tokens.length - 1) } : { hidden: out!.hidden!.subarray((T - last) * C) };
      return { out: cur, next: j + fresh.length };
    }
  };

  /**
   * Session 29: closes route[i]'s session and opens a fresh one on the same hop, replaying its stored inputs (the
   * last of them, the current step's, as the entry holds it): after a pushed step ran on bytes the entry does not
   * hold, the hop's KV cache is not the one the entry's records describe. Not a failover of that hop (it ran what it
   * was pushed); a failure of the replay is one. Returns the current step's output.
   */
  const reopen = async (i: number, positions: number): Promise<HopOutput> => {
    const old = route[i];
    old.session.close();
    const fresh = openEntry(old.hop);
    fresh.parts.push(...old.parts);
    fresh.chunks.push(...old.chunks);
    route[i] = fresh;
    const chunks = [...fresh.chunks];
    const T = chunks.reduce((a, b) => a + b, 0);
    const x: HopInput = old.hop.span.start === 0 ? { ids: concat(fresh.parts as Int32Array[], (n) => new Int32Array(n)), chunks } : { hidden: concat(fresh.parts as Float32Array[], (n) => new Float32Array(n)), chunks };
    const out = await call(fresh, x, T);
    return out.tokens !== undefined ? { tokens: out.tokens.subarray(out.tokens.length - 1) } : { hidden: out.hidden!.subarray((T - positions) * C) };
  };

  /** Whether route[b - 1] may push into route[b] (both remote hops that said they take pushes, both past their first step). */
  const pushable = (b: number): boolean => {
    const a = route[b - 1];
    const e = route[b];
    return a.session.pushCapable === true && e.session.pushCapable === true && a.session.pushSigned === true && e.session.pushSigned === true && e.session.stepByPush !== undefined && e.session.pushDigest !== undefined && e.pushOff !== true && a.hop.peerId !== e.hop.peerId && (a.calls ?? 0) > 0 && (e.calls ?? 0) > 0 && (o.push !== 'auto' || worthPushing(a, e));
  };
  /**
   * `push: 'auto'`: a boundary already set up keeps pushing for the generation (its pushed steps are not timed, so
   * their round trips would not move again); one not set up is, once both its hops measure PUSH_AUTO_MIN_RTT_MS or
   * more (re-checked every token: a generation's first explicit decode steps are what measure a new peer).
   */
  const worthPushing = (a: RouteEntry, e: RouteEntry): boolean => {
    if (a.pushTo === e.hop.peerId && e.pushFrom === a.hop.peerId) return true;
    const ra = deps.rttFloorMs?.(a.hop.peerId);
    const re = deps.rttFloorMs?.(e.hop.peerId);
    return ra !== undefined && re !== undefined && ra >= PUSH_AUTO_MIN_RTT_MS && re >= PUSH_AUTO_MIN_RTT_MS;
  };

  /** One step through the whole chain; returns the sampled token. */
  const step = async (input: HopInput, positions: number): Promise<number> => {
    let x = input;
    // session 29: boundaries set up (push_to / push_from sent on an earlier step) get a placeholder now, so that the
    // hop after them runs when the push arrives; boundaries not yet set up carry the set-up fields on this token's steps
    // (keyed by entry: a failover's window may change the route's length)
    const pending = new Map<RouteEntry, { answer: Promise<PushedHopOutput>; until: number }>();
    const setup = new Set<RouteEntry>();
    /** The hops that get a placeholder this token (their requests are sent a little later: placeholdersSent). */
    const armedSet = new Set<RouteEntry>();
    let placeholdersSent: Promise<void> | undefined;
    if (pushOn) {
      const t0 = performance.now();
      const armed: boolean[] = route.map(() => false);
      for (let b = 1; b < route.length; b++) {
        if (!pushable(b)) continue;
        const a = route[b - 1];
        const e = route[b];
        if (a.pushTo !== e.hop.peerId || e.pushFrom !== a.hop.peerId) setup.add(e);
        else armed[b] = true;
      }
      // a placeholder carries no set-up fields: a hop whose next boundary is set up this token steps explicitly
      for (let b = 1; b + 1 < route.length; b++) if (setup.has(route[b + 1])) armed[b] = false;
      const chunks = x.chunks;
      const send = (): void => {
        for (let b = 1; b < armed.length; b++) {
          if (!armed[b]) continue;
          const e = armedAt[b]!;
          // the hop waits for its push as long as the hops before it may take (then it answers push_missing); it
          // pushes its own output on when the hop after it gets a placeholder too
          const waitMs = Math.min(60_000, b * o.stepTimeoutMs);
          const answer = e.session.stepByPush!(chunks, waitMs, acOf(e).signal, armed[b + 1] === true);
          answer.catch(() => {}); // (awaited in turn below, or abandoned with a session a failover closed)
          pending.set(e, { answer, until: t0 + waitMs + o.stepTimeoutMs + positions * o.msPerPosition });
        }
      };
      const armedAt = route.slice();
      for (let b = 1; b < armed.length; b++) if (armed[b]) armedSet.add(armedAt[b]!);
      // sent two event-loop turns after the first hop's request: where the hops share this process (the benches)
      // its request is read and its step started first; between machines the placeholders still arrive long
      // before the pushes they wait for (a push that comes first is held)
      if (armedSet.size > 0) placeholdersSent = new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve))).then(send);
    }
    /** Whether x is a replacement's output (a failover ran this token before the hop now stepped). */
    let replaced = false;
    for (let i = 0; i < route.length; ) {
      const e = route[i];
      e.parts.push(x.ids ?? x.hidden!);
      e.chunks.push(...x.chunks);
      let out: HopOutput;
      let next = i + 1;
      /** The route index a failure now is a failure of (a reopened hop's). */
      let cur = i;
      if (armedSet.has(e)) await placeholdersSent;
      const p = pending.get(e);
      pending.delete(e);
      const push: HopPush = {};
      const after = route[i + 1];
      if (p === undefined && pushOn) {
        if (after !== undefined && setup.has(after)) push.to = { peer: after.hop.peerId, session: after.id };
        if (after !== undefined && armedSet.has(after)) push.output = true;
        if (setup.has(e)) {
          // session 30: only with the pusher's session key (its answer to this token's set-up step): a boundary
          // whose pusher named none stays explicit (the entry could not tell who lied on a mismatch)
          const key = route[i - 1].session.pushKey;
          if (key !== undefined) {
            push.from = route[i - 1].hop.peerId;
            push.fromKey = key;
          } else e.pushOff = true;
        }
      }
      try {
        if (p !== undefined) {
          try {
            out = await call(e, x, positions, { pending: p.answer, until: p.until });
            if (out === PUSH_MISSING) {
              pushStats.missing++;
              e.pushOff = true; // this boundary goes explicit for the rest of the generation
              // the hop after it waits on this one's push: asked for as the placeholder asked for it
              out = await call(e, x, positions, after !== undefined && armedSet.has(after) ? { push: { output: true } } : undefined);
            } else pushStats.used++;
          } catch (err) {
            if (!(err instanceof PushMismatch)) throw err;
            pushOn = false;
            if (replaced) {
              // the pusher was replaced this token: the hop ran on what it was pushed before, which the entry never saw
              out = await reopen(i, positions);
            } else if (err.blame === 'receiver') {
              // session 30: the pusher's signed attestation names what the entry holds (or the hop has no valid one):
              // this hop misreported what it ran on, so it is the one replaced (banned), the pusher keeps its place
              log.warn('a hop misreported the input it was pushed', { session: spec.id, peer: e.hop.peerId });
              const r = await failover(i, new NeuroShardError('HOP_PUSH_DIGEST', `${e.hop.peerId} answered an input digest its pusher's attestation contradicts`, { fault: 'peer' }));
              out = r.out;
              next = r.next;
            } else {
              // the previous hop pushed one thing and answered another: it is replaced (banned), and this hop, which
              // ran on the push, starts again from the entry's copy of its inputs unless the replacement covered it
              const pusher = route[i - 1].hop.peerId;
              log.warn('a hop pushed other activations than it answered', { session: spec.id, peer: pusher });
              cur = i - 1;
              const r = await failover(i - 1, new NeuroShardError('HOP_PUSH_MISMATCH', `${pusher} pushed other activations than it answered`, { fault: 'peer' }));
              const at = route.indexOf(e);
              if (at < 0) {
                // the replacement's window covered this hop too: its replay gave this step's output
                out = r.out;
                next = r.next;
              } else {
                // this hop's input of this step is the replacement's output, not the pushed one
                e.parts[e.parts.length - 1] = r.out.hidden!;
                cur = at;
                out = await reopen(at, positions);
                next = at + 1;
              }
            }
            replaced = true;
          }
        } else {
          out = await call(e, x, positions, pushOn ? { push } : undefined);
          if (push.to !== undefined) e.pushTo = push.to.peer;
          if (push.from !== undefined) {
            e.pushFrom = push.from;
            e.pushFromKey = push.fromKey;
          }
        }
      } catch (err) {
        if (!(err instanceof HopFailure)) throw err;
        const r = await failover(cur, err.reason);
        replaced = true;
        out = r.out;
        next = r.next;
      }
      if (out.tokens !== undefined) return out.tokens[out.tokens.length - 1];
      x = { hidden: out.hidden!, chunks: x.chunks };
      i = next;
    }
    throw new NeuroShardError('HOP_BAD_OUTPUT', 'the chain ended without a validator', { fault: 'local' });
  };

  const tokensSoFar: number[] = [];
  /** Session 29: pushes used (on every route hop, as the entry saw its placeholders answered) and missed. */
  const pushStats = { used: 0, missing: 0 };
  const text = new TextAssembler((ids) => model.decode(ids), req.stop);
  // the generation's abort fails the call in flight (calls run one at a time): one listener for the generation
  // instead of an add and a remove per call
  const onAbort = (): void => inFlight?.(new AbortedError('generation aborted'));
  signal.addEventListener('abort', onAbort, { once: true });
  let finishReason: 'stop' | 'length' = 'length';
  let settlement: Settlement | undefined;
  try {
    let token = await step({ ids: Int32Array.from(prompt), chunks: [prompt.length] }, prompt.length);
    for (;;) {
      if (signal.aborted) throw new AbortedError('generation aborted');
      if (token === model.eosId || model.stopIds?.includes(token) === true) {
        finishReason = 'stop';
        break;
      }
      tokensSoFar.push(token);
      const r = text.push(token);
      const atEnd = tokensSoFar.length >= req.maxTokens || prompt.length + tokensSoFar.length - 1 >= spec.maxLen;
      listener.onToken?.(token, r.stopped ? r.delta : atEnd ? r.delta + text.finish() : r.delta);
      if (r.stopped) {
        finishReason = 'stop';
        break;
      }
      if (atEnd) break;
      token = await step({ ids: Int32Array.of(token), chunks: [1] }, 1);
    }
    if (deps.settle !== undefined) {
      // every step queued so far is in its commitment's value (queue order)
      if (commits !== null) await commits.settled();
      settlement = await deps.settle(
        route.map((e) => ({ peerId: e.hop.peerId, inCommit: e.inC.value, outCommit: e.outC.value, session: e.session })),
        { promptTokens: prompt.length, completionTokens: tokensSoFar.length },
        signal,
      );
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    for (const e of route) e.session.close();
    // the worker forgets their chain values (after the jobs already queued for them)
    if (commits !== null) for (const c of queued) commits.drop(c);
  }
  return { text: text.text, tokens: tokensSoFar, finishReason, route: firstRoute, routes, failovers, stallsMs, promptTokens: prompt.length, ...(o.push === true || o.push === 'auto' ? { pushes: pushStats } : {}), ...(settlement === undefined ? {} : { settlement }) };
}

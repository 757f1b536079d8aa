/**
 * Progress of a span's weights downloaded from peers (the layer pool's `checkpoint` streams, pool/transfer.ts), for
 * the node's stderr: a bar on a terminal, plain lines otherwise (util/progress.ts).
 *
 * The pool is not told about it: the node hands the pool an RpcNode whose outgoing `checkpoint` streams are
 * counted. A download asks every unit's head first (offset past the end: one empty chunk naming the unit's size),
 * then streams the units' bytes, so the heads give the total before the first byte arrives. A head of a unit not
 * seen yet during a download adds its size (the pool fetches a span in pieces; each piece asks its own heads). The
 * node ends the display on the pool's `span:held` / `span:error` (`finish()` / `abandon()`).
 */
import * as methods from '../protocols/methods.js';
import type { CheckpointChunk, CheckpointRequest } from '../protocols/pb/node.js';
import type { RpcNode } from '../protocols/rpc/service.js';
import { ProgressReporter, type ProgressMode } from '../util/progress.js';

export interface DownloadMeterOptions {
  mode: ProgressMode;
  write: (s: string) => void;
  now?: () => number;
}

export class SpanDownloadMeter {
  /** Units of the current download: "start:end" → bytes. */
  private readonly units = new Map<string, number>();
  private received = 0;
  private reporter: ProgressReporter | undefined;
  private lo = Infinity;
  private hi = -Infinity;

  constructor(private readonly o: DownloadMeterOptions) {}

  /** A unit's head answered: its size joins the download's total. */
  head(unit: { start: number; end: number }, bytes: number): void {
    const key = `${unit.start}:${unit.end}`;
    if (this.units.has(key)) return;
    this.units.set(key, bytes);
    this.lo = Math.min(this.lo, unit.start);
    this.hi = Math.max(this.hi, unit.end);
    this.reporter?.update(this.received, this.total());
  }

  /** Bytes of a unit arrived. */
  data(bytes: number): void {
    this.received += bytes;
    this.reporter ??= new ProgressReporter({ ...this.o, label: `download layers ${this.lo}:${this.hi}`, total: this.total(), unit: 'bytes' });
    this.reporter.update(this.received, this.total());
  }

  /** The span is held: the closing frame / line, and a fresh meter for the next download. */
  finish(): void {
    this.reporter?.finish();
    this.reset();
  }

  /** The download failed: end a drawn bar's line. */
  abandon(): void {
    this.reporter?.abandon();
    this.reset();
  }

  private total(): number {
    let t = 0;
    for (const b of this.units.values()) t += b;
    return t;
  }

  private reset(): void {
    this.units.clear();
    this.received = 0;
    this.reporter = undefined;
    this.lo = Infinity;
    this.hi = -Infinity;
  }
}

/** `rpc` with its outgoing `checkpoint` streams counted by `meter` (everything else untouched). */
export function meteredRpc(rpc: RpcNode, meter: SpanDownloadMeter): RpcNode {
  const serverStream = async function* (this: unknown, peer: string, method: unknown, req: unknown, opts?: unknown): AsyncGenerator<unknown> {
    const inner = (rpc.serverStream as (...a: unknown[]) => AsyncGenerator<unknown>).call(rpc, peer, method, req, opts);
    const r = req as CheckpointRequest;
    if (method !== methods.checkpoint || r.span === undefined) return yield* inner;
    for await (const c of inner as AsyncGenerator<CheckpointChunk>) {
      if (r.offset >= c.totalSize) meter.head(r.span, Number(c.totalSize));
      else meter.data(c.data.byteLength);
      yield c;
    }
  };
  return new Proxy(rpc, {
    get(target, key) {
      if (key === 'serverStream') return serverStream;
      const v: unknown = Reflect.get(target, key, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/**
 * A pipeline stage's calls as plain-data operations, so that one `LocalStage` can sit behind any transport: the
 * compute worker (a `stage` job carries one op) and, through it, the `train-stage` RPC (protocols/train-stage.ts).
 * `OpStage` is the PipelineStage over such a transport; `runStageOp` executes one op on a LocalStage.
 *
 * Besides PipelineStage's calls there are the inner loop's (training/inner.ts): `info` (span, AdamW steps applied),
 * `readLayers` / `writeLayers` (the held span's parameters per model-hash layer), `grads` (a copy of the step's
 * summed gradients after sumSquares: tests compare them with a single node's), and `saveState` / `restoreState` (a
 * copy of the span's weights, AdamW moments and step count put back later: a driver's discarded steps and a joining
 * hop's steps while it waited, chain.ts and chain-outer.ts; the node's own compute worker only, never train-stage).
 */
import { InvalidArgumentError } from '../../util/errors.js';
import { layerRanges } from '../diloco.js';
import type { LayerParams } from '../inner.js';
import type { LocalStage, PipelineStage, StageForwardResult, StepApply } from './stage.js';
import type { Span } from '../../model/layout.js';

export type StageOp =
  | { op: 'begin'; step: number }
  /** input: ids [B·T] (first stage) or hidden [B·T·C]; targets [B·T] on the last stage. */
  | { op: 'forward'; step: number; mb: number; input: Int32Array | Float32Array; B: number; T: number; targets?: Int32Array; gradScale: number }
  | { op: 'backward'; step: number; mb: number; dOut: Float32Array | null }
  | { op: 'sumSquares'; step: number }
  | { op: 'apply'; step: number; lr: number; clipScale: number }
  | { op: 'abort'; step: number }
  | { op: 'eval'; input: Int32Array | Float32Array; B: number; T: number; targets?: Int32Array }
  | { op: 'info' }
  | { op: 'grads' }
  | { op: 'readLayers' }
  | { op: 'writeLayers'; layers: LayerParams[] }
  /** Keep a copy of the span's weights, AdamW moments and step count, unless one is kept (LocalStage.saveState). */
  | { op: 'saveState' }
  /** Put that copy back and forget it (LocalStage.restoreState); `restored` false when there was none. */
  | { op: 'restoreState' };

export interface StageOpResult {
  /** forward/eval: the stage's output (null on the last stage); backward: the input's gradient (null on the first). */
  output?: Float32Array | null;
  loss?: number;
  count?: number;
  sumSquares?: number;
  grads?: Float32Array;
  layers?: LayerParams[];
  /** restoreState: whether a saved state was put back. */
  restored?: boolean;
  span: Span;
  appliedSteps: number;
}

/** Executes one op on a LocalStage (inside the compute worker). */
export async function runStageOp(stage: LocalStage, o: StageOp): Promise<StageOpResult> {
  const base = (): { span: Span; appliedSteps: number } => ({ span: { ...stage.span }, appliedSteps: stage.appliedSteps });
  switch (o.op) {
    case 'begin':
      await stage.beginStep(o.step);
      return base();
    case 'forward': {
      const r = await stage.forward(o.step, o.mb, o.input, o.B, o.T, o.targets, o.gradScale);
      return { ...base(), output: r.output, ...(r.loss === undefined ? {} : { loss: r.loss, count: r.count }) };
    }
    case 'backward':
      return { ...base(), output: await stage.backward(o.step, o.mb, o.dOut) };
    case 'sumSquares':
      return { ...base(), sumSquares: await stage.gradSumSquares(o.step) };
    case 'apply':
      await stage.applyStep(o.step, { lr: o.lr, clipScale: o.clipScale });
      return base();
    case 'abort':
      await stage.abortStep(o.step);
      return base();
    case 'eval': {
      const r = await stage.evalForward(o.input, o.B, o.T, o.targets);
      return { ...base(), output: r.output, ...(r.loss === undefined ? {} : { loss: r.loss, count: r.count }) };
    }
    case 'info':
      return base();
    case 'grads':
      return { ...base(), grads: stage.grads.slice() };
    case 'readLayers':
      return { ...base(), layers: layerRanges(stage.layout).map((l) => ({ id: l.id, params: stage.params.slice(l.offset, l.offset + l.size) })) };
    case 'writeLayers': {
      const ranges = new Map(layerRanges(stage.layout).map((l) => [l.id, l]));
      for (const l of o.layers) {
        const r = ranges.get(l.id);
        if (r === undefined) throw new InvalidArgumentError(`writeLayers: this stage does not hold layer ${l.id}`);
        if (l.params.length !== r.size) throw new InvalidArgumentError(`writeLayers: layer ${l.id} has ${r.size} parameters, got ${l.params.length}`);
      }
      for (const l of o.layers) stage.params.set(l.params, ranges.get(l.id)!.offset);
      return base();
    }
    case 'saveState':
      await stage.saveState();
      return base();
    case 'restoreState': {
      const restored = await stage.restoreState();
      return { ...base(), restored };
    }
  }
  throw new InvalidArgumentError(`unknown stage op ${String((o as { op: unknown }).op)}`);
}

/** How an OpStage reaches its LocalStage (a compute worker job, or an RPC to the holder of the span). */
export type StageTransport = (o: StageOp, signal?: AbortSignal) => Promise<StageOpResult>;

/** A PipelineStage over a transport of ops. `span` is what the holder was asked to hold; the first op checks it. */
export class OpStage implements PipelineStage {
  /** AdamW steps the stage reported applied (updated by every answer). */
  appliedSteps = 0;

  constructor(
    readonly span: Span,
    readonly numLayers: number,
    private readonly send: StageTransport,
  ) {}

  get isFirst(): boolean {
    return this.span.start === 0;
  }

  get isLast(): boolean {
    return this.span.end === this.numLayers;
  }

  private async run(o: StageOp): Promise<StageOpResult> {
    const r = await this.send(o);
    this.appliedSteps = r.appliedSteps;
    return r;
  }

  async beginStep(step: number): Promise<void> {
    await this.run({ op: 'begin', step });
  }

  async forward(step: number, mb: number, input: Int32Array | Float32Array, B: number, T: number, targets?: Int32Array, gradScale = 1): Promise<StageForwardResult> {
    const r = await this.run({ op: 'forward', step, mb, input, B, T, ...(targets === undefined ? {} : { targets }), gradScale });
    return { output: r.output ?? null, ...(r.loss === undefined ? {} : { loss: r.loss, count: r.count ?? 0 }) };
  }

  async backward(step: number, mb: number, dOut: Float32Array | null): Promise<Float32Array | null> {
    return (await this.run({ op: 'backward', step, mb, dOut })).output ?? null;
  }

  async gradSumSquares(step: number): Promise<number> {
    return (await this.run({ op: 'sumSquares', step })).sumSquares ?? NaN;
  }

  async applyStep(step: number, a: StepApply): Promise<void> {
    await this.run({ op: 'apply', step, lr: a.lr, clipScale: a.clipScale });
  }

  async abortStep(step: number): Promise<void> {
    await this.run({ op: 'abort', step });
  }

  async evalForward(input: Int32Array | Float32Array, B: number, T: number, targets?: Int32Array): Promise<StageForwardResult> {
    const r = await this.run({ op: 'eval', input, B, T, ...(targets === undefined ? {} : { targets }) });
    return { output: r.output ?? null, ...(r.loss === undefined ? {} : { loss: r.loss, count: r.count ?? 0 }) };
  }

  async info(): Promise<StageOpResult> {
    return this.run({ op: 'info' });
  }

  async grads(): Promise<Float32Array> {
    return (await this.run({ op: 'grads' })).grads!;
  }

  async readLayers(): Promise<LayerParams[]> {
    return (await this.run({ op: 'readLayers' })).layers ?? [];
  }

  async writeLayers(layers: LayerParams[]): Promise<void> {
    await this.run({ op: 'writeLayers', layers });
  }

  async saveState(): Promise<void> {
    await this.run({ op: 'saveState' });
  }

  async restoreState(): Promise<boolean> {
    return (await this.run({ op: 'restoreState' })).restored === true;
  }
}

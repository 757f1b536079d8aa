/**
 * src/protocols/rpc/parts.ts: a message encoded as parts is, joined, byte for byte the single-buffer encoding (the
 * wire does not change), and its large bytes fields are the caller's own arrays (no copy).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeMessage, message, type Codec } from 'protons-runtime';
import * as pb from '../../../src/protocols/pb/node.js';
import { StageOpKind, TrainStageRequest } from '../../../src/protocols/pb/train.js';
import { PART_MIN_BYTES, encodeMessageFramed, encodeMessageParts, joinParts, partsLength } from '../../../src/protocols/rpc/parts.js';
import { FRAME_ERROR, FRAME_MESSAGE, FRAME_PART, encodeFrame, framedBodyBytes } from '../../../src/protocols/rpc/frame.js';
import * as methods from '../../../src/protocols/methods.js';
import { Rng } from '../../../src/util/rng.js';

const SIZES = [0, 1, 15, 16, 17, 1000, PART_MIN_BYTES - 1, PART_MIN_BYTES, PART_MIN_BYTES + 1, 200_000, (1 << 20) + 3];

function bytes(rng: Rng, n: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i += 97) b[i] = Math.floor(rng.next() * 256);
  return b;
}

function tensor(rng: Rng, n: number): pb.Tensor {
  return { dtype: pb.DType.INT8, shape: [n], data: bytes(rng, n), scale: 0.5 };
}

/** Parts joined are `whole`, and each of `arrays` (the value's bytes fields) is a part itself exactly when it is large. */
function same<T>(codec: Codec<T>, value: T, whole: Uint8Array, arrays: Array<Uint8Array | undefined>): void {
  const parts = encodeMessageParts(codec, value);
  assert.equal(partsLength(parts), whole.byteLength);
  assert.deepEqual(Buffer.from(joinParts(parts)), Buffer.from(whole));
  for (const a of arrays) if (a !== undefined) assert.equal(parts.includes(a), a.byteLength >= PART_MIN_BYTES, `a bytes field of ${a.byteLength}`);
}

/** message TensorList { string note = 1; repeated Tensor tensors = 2; }, encoded as protons generates it. */
interface TensorList {
  note: string;
  tensors: pb.Tensor[];
}
const TensorList: Codec<TensorList> = message<TensorList>(
  (obj, w, opts = {}) => {
    if (opts.lengthDelimited !== false) w.fork();
    if (obj.note != null && obj.note !== '') {
      w.uint32(10);
      w.string(obj.note);
    }
    for (const t of obj.tensors ?? []) {
      w.uint32(18);
      pb.Tensor.codec().encode(t, w);
    }
    if (opts.lengthDelimited !== false) w.ldelim();
  },
  () => {
    throw new Error('encode only');
  },
  () => {
    throw new Error('encode only');
  },
);

describe('rpc message parts', () => {
  it('joined parts are the encoding, and every bytes field of PART_MIN_BYTES or more is the caller array itself', () => {
    const rng = new Rng(7);
    for (const a of SIZES) {
      for (const b of [0, 3, PART_MIN_BYTES, 100_000]) {
        const req: pb.EchoRequest = { payload: bytes(rng, b), tensor: tensor(rng, a), replyWithTensor: rng.next() < 0.5 };
        const whole = pb.EchoRequest.encode(req);
        const parts = encodeMessageParts(pb.EchoRequest.codec(), req);
        assert.equal(partsLength(parts), whole.byteLength);
        assert.deepEqual(Buffer.from(joinParts(parts)), Buffer.from(whole), `tensor ${a} payload ${b}`);
        // large fields are not copied: the very arrays of the request
        assert.equal(parts.includes(req.tensor!.data), a >= PART_MIN_BYTES);
        assert.equal(parts.includes(req.payload), b >= PART_MIN_BYTES);
        // what is copied: the small fields and the protobuf's tags and lengths (under 64 bytes of them here)
        const small = (a < PART_MIN_BYTES ? a : 0) + (b < PART_MIN_BYTES ? b : 0);
        const copied = partsLength(parts.filter((p) => p !== req.tensor!.data && p !== req.payload));
        assert.ok(copied >= small && copied < small + 64, `${copied} bytes copied, ${small} in small fields`);
      }
    }
  });

  it('matches for messages with strings, 64-bit fields, nested and repeated tensors', () => {
    const rng = new Rng(11);
    for (let i = 0; i < 40; i++) {
      const n = SIZES[i % SIZES.length]!;
      const inf: pb.InferenceRequest = {
        sessionId: 's'.repeat(i),
        requestId: 'é'.repeat(i % 7),
        hidden: tensor(rng, n),
        tokens: Array.from({ length: i % 5 }, (_, k) => k * 70_000),
        positionOffset: i * 1000,
        targetSpan: { start: i, end: i + 3 },
        endSession: i % 3 === 0,
        chunks: i % 2 === 0 ? [1, 2] : [],
        maxLength: 4096,
        temperature: i / 7,
        topK: i,
        topP: 0.9,
        seed: i * 2 ** 24,
        commitRequest: i % 4 === 0 ? bytes(rng, 32) : undefined,
        receipt: i % 4 === 1 ? bytes(rng, SIZES[(i * 5) % SIZES.length]!) : undefined,
      };
      same(pb.InferenceRequest.codec(), inf, pb.InferenceRequest.encode(inf), [inf.hidden!.data, inf.commitRequest, inf.receipt]);
      // train-stage (train.proto): two nested tensors around the threshold, a 64-bit step, doubles
      const stage: TrainStageRequest = {
        chainId: 'c'.repeat(i + 1),
        step: BigInt(i) * 2n ** 40n,
        op: StageOpKind.FORWARD,
        microBatch: i,
        input: { dtype: 1, shape: [n], data: bytes(rng, n) },
        targets: i % 2 === 0 ? { dtype: 4, shape: [i], data: bytes(rng, SIZES[(i * 3) % SIZES.length]!) } : undefined,
        gradScale: 1 / (i + 1),
        lr: 3e-4,
        clipScale: 1,
        spanStart: i,
        spanEnd: i + 2,
      };
      same(TrainStageRequest.codec(), stage, TrainStageRequest.encode(stage), [stage.input!.data, stage.targets?.data]);
      const chunk: pb.CheckpointChunk = {
        name: 'w'.repeat(i),
        offset: BigInt(i) * 2n ** 33n,
        totalSize: 2n ** 50n,
        data: bytes(rng, n),
        modelHash: 'h'.repeat(64),
        sha256: bytes(rng, 32),
        round: i % 3 === 0 ? undefined : BigInt(i % 3 === 1 ? -1 : i),
      };
      same(pb.CheckpointChunk.codec(), chunk, pb.CheckpointChunk.encode(chunk), [chunk.data, chunk.sha256]);
      // no message of the node service repeats a tensor since the gradient exchange went (session 27): a test-local
      // one, as protons generates it, keeps repeated nested messages with large bytes covered
      const list: TensorList = { note: 'n'.repeat(i), tensors: Array.from({ length: i % 4 }, () => tensor(rng, SIZES[(i * 7) % SIZES.length]!)) };
      same(TensorList, list, encodeMessage(list, TensorList), list.tensors.map((t) => t.data));
    }
  });

  it("the node's methods encode requests as parts with the same bytes", () => {
    const rng = new Rng(3);
    const req: pb.EchoRequest = { payload: new Uint8Array(0), tensor: tensor(rng, 1 << 20), replyWithTensor: false };
    const parts = methods.echo.request.encodeParts!(req);
    assert.ok(parts.includes(req.tensor!.data));
    assert.deepEqual(Buffer.from(joinParts(parts)), Buffer.from(methods.echo.request.encode(req)));
  });

  it('a message encoded with its frame header (encodeFramed) is byte for byte encodeFrame of its encoding', () => {
    const rng = new Rng(4);
    // body lengths across every varint width of the frame's prefix (1 to 3 bytes here) and its edges
    const sizes = [0, 1, 100, 121, 122, 123, 124, 125, 126, 3072, 16_370, 16_371, 16_372, 16_373, 16_380, 200_000];
    for (const n of sizes) {
      for (const kind of [FRAME_MESSAGE, FRAME_ERROR, FRAME_PART]) {
        const list: TensorList = { note: 'x'.repeat(n % 7), tensors: [tensor(rng, n)] };
        const framed = encodeMessageFramed(TensorList, list, kind);
        const body = encodeMessage(list, TensorList);
        assert.deepEqual(Buffer.from(framed), Buffer.from(encodeFrame(kind, body)), `a body of ${body.byteLength} bytes, kind ${kind}`);
        assert.equal(framedBodyBytes(framed), body.byteLength);
      }
    }
    // the hop's messages through the method's codec: one decode step each way
    const res: pb.InferenceResponse = { requestId: '7', processedTokens: 9, tokens: [], computeUs: 12, hidden: { dtype: pb.DType.FP32, shape: [1, 768], data: bytes(rng, 3072), scale: 0 } };
    const framed = methods.inferenceStream.response.encodeFramed!(res, FRAME_MESSAGE);
    assert.deepEqual(Buffer.from(framed), Buffer.from(encodeFrame(FRAME_MESSAGE, methods.inferenceStream.response.encode(res))));
    assert.throws(() => encodeMessageFramed(TensorList, { note: '', tensors: [] }, 0x80), RangeError);
  });
});

/**
 * src/protocols/rpc/parts.ts: a message encoded as parts is, joined, byte for byte the single-buffer encoding (the
 * wire does not change), and its large bytes fields are the caller's own arrays (no copy).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as pb from '../../../src/protocols/pb/node.js';
import { PART_MIN_BYTES, encodeMessageParts, joinParts, partsLength } from '../../../src/protocols/rpc/parts.js';
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
      const fwd: pb.PipelineForwardRequest = {
        sessionId: 's'.repeat(i),
        requestId: 'é'.repeat(i % 7),
        hidden: tensor(rng, n),
        positionOffset: i * 1000,
        targetSpan: { start: i, end: i + 3 },
        labels: i % 2 === 0 ? tensor(rng, SIZES[(i * 3) % SIZES.length]!) : undefined,
        step: BigInt(i) * 2n ** 40n,
        microBatch: i,
        training: i % 3 === 0,
      };
      assert.deepEqual(Buffer.from(joinParts(encodeMessageParts(pb.PipelineForwardRequest.codec(), fwd))), Buffer.from(pb.PipelineForwardRequest.encode(fwd)));
      const grad: pb.GradientExchangeRequest = {
        round: BigInt(i),
        span: { start: 0, end: 4 },
        modelHash: 'h'.repeat(64),
        innerSteps: 500,
        samples: i,
        compression: 'none',
        tensors: Array.from({ length: i % 4 }, (_, k) => ({ name: `w${k}`, tensor: tensor(rng, SIZES[(i + k) % SIZES.length]!) })),
        timestampMs: BigInt(Date.now()),
        signature: bytes(rng, 64),
      };
      assert.deepEqual(Buffer.from(joinParts(encodeMessageParts(pb.GradientExchangeRequest.codec(), grad))), Buffer.from(pb.GradientExchangeRequest.encode(grad)));
    }
  });

  it("the node's methods encode requests as parts with the same bytes", () => {
    const rng = new Rng(3);
    const req: pb.EchoRequest = { payload: new Uint8Array(0), tensor: tensor(rng, 1 << 20), replyWithTensor: false };
    const parts = methods.echo.request.encodeParts!(req);
    assert.ok(parts.includes(req.tensor!.data));
    assert.deepEqual(Buffer.from(joinParts(parts)), Buffer.from(methods.echo.request.encode(req)));
  });
});

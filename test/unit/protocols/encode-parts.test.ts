/**
 * rpc/method.ts encodeProtoParts: a message encoded in parts (large bytes fields as views of the caller's arrays) is
 * byte for byte what encode() gives, for nested messages, several large fields, empty and small fields.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import * as methods from '../../../src/protocols/methods.js';
import * as pb from '../../../src/protocols/pb/node.js';
import { encodeProtoParts } from '../../../src/protocols/rpc/method.js';
import { fp32Tensor, tensorToPb } from '../../../src/protocols/tensor-wire.js';

const join = (parts: Uint8Array[]): Buffer => Buffer.concat(parts);

describe('encodeProtoParts', () => {
  it('gives the bytes of encode(), large bytes fields as views of their arrays', () => {
    for (const [payloadBytes, elems] of [[0, 0], [10, 3], [70_000, 4], [0, 300_000], [200_000, 300_000], [65_536, 16_384]] as const) {
      const x = new Float32Array(elems);
      for (let i = 0; i < x.length; i++) x[i] = Math.sin(i);
      const req: pb.EchoRequest = { payload: randomBytes(payloadBytes), tensor: elems === 0 ? undefined : tensorToPb(fp32Tensor(x, [elems])), replyWithTensor: true };
      const whole = pb.EchoRequest.encode(req);
      const parts = encodeProtoParts(pb.EchoRequest.codec(), req, 64 * 1024);
      assert.deepEqual(join(parts), Buffer.from(whole), `payload ${payloadBytes}, tensor ${elems}`);
      // the large arrays are sent as they are (no copy), the small ones copied into the parts between them
      const big = [req.payload, req.tensor?.data].filter((a): a is Uint8Array<ArrayBuffer> => a !== undefined && a.byteLength >= 64 * 1024);
      for (const a of big) assert.ok(parts.includes(a), `a ${a.byteLength}-byte field is its own part`);
      assert.equal(parts.length <= 2 * big.length + 1, true);
      // and the method table's codec does the same
      assert.deepEqual(join(methods.echo.request.encodeParts!(req, 64 * 1024)), Buffer.from(whole));
    }
  });

  it('a message with no large field is one buffer', () => {
    const req: pb.EchoRequest = { payload: randomBytes(1000), tensor: undefined, replyWithTensor: false };
    const parts = encodeProtoParts(pb.EchoRequest.codec(), req, 64 * 1024);
    assert.equal(parts.length, 1);
    assert.deepEqual(Buffer.from(parts[0]!), Buffer.from(pb.EchoRequest.encode(req)));
  });
});

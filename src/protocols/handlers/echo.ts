/**
 * echo/1.0.0: returns the payload (and the tensor, when asked). Tests and the benchmark use it; a node registers
 * it only when told to (it would otherwise be a free bandwidth reflector).
 */
import type { EchoRequest, EchoResponse } from '../pb/node.js';
import type { UnaryHandler } from '../rpc/service.js';

export const echoHandler: UnaryHandler<EchoRequest, EchoResponse> = (req) => ({
  payload: req.payload,
  tensor: req.replyWithTensor ? req.tensor : undefined,
  receivedBytes: BigInt(req.payload.byteLength + (req.tensor?.data.byteLength ?? 0)),
});

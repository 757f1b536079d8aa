/**
 * What the reusable-stream integration tests serve (in process and in a child process): a unary method over echo's
 * messages whose handler is steered by the payload's first byte: 0 answers at once, 1 never answers (until its
 * signal fires), 2 answers after 300 ms.
 */
import type { Libp2pNetwork } from '../../../src/p2p/libp2p-node.js';
import * as methods from '../../../src/protocols/methods.js';
import type * as pb from '../../../src/protocols/pb/node.js';
import type { UnaryMethod } from '../../../src/protocols/rpc/method.js';
import { RpcNode, type CallContext } from '../../../src/protocols/rpc/service.js';
import { startLoopbackLibp2p } from '../../utils/network.js';

export const NET = 'muxtest';

export const steered: UnaryMethod<pb.EchoRequest, pb.EchoResponse> = {
  ...methods.echo,
  name: 'mux-test',
  timeoutMs: 60_000,
  maxConcurrent: 256,
  maxConcurrentPerPeer: 128,
  validateResponse: undefined,
};

export function steeredHandler(onStart?: () => void, onAbort?: () => void) {
  return async (req: pb.EchoRequest, ctx: CallContext): Promise<pb.EchoResponse> => {
    onStart?.();
    const mode = req.payload[0];
    if (mode === 1 || mode === 2) {
      await new Promise<void>((resolve, reject) => {
        const t = mode === 2 ? setTimeout(resolve, 300) : undefined;
        ctx.signal.addEventListener('abort', () => {
          clearTimeout(t);
          onAbort?.();
          reject(ctx.signal.reason);
        });
      });
    }
    return { payload: req.payload, receivedBytes: BigInt(req.payload.byteLength) };
  };
}

export function loopbackNet(): Promise<Libp2pNetwork> {
  return startLoopbackLibp2p(NET);
}

export async function steeredServer(opts: { mux?: boolean } = {}): Promise<{ net: Libp2pNetwork; rpc: RpcNode; started: () => number; aborted: () => number }> {
  const net = await loopbackNet();
  const rpc = new RpcNode({ network: net, networkId: NET });
  let started = 0;
  let aborted = 0;
  await rpc.handle(steered, steeredHandler(() => started++, () => aborted++));
  // an older node: no reusable protocol
  if (opts.mux === false) await net.unhandle(rpc.protocolOf(steered) + '/mux/2.0.0');
  return { net, rpc, started: () => started, aborted: () => aborted };
}

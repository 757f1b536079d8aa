/** Two connected TCP sockets on 127.0.0.1 (the lane's unit and attack tests run real sockets under a Lane). */
import { connect, createServer, type Socket } from 'node:net';

export async function socketPair(): Promise<[Socket, Socket]> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const accepted = new Promise<Socket>((r) => server.once('connection', r));
  const c = connect(port, '127.0.0.1');
  await new Promise<void>((r) => c.once('connect', r));
  const s = await accepted;
  server.close();
  return [c, s];
}

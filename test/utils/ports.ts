/** Loopback ports for tests. */
import { createServer } from 'node:net';

/** A 127.0.0.1 port that nothing listens on (bound, then closed): a dial to it is refused at once. */
export async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

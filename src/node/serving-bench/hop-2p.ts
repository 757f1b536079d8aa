/**
 * The serving hop and its raw-TCP baseline with the hop in a CHILD process (issue 8 §5, session 22): the keys
 * `hop_rtt_2p_ms_p50`/`_p99`, `tcp_rtt_2p_ms_p50`, `hop_tcp_ratio_2p`, `hop_cpu_2p_us` of the `serving-hop` section.
 *
 * The section's other keys run both nodes (and the TCP echo) in one process, so every µs of either side's work —
 * the entry's encoding and the hop's decoding, its AEAD, its commitments after the answer — is serialised on one
 * event loop, which real nodes never share. Here the entry (this process) and the hop (hop-2p-server.ts, its own
 * process and event loop, as a node on another machine would be) overlap as they would in a deployment; the raw TCP
 * ping-pong runs between the same two processes (the child echoes the bytes back) so that both figures pay the same
 * process boundary and scheduler. On a loaded 2-core machine the other process's wake-ups cost more than in one
 * process: read it beside the one-process keys, not instead of them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { HOP_LIMIT_DEFAULTS, InferenceHopServer, RemoteHopSession } from '../../protocols/inference.js';
import type { NodeNetwork } from '../network.js';
import { identityHop, net } from './bench-node.js';

/** The child's side: the hop node and a raw TCP echo (every byte back); tells its addresses as one JSON line. */
export async function serveHop2p(networkId: string, C: number, rpcLane: boolean): Promise<{ hello: Hop2pHello; close: () => Promise<void> }> {
  const a = await net(networkId, [], { start: 1, end: 2 }, 'fast', rpcLane);
  const srv = new InferenceHopServer(identityHop(C), HOP_LIMIT_DEFAULTS);
  await srv.register(a.rpc);
  const tcp: Server = createServer((s) => {
    s.setNoDelay(true);
    s.on('error', () => s.destroy());
    s.pipe(s);
  });
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
  const hello: Hop2pHello = { multiaddr: a.p2p.multiaddrs()[0]!, peerId: a.peerId, tcpPort: (tcp.address() as { port: number }).port };
  return {
    hello,
    close: async () => {
      tcp.close();
      await a.stop();
    },
  };
}

export interface Hop2pHello {
  multiaddr: string;
  peerId: string;
  tcpPort: number;
}

export interface Hop2pTimes {
  hop: number[];
  tcp: number[];
  /** CPU per hop step (µs), this process (entry) and the child (hop) together, each with its background. */
  hopCpuUs: number;
  /** The child's share of hopCpuUs. */
  hopServerCpuUs: number;
  onLane: boolean;
}

/** CPU (µs) a process has used, from /proc (clock ticks: coarse, fine over thousands of steps). */
function procCpuUs(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1e6) / 100;
  } catch {
    return NaN;
  }
}

/** One ping-pong of `buf` over `sock` (the peer echoes every byte): resolves when all bytes are back. */
function pingPong(sock: ReturnType<typeof connect>, buf: Buffer): Promise<void> {
  return new Promise<void>((resolve) => {
    let got = 0;
    const on = (d: Buffer): void => {
      got += d.length;
      if (got >= buf.length) {
        sock.off('data', on);
        resolve();
      }
    };
    sock.on('data', on);
    sock.write(buf);
  });
}

/**
 * The hop ([1, C] fp32 steps) and the raw TCP ping-pong of the same bytes, the hop in a child process. Both are
 * warmed (`warm` steps: the JIT of both processes settles; see the section's note on warm-up) and then timed in
 * alternating blocks, so that a swing of the machine's load hits both alike.
 */
export async function hopRtt2p(networkId: string, C: number, reps: number, warm: number, rpcLane: boolean, blocks = 6, childExecArgv: string[] = []): Promise<Hop2pTimes> {
  const here = fileURLToPath(import.meta.url);
  const server = here.replace(/hop-2p\.(ts|js)$/, 'hop-2p-server.$1');
  const child: ChildProcess = spawn(process.execPath, [...childExecArgv, ...(server.endsWith('.ts') ? ['--import', 'tsx'] : []), server, networkId, String(C), rpcLane ? '1' : '0'], { stdio: ['pipe', 'pipe', 'inherit'] });
  let e: NodeNetwork | undefined;
  let sock: ReturnType<typeof connect> | undefined;
  let s: RemoteHopSession | undefined;
  try {
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', resolve);
      child.once('exit', (code) => reject(new Error(`hop-2p server exited (${code})`)));
    });
    const hello = JSON.parse(line) as Hop2pHello;
    e = await net(networkId, [hello.multiaddr], undefined, 'fast', rpcLane);
    s = new RemoteHopSession(e.rpc, hello.peerId, { start: 1, end: 2 }, { id: 'bench-2p', maxLen: 1 << 16, sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 } }, { hiddenSize: C, vocabSize: 10, wire: 'f32' });
    const x = new Float32Array(C).fill(0.5);
    const ac = new AbortController();
    const session = s;
    const step = (): Promise<unknown> => session.step({ hidden: x, chunks: [1] }, ac.signal);
    sock = connect(hello.tcpPort, '127.0.0.1');
    sock.setNoDelay(true);
    const tcpSock = sock;
    await new Promise<void>((r) => tcpSock.once('connect', r));
    const buf = Buffer.alloc(C * 4, 7);
    for (let i = 0; i < warm; i++) {
      await step();
      await pingPong(tcpSock, buf);
    }
    const hop: number[] = [];
    const tcp: number[] = [];
    let cpu = 0;
    let serverCpu = 0;
    const per = Math.max(1, Math.ceil(reps / blocks));
    for (let b = 0; b < blocks; b++) {
      for (const w of b % 2 === 0 ? ['hop', 'tcp'] : ['tcp', 'hop']) {
        const c0 = process.cpuUsage();
        const s0 = procCpuUs(child.pid);
        for (let i = 0; i < per; i++) {
          const t0 = performance.now();
          if (w === 'hop') await step();
          else await pingPong(tcpSock, buf);
          (w === 'hop' ? hop : tcp).push(performance.now() - t0);
        }
        if (w === 'hop') {
          const c = process.cpuUsage(c0);
          const sc = procCpuUs(child.pid) - s0;
          cpu += c.user + c.system + sc;
          serverCpu += sc;
        }
      }
    }
    return { hop, tcp, hopCpuUs: Math.round(cpu / hop.length), hopServerCpuUs: Math.round(serverCpu / hop.length), onLane: (e.lanes?.stats().streamsOut ?? 0) > 0 };
  } finally {
    sock?.destroy();
    s?.close();
    await e?.stop().catch(() => {});
    child.stdin!.end();
    await new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      child.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}

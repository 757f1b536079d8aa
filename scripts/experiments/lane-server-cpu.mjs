#!/usr/bin/env node
// The server side of big lane calls on its own (docs/LIMITS.md "Session 27: big calls on the lane"): spawns the
// p2p-rpc bench's server child (dist/src/protocols/bench-server.js of `--dist`, with `--node-args`, e.g.
// '--cpu-prof --cpu-prof-dir=/tmp/prof'), makes `--calls` echo calls of `--bytes` over a lane (`--inflight` at once)
// after `--warm` warm-up calls, and prints the server's and this process's CPU per call (/proc, clock ticks).
//   node scripts/experiments/lane-server-cpu.mjs --dist dist --bytes 16777216 --calls 40 [--inflight 1]
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

const { values: a } = parseArgs({ options: { dist: { type: 'string', default: 'dist' }, bytes: { type: 'string', default: String(16 << 20) }, calls: { type: 'string', default: '40' }, warm: { type: 'string', default: '5' }, inflight: { type: 'string', default: '1' }, 'node-args': { type: 'string', default: '' } } });
const size = Number(a.bytes), calls = Number(a.calls), inflight = Number(a.inflight);
const R = pathToFileURL(resolve(a.dist)).href + '/src/';
const { createLibp2pNetwork } = await import(R + 'p2p/libp2p-node.js');
const { LaneManager } = await import(R + 'p2p/lane/manager.js');
const { RpcNode } = await import(R + 'protocols/rpc/service.js');
const methods = await import(R + 'protocols/methods.js');
const { fp32Tensor, tensorToPb } = await import(R + 'protocols/tensor-wire.js');
const { protocolPrefix, laneProtocolId } = await import(R + 'protocols/ids.js');
const statOf = (pid) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8'); return f.slice(f.lastIndexOf(')') + 2).split(' '); };
// CPU µs (utime + stime, clock ticks of 10 ms) and minor page faults (fields 14, 15 and 10 of /proc/PID/stat)
const cpuOf = (pid) => { const s = statOf(pid); return (Number(s[11]) + Number(s[12])) * 1e4; };
const faultsOf = (pid) => Number(statOf(pid)[7]);
const child = spawn(process.execPath, [...a['node-args'].split(' ').filter(Boolean), resolve(a.dist, 'src/protocols/bench-server.js')], { stdio: ['pipe', 'pipe', 'inherit'] });
// the child's addresses are its JSON line; anything else (--trace-gc) goes to stderr
const lines = createInterface({ input: child.stdout });
const hello = await new Promise((res) => lines.on('line', (l) => (l.startsWith('{"multiaddr"') ? res(l) : process.stderr.write(l + '\n'))));
const { multiaddr } = JSON.parse(hello);
const net = await createLibp2pNetwork({ privateKey: randomBytes(32), protocolPrefix: protocolPrefix('bench'), listen: [], genesis: true, mdns: false, upnp: false, autonat: false, dcutr: false });
await net.start();
const lanes = new LaneManager(net, laneProtocolId('bench'), { listenHost: '127.0.0.1' });
await lanes.start();
const rpc = new RpcNode({ network: net, networkId: 'bench', lanes });
const peer = await net.dial(multiaddr);
const x = new Float32Array(size / 4);
for (let i = 0; i < x.length; i += 1024) x[i] = i;
const req = { payload: new Uint8Array(0), tensor: tensorToPb(fp32Tensor(x, [size / 4])), replyWithTensor: false };
const call = async () => { const r = await rpc.call(peer, methods.echo, req); if (r.receivedBytes !== BigInt(size)) throw new Error('short'); };
for (let i = 0; i < Number(a.warm); i++) await call();
const s0 = cpuOf(child.pid), f0 = faultsOf(child.pid), c0 = process.cpuUsage(), t0 = performance.now();
await Promise.all(Array.from({ length: inflight }, async () => { for (let i = 0; i < Math.ceil(calls / inflight); i++) await call(); }));
const ms = performance.now() - t0, c = process.cpuUsage(c0), n = inflight * Math.ceil(calls / inflight);
const srv = (cpuOf(child.pid) - s0) / n, faults = (faultsOf(child.pid) - f0) / n;
console.log(JSON.stringify({ bytes: size, calls: n, inflight, mibS: +((n * size) / (1 << 20) / (ms / 1000)).toFixed(1), serverUsPerCall: Math.round(srv), serverFaultsPerCall: Math.round(faults), clientUsPerCall: Math.round((c.user + c.system) / n), lanesUp: lanes.stats().lanesUp, load: loadavg().map((v) => +v.toFixed(2)) }));
await rpc.close(); await lanes.stop(); await net.stop();
child.stdin.end();
await new Promise((r) => child.once('exit', r));
process.exit(0);

/**
 * `neuroshard swarm --nodes N`: a local network of N nodes in one command. Node 1 founds the network (and trains
 * the whole model unless --no-train, and then so do the joiners: they run the outer rounds with it); nodes 2..N
 * join through it one after another and the layer pool chooses
 * their spans (no `--span`): each offers memory for about 2L/(N−1) layers (`--memory-mb` overrides), so together
 * they hold the model twice and the dashboard's coverage view shows the pool splitting it. Every node listens on 127.0.0.1 with free ports, keeps its state
 * in `<dir>/node-<i>` (a rerun reuses the keys and checkpoints) and its output in `<dir>/node-<i>/logs/start.out`.
 * The command prints each node's dashboard URL and runs until Ctrl-C, which stops every node cleanly (SIGTERM, then
 * a wait), and exits 0 when all stopped cleanly.
 *
 * The nodes run in process groups of their own, so a terminal's Ctrl-C reaches only this command, which then stops
 * them in order; if this command dies, its exit handler still sends them SIGTERM.
 */
import { join } from 'node:path';
import type { LlamaConfig } from '../../model/config.js';
import { bundledGenesis } from '../../node/genesis.js';
import { loadOptions } from '../../node/options.js';
import { extraWeightBytes, layerMb } from '../../pool/capacity.js';
import { intFlag, stringFlag, UsageError, type Command } from '../command.js';
import { spawnNode, waitNodeUp, type SpawnedNode } from '../node-process.js';
import { ProgressBar } from '../progress.js';
import { spanText } from '../../util/span-text.js';

interface SwarmNode {
  index: number;
  dataDir: string;
  pid: number;
  peerId: string;
  api: string;
  dashboard: string;
  span: { start: number; end: number } | null;
}

/**
 * The `--memory-mb` each of nodes 2..N offers by default: room for ceil(2L/(N−1)) layers (at most L) plus the
 * embedding and head, so that the joiners alone can hold every layer twice (MIN_REPLICAS) and the pool has to
 * split the model between them once there are more than two.
 */
export function joinerMemoryMb(config: LlamaConfig, joiners: number): number {
  const L = config.num_hidden_layers;
  const layers = joiners <= 0 ? L : Math.min(L, Math.ceil((2 * L) / joiners));
  return Math.ceil(extraWeightBytes(config) / (1 << 20)) + layers * layerMb(config) + 1;
}

function bootstrapAddr(addresses: string[], peerId: string): string {
  const tcp = addresses.find((a) => a.includes('/tcp/') && !a.includes('/ws') && !a.includes('/p2p-circuit')) ?? addresses[0];
  if (tcp === undefined) throw new UsageError('the first node announced no address');
  return tcp.includes('/p2p/') ? tcp : `${tcp}/p2p/${peerId}`;
}

export const swarmCommand: Command = {
  name: 'swarm',
  summary: 'run a local network of N nodes on this machine, printing each dashboard URL; Ctrl-C stops them all',
  flags: {
    nodes: { type: 'string', value: 'N', description: 'how many nodes (default 3, at most 16)' },
    dir: { type: 'string', value: 'DIR', description: 'where the nodes keep their state (default <data-dir>/swarm)' },
    train: { type: 'boolean', description: 'the first node trains the model (default on; --no-train turns it off)' },
    'train-steps': { type: 'string', value: 'N', description: "the first node's target training step" },
    'memory-mb': { type: 'string', value: 'MB', description: "each joining node's --memory-mb (default: room for 2L/(N-1) layers, so the pool splits the model)" },
    'wait-s': { type: 'string', value: 'S', description: 'how long each node may take to come up (default 300)' },
    json: { type: 'boolean', description: 'print {"nodes": [{index, pid, peerId, dashboard, api, dataDir, span}]} once all are up' },
  },
  async run(flags, positionals, io) {
    if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
    const n = intFlag(flags, 'nodes', 3, 1, 16);
    const waitMs = intFlag(flags, 'wait-s', 300, 1, 3600) * 1000;
    const trainSteps = flags['train-steps'] === undefined ? undefined : String(intFlag(flags, 'train-steps', 0, 0, 1_000_000_000));
    const opts = loadOptions({ flags: { dataDir: stringFlag(flags, 'data-dir') } });
    const dir = stringFlag(flags, 'dir') ?? join(opts.dataDir, 'swarm');
    const memoryMb = flags['memory-mb'] === undefined ? joinerMemoryMb(bundledGenesis().config, n - 1) : intFlag(flags, 'memory-mb', 0, 1, 1 << 30);
    const common = ['--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', '0', '--no-mdns', '--no-upnp'];
    if (typeof flags['log-level'] === 'string') common.push('--log-level', flags['log-level']);
    if (typeof flags.threads === 'string') common.push('--threads', flags.threads);

    const procs: SpawnedNode[] = [];
    const killAll = (sig: NodeJS.Signals): void => {
      for (const p of procs) {
        if (p.child.exitCode !== null || p.child.signalCode !== null || p.child.pid === undefined) continue;
        try {
          process.kill(-p.child.pid, sig);
        } catch {
          // gone already
        }
      }
    };
    const onExit = (): void => killAll('SIGTERM');
    process.on('exit', onExit);
    const bar = new ProgressBar(io, 'nodes up', n);
    const up: SwarmNode[] = [];
    const addresses = new Map<number, string[]>();
  const start = async (i: number, extra: string[]): Promise<SwarmNode> => {
      const dataDir = join(dir, `node-${i + 1}`);
      const p = spawnNode(['--data-dir', dataDir, ...common, ...extra], join(dataDir, 'logs', 'start.out'), { detached: true });
      procs.push(p);
      const { apiPort, status } = await waitNodeUp(dataDir, p, waitMs, io.signal, true);
      addresses.set(i, status.addresses);
      const api = `http://127.0.0.1:${apiPort}`;
      const node: SwarmNode = { index: i + 1, dataDir, pid: p.child.pid ?? 0, peerId: status.peerId, api, dashboard: `${api}/`, span: status.span };
      up.push(node);
      bar.update(up.length);
      if (flags.json !== true) {
        io.stderr(`node ${node.index}: dashboard ${node.dashboard}  peer ${node.peerId.slice(0, 16)}… layers ${spanText(node.span)}  (${dataDir})\n`);
      }
      return node;
    };
    let failed = false;
    try {
      const trainFlags = flags.train === false ? ['--no-train'] : trainSteps === undefined ? [] : ['--train-steps', trainSteps];
      const first = await start(0, ['--genesis', ...trainFlags]);
      const boot = bootstrapAddr(addresses.get(0) ?? [], first.peerId);
      // one after another: each joiner's placement then sees the spans of the ones before it (started together,
      // they would all choose on the first node's view alone and take the same layers)
      // The joiners train when node 1 does: a copy of a trainer's layers that does not train is stale from its next
      // step, so the next joiner found two holders of layer 0 that disagree and never came up (session 25's
      // walkthrough, docs/LIMITS.md). Training, they run the outer rounds with node 1 and serve closed rounds that
      // every holder keeps (pool/transfer.ts roundTarget), as the chaos run's trainers do.
      for (let j = 1; j < n; j++) await start(j, ['--bootstrap', boot, ...(flags.train === false ? ['--no-train'] : trainFlags), '--memory-mb', String(memoryMb)]);
      bar.done();
      up.sort((a, b) => a.index - b.index);
      if (flags.json === true) io.stdout(JSON.stringify({ nodes: up }) + '\n');
      else io.stdout(up.map((u) => `node ${u.index}: ${u.dashboard}`).join('\n') + '\nall nodes up; Ctrl-C stops them all\n');
      // run until Ctrl-C, or until every node has exited by itself
      await new Promise<void>((resolve) => {
        if (io.signal.aborted) return resolve();
        io.signal.addEventListener('abort', () => resolve(), { once: true });
        void Promise.all(procs.map((p) => p.exited)).then(() => resolve());
      });
    } catch (e) {
      failed = true;
      bar.done();
      if (!io.signal.aborted) io.stderr(`swarm: ${(e as Error).message}\n`);
    }
    if (flags.json !== true) io.stderr(`stopping ${procs.length} node(s)…\n`);
    killAll('SIGTERM');
    const codes = await Promise.all(procs.map((p) => p.exited));
    process.off('exit', onExit);
    const clean = codes.every((c) => c === 0);
    if (flags.json !== true) io.stderr(clean ? 'all nodes stopped\n' : `nodes stopped; exit codes ${codes.join(', ')}\n`);
    return failed && !io.signal.aborted ? 1 : clean ? 0 : 1;
  },
};

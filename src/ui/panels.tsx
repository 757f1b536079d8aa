/** The dashboard's panels: each takes the current model (and nothing else) and renders one card. */
import { useLayoutEffect, useMemo, useRef } from 'preact/hooks';
import type { DashboardSnapshot, PeerView } from '../api/dashboard-types.js';
import { Chart } from './chart.js';
import { ago, bytes, duration, int, neuro, num, short, span } from './format.js';

type M = DashboardSnapshot;

function Row({ k, v, mono, testId }: { k: string; v: string; mono?: boolean; testId?: string }) {
  return (
    <div class="row">
      <span class="k">{k}</span>
      <span class={mono === true ? 'v mono' : 'v'} title={v} data-testid={testId}>
        {v}
      </span>
    </div>
  );
}

export function NodePanel({ m }: { m: M }) {
  const n = m.node;
  const memUsed = n.memory.systemTotalBytes - n.memory.systemFreeBytes;
  return (
    <section class="card" data-testid="node-panel">
      <h2>This node</h2>
      <Row k="peer id" v={n.peerId} mono testId="node-peer-id" />
      <Row k="wallet" v={n.address} mono />
      <Row k="network" v={n.networkId ?? '—'} mono />
      <Row k="layers held" v={`${span(n.span)} of ${n.totalLayers}`} testId="node-span" />
      <Row k="engine" v={n.engine} />
      <Row k="memory" v={`${bytes(n.memory.rssBytes)} process · ${bytes(memUsed)} / ${bytes(n.memory.systemTotalBytes)} system`} />
      <Row k="uptime" v={duration(n.uptimeMs)} />
      <Row k="version" v={n.version} />
      <Row k="listening" v={n.addresses[0] ?? '—'} mono />
    </section>
  );
}

export function TrainingPanel({ m }: { m: M }) {
  const t = m.training;
  // loss and validation loss on one step axis: uPlot wants one x array, so the two series are merged by step
  const lossData = useMemo(() => {
    const byStep = new Map<number, [number | null, number | null]>();
    for (const p of m.trainPoints) byStep.set(p.step, [p.loss, byStep.get(p.step)?.[1] ?? null]);
    for (const p of m.evalPoints) byStep.set(p.step, [byStep.get(p.step)?.[0] ?? null, p.loss]);
    const steps = [...byStep.keys()].sort((a, b) => a - b);
    return [steps, steps.map((s) => byStep.get(s)![0]), steps.map((s) => byStep.get(s)![1])];
  }, [m.trainPoints, m.evalPoints]);
  // validation runs every few hundred steps: say which step the shown value is from
  const lastEvalStep = m.evalPoints.length === 0 ? undefined : m.evalPoints[m.evalPoints.length - 1]!.step;
  const speedData = useMemo(() => [m.trainPoints.map((p) => p.step), m.trainPoints.map((p) => p.tokensPerS)], [m.trainPoints]);
  return (
    <section class="card wide" data-testid="training-panel">
      <h2>
        Training <span class={t.active ? 'pill ok' : 'pill'}>{t.active ? 'running' : 'idle'}</span>
      </h2>
      <div class="stats">
        <Stat k="step" v={t.targetStep === null ? int(t.step) : `${int(t.step)} / ${int(t.targetStep)}`} testId="train-step" />
        <Stat k="loss" v={num(t.lastLoss)} />
        <Stat k={lastEvalStep === undefined ? 'val loss' : `val loss (step ${int(lastEvalStep)})`} v={num(t.lastValLoss)} />
        <Stat k="tokens/s" v={int(t.tokensPerS)} />
        <Stat k="tokens" v={int(t.tokens)} />
        <Stat k="outer rounds" v={t.outerRounds === null ? '—' : int(t.outerRounds)} />
        <Stat k="unigram baseline" v={num(t.unigramBaseline)} />
        <Stat k="parameters" v={t.paramCount === null ? '—' : `${(t.paramCount / 1e6).toFixed(2)} M`} />
      </div>
      {m.trainPoints.length === 0 && m.evalPoints.length === 0 ? (
        // two empty chart frames told an operator nothing: say why there is no curve instead
        <p class="note" data-testid="no-training">
          {t.active
            ? 'waiting for the first training step…'
            : 'This node is not training: it was started with --no-train, or it holds only part of the model (the node holding layer 0 drives the training chain and shows its curves).'}
        </p>
      ) : (
      <div class="charts">
        <div>
          <h3>loss (nats/token)</h3>
          <Chart testId="loss-chart" data={lossData} xLabel="step" series={[{ label: 'train', color: '#4fa3ff' }, { label: 'validation', color: '#ffb547', points: true }]} />
        </div>
        <div>
          <h3>throughput</h3>
          <Chart testId="speed-chart" data={speedData} xLabel="step" series={[{ label: 'tokens/s', color: '#5fd38d' }]} />
        </div>
      </div>
      )}
    </section>
  );
}

function Stat({ k, v, testId }: { k: string; v: string; testId?: string }) {
  return (
    <div class="stat">
      <div class="stat-v" data-testid={testId}>
        {v}
      </div>
      <div class="stat-k">{k}</div>
    </div>
  );
}

export function CoveragePanel({ m }: { m: M }) {
  const c = m.coverage;
  const gaps = c.replicas.filter((r) => r === 0).length;
  return (
    <section class="card wide" data-testid="coverage-panel">
      <h2>
        Layer coverage <span class={gaps > 0 ? 'pill bad' : 'pill ok'}>{gaps > 0 ? `${gaps} gap${gaps > 1 ? 's' : ''}` : 'covered'}</span>
      </h2>
      <div class="layers" data-testid="coverage" data-replicas={c.replicas.join(',')}>
        {c.replicas.map((r, i) => (
          <div key={i} class={r === 0 ? 'layer gap' : r === 1 ? 'layer one' : 'layer many'} title={`layer ${i}: ${r} holder${r === 1 ? '' : 's'}`}>
            <div class="layer-i">L{i}</div>
            <div class="layer-r">{r}×</div>
          </div>
        ))}
      </div>
      <p class="note">
        replicas per layer among this node and its alive peers ({c.source === 'pool' ? 'from the layer pool' : 'from heartbeats'}); red: nobody holds it
      </p>
    </section>
  );
}

const LIVE_COLOR: Record<string, string> = { alive: '#5fd38d', stale: '#ffb547', dead: '#ff5c5c', unknown: '#7a8699' };

export function NetworkPanel({ m }: { m: M }) {
  const peers = m.peers;
  const W = 320;
  const H = 220;
  const cx = W / 2;
  const cy = H / 2;
  const R = 85;
  const pos = (i: number): [number, number] => {
    const a = (2 * Math.PI * i) / Math.max(1, peers.length) - Math.PI / 2;
    return [cx + R * Math.cos(a), cy + R * Math.sin(a)];
  };
  return (
    <section class="card" data-testid="network-panel">
      <h2>
        Network <span class="pill">{peers.filter((p) => p.liveness === 'alive').length} alive / {peers.length} known</span>
      </h2>
      {peers.length === 0 ? (
        <p class="note" data-testid="no-peers-hint">
          This node is alone. Other nodes join it with <code>neuroshard start --bootstrap ADDR</code> (ADDR: its listening address above); <code>neuroshard swarm --nodes 3</code> runs a local network.
        </p>
      ) : null}
      {peers.length === 0 ? null : (
      <svg viewBox={`0 0 ${W} ${H}`} class="netmap" role="img" aria-label="network map">
        {peers.map((p, i) => {
          const [x, y] = pos(i);
          return <line key={`l${p.peerId}`} x1={cx} y1={cy} x2={x} y2={y} class={p.connected ? 'link on' : 'link'} />;
        })}
        <circle cx={cx} cy={cy} r={14} class="self" />
        <text x={cx} y={cy + 28} class="lbl" text-anchor="middle">
          this node ({span(m.node.span)})
        </text>
        {peers.map((p, i) => {
          const [x, y] = pos(i);
          return (
            <g key={p.peerId}>
              <circle cx={x} cy={y} r={9} fill={LIVE_COLOR[p.liveness]} />
              <text x={x} y={y + 20} class="lbl" text-anchor="middle">
                {span(p.span)}
              </text>
            </g>
          );
        })}
      </svg>
      )}
      <table class="tbl" data-testid="peers">
        <thead>
          <tr>
            <th>peer</th>
            <th>layers</th>
            <th>state</th>
            <th>seen</th>
          </tr>
        </thead>
        <tbody>
          {peers.length === 0 ? (
            <tr>
              <td colSpan={4} class="muted">
                no peers yet
              </td>
            </tr>
          ) : (
            peers.map((p: PeerView) => (
              <tr key={p.peerId}>
                <td class="mono" title={p.peerId}>
                  {short(p.peerId, 12)} {p.connected ? '⇄' : ''}
                </td>
                <td>{span(p.span)}</td>
                <td>
                  <span class="dot" style={{ background: LIVE_COLOR[p.liveness] }} /> {p.liveness}
                </td>
                <td>{ago(p.lastSeenMs, m.at)}</td>
              </tr>
            ))
          )}
        </tbody>
      </table>
    </section>
  );
}

export function WalletPanel({ m }: { m: M }) {
  const w = m.wallet;
  if (w === null) {
    return (
      <section class="card" data-testid="wallet-panel">
        <h2>Wallet</h2>
        <p class="muted">the ledger is starting…</p>
      </section>
    );
  }
  return (
    <section class="card" data-testid="wallet-panel">
      <h2>Wallet</h2>
      <div class="stats">
        <Stat k="balance (NEURO)" v={neuro(w.balance)} testId="wallet-balance" />
        <Stat k="staked" v={neuro(w.staked)} />
        <Stat k="proof rewards" v={neuro(w.rewards)} />
        <Stat k="proofs this run" v={String(w.proofs.emitted)} />
        <Stat k="market price / M tokens" v={m.market === null || m.market === undefined ? '—' : neuro(m.market.pricePerMillion)} testId="market-price" />
      </div>
      <Row k="address" v={w.address} mono />
      <Row k="ledger" v={`${int(w.ledger.events)} events · minted ${neuro(w.ledger.minted)} · burned ${neuro(w.ledger.burned)}`} />
      <Row k="state hash" v={w.ledger.stateHash} mono />
      <table class="tbl">
        <thead>
          <tr>
            <th>event</th>
            <th>amount</th>
            <th>status</th>
            <th>when</th>
          </tr>
        </thead>
        <tbody>
          {w.history.length === 0 ? (
            <tr>
              <td colSpan={4} class="muted">
                no events yet (a proof of work is signed once a minute)
              </td>
            </tr>
          ) : (
            w.history.slice(0, 10).map((h, i) => (
              <tr key={h.id ?? i}>
                <td>{h.kind}</td>
                <td>{h.amount === undefined ? '' : neuro(h.amount)}</td>
                <td>{h.status}</td>
                <td>{h.timestampMs === undefined ? '' : ago(h.timestampMs, m.at)}</td>
              </tr>
            ))
          )}
        </tbody>
      </table>
    </section>
  );
}

export function LogsPanel({ m }: { m: M }) {
  // the newest lines are at the bottom: keep the box scrolled there unless the reader has scrolled up to read
  const box = useRef<HTMLPreElement>(null);
  const pinned = useRef(true);
  useLayoutEffect(() => {
    const el = box.current;
    if (el !== null && pinned.current) el.scrollTop = el.scrollHeight;
  }, [m.logs]);
  const onScroll = (): void => {
    const el = box.current;
    if (el !== null) pinned.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
  };
  return (
    <section class="card wide" data-testid="logs-panel">
      <h2>Recent logs</h2>
      <pre class="logs" data-testid="logs" ref={box} onScroll={onScroll}>
        {m.logs.length === 0 ? 'no log lines yet' : m.logs.slice(-150).map((l) => l.line).join('\n')}
      </pre>
    </section>
  );
}

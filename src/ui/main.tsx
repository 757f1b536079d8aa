/** The dashboard's entry: one live model from the node's event stream, rendered as panels. */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { ChatPanel } from './chat.js';
import { subscribe, type ConnState, type Model } from './feed.js';
import { short } from './format.js';
import { CoveragePanel, LogsPanel, NetworkPanel, NodePanel, TrainingPanel, WalletPanel } from './panels.js';

function App() {
  const [model, setModel] = useState<Model | null>(null);
  const [conn, setConn] = useState<ConnState>('connecting');
  useEffect(() => subscribe(setModel, setConn), []);
  return (
    <>
      <header>
        <div class="brand">
          <span class="logo">◆</span> NeuroShard
        </div>
        <div class="hdr-node mono">{model === null ? '' : `${short(model.node.peerId, 14)} · ${model.node.networkId ?? ''}`}</div>
        <div class={`conn ${conn}`} data-testid="conn">
          {conn === 'live' ? '● live' : conn === 'connecting' ? '○ connecting' : '○ reconnecting'}
        </div>
      </header>
      {model === null ? (
        <main>
          <p class="muted">connecting to the node…</p>
        </main>
      ) : (
        <main class="grid">
          <NodePanel m={model} />
          <NetworkPanel m={model} />
          <CoveragePanel m={model} />
          <TrainingPanel m={model} />
          <WalletPanel m={model} />
          <ChatPanel />
          <LogsPanel m={model} />
        </main>
      )}
    </>
  );
}

render(<App />, document.getElementById('app')!);

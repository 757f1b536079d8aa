/** The chat playground: a prompt, the sampling settings, and the reply streamed token by token from POST /api/generate. */
import { useRef, useState } from 'preact/hooks';
import { GenerateStreamError, streamGenerate } from '../api/generate-client.js';

interface Turn {
  prompt: string;
  reply: string;
  state: 'streaming' | 'done' | 'error';
  note?: string;
}

export function ChatPanel() {
  const [prompt, setPrompt] = useState('The history of the');
  const [maxTokens, setMaxTokens] = useState(48);
  const [temperature, setTemperature] = useState(0.8);
  const [topK, setTopK] = useState(50);
  const [topP, setTopP] = useState(0.9);
  const [seed, setSeed] = useState(0);
  const [turns, setTurns] = useState<Turn[]>([]);
  const abort = useRef<AbortController | null>(null);
  const busy = turns.length > 0 && turns[turns.length - 1]!.state === 'streaming';

  const update = (f: (t: Turn) => Turn): void => setTurns((ts) => ts.slice(0, -1).concat(f(ts[ts.length - 1]!)));

  const send = async (e: Event): Promise<void> => {
    e.preventDefault();
    if (busy || prompt.trim() === '') return;
    const ac = new AbortController();
    abort.current = ac;
    setTurns((ts) => ts.concat({ prompt, reply: '', state: 'streaming' }).slice(-20));
    const started = performance.now();
    let count = 0;
    try {
      const done = await streamGenerate(
        '',
        { prompt, max_tokens: maxTokens, temperature, top_k: topK, top_p: topP, seed },
        (text) => {
          count++;
          update((t) => ({ ...t, reply: t.reply + text }));
        },
        ac.signal,
      );
      const s = (performance.now() - started) / 1000;
      update((t) => ({ ...t, reply: done.text, state: 'done', note: `${done.tokens.length} tokens · ${(done.tokens.length / s).toFixed(1)} tok/s · ${done.finish_reason}` }));
    } catch (err) {
      const msg = ac.signal.aborted ? 'stopped' : err instanceof GenerateStreamError ? `${err.code}: ${err.message}` : String(err);
      update((t) => ({ ...t, state: ac.signal.aborted ? 'done' : 'error', note: `${msg}${count > 0 ? ` after ${count} tokens` : ''}` }));
    }
  };

  return (
    <section class="card" data-testid="chat-panel">
      <h2>Chat playground</h2>
      <div class="chat-log" data-testid="chat-log">
        {turns.length === 0 ? <p class="muted">Send a prompt: the node continues it, streaming each token as it is sampled.</p> : null}
        {turns.map((t, i) => (
          <div key={i} class="turn">
            <div class="you">{t.prompt}</div>
            <div class={`bot ${t.state}`} data-testid={i === turns.length - 1 ? 'chat-reply' : undefined} data-state={t.state}>
              {t.reply}
              {t.state === 'streaming' ? <span class="cursor">▍</span> : null}
            </div>
            {t.note !== undefined ? <div class="note">{t.note}</div> : null}
          </div>
        ))}
      </div>
      <form class="chat-form" onSubmit={(e) => void send(e)}>
        <textarea data-testid="chat-input" value={prompt} rows={2} onInput={(e) => setPrompt((e.target as HTMLTextAreaElement).value)} placeholder="a prompt to continue" />
        <div class="settings">
          <Num label="max tokens" value={maxTokens} min={1} max={2048} step={1} set={setMaxTokens} testId="chat-max-tokens" />
          <Num label="temperature" value={temperature} min={0} max={2} step={0.05} set={setTemperature} testId="chat-temperature" />
          <Num label="top-k" value={topK} min={0} max={4096} step={1} set={setTopK} />
          <Num label="top-p" value={topP} min={0.01} max={1} step={0.01} set={setTopP} />
          <Num label="seed" value={seed} min={0} max={4294967295} step={1} set={setSeed} />
          {busy ? (
            <button type="button" class="btn stop" onClick={() => abort.current?.abort()}>
              stop
            </button>
          ) : (
            <button type="submit" class="btn" data-testid="chat-send">
              send
            </button>
          )}
        </div>
      </form>
    </section>
  );
}

function Num(p: { label: string; value: number; min: number; max: number; step: number; set: (v: number) => void; testId?: string }) {
  return (
    <label class="num">
      <span>{p.label}</span>
      <input
        type="number"
        data-testid={p.testId}
        value={p.value}
        min={p.min}
        max={p.max}
        step={p.step}
        onInput={(e) => {
          const v = Number((e.target as HTMLInputElement).value);
          if (Number.isFinite(v)) p.set(Math.min(p.max, Math.max(p.min, v)));
        }}
      />
    </label>
  );
}

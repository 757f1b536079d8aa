/**
 * The dashboard's model of the node: the state from GET /api/events (one `snapshot`, then a `tick` a second),
 * merged by a pure reducer so the series stay bounded and ticks that overlap the snapshot are not counted twice.
 */
import type { DashboardSnapshot, DashboardTick, EvalPoint, LogLine, TrainPoint } from '../api/dashboard-types.js';

export const MAX_POINTS = 4096;
export const MAX_LOGS = 500;

export type Model = DashboardSnapshot;

function appendAfter<T extends { step: number }>(old: T[], add: T[], max: number): T[] {
  const last = old.length > 0 ? old[old.length - 1]!.step : -Infinity;
  const fresh = add.filter((p) => p.step > last);
  if (fresh.length === 0) return old;
  const out = old.concat(fresh);
  return out.length > max ? out.slice(out.length - max) : out;
}

function appendLogs(old: LogLine[], add: LogLine[]): LogLine[] {
  const last = old.length > 0 ? old[old.length - 1]!.seq : -1;
  const fresh = add.filter((l) => l.seq > last);
  if (fresh.length === 0) return old;
  const out = old.concat(fresh);
  return out.length > MAX_LOGS ? out.slice(out.length - MAX_LOGS) : out;
}

export function applyTick(m: Model, t: DashboardTick): Model {
  const trainPoints: TrainPoint[] = t.resetSeries ? t.trainPoints : appendAfter(m.trainPoints, t.trainPoints, MAX_POINTS);
  const evalPoints: EvalPoint[] = t.resetSeries ? t.evalPoints : appendAfter(m.evalPoints, t.evalPoints, MAX_POINTS);
  const { resetSeries: _r, ...rest } = t;
  return { ...rest, trainPoints, evalPoints, logs: appendLogs(m.logs, t.logs) };
}

export type ConnState = 'connecting' | 'live' | 'reconnecting';

/** Opens the event stream; EventSource reconnects by itself (and the node sends a fresh snapshot). */
export function subscribe(onModel: (f: (m: Model | null) => Model | null) => void, onConn: (c: ConnState) => void): () => void {
  const es = new EventSource('/api/events');
  es.addEventListener('snapshot', (e) => {
    const snap = JSON.parse((e as MessageEvent<string>).data) as DashboardSnapshot;
    onModel(() => snap);
    onConn('live');
  });
  es.addEventListener('tick', (e) => {
    const tick = JSON.parse((e as MessageEvent<string>).data) as DashboardTick;
    onModel((m) => (m === null ? null : applyTick(m, tick)));
  });
  es.onerror = () => onConn('reconnecting');
  return () => es.close();
}

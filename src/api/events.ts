/**
 * GET /api/events: the dashboard's live feed, as Server-Sent Events.
 *
 * A subscriber first gets one `snapshot` event (everything the dashboard shows, series included), then one `tick`
 * event per second holding the current state plus only what is new since the last tick (training points, logs).
 * The node builds each tick once and writes the same bytes to every subscriber, so N open dashboards cost one
 * state read per second, not N polls; the timer runs only while someone listens.
 *
 * Quotas (docs/LIMITS.md "## Local API"): at most `maxSubscribers` streams at once (the next gets 429), a subscriber
 * whose socket has more than `maxBufferedBytes` unsent is dropped (a stalled tab cannot pin memory), and every
 * stream ends after `maxStreamMs` (the browser's EventSource reconnects by itself and gets a fresh snapshot).
 *
 * This module defines the shapes (the UI imports them as types) and the route; the node fills a DashboardFeed
 * (src/node/telemetry.ts).
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { DashboardFeed } from './dashboard-types.js';

export type * from './dashboard-types.js';

export interface EventStreamOptions {
  intervalMs: number;
  maxSubscribers: number;
  maxBufferedBytes: number;
  maxStreamMs: number;
}

export const EVENT_STREAM_DEFAULTS: EventStreamOptions = {
  intervalMs: 1000,
  maxSubscribers: 16,
  maxBufferedBytes: 1 << 20,
  maxStreamMs: 30 * 60_000,
};

type SendError = (reply: FastifyReply, status: number, code: string, message: string) => FastifyReply;

interface Subscriber {
  reply: FastifyReply;
  end: () => void;
}

/** Serialises one SSE event (data is one JSON line, so no newline can split it). */
export function sseEvent(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

export function registerEventRoutes(app: FastifyInstance, feed: DashboardFeed, sendError: SendError, opts: Partial<EventStreamOptions> = {}): { subscribers: () => number } {
  const o = { ...EVENT_STREAM_DEFAULTS, ...opts };
  const subs = new Set<Subscriber>();
  let timer: NodeJS.Timeout | undefined;
  let ticking = false;

  const broadcast = (chunk: string): void => {
    for (const s of subs) {
      const raw = s.reply.raw;
      if (raw.writableLength > o.maxBufferedBytes) {
        s.end(); // too slow: drop it rather than buffer without bound
        continue;
      }
      raw.write(chunk);
    }
  };
  const onTimer = async (): Promise<void> => {
    if (ticking) return; // a slow tick is skipped, not queued
    ticking = true;
    try {
      broadcast(sseEvent('tick', await feed.tick()));
    } catch {
      // a failed state read skips one tick; the next one carries the state again
    } finally {
      ticking = false;
    }
  };
  const startTimer = (): void => {
    if (timer !== undefined) return;
    timer = setInterval(() => void onTimer(), o.intervalMs);
    timer.unref();
  };
  const stopTimerIfIdle = (): void => {
    if (subs.size > 0 || timer === undefined) return;
    clearInterval(timer);
    timer = undefined;
  };

  app.addHook('onClose', async () => {
    for (const s of [...subs]) s.end();
    if (timer !== undefined) clearInterval(timer);
    timer = undefined;
  });

  app.get('/api/events', async (req, reply) => {
    if (subs.size >= o.maxSubscribers) return sendError(reply, 429, 'too_many_subscribers', `at most ${o.maxSubscribers} event streams at once`);
    const snapshot = await feed.snapshot();
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-content-type-options': 'nosniff',
    });
    // EventSource waits this long before reconnecting after the stream ends
    raw.write(`retry: 2000\n\n`);
    raw.write(sseEvent('snapshot', snapshot));
    let ended = false;
    const lifetime = setTimeout(() => sub.end(), o.maxStreamMs);
    lifetime.unref();
    const sub: Subscriber = {
      reply,
      end: () => {
        if (ended) return;
        ended = true;
        clearTimeout(lifetime);
        subs.delete(sub);
        raw.end();
        stopTimerIfIdle();
      },
    };
    subs.add(sub);
    req.raw.on('close', () => sub.end());
    raw.on('error', () => sub.end());
    startTimer();
  });
  return { subscribers: () => subs.size };
}

/**
 * A streaming client of POST /api/generate (Server-Sent Events over fetch), for the dashboard's chat playground
 * and `neuroshard chat`. Browser-safe: fetch, ReadableStream and TextDecoder only.
 *
 * The route streams `data: {"route": …}`, one `data: {"token", "text"}` per token, then `data: {"done": true,
 * "text", "tokens", "finish_reason", …}`, or `data: {"error": {"code", "message"}}` (docs/PROTOCOL.md, api/generate.ts).
 */

export interface GenerateRequest {
  prompt: string;
  max_tokens?: number;
  temperature?: number;
  top_k?: number;
  top_p?: number;
  seed?: number;
  stop?: string[];
}

export interface GenerateDone {
  text: string;
  tokens: number[];
  finish_reason: string;
}

export class GenerateStreamError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'GenerateStreamError';
  }
}

/** Longest SSE line accepted (a token's text is short; the done event carries the whole text). */
const MAX_LINE_CHARS = 4 << 20;

/**
 * Sends the request and calls `onText` with each token's text as it arrives; resolves with the done event. Rejects
 * with a GenerateStreamError for an HTTP error, an error event or a stream that ends without `done`.
 */
export async function streamGenerate(baseUrl: string, req: GenerateRequest, onText: (text: string) => void, signal?: AbortSignal): Promise<GenerateDone> {
  const res = await fetch(`${baseUrl}/api/generate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify({ ...req, stream: true }),
    ...(signal === undefined ? {} : { signal }),
  });
  if (!res.ok || res.body === null) {
    let code = 'http_error';
    let message = `HTTP ${res.status}`;
    try {
      const j = (await res.json()) as { error?: { code?: string; message?: string } };
      if (typeof j.error?.code === 'string') code = j.error.code;
      if (typeof j.error?.message === 'string') message = j.error.message.slice(0, 500);
    } catch {
      // not JSON
    }
    throw new GenerateStreamError(code, message, res.status);
  }
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  let result: GenerateDone | undefined;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    if (buf.length > MAX_LINE_CHARS) {
      await reader.cancel();
      throw new GenerateStreamError('too_large', 'an event of the stream is too large');
    }
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).replace(/\r$/, '');
      buf = buf.slice(nl + 1);
      if (!line.startsWith('data:')) continue;
      let ev: { token?: number; text?: string; done?: boolean; error?: { code?: string; message?: string }; tokens?: number[]; finish_reason?: string };
      try {
        ev = JSON.parse(line.slice(5).trim()) as typeof ev;
      } catch {
        continue; // e.g. a literal [DONE] marker
      }
      if (ev.error !== undefined) {
        await reader.cancel().catch(() => undefined);
        throw new GenerateStreamError(ev.error.code ?? 'error', ev.error.message ?? 'generation failed');
      }
      // the server ends the stream after `done`: read on to its end rather than cancel (a cancelled fetch is an
      // aborted request to the browser)
      if (ev.done === true) result = { text: ev.text ?? '', tokens: ev.tokens ?? [], finish_reason: ev.finish_reason ?? 'stop' };
      if (typeof ev.token === 'number' && typeof ev.text === 'string' && ev.text !== '') onText(ev.text);
    }
  }
  if (result !== undefined) return result;
  throw new GenerateStreamError('truncated', 'the stream ended before the generation was done');
}

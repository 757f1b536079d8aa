/**
 * `neuroshard eval`: the mean natural-log next-token cross-entropy of a model on given token ids or text, and its
 * perplexity exp(loss).
 *
 * - Ids are used verbatim (no BOS/EOS added; no tokenizer needed). Text is encoded with BOS and without EOS, with
 *   the tokenizer stored in the checkpoint.
 * - N ids give N − 1 predicted positions (each id after the first is predicted from those before it).
 * - Input longer than the context is cut into non-overlapping windows of at most `max_position_embeddings` predicted
 *   positions: window k takes ids[kS .. kS+S] (S+1 ids, the last one only as a target), so consecutive windows
 *   share one id and every next-token pair is scored exactly once; each window starts at position 0 without the
 *   context before it.
 * - The loss is the mean over all predicted positions (windows weighted by their length).
 */
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { InvalidArgumentError, NeuroShardError } from '../util/errors.js';
import { EVAL_MAX_IDS, EVAL_MAX_TEXT_BYTES } from './model-limits.js';
import { openModelSession } from './model-session.js';
/** Windows scored per compute job. */
const WINDOWS_PER_JOB = 8;

export type EvalInput = { ids: Int32Array } | { textFile: string };

export interface EvalOptions {
  checkpoint: string;
  input: EvalInput;
  threads?: number;
}

export interface EvalResult {
  /** Mean natural-log cross-entropy per predicted position (nats/token). */
  loss: number;
  perplexity: number;
  /** Predicted positions scored. */
  tokens: number;
  /** Windows the input was cut into. */
  windows: number;
  /** The checkpoint directory loaded. */
  checkpoint: string;
}

/** Bad input ids: malformed, too many, too few or outside the vocabulary. */
export class InvalidIdsError extends NeuroShardError {
  constructor(code: 'INVALID_IDS' | 'TOKEN_OUT_OF_RANGE', message: string, meta?: Record<string, unknown>) {
    super(code, message, { fault: 'caller', meta });
  }
}

/** Parses `--ids 1,2,3`: decimal non-negative integers separated by commas (spaces allowed), at most EVAL_MAX_IDS. */
export function parseIds(s: string): Int32Array {
  // length check before any work: the string comes from the command line
  if (s.length > EVAL_MAX_IDS * 11) throw new InvalidIdsError('INVALID_IDS', `--ids is longer than ${EVAL_MAX_IDS} ids could be`);
  const parts = s.split(',').map((p) => p.trim());
  if (parts.length > EVAL_MAX_IDS) throw new InvalidIdsError('INVALID_IDS', `--ids takes at most ${EVAL_MAX_IDS} ids, got ${parts.length}`);
  const out = new Int32Array(parts.length);
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    if (!/^\d{1,9}$/.test(p)) throw new InvalidIdsError('INVALID_IDS', `--ids: item ${i + 1} (${JSON.stringify(p.slice(0, 20))}) is not a non-negative integer`, { index: i });
    out[i] = Number(p);
  }
  return out;
}

/** Reads a --text file: must exist, be a regular file of at most EVAL_MAX_TEXT_BYTES, and be UTF-8. */
export function readTextFile(path: string): string {
  const p = resolve(path);
  let st;
  try {
    st = statSync(p);
  } catch {
    throw new InvalidArgumentError(`--text: ${p} does not exist`, { file: p }, 'TEXT_FILE_MISSING');
  }
  if (!st.isFile()) throw new InvalidArgumentError(`--text: ${p} is not a regular file`, { file: p }, 'TEXT_FILE_MISSING');
  if (st.size > EVAL_MAX_TEXT_BYTES) throw new InvalidArgumentError(`--text: ${p} has ${st.size} bytes, more than the ${EVAL_MAX_TEXT_BYTES} allowed`, { file: p, bytes: st.size }, 'TEXT_TOO_LARGE');
  const bytes = readFileSync(p);
  if (bytes.length > EVAL_MAX_TEXT_BYTES) throw new InvalidArgumentError(`--text: ${p} grew past ${EVAL_MAX_TEXT_BYTES} bytes while being read`, { file: p }, 'TEXT_TOO_LARGE');
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new InvalidArgumentError(`--text: ${p} is not valid UTF-8`, { file: p }, 'TEXT_NOT_UTF8');
  }
}

/** Splits ids into windows of at most S predicted positions: [start, end) of the input ids, targets shifted by 1. */
export function evalWindows(n: number, S: number): { start: number; len: number }[] {
  const out: { start: number; len: number }[] = [];
  for (let start = 0; start < n - 1; start += S) out.push({ start, len: Math.min(S, n - 1 - start) });
  return out;
}

export async function evaluateCheckpoint(o: EvalOptions): Promise<EvalResult> {
  // Read and check the input before starting a worker: bad input fails fast.
  const text = 'textFile' in o.input ? readTextFile(o.input.textFile) : undefined;
  const session = await openModelSession(o.checkpoint, o.threads === undefined ? {} : { threads: o.threads });
  try {
    const V = session.config.vocab_size;
    const S = session.config.max_position_embeddings;
    let ids: Int32Array;
    if (text !== undefined) {
      ids = session.tokenizer().encodePrompt(text, 'text');
    } else {
      ids = (o.input as { ids: Int32Array }).ids;
    }
    if (ids.length < 2) {
      throw new InvalidIdsError('INVALID_IDS', `evaluation needs at least 2 tokens (one predicted position), got ${ids.length}${text !== undefined ? ' after encoding the text with BOS' : ''}`);
    }
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] < 0 || ids[i] >= V) throw new InvalidIdsError('TOKEN_OUT_OF_RANGE', `token id ${ids[i]} at index ${i} is outside the model's vocabulary [0, ${V})`, { index: i, id: ids[i], vocab: V });
    }
    const windows = evalWindows(ids.length, S);
    let sum = 0;
    let count = 0;
    // Full windows go B at a time; a shorter last window goes alone (a job's batches share one [B, T]).
    const full = windows.filter((w) => w.len === S);
    const rest = windows.filter((w) => w.len !== S);
    const jobs: { ws: typeof windows; T: number }[] = [];
    for (let i = 0; i < full.length; i += WINDOWS_PER_JOB) jobs.push({ ws: full.slice(i, i + WINDOWS_PER_JOB), T: S });
    for (const w of rest) jobs.push({ ws: [w], T: w.len });
    for (const { ws, T } of jobs) {
      const inputs = new Int32Array(ws.length * T);
      const targets = new Int32Array(ws.length * T);
      ws.forEach((w, b) => {
        inputs.set(ids.subarray(w.start, w.start + T), b * T);
        targets.set(ids.subarray(w.start + 1, w.start + 1 + T), b * T);
      });
      const r = await session.client.run({ type: 'evalLoss', inputs, targets, B: ws.length, T });
      sum += r.loss * r.tokens;
      count += r.tokens;
    }
    const loss = sum / count;
    return { loss, perplexity: Math.exp(loss), tokens: count, windows: windows.length, checkpoint: session.dir };
  } finally {
    await session.close();
  }
}

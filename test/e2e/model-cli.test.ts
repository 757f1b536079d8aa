/**
 * The model commands as a user runs them: `neuroshard train`, `generate` and `eval` in child processes
 * (`node bin/neuroshard.js`, the compiled CLI), on the test-sized `tiny` preset so the file stays well under a
 * minute: training writes checkpoints and resumes at the step it stopped; SIGTERM during training saves a
 * checkpoint and exits 0; greedy generation is deterministic; eval agrees between --ids and --text, across context
 * windows, and with PyTorch's logits on a foreign checkpoint; bad input gives exit code 1 and a JSON error.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadGenesisTokenizer } from '../../src/data/index.js';
import { SafetensorsFile } from '../../src/model/index.js';
import { REPO_ROOT, fixturePath, tempDir } from '../utils/paths.js';

const BIN = join(REPO_ROOT, 'bin', 'neuroshard.js');
/** One compute thread: the machine running the suite is shared. */
const COMMON = ['--threads', '1', '--log-level', 'warn'];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args, ...COMMON], { cwd: REPO_ROOT, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

function lastJson(s: string): Record<string, unknown> {
  const lines = s.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]) as Record<string, unknown>;
}

function jsonError(r: Run): { code: string; message: string } {
  const e = lastJson(r.stderr).error as { code: string; message: string } | undefined;
  assert.ok(e !== undefined && typeof e.code === 'string' && typeof e.message === 'string', `stderr: ${r.stderr}`);
  return e;
}

const TRAIN = ['train', '--preset', 'tiny', '--eval-every', '2', '--checkpoint-every', '2', '--val-batches', '2'];

describe('neuroshard train / generate / eval (child processes)', () => {
  const tmp = tempDir('neuroshard-model-cli-');
  const dataDir = join(tmp.dir, 'node');
  const ckpts = join(dataDir, 'checkpoints');
  let ckpt = '';
  after(() => tmp.cleanup());

  before(async () => {
    const r = await cli([...TRAIN, '--data-dir', dataDir, '--steps', '4']);
    assert.equal(r.code, 0, r.stderr);
    const j = lastJson(r.stdout);
    ckpt = j.checkpoint as string;
  });

  it('train writes checkpoints and prints the result JSON last', () => {
    assert.equal(ckpt, join(ckpts, 'step-0000000004'));
    assert.ok(existsSync(join(ckpt, 'checkpoint.json')) && existsSync(join(ckpt, 'neuroshard-tokenizer.json')));
    assert.ok(existsSync(join(ckpts, 'step-0000000002', 'checkpoint.json')), 'the periodic checkpoint at step 2');
  });

  it('a rerun with a larger --steps resumes at the checkpoint and continues to the new target', async () => {
    const dir = join(tmp.dir, 'resume');
    const first = await cli([...TRAIN, '--data-dir', dir, '--steps', '3']);
    assert.equal(first.code, 0, first.stderr);
    const r = await cli([...TRAIN, '--data-dir', dir, '--steps', '6']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /resuming from .*step-0000000003/);
    assert.match(r.stderr, /^step 4\/6 /m, 'the first step of the rerun is step 4');
    assert.doesNotMatch(r.stderr, /^step [123]\//m);
    const j = lastJson(r.stdout);
    assert.equal(j.step, 6);
    assert.equal(typeof j.train_loss, 'number');
    assert.equal(typeof j.val_loss, 'number');
    assert.ok((j.tokens_per_s as number) > 0);
    assert.equal(j.checkpoint, join(dir, 'checkpoints', 'step-0000000006'));
    // a contradicting setting is refused rather than silently ignored
    const bad = await cli([...TRAIN, '--data-dir', dir, '--steps', '8', '--seed', '5']);
    assert.equal(bad.code, 1);
    assert.equal(jsonError(bad).code, 'RESUME_MISMATCH');
  });

  it('a resumed run ends bitwise where an uninterrupted one does (weights, AdamW moments, data position)', async () => {
    const straight = join(tmp.dir, 'straight');
    const cut = join(tmp.dir, 'cut');
    const args = ['train', '--preset', 'tiny', '--eval-every', '6', '--val-batches', '2', '--steps', '6'];
    const [a, b1] = await Promise.all([cli([...args, '--data-dir', straight, '--checkpoint-every', '0']), cli([...args, '--data-dir', cut, '--checkpoint-every', '3'])]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b1.code, 0, b1.stderr);
    // forget the final checkpoint: the rerun resumes from step 3 with the same target (so the same schedule)
    rmSync(join(cut, 'checkpoints', 'step-0000000006'), { recursive: true });
    const b2 = await cli([...args, '--data-dir', cut, '--checkpoint-every', '3']);
    assert.equal(b2.code, 0, b2.stderr);
    assert.match(b2.stderr, /resuming from .*step-0000000003/);
    const ja = lastJson(a.stdout);
    const jb = lastJson(b2.stdout);
    assert.equal(jb.step, 6);
    assert.ok(Object.is(ja.train_loss, jb.train_loss), `train loss at step 6: ${String(ja.train_loss)} vs ${String(jb.train_loss)}`);
    assert.ok(Object.is(ja.val_loss, jb.val_loss), `val loss at step 6: ${String(ja.val_loss)} vs ${String(jb.val_loss)}`);
    const hash = (dir: string): string => (JSON.parse(readFileSync(join(dir, 'checkpoint.json'), 'utf8')) as { model_hash: string }).model_hash;
    assert.equal(hash(jb.checkpoint as string), hash(ja.checkpoint as string), 'the same weights');
  });

  it('SIGTERM during training saves a checkpoint and exits 0', async () => {
    const dir = join(tmp.dir, 'sigterm');
    const child = spawn(process.execPath, [BIN, 'train', '--preset', 'tiny', '--data-dir', dir, '--steps', '1000000', '--eval-every', '0', '--checkpoint-every', '0', ...COMMON], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    // the first progress line means the loop is running
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no progress line within 30 s; stderr: ${stderr}`)), 30_000);
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        stderr += d;
        if (/^step \d+\/1000000 /m.test(stderr)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on('close', () => reject(new Error(`exited before training; stderr: ${stderr}`)));
    });
    child.kill('SIGTERM');
    assert.equal(await exited, 0, stderr);
    const j = lastJson(stdout);
    const step = j.step as number;
    assert.ok(step >= 1 && step < 1_000_000);
    assert.equal(j.checkpoint, join(dir, 'checkpoints', `step-${String(step).padStart(10, '0')}`));
    assert.ok(existsSync(join(j.checkpoint as string, 'checkpoint.json')));
    assert.match(stderr, /stopped at step \d+/);
    assert.ok(!existsSync(join(dir, 'train.lock')), 'the lock is released');
  });

  it('generate --temperature 0 --json is deterministic and its tokens decode to its text', async () => {
    const args = ['generate', '--checkpoint', ckpt, '--prompt', 'The jury said', '--temperature', '0', '--max-tokens', '6', '--json'];
    // a folder of checkpoints means its newest one: the same answer
    const [a, b, c] = await Promise.all([cli(args), cli(args), cli([...args.slice(0, 2), ckpts, ...args.slice(3)])]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(a.stdout, b.stdout);
    assert.equal(c.stdout, a.stdout);
    const j = lastJson(a.stdout) as { text: string; tokens: number[]; finish_reason: string };
    assert.ok(Array.isArray(j.tokens) && j.tokens.length >= 1 && j.tokens.length <= 6);
    assert.ok(j.finish_reason === 'length' || j.finish_reason === 'stop');
    assert.equal(j.text, loadGenesisTokenizer().decode(j.tokens));
  });

  it('eval: --ids and --text agree, perplexity = exp(loss), windows weigh by their length', async () => {
    const tok = loadGenesisTokenizer();
    const text = 'The Fulton County Grand Jury said Friday an investigation of recent primary elections produced no evidence that any irregularities took place. The jury further said in term-end presentments that the City Executive Committee had over-all charge of the election, and that it deserves the praise and thanks of the City of Atlanta for the manner in which the election was conducted.';
    const ids = tok.encode(text, { bos: true });
    assert.ok(ids.length > 65, `the text must span two windows of the tiny context (64), got ${ids.length} ids`);
    const file = join(tmp.dir, 'text.txt');
    writeFileSync(file, text);
    const idsArg = (x: Int32Array): string => Array.from(x).join(',');
    // the first window (65 ids: 64 predictions) and the rest (from id 64 on), scored apart
    const [byText, byIds, headRun, tailRun] = await Promise.all([
      cli(['eval', '--checkpoint', ckpt, '--text', file, '--json']),
      cli(['eval', '--checkpoint', ckpt, '--ids', idsArg(ids), '--json']),
      cli(['eval', '--checkpoint', ckpt, '--ids', idsArg(ids.slice(0, 65)), '--json']),
      cli(['eval', '--checkpoint', ckpt, '--ids', idsArg(ids.slice(64)), '--json']),
    ]);
    assert.equal(byText.code, 0, byText.stderr);
    assert.equal(byIds.code, 0, byIds.stderr);
    const t = lastJson(byText.stdout) as { loss: number; perplexity: number; tokens: number };
    const i = lastJson(byIds.stdout) as { loss: number; perplexity: number; tokens: number };
    assert.equal(t.tokens, ids.length - 1);
    assert.equal(i.tokens, ids.length - 1);
    assert.ok(Math.abs(t.loss - i.loss) < 1e-9, `${t.loss} vs ${i.loss}`);
    assert.ok(Math.abs(i.perplexity - Math.exp(i.loss)) <= 1e-9 * i.perplexity);
    assert.ok(i.loss > 0 && i.loss < 20);
    // ... give the same mean as the whole, cut into those two windows
    const head = lastJson(headRun.stdout) as { loss: number; tokens: number };
    const tail = lastJson(tailRun.stdout) as { loss: number; tokens: number };
    assert.equal(head.tokens + tail.tokens, i.tokens);
    const mean = (head.loss * head.tokens + tail.loss * tail.tokens) / (head.tokens + tail.tokens);
    assert.ok(Math.abs(mean - i.loss) < 1e-5, `${mean} vs ${i.loss}`);
  });

  it("eval --ids on a foreign Hugging Face checkpoint needs no tokenizer and matches PyTorch's loss", async () => {
    const dir = fixturePath('model', 'hf-f16');
    const f = SafetensorsFile.open(join(dir, 'expected.safetensors'));
    let ids: Int32Array;
    let logits: Float32Array;
    try {
      ids = f.tensorI32('input_ids');
      logits = f.tensorF32('logits');
    } finally {
      f.close();
    }
    const V = logits.length / ids.length;
    let sum = 0;
    for (let t = 0; t + 1 < ids.length; t++) {
      const row = logits.subarray(t * V, (t + 1) * V);
      const max = Math.max(...row);
      let z = 0;
      for (const x of row) z += Math.exp(x - max);
      sum += max + Math.log(z) - row[ids[t + 1]];
    }
    const want = sum / (ids.length - 1);
    const r = await cli(['eval', '--checkpoint', dir, '--ids', Array.from(ids).join(','), '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = lastJson(r.stdout) as { loss: number; tokens: number };
    assert.equal(j.tokens, ids.length - 1);
    assert.ok(Math.abs(j.loss - want) < 1e-4, `ours ${j.loss}, PyTorch's logits give ${want}`);
    const noTok = await cli(['eval', '--checkpoint', dir, '--text', join(dir, 'config.json'), '--json']);
    assert.equal(noTok.code, 1);
    assert.equal(jsonError(noTok).code, 'TOKENIZER_MISSING');
  });

  it('bad input: exit code 1 with {"error": {"code", "message"}} on stderr; bad usage: exit code 2', async () => {
    const cases: [string[], string][] = [
      [['eval', '--checkpoint', join(tmp.dir, 'nope'), '--ids', '1,2', '--json'], 'CHECKPOINT_MISSING'],
      [['generate', '--checkpoint', join(tmp.dir, 'nope'), '--prompt', 'x'], 'CHECKPOINT_MISSING'],
      [['eval', '--checkpoint', ckpt, '--ids', '1,x,3'], 'INVALID_IDS'],
      [['eval', '--checkpoint', ckpt, '--ids', '1'], 'INVALID_IDS'],
      [['eval', '--checkpoint', ckpt, '--ids', '1,4096'], 'TOKEN_OUT_OF_RANGE'],
      [['eval', '--checkpoint', ckpt, '--text', join(tmp.dir, 'missing.txt')], 'TEXT_FILE_MISSING'],
    ];
    // independent processes: run them side by side
    const runs = await Promise.all(cases.map(([args]) => cli(args)));
    cases.forEach(([args, code], i) => {
      const r = runs[i];
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(jsonError(r).code, code, args.join(' '));
      // under --json the same error is also the one document on stdout (src/cli/json-error.ts); else stdout is empty
      if (args.includes('--json')) assert.equal((lastJson(r.stdout).error as { code: string }).code, code, r.stdout);
      else assert.equal(r.stdout, '');
    });
    const usage = [
      ['eval', '--checkpoint', ckpt],
      ['eval', '--checkpoint', ckpt, '--ids', '1,2', '--text', 'x'],
      ['generate', '--checkpoint', ckpt],
      ['generate', '--checkpoint', ckpt, '--prompt', 'x', '--top-p', '0'],
      ['train', '--data-dir', join(tmp.dir, 'usage'), '--steps', '-1'],
    ];
    const usageRuns = await Promise.all(usage.map((args) => cli(args)));
    usage.forEach((args, i) => assert.equal(usageRuns[i].code, 2, args.join(' ')));
  });
});

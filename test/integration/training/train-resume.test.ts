/**
 * Resuming a run goes on where it stopped, never silently over again (session 28). node/train.ts `trainSolo` with a
 * real compute worker and the bundled corpus on the tiny shape:
 *
 *   1. a checkpoint without optimizer moments: the run goes on from its step (the step numbers, the learning rate of
 *      the schedule, the new checkpoints' steps), with fresh moments, and says so in the log. Before, the trainer's
 *      step stayed 0: the run trained steps 1, 2, … again at the warm-up's first rates over the resumed weights;
 *   2. a replica whose data dir holds checkpoints of another shape than the network's: they are moved into
 *      `<checkpoints>/other-shape/` (kept), so the next restart resumes the new run's own newest checkpoint. Before,
 *      the other shape's newest stayed the newest, and every restart started at step 0 again;
 *   3. a replica resuming its own checkpoint: the worker never holds the checkpoint's weights (only its moments are
 *      read, when kept). Before, loadCheckpoint put them in the worker until the adopted ones were written back;
 *   4. a replica whose own newest checkpoint has a damaged config.json that still parses (another shape's numbers):
 *      its typed error, nothing moved. Before the review (session 28) the unverified config made it "another
 *      shape": moved aside with a warning, and the run resumed an older checkpoint in silence;
 *   5. a replica whose kept moments' file is damaged: fresh moments with a warning naming the file, the run goes on
 *      from its step (checkpoint tidy, session 28; before, the run failed with CHECKPOINT_CORRUPT);
 *   6. a replica whose checkpoints include three a newer version wrote (CHECKPOINT_UNSUPPORTED), at higher steps: they
 *      are moved into `<checkpoints>/unsupported-version/` (kept whole) with a warning naming each, and the run
 *      resumes its newest readable one; the next restart goes on from the run's own (before: the run failed);
 *   7. a solo run whose checkpoint's optimizer.safetensors is damaged: loaded without it, fresh moments with a warning
 *      naming the file, the run goes on from its step (session 29; before, it failed with CHECKPOINT_CORRUPT); a
 *      damaged model.safetensors still fails the run;
 *   8. the folder of checkpoints moved aside keeps the newest 3 (by when they were moved): a restart that moves the
 *      4th removes the oldest, a warning naming it; a symlink there pointing outside the data dir is removed as a
 *      link, its target untouched (session 29; before, nothing there was ever removed).
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, lutimesSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ComputeClient, type Job } from '../../../src/compute/index.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { CHANGES_WEIGHTS } from '../../../src/compute/served-params.js';
import { checkpointDirName, configsEqual, flatOptimizerState, latestCheckpoint, listCheckpoints, loadCheckpointOptimizer, makeConfig, ParamLayout, readCheckpointConfig } from '../../../src/model/index.js';
import { CHECKPOINTS_DIR } from '../../../src/node/model-limits.js';
import { TINY_CONFIG, trainSolo, type SoloTrainOptions, type TrainEvent } from '../../../src/node/train.js';
import { lrAt, trainerOptions } from '../../../src/training/index.js';
import { createLogger } from '../../../src/util/logger.js';

type Step = Extract<TrainEvent, { type: 'step' }>;

function same(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

describe('resuming a training run (node/train.ts)', { timeout: 300_000 }, () => {
  let client: ComputeClient;
  const dirs: string[] = [];
  const tmp = (prefix: string): string => {
    const d = mkdtempSync(join(tmpdir(), prefix));
    dirs.push(d);
    return d;
  };
  /** One run in `dataDir`: its step events and log lines. */
  const run = async (dataDir: string, targetStep: number, extra: Partial<SoloTrainOptions> = {}): Promise<{ step: number; steps: Step[]; log: string[] }> => {
    const steps: Step[] = [];
    const log: string[] = [];
    const r = await trainSolo({
      dataDir,
      client,
      targetStep,
      evalEvery: 0,
      checkpointEvery: 0,
      batchSize: 2,
      seqLen: 16,
      logger: createLogger({ level: 'info', write: (l) => log.push(l) }),
      onEvent: (e) => {
        if (e.type === 'step') steps.push(e);
      },
      ...extra,
    });
    return { step: r.step, steps, log };
  };

  before(async () => {
    client = await ComputeClient.start({ threads: 1 });
  });
  after(async () => {
    await client.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('a checkpoint without optimizer moments: the step numbers and the learning rate go on from its step', async () => {
    const dir = tmp('ns-resume-nomoments-');
    const root = join(dir, CHECKPOINTS_DIR);
    // the uninterrupted run: 4 steps, checkpoints at 2 and 4
    const whole = await run(dir, 4, { preset: 'tiny', checkpointEvery: 2 });
    assert.deepEqual(
      whole.steps.map((s) => s.step),
      [1, 2, 3, 4],
    );
    assert.deepEqual(
      listCheckpoints(root).map((c) => c.step),
      [2, 4],
    );
    // the schedule of this run (decay over the target, 4 steps: inside the warm-up, so every step has its own rate)
    const o = trainerOptions({ decaySteps: 4 });
    assert.deepEqual(
      whole.steps.map((s) => s.lr),
      [0, 1, 2, 3].map((i) => lrAt(i, o)),
    );
    // back to step 2, and that checkpoint stripped of its moments (as one written by a worker without a trainer)
    rmSync(listCheckpoints(root).at(-1)!.dir, { recursive: true });
    const at2 = latestCheckpoint(root)!;
    const manifestPath = join(at2, 'checkpoint.json');
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { files: Record<string, unknown> };
    delete manifest.files['optimizer.safetensors'];
    writeFileSync(manifestPath, JSON.stringify(manifest));
    rmSync(join(at2, 'optimizer.safetensors'));

    const resumed = await run(dir, 4);
    assert.equal(resumed.step, 4);
    assert.deepEqual(
      resumed.steps.map((s) => s.step),
      [3, 4],
      'the run goes on from step 2 (before: steps 1..4 again)',
    );
    assert.deepEqual(
      resumed.steps.map((s) => s.lr),
      [whole.steps[2]!.lr, whole.steps[3]!.lr],
      "the schedule's rates of steps 3 and 4 (before: the warm-up's first)",
    );
    assert.equal(resumed.steps[0]!.lr, 3e-5);
    const info = await client.run({ type: 'trainerInfo' });
    assert.deepEqual({ step: info.step, applied: info.appliedSteps }, { step: 4, applied: 2 }, 'fresh moments, counting their own 2 steps');
    assert.deepEqual(
      listCheckpoints(root).map((c) => c.step),
      [2, 4],
      'the new checkpoint is at step 4',
    );
    assert.ok(
      resumed.log.some((l) => l.includes('warn') && l.includes('no optimizer state: AdamW starts fresh') && l.includes('step=2')),
      resumed.log.join('\n'),
    );
  });

  it("a replica: checkpoints of another shape are moved aside, so the next restart resumes the new run's own", async () => {
    const dir = tmp('ns-resume-othershape-');
    const root = join(dir, CHECKPOINTS_DIR);
    // the node's past on a network of a wider shape: checkpoints at steps 1, 2 and 3
    const wider = makeConfig({ ...TINY_CONFIG, hidden_size: 64, intermediate_size: 128 });
    await client.run({ type: 'initModel', config: wider, seed: 7 });
    const wide = (await client.run({ type: 'getParams' })).params;
    await run(dir, 3, { checkpointEvery: 1, adopted: { config: wider, params: async () => wide.slice() } });
    const old = listCheckpoints(root);
    assert.deepEqual(
      old.map((c) => c.step),
      [1, 2, 3],
    );
    // the network is of the tiny shape now
    await client.run({ type: 'initModel', config: TINY_CONFIG, seed: 1234 });
    const net = (await client.run({ type: 'getParams' })).params;
    const adopted = { config: TINY_CONFIG, params: async () => net.slice() };

    const first = await run(dir, 2, { adopted });
    assert.deepEqual(
      first.steps.map((s) => s.step),
      [1, 2],
      'a fresh run at the network shape',
    );
    const second = await run(dir, 3, { adopted });
    assert.deepEqual(
      second.steps.map((s) => s.step),
      [3],
      "the second restart resumes the new run's step 2 (before: step 0 again)",
    );
    assert.equal(second.steps[0]!.lr, lrAt(2, trainerOptions({ decaySteps: 3 })));
    const aside = join(root, 'other-shape');
    assert.deepEqual(readdirSync(aside).sort(), ['step-0000000001', 'step-0000000002', 'step-0000000003']);
    for (const n of readdirSync(aside)) {
      assert.ok(existsSync(join(aside, n, 'model.safetensors')) && existsSync(join(aside, n, 'checkpoint.json')), `${n} kept whole`);
      assert.ok(configsEqual(readCheckpointConfig(join(aside, n)), wider));
    }
    assert.equal(first.log.filter((l) => l.includes('moved aside')).length, 3, first.log.join('\n'));
    assert.ok(first.log.some((l) => l.includes('moved aside') && l.includes(join(aside, 'step-0000000003'))));
    assert.ok(!second.log.some((l) => l.includes('moved aside')), 'nothing more to move');
    assert.deepEqual(
      listCheckpoints(root).map((c) => c.step),
      [2, 3],
      "the new run's own, nothing of the other shape",
    );
  });

  it("a replica resuming its own checkpoint: the worker never holds the checkpoint's weights, and kept moments are the checkpoint's", async () => {
    const dir = tmp('ns-resume-moments-');
    const root = join(dir, CHECKPOINTS_DIR);
    await run(dir, 2, { preset: 'tiny', outerRound: () => 4 });
    const saved = latestCheckpoint(root)!;
    const own = (await client.run({ type: 'getParams' })).params;
    await client.run({ type: 'initModel', config: TINY_CONFIG, seed: 4321 });
    const net = (await client.run({ type: 'getParams' })).params;
    assert.ok(!same(net, own));

    // every job that may write the worker's weights, and what the worker holds after it
    const held: { type: string; adopted: boolean }[] = [];
    const run0 = client.run.bind(client);
    client.run = (async (job: Job, opts?: Parameters<ComputeClient['run']>[1]) => {
      const r = await run0(job, opts);
      if (CHANGES_WEIGHTS[job.type] && job.type !== 'trainStep') held.push({ type: job.type, adopted: same((await run0({ type: 'getParams' })).params, net) });
      return r;
    }) as ComputeClient['run'];
    try {
      // the same round: the moments are kept; target = the checkpoint's step, so nothing trains them afterwards
      const r = await run(dir, 2, { adopted: { config: TINY_CONFIG, params: async () => net.slice(), round: 4 } });
      assert.equal(r.step, 2);
      assert.ok(held.length > 0);
      assert.deepEqual(
        held.filter((h) => !h.adopted),
        [],
        `the worker held other weights after: ${held.map((h) => h.type).join(', ')}`,
      );
      assert.ok(!held.some((h) => h.type === 'loadCheckpoint'), "the checkpoint's weights are not loaded");
      const info = await run0({ type: 'trainerInfo' });
      assert.deepEqual({ step: info.step, applied: info.appliedSteps }, { step: 2, applied: 2 }, "the checkpoint's moments");
      const want = loadCheckpointOptimizer(saved, TINY_CONFIG, { start: 0, end: TINY_CONFIG.num_hidden_layers });
      const got = flatOptimizerState(new ParamLayout(TINY_CONFIG), (await run0({ type: 'getTrainerState' })).optimizer);
      assert.ok(same(got.m, want.m) && same(got.v, want.v), "the moments are the checkpoint's");
      assert.ok(same((await run0({ type: 'getParams' })).params, net), 'the weights are the adopted ones');

      // another round: fresh moments at the run's step, over the adopted weights as well
      held.length = 0;
      const fresh = await run(dir, 3, { adopted: { config: TINY_CONFIG, params: async () => net.slice(), round: 5 } });
      assert.deepEqual(
        fresh.steps.map((s) => s.step),
        [3],
      );
      assert.deepEqual(
        held.filter((h) => !h.adopted),
        [],
        `the worker held other weights after: ${held.map((h) => h.type).join(', ')}`,
      );
      const after = await run0({ type: 'trainerInfo' });
      assert.deepEqual({ step: after.step, applied: after.appliedSteps }, { step: 3, applied: 1 });
    } finally {
      delete (client as { run?: unknown }).run; // the prototype's again
    }
  });

  it("a replica's own newest checkpoint with a damaged config.json: its typed error, nothing moved aside (review)", async () => {
    const dir = tmp('ns-resume-damagedcfg-');
    const root = join(dir, CHECKPOINTS_DIR);
    await client.run({ type: 'initModel', config: TINY_CONFIG, seed: 99 });
    const net = (await client.run({ type: 'getParams' })).params;
    const adopted = { config: TINY_CONFIG, params: async () => net.slice() };
    await run(dir, 2, { checkpointEvery: 1, adopted });
    const newest = latestCheckpoint(root)!;
    const cfgPath = join(newest, 'config.json');
    const o = JSON.parse(readFileSync(cfgPath, 'utf8')) as { intermediate_size: number };
    o.intermediate_size += 16; // bit rot that still parses: another shape's numbers
    writeFileSync(cfgPath, JSON.stringify(o, null, 2) + '\n');

    const moved: string[] = [];
    await assert.rejects(
      run(dir, 3, { adopted, logger: createLogger({ level: 'info', write: (l) => moved.push(l) }) }),
      (e) => isNeuroShardError(e, 'CHECKPOINT_CORRUPT') && (e as Error).message.includes(cfgPath),
    );
    assert.ok(!moved.some((l) => l.includes('moved aside')), moved.join('\n'));
    assert.equal(existsSync(join(root, 'other-shape')), false, 'nothing moved aside');
    assert.deepEqual(
      listCheckpoints(root).map((c) => c.step),
      [1, 2],
      'both checkpoints where they were',
    );
  });

  it("a replica whose kept moments' file is damaged: fresh moments with a warning, the run goes on from its step (tidy)", async () => {
    const dir = tmp('ns-resume-badmoments-');
    const root = join(dir, CHECKPOINTS_DIR);
    await run(dir, 2, { preset: 'tiny', outerRound: () => 4 });
    await client.run({ type: 'initModel', config: TINY_CONFIG, seed: 4322 });
    const net = (await client.run({ type: 'getParams' })).params;
    const opt = join(latestCheckpoint(root)!, 'optimizer.safetensors');
    const bytes = readFileSync(opt);
    bytes[bytes.length - 5] ^= 0x40; // damaged in place: same size, another hash
    writeFileSync(opt, bytes);

    // the same round, so the moments would be kept
    const r = await run(dir, 4, { adopted: { config: TINY_CONFIG, params: async () => net.slice(), round: 4 } });
    assert.deepEqual(
      r.steps.map((s) => s.step),
      [3, 4],
      'the run goes on from its step',
    );
    const warn = r.log.filter((l) => l.includes('optimizer moments cannot be read'));
    assert.equal(warn.length, 1, r.log.join('\n'));
    assert.ok(warn[0]!.includes(opt), `the warning names ${opt}: ${warn[0]}`);
    const info = await client.run({ type: 'trainerInfo' });
    assert.deepEqual({ step: info.step, applied: info.appliedSteps }, { step: 4, applied: 2 }, 'fresh moments: their own count from 0');
    assert.deepEqual(
      r.steps.map((s) => s.lr),
      [2, 3].map((i) => lrAt(i, trainerOptions({ decaySteps: 4 }))),
      "the schedule at the run's step",
    );
  });

  it('a replica with checkpoints a newer version wrote: moved aside, the newest readable one resumed (tidy)', async () => {
    const dir = tmp('ns-resume-newer-');
    const root = join(dir, CHECKPOINTS_DIR);
    await client.run({ type: 'initModel', config: TINY_CONFIG, seed: 98 });
    const net = (await client.run({ type: 'getParams' })).params;
    const adopted = { config: TINY_CONFIG, params: async () => net.slice() };
    await run(dir, 2, { checkpointEvery: 1, adopted });
    // three checkpoints of a newer version at higher steps (checkpoint.json version 2), as keep-last left them
    const newer: { dir: string; manifest: string }[] = [];
    for (const step of [5, 6, 7]) {
      const to = join(root, checkpointDirName(step));
      cpSync(latestCheckpoint(root)!, to, { recursive: true });
      const path = join(to, 'checkpoint.json');
      const m = JSON.parse(readFileSync(path, 'utf8')) as { version: number; step: number };
      m.version = 2;
      m.step = step;
      writeFileSync(path, JSON.stringify(m));
      newer.push({ dir: to, manifest: readFileSync(path, 'utf8') });
    }
    assert.equal(latestCheckpoint(root), newer[2]!.dir);

    const r = await run(dir, 3, { adopted });
    assert.deepEqual(
      r.steps.map((s) => s.step),
      [3],
      'the newest readable checkpoint (step 2) resumed',
    );
    for (const n of newer) {
      const lines = r.log.filter((l) => l.includes('cannot read') && l.includes(n.dir));
      assert.equal(lines.length, 1, `one warning names ${n.dir}:\n${r.log.join('\n')}`);
      const aside = join(root, 'unsupported-version', n.dir.slice(root.length + 1));
      assert.equal(readFileSync(join(aside, 'checkpoint.json'), 'utf8'), n.manifest, 'kept whole');
      assert.ok(existsSync(join(aside, 'model.safetensors')));
    }
    assert.deepEqual(
      listCheckpoints(root).map((c) => c.step),
      [1, 2, 3],
      "the run's own checkpoints, none pruned for the newer ones",
    );
    // the next restart goes on from the run's own newest, with nothing more to move
    const again = await run(dir, 4, { adopted });
    assert.deepEqual(
      again.steps.map((s) => s.step),
      [4],
    );
    assert.ok(!again.log.some((l) => l.includes('moved aside')), again.log.join('\n'));
  });

  it("a solo run whose checkpoint's moments file is damaged: fresh moments with a warning, the run goes on from its step (session 29)", async () => {
    const dir = tmp('ns-resume-solobadmoments-');
    const root = join(dir, CHECKPOINTS_DIR);
    await run(dir, 2, { preset: 'tiny' });
    const ck = latestCheckpoint(root)!;
    const opt = join(ck, 'optimizer.safetensors');
    const bytes = readFileSync(opt);
    bytes[bytes.length - 5] ^= 0x40; // damaged in place: same size, another hash
    writeFileSync(opt, bytes);

    const r = await run(dir, 4);
    assert.deepEqual(
      r.steps.map((s) => s.step),
      [3, 4],
      'the run goes on from its step (before: CHECKPOINT_CORRUPT)',
    );
    assert.deepEqual(
      r.steps.map((s) => s.lr),
      [2, 3].map((i) => lrAt(i, trainerOptions({ decaySteps: 4 }))),
      "the schedule at the run's step",
    );
    const warn = r.log.filter((l) => l.includes('optimizer moments cannot be read'));
    assert.equal(warn.length, 1, r.log.join('\n'));
    assert.ok(warn[0]!.includes(opt) && warn[0]!.includes('warn'), `the warning names ${opt}: ${warn[0]}`);
    assert.ok(!r.log.some((l) => l.includes('no optimizer state')), 'one warning, the one that says why');
    const info = await client.run({ type: 'trainerInfo' });
    assert.deepEqual({ step: info.step, applied: info.appliedSteps }, { step: 4, applied: 2 }, 'fresh moments: their own count from 0');
    assert.deepEqual(
      listCheckpoints(root).map((c) => c.step),
      [2, 4],
    );

    // the weights' file damaged: still the run's typed error (the fallback is for the moments' file alone)
    const model = join(latestCheckpoint(root)!, 'model.safetensors');
    const w = readFileSync(model);
    w[w.length - 5] ^= 0x40;
    writeFileSync(model, w);
    await assert.rejects(run(dir, 6), (e) => isNeuroShardError(e, 'CHECKPOINT_CORRUPT') && (e as Error).message.includes(model));
  });

  it('the folder of checkpoints moved aside keeps the newest 3; a symlink there is removed as a link only (session 29)', async () => {
    const dir = tmp('ns-resume-asidebound-');
    const root = join(dir, CHECKPOINTS_DIR);
    const aside = join(root, 'other-shape');
    const wider = makeConfig({ ...TINY_CONFIG, hidden_size: 64, intermediate_size: 128 });
    await client.run({ type: 'initModel', config: wider, seed: 17 });
    const wide = (await client.run({ type: 'getParams' })).params;
    const widerAdopted = { config: wider, params: async () => wide.slice() };
    await run(dir, 3, { checkpointEvery: 1, adopted: widerAdopted });
    // the user's checkpoint outside the data dir, linked into the folder, moved there long ago (the oldest)
    const outside = tmp('ns-resume-asidebound-outside-');
    const target = join(outside, 'kept');
    cpSync(latestCheckpoint(root)!, target, { recursive: true });
    const targetFiles = readdirSync(target).map((n) => [n, readFileSync(join(target, n))] as const);
    mkdirSync(aside);
    const link = join(aside, 'step-0000000009');
    symlinkSync(target, link);
    lutimesSync(link, new Date(2020, 0, 1), new Date(2020, 0, 1));

    // restart 1 on a network of the tiny shape: 3 moved aside, the 4th there (the link, the oldest) removed
    await client.run({ type: 'initModel', config: TINY_CONFIG, seed: 18 });
    const net = (await client.run({ type: 'getParams' })).params;
    const first = await run(dir, 2, { checkpointEvery: 1, adopted: { config: TINY_CONFIG, params: async () => net.slice() } });
    assert.deepEqual(readdirSync(aside).sort(), ['step-0000000001', 'step-0000000002', 'step-0000000003'], 'the link is gone (before: kept, 4 there)');
    const removed1 = first.log.filter((l) => l.includes('moved aside earlier was removed'));
    assert.equal(removed1.length, 1, first.log.join('\n'));
    assert.ok(removed1[0]!.includes(`removed=${link} `) && removed1[0]!.includes('the link only'), removed1[0]);
    assert.deepEqual(readdirSync(target).sort(), targetFiles.map(([n]) => n).sort(), "the link's target keeps every file");
    for (const [n, b] of targetFiles) assert.ok(readFileSync(join(target, n)).equals(b), `${n} untouched`);

    // restart 2, the wider shape again: the tiny run's 2 moved aside, the 2 moved first removed (by when they were
    // moved, not by step: the wider run's step 3 stays, the tiny run's steps 1 and 2 are the newest there)
    const second = await run(dir, 4, { checkpointEvery: 0, adopted: widerAdopted });
    assert.deepEqual(readdirSync(aside).sort(), ['step-0000000001.2', 'step-0000000002.2', 'step-0000000003']);
    assert.ok(configsEqual(readCheckpointConfig(join(aside, 'step-0000000003')), wider));
    for (const n of ['step-0000000001.2', 'step-0000000002.2']) assert.ok(configsEqual(readCheckpointConfig(join(aside, n)), TINY_CONFIG), n);
    const removed2 = second.log.filter((l) => l.includes('moved aside earlier was removed'));
    assert.equal(removed2.length, 2, second.log.join('\n'));
    for (const n of ['step-0000000001', 'step-0000000002']) assert.ok(removed2.some((l) => l.includes(`removed=${join(aside, n)} `)), `${n} named:\n${removed2.join('\n')}`);
  });
});

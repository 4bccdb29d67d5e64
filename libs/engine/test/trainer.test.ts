import { appendFile, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  InlineExecutor,
  jobPaths,
  LocalExecutor,
  MetricsLog,
  train,
  Trainer,
  type Executor,
  type ThreadPool,
  type JobSpecInput,
  type JobState,
  type ShardTask,
  type TrainResult,
} from '../src/index.ts';

// A small model with every kind of state the engine moves: weights, batch-norm buffers, dropout.
const tinyModel = {
  input: [1, 28, 28] as [number, number, number],
  layers: [
    { type: 'conv2d' as const, outChannels: 4, kernelSize: 5, stride: 3 },
    { type: 'batchNorm2d' as const },
    { type: 'relu' as const },
    { type: 'maxPool2d' as const, kernelSize: 2 },
    { type: 'flatten' as const },
    { type: 'dropout' as const, p: 0.1 },
    { type: 'linear' as const, outFeatures: 10 },
  ],
};
const tinySpec: JobSpecInput = {
  model: tinyModel,
  dataset: 'mnist',
  steps: 12,
  batchSize: 32,
  shards: 3,
  seed: 7,
  evalEvery: 6,
  evalShards: 4,
  checkpointEvery: 4,
  optimizer: { type: 'adam', lr: 0.01 },
  schedule: { type: 'constant' },
};

let dataDir: string;
let inline: InlineExecutor;
beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'stride-train-'));
  inline = new InlineExecutor();
});
afterEach(async () => {
  await inline.close();
  await rm(dataDir, { recursive: true, force: true });
});

let reference: TrainResult;
beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'stride-ref-'));
  const ex = new InlineExecutor();
  try {
    reference = await train(tinySpec, { executor: ex, dataDir: dir, jobId: 'reference' });
  } finally {
    await ex.close();
    await rm(dir, { recursive: true, force: true });
  }
});

describe('Trainer', () => {
  it('runs a job to the end with typed events, metrics and checkpoints', async () => {
    const states: JobState['status'][] = [];
    const steps: number[] = [];
    const evals: number[] = [];
    const checkpoints: number[] = [];
    const used: string[] = [];
    const result = await train(tinySpec, {
      executor: inline,
      dataDir,
      jobId: 'run1',
      on: {
        state: (e) => states.push(e.state.status),
        step: (e) => steps.push(e.step),
        eval: (e) => evals.push(e.step),
        checkpoint: (e) => checkpoints.push(e.step),
        shards: (e) => {
          expect(e.shards.every((sh) => sh.workerId === 'inline' && sh.computeMs >= 0)).toBe(true);
          used.push(`${e.kind}@${e.step}:${e.shards.length}`);
        },
      },
    });
    // One `shards` event per step (3 shards) and per evaluation (4 shards), before its step / eval event.
    expect(used).toEqual([...steps.slice(0, 6).map((t) => `train@${t}:3`), 'eval@6:4', ...steps.slice(6).map((t) => `train@${t}:3`), 'eval@12:4']);
    expect(result).toMatchObject({ status: 'succeeded', steps: 12, totalSteps: 12, resumedFrom: 0, paramsSha256: reference.paramsSha256 });
    expect(result.testAccuracy).toBeGreaterThan(0.3);
    expect(states[0]).toBe('running');
    expect(states.at(-1)).toBe('succeeded');
    expect(steps).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(evals).toEqual([6, 12]);
    expect(checkpoints).toEqual([4, 6, 8, 12]);
    const paths = jobPaths(dataDir, 'run1');
    const records = await MetricsLog.read(paths.metrics);
    expect(records.filter((r) => r.type === 'step')).toHaveLength(12);
    expect(records.filter((r) => r.type === 'eval').map((r) => r.step)).toEqual([6, 12]);
    // keepCheckpoints 3: the newest three, the best among them.
    expect((await readdir(paths.checkpoints)).sort()).toEqual(['step-00000006.ckpt', 'step-00000008.ckpt', 'step-00000012.ckpt']);
    expect(JSON.parse(await readFile(paths.result, 'utf8')).paramsSha256).toBe(result.paramsSha256);
  });

  it('pauses at a step boundary and resumes to the same bytes as an uninterrupted run', async () => {
    const controller = new AbortController();
    const paused = await train(tinySpec, {
      executor: inline,
      dataDir,
      jobId: 'job',
      signal: controller.signal,
      on: { step: (e) => e.step === 4 && controller.abort('pause') },
    });
    expect(paused).toMatchObject({ status: 'paused', steps: 5 });
    expect(paused.paramsSha256).not.toBe(reference.paramsSha256);

    const trainer = new Trainer(tinySpec, { executor: inline, dataDir, jobId: 'job' });
    const resumed = await trainer.run();
    expect(resumed).toMatchObject({ status: 'succeeded', steps: 12, resumedFrom: 5, paramsSha256: reference.paramsSha256, testAccuracy: reference.testAccuracy });
    expect(trainer.state.status).toBe('succeeded');
    // The metrics read as one run.
    const records = await MetricsLog.read(jobPaths(dataDir, 'job').metrics);
    expect(records.filter((r) => r.type === 'step').map((r) => r.step)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);

    // Running a finished job again changes nothing.
    const again = await train(tinySpec, { executor: inline, dataDir, jobId: 'job' });
    expect(again).toMatchObject({ status: 'succeeded', resumedFrom: 12, paramsSha256: reference.paramsSha256 });
  });

  it('survives a crash mid-step and a corrupt newest checkpoint', async () => {
    // An executor that dies at step 10: the process "crashes" with checkpoints at 4, 6 and 8.
    const crashing: Executor = {
      publishParams: (job, v, s) => inline.publishParams(job, v, s),
      runShards: async (job, tasks: readonly ShardTask[], signal) => {
        if (tasks[0].kind === 'train' && tasks[0].step === 10) throw new Error('worker machine lost');
        return inline.runShards(job, tasks, signal);
      },
      releaseJob: (id) => inline.releaseJob(id),
      close: () => inline.close(),
    };
    const failed: JobState[] = [];
    await expect(train(tinySpec, { executor: crashing, dataDir, jobId: 'job', on: { state: (e) => failed.push(e.state) } })).rejects.toThrow(/worker machine lost/);
    expect(failed.at(-1)).toMatchObject({ status: 'failed', step: 10, error: 'worker machine lost' });

    // Tear the newest checkpoint (step 8): the resume falls back to step 6.
    const { checkpoints } = jobPaths(dataDir, 'job');
    const newest = join(checkpoints, 'step-00000008.ckpt');
    const bytes = await readFile(newest);
    await writeFile(newest, bytes.subarray(0, 1000));
    // And the crash tore the metrics log: a stray null line and a half-written last record.
    const { metrics } = jobPaths(dataDir, 'job');
    await appendFile(metrics, 'null\n{"type":"step","st');
    const logs: string[] = [];
    const resumed = await train(tinySpec, { executor: inline, dataDir, jobId: 'job', on: { log: (e) => logs.push(`${e.level}: ${e.message}`) } });
    expect(resumed).toMatchObject({ status: 'succeeded', resumedFrom: 6, paramsSha256: reference.paramsSha256 });
    expect(logs.join('\n')).toMatch(/warn: checkpoint .*step-00000008\.ckpt is corrupt/);
    expect(logs.filter((l) => /^warn: metrics\.jsonl line \d+ dropped/.test(l))).toHaveLength(2);
    const records = await MetricsLog.read(metrics);
    expect(records.filter((r) => r.type === 'step').map((r) => r.step)).toEqual(Array.from({ length: 12 }, (_, i) => i));
  });

  it('refuses to resume a job id under another spec', async () => {
    await train({ ...tinySpec, steps: 2 }, { executor: inline, dataDir, jobId: 'job' });
    await expect(train({ ...tinySpec, steps: 3 }, { executor: inline, dataDir, jobId: 'job' })).rejects.toThrow(/already exists .* with another spec/);
    expect(() => new Trainer(tinySpec, { executor: inline, dataDir, jobId: '../evil' })).toThrow(/jobId/);
  });

  it('cancels: status cancelled with a final checkpoint', async () => {
    const controller = new AbortController();
    const result = await train(tinySpec, { executor: inline, dataDir, jobId: 'c', signal: controller.signal, on: { step: (e) => e.step === 1 && controller.abort() } });
    expect(result).toMatchObject({ status: 'cancelled', steps: 2 });
    expect(await readdir(jobPaths(dataDir, 'c').checkpoints)).toEqual(['step-00000002.ckpt']);
  });
});

describe('LocalExecutor', () => {
  const executors: LocalExecutor[] = [];
  afterAll(async () => {
    await Promise.all(executors.map((e) => e.close()));
  });

  /** A LocalExecutor's thread pool (private: tests look at its threads and kill them on cue). */
  function poolOf(ex: LocalExecutor): Pick<ThreadPool<unknown, unknown>, 'idle'> & { slots: { worker: { terminate(): Promise<number> } }[] } {
    return (ex as unknown as { pool: ReturnType<typeof poolOf> }).pool;
  }

  /** The pool's threads of a LocalExecutor, to kill (no public way to make a thread die on cue). */
  function poolThreads(ex: LocalExecutor): { worker: { terminate(): Promise<number> } }[] {
    return poolOf(ex).slots;
  }

  /** `ex` with `kill(tasks, when)` called just before each runShards call and just after it returned its promise. */
  function withKills(ex: LocalExecutor, kill: (tasks: readonly ShardTask[], when: 'before' | 'after') => void): Executor {
    return {
      publishParams: (job, version, state) => ex.publishParams(job, version, state),
      releaseJob: (jobId) => ex.releaseJob(jobId),
      close: () => ex.close(),
      runShards(job, tasks, signal) {
        kill(tasks, 'before');
        const running = ex.runShards(job, tasks, signal);
        kill(tasks, 'after');
        return running;
      },
    };
  }

  it('computes again, on fresh threads, the shards of threads that die mid-call', async () => {
    const spec = { ...tinySpec, steps: 4, evalEvery: 4 };
    const want = (await train(spec, { executor: inline, dataDir, jobId: 'inline' })).paramsSha256;
    // Three attempts: a thread may still answer its shard before its termination lands (a parked
    // thread starts at once), and then be handed the other thread's shard again just before it exits.
    const ex = new LocalExecutor({ threads: 2, maxAttempts: 3 });
    executors.push(ex);
    const threads = poolThreads(ex);
    let killed = 0;
    // Step 2's call is posted to both threads, then both are terminated.
    const dying = withKills(ex, (tasks, when) => {
      if (when === 'after' && tasks[0].kind === 'train' && tasks[0].step === 2) for (const t of threads) void t.worker.terminate().then(() => killed++);
    });
    const r = await train(spec, { executor: dying, dataDir, jobId: 'dying' });
    expect(killed).toBe(2);
    expect(r.paramsSha256).toBe(want);
  });

  it('a thread that dies while the computing caller waits blocked for its reply: its shard is computed again', async () => {
    const spec = { ...tinySpec, steps: 4, evalEvery: 4 };
    const want = (await train(spec, { executor: inline, dataDir, jobId: 'inline' })).paramsSha256;
    const ex = new LocalExecutor({ threads: 2, callerComputes: true });
    executors.push(ex);
    const threads = poolThreads(ex);
    const first = threads[0].worker;
    let killed = 0;
    // Step 2: the thread is on its way out when the call is posted; the caller computes its shard,
    // waits for a reply that never comes, then the thread's shard runs on its replacement.
    const dying = withKills(ex, (tasks, when) => {
      if (when === 'before' && tasks[0].kind === 'train' && tasks[0].step === 2) void threads[0].worker.terminate().then(() => killed++);
    });
    const r = await train(spec, { executor: dying, dataDir, jobId: 'dying-caller' });
    expect(killed).toBe(1);
    expect(threads[0].worker).not.toBe(first); // replaced by the pool
    expect(r.paramsSha256).toBe(want);
  });

  it('with the caller computing, does not wait for a thread still starting: the caller computes its share', async () => {
    const spec = { ...tinySpec, steps: 16, evalEvery: 16 };
    const want = (await train(spec, { executor: inline, dataDir, jobId: 'inline' })).paramsSha256;
    let ex: LocalExecutor | undefined;
    const pool = (): Pick<ThreadPool<unknown, unknown>, 'idle'> => poolOf(ex!);
    const computedBy: string[][] = [];
    let upAfterFirstCall: boolean | undefined;
    // The executor (and its thread) is created at the job's first publication, so the first step's
    // call comes while the thread is still loading its modules, which takes far longer than the
    // trainer's way from publication to call and the caller's three tiny shards. Before the third
    // step's call, the thread is awaited.
    const fresh: Executor = {
      async publishParams(job, version, state) {
        if (!ex) executors.push((ex = new LocalExecutor({ threads: 2, callerComputes: true })));
        await ex.publishParams(job, version, state);
      },
      async runShards(job, tasks, signal) {
        if (tasks[0].kind === 'train' && tasks[0].step === 2) while (!pool().idle(0)) await new Promise((r) => setTimeout(r, 5));
        const results = await ex!.runShards(job, tasks, signal);
        upAfterFirstCall ??= pool().idle(0);
        if (tasks[0].kind === 'train') computedBy.push(results.map((r) => r.workerId ?? '?'));
        return results;
      },
      releaseJob: (jobId) => ex!.releaseJob(jobId),
      close: async () => undefined,
    };
    const r = await train(spec, { executor: fresh, dataDir, jobId: 'starting-thread' });
    // The first call neither waited for the thread nor gave it a shard.
    expect(upAfterFirstCall).toBe(false);
    expect(computedBy[0]).toEqual(['caller', 'caller', 'caller']);
    // Once up, the thread takes shards: the caller claims one, the parked thread the next.
    expect(computedBy.slice(2).flat()).toContain('thread-0');
    expect(r.paramsSha256).toBe(want);
  });

  it('writes train gradients into the slots the trainer hands back, never into results still held', async () => {
    const spec = { ...tinySpec, steps: 8, evalEvery: 8 };
    const want = (await train(spec, { executor: inline, dataDir, jobId: 'inline' })).paramsSha256;
    const ex = new LocalExecutor({ threads: 2, callerComputes: true });
    executors.push(ex);
    // The thread computes shards too (their gradients come back through its reply).
    while (!poolOf(ex).idle(0)) await new Promise((resolve) => setTimeout(resolve, 5));
    const slots: ArrayBufferLike[][] = [];
    const workers = new Set<string>();
    const held: { gradient: Float32Array; copy: Float32Array }[] = [];
    const recycling: Executor = {
      publishParams: (job, version, state) => ex.publishParams(job, version, state),
      async runShards(job, tasks, signal) {
        const results = await ex.runShards(job, tasks, signal);
        if (tasks[0].kind === 'train') slots.push(results.map((r) => r.gradient!.buffer));
        for (const r of results) workers.add(r.workerId ?? '?');
        return results;
      },
      recycle(job, results) {
        // Steps 4 and 5 are kept: nothing may write over their gradients.
        if (results[0].step === 4 || results[0].step === 5) held.push(...results.map((r) => ({ gradient: r.gradient!, copy: r.gradient!.slice() })));
        else ex.recycle(job, results);
      },
      releaseJob: (jobId) => ex.releaseJob(jobId),
      close: async () => undefined,
    };
    const r = await train(spec, { executor: recycling, dataDir, jobId: 'recycling' });
    expect(r.paramsSha256).toBe(want);
    expect(workers).toContain('thread-0');
    expect(slots[0].every((b) => b instanceof SharedArrayBuffer)).toBe(true);
    const same = (a: readonly ArrayBufferLike[], b: readonly ArrayBufferLike[]): boolean => a.length === b.length && a.every((x) => b.includes(x));
    const disjoint = (a: readonly ArrayBufferLike[], b: readonly ArrayBufferLike[]): boolean => !a.some((x) => b.includes(x));
    // Each step writes into the slots of the step before, once handed back...
    for (const step of [1, 2, 3, 4, 7]) expect(same(slots[step], slots[step - 1]), `step ${step}`).toBe(true);
    // ...and into new ones after a step whose results were kept.
    expect(disjoint(slots[5], slots[4])).toBe(true);
    expect(disjoint(slots[6], [...slots[4], ...slots[5]])).toBe(true);
    expect(held).toHaveLength(2 * 3); // two steps of 3 shards
    for (const h of held) expect(h.gradient).toEqual(h.copy);
  });

  it("gives the same bytes with 1 and 2 threads as the inline executor, in 'exact' and in 'fma' numerics", async () => {
    const spec = { ...tinySpec, steps: 6, evalEvery: 6 };
    const exact = await train(spec, { executor: inline, dataDir, jobId: 'inline' });
    const want = exact.paramsSha256;
    // The calling thread computing too (alone with 1 thread; with 3, three compute threads share
    // tinySpec's shards unevenly).
    for (const [threads, callerComputes] of [[1, false], [2, false], [1, true], [2, true], [3, true]] as const) {
      const ex = new LocalExecutor({ threads, callerComputes });
      executors.push(ex);
      const r = await train(spec, { executor: ex, dataDir, jobId: `threads-${threads}-${callerComputes}` });
      expect(r.paramsSha256, `${threads} thread(s), callerComputes ${callerComputes}`).toBe(want);
    }
    // The 'fma' numerics: other bytes than 'exact', the same ones inline and on 2 threads (the
    // threads turn on relaxed SIMD through the engine, like apps/worker's do), and the job trains.
    const fmaSpec = { ...spec, numerics: 'fma' as const };
    const fmaInline = await train(fmaSpec, { executor: inline, dataDir, jobId: 'fma-inline' });
    expect(fmaInline.paramsSha256).not.toBe(want);
    // Six steps learn as much with either: the same accuracy within rounding's reach, above chance.
    expect(Math.abs(fmaInline.testAccuracy! - exact.testAccuracy!)).toBeLessThan(0.03);
    expect(fmaInline.testAccuracy).toBeGreaterThan(0.15);
    const fmaLocal = new LocalExecutor({ threads: 2 });
    executors.push(fmaLocal);
    expect((await train(fmaSpec, { executor: fmaLocal, dataDir, jobId: 'fma-threads' })).paramsSha256).toBe(fmaInline.paramsSha256);
    // The main thread's numerics are left as they were: 'exact' again.
    expect((await train(spec, { executor: inline, dataDir, jobId: 'inline-again' })).paramsSha256).toBe(want);
    // Idempotent close.
    const ex = executors[0];
    const first = ex.close();
    expect(ex.close()).toBe(first);
    await first;
  });
});

// The BullMQ executor against real Redis, with shard workers in this process: the same job trained
// locally and through Redis gives the same bytes; injected bad results are rejected, logged and
// never averaged in.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LocalExecutor, train, type Executor, type JobSpecInput } from '@stride/engine';
import {
  BlobStore,
  bullConnection,
  BullmqExecutor,
  createRedis,
  decodeMessage,
  Keys,
  SHARD_WORKER_LOCKS,
  SHARDS_QUEUE,
  ShardProcessor,
  publishShardNews,
  workerTuning,
  type ExecutorLogEntry,
  type ShardReturn,
  type TransportConfig,
} from '../src/index.ts';
import { deletePrefix, testConfig, waitFor } from './helpers.ts';

/** A small CNN: the protocol is what is under test, not the model; it keeps each run to seconds. */
export const SMALL_SPEC: JobSpecInput = {
  model: {
    name: 'small-cnn',
    input: [1, 28, 28],
    layers: [
      { type: 'conv2d', outChannels: 4, kernelSize: 5, stride: 2 },
      { type: 'relu' },
      { type: 'maxPool2d', kernelSize: 2 },
      { type: 'flatten' },
      { type: 'linear', outFeatures: 10 },
    ],
  },
  dataset: 'mnist',
  steps: 12,
  batchSize: 64,
  shards: 4,
  seed: 5,
  evalEvery: 6,
  evalShards: 4,
};

/** What an injected fault does to one shard job, on its first delivery only ('nan-always': on every one). */
type Fault = 'nan' | 'nan-always' | 'wrong-length' | 'stale-return' | 'stale-blob' | 'stale-token' | 'duplicate';

interface Harness {
  config: TransportConfig;
  redis: Redis;
  keys: Keys;
  workers: Worker[];
  processors: ShardProcessor[];
  executor: BullmqExecutor;
  logs: ExecutorLogEntry[];
}

/**
 * Shard workers in this process (BullMQ Worker + ShardProcessor, as apps/worker wires them, with its
 * lock and reconnect settings), with optional faults. With BullMQ's defaults (30 s locks, 30 s
 * stalled checks) a job whose pick-up reply a dropped connection lost would sit active for up to a
 * minute: the worker's 5 s lock bounds that to 7.5 s, as in production.
 */
function startWorker(h: Harness, threads: number, faults = new Map<string, Fault>()): void {
  const store = new BlobStore(h.redis, h.keys);
  const processor = new ShardProcessor({ store, workerId: `test-${h.workers.length}`, threads });
  const process = async (job: Job): Promise<ShardReturn> => {
    const fault = faults.get(job.id!);
    if (fault !== 'nan-always') faults.delete(job.id!);
    const ret = await processor.process(job);
    if (!fault) return ret;
    // The same version number from another publication of it (a run before a coordinator restart).
    if (fault === 'stale-token') return { ...ret, paramsToken: 'deadbeef0000' };
    // The honest gradient the processor wrote, to tamper with.
    const raw = await h.redis.getBuffer(h.keys.grad(ret.jobId, ret.step, ret.shard));
    const msg = decodeMessage(raw!, 'Gradient', 1 << 30) as { gradient: Float32Array; paramsVersion: number; paramsToken: string };
    const rewrite = (m: Partial<{ gradient: Float32Array; paramsVersion: number }>): Promise<number> =>
      store.putGradient({ jobId: ret.jobId, step: ret.step, shard: ret.shard, count: ret.count, paramsVersion: msg.paramsVersion, paramsToken: msg.paramsToken, gradient: msg.gradient, ...m });
    switch (fault) {
      case 'nan':
      case 'nan-always': {
        const g = msg.gradient.slice();
        g[17] = NaN;
        await rewrite({ gradient: g });
        return ret;
      }
      case 'wrong-length':
        await rewrite({ gradient: msg.gradient.slice(0, msg.gradient.length - 1) });
        return ret;
      case 'stale-return':
        return { ...ret, paramsVersion: ret.paramsVersion + 1 };
      case 'stale-blob':
        await rewrite({ paramsVersion: ret.paramsVersion + 1 });
        return ret;
      case 'duplicate':
        // The same completion told again, after the executor took the first.
        setTimeout(() => publishShardNews(h.redis, h.keys, job.id!, ret, () => undefined), 150);
        return ret;
    }
  };
  const worker = new Worker(SHARDS_QUEUE, process, { connection: bullConnection(h.config), prefix: h.config.prefix, concurrency: threads, ...workerTuning(SHARD_WORKER_LOCKS) });
  worker.on('error', (err) => h.logs.push({ level: 'warn', event: 'error', message: `test worker: ${err.message}` }));
  // As apps/worker does: news of every finished job (its return value, faults included) on the channel.
  worker.on('completed', (job, ret: ShardReturn) => publishShardNews(h.redis, h.keys, job.id!, ret, (line) => h.logs.push({ level: 'warn', event: 'error', message: line })));
  worker.on('failed', (job) => job?.id && publishShardNews(h.redis, h.keys, job.id, undefined, () => undefined));
  h.workers.push(worker);
  h.processors.push(processor);
}

async function runDistributed(h: Harness, dataDir: string, jobId: string) {
  return train(SMALL_SPEC, { executor: h.executor, dataDir, jobId, resume: false });
}

describe('BullmqExecutor', () => {
  let dataDir: string;
  let reference: string;
  let h: Harness;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'stride-queue-'));
    const local = new LocalExecutor({ threads: 2 });
    try {
      reference = (await train(SMALL_SPEC, { executor: local, dataDir, jobId: 'reference', resume: false })).paramsSha256;
    } finally {
      await local.close();
    }
  });
  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  function harness(): Harness {
    const config = testConfig('exec');
    const logs: ExecutorLogEntry[] = [];
    h = {
      config,
      redis: createRedis(config, 'test'),
      keys: new Keys(config.prefix),
      workers: [],
      processors: [],
      executor: new BullmqExecutor({ config, pollIntervalMs: 200, onLog: (e) => logs.push(e) }),
      logs,
    };
    return h;
  }

  afterEach(async () => {
    await Promise.all(h.workers.map((w) => w.close()));
    await Promise.all(h.processors.map((p) => p.close()));
    await h.executor.close();
    await h.executor.close(); // idempotent
    await deletePrefix(h.config);
    await h.redis.quit();
  });

  it('one worker of 1 thread, then two workers of 2 + 1 threads: the bytes of local training', async () => {
    harness();
    startWorker(h, 1);
    const one = await runDistributed(h, dataDir, 'one-worker');
    expect(one.paramsSha256).toBe(reference);
    startWorker(h, 2);
    const two = await runDistributed(h, dataDir, 'two-workers');
    expect(two.paramsSha256).toBe(reference);
    // 12 steps × 4 shards + 2 evaluations × 4 shards, each accepted exactly once per run.
    expect(h.executor.stats.accepted).toBe(2 * (12 * 4 + 2 * 4));
    expect(h.executor.stats.rejected).toEqual({ mismatch: 0, 'stale-version': 0, 'wrong-length': 0, 'non-finite': 0, malformed: 0, 'missing-gradient': 0, 'job-failed': 0, 'job-missing': 0 });
    // Everything the steps wrote is cleaned up: no shard jobs, inputs or gradients left behind.
    const left = await h.redis.keys(`${h.config.prefix}:job:*`);
    expect(left.filter((k) => /:(input|grad):/.test(k))).toEqual([]);
    // Completed shard jobs removed themselves (the last one's removal may be a moment behind its news).
    await waitFor(async () => (await h.executor.queue.getJobCountByTypes('completed', 'failed', 'active', 'wait')) === 0, 5000, 25, 'the shard jobs to be removed');
  });

  it("hands the engine each accepted gradient's Σ v², from its own finiteness scan", async () => {
    harness();
    startWorker(h, 1);
    let checked = 0;
    const ex = h.executor;
    const watching: Executor = {
      publishParams: (job, version, state) => ex.publishParams(job, version, state),
      prepareShards: (job, tasks) => ex.prepareShards(job, tasks),
      releaseJob: (jobId) => ex.releaseJob(jobId),
      close: () => ex.close(),
      async runShards(job, tasks, signal) {
        const results = await ex.runShards(job, tasks, signal);
        for (const r of results.filter((x) => x.kind === 'train')) {
          let want = 0;
          for (const v of r.gradient!) want += v * v;
          expect(Math.abs(r.gradientSumSquares! - want) / want).toBeLessThan(1e-12);
          checked++;
        }
        return results;
      },
    };
    await train({ ...SMALL_SPEC, steps: 3 }, { executor: watching, dataDir, jobId: 'sum-squares' });
    expect(checked).toBe(3 * 4);
  });

  it("trains an 'fma' job through Redis to the bytes of the same job on local threads", async () => {
    harness();
    startWorker(h, 1);
    const spec = { ...SMALL_SPEC, steps: 6, numerics: 'fma' as const };
    const local = new LocalExecutor({ threads: 2 });
    let want: string;
    try {
      want = (await train(spec, { executor: local, dataDir, jobId: 'fma-local', resume: false })).paramsSha256;
    } finally {
      await local.close();
    }
    expect(want).not.toBe(reference);
    expect((await train(spec, { executor: h.executor, dataDir, jobId: 'fma-redis', resume: false })).paramsSha256).toBe(want);
  });

  it('rejects a duplicate, a stale version (return value, blob, publication), a wrong length and NaN; recomputes; same bytes', async () => {
    harness();
    const jobId = 'faulty';
    const faults = new Map<string, Fault>([
      [`${jobId}-s1-2`, 'nan'],
      [`${jobId}-s3-0`, 'wrong-length'],
      [`${jobId}-s4-3`, 'stale-return'],
      [`${jobId}-s5-1`, 'stale-blob'],
      [`${jobId}-s2-1`, 'duplicate'],
      [`${jobId}-e6-1`, 'stale-token'],
    ]);
    startWorker(h, 2, faults);
    // Parameter version 7 expires before any worker reads it: right after it is written (with the
    // step's inputs, in one round trip), before the shard jobs are enqueued.
    const putInputs = h.executor.store.putInputs.bind(h.executor.store);
    h.executor.store.putInputs = async (inputs, params) => {
      await putInputs(inputs, params);
      if (params?.version === 7) await h.redis.del(h.keys.params(params.jobId, 7));
    };
    const result = await runDistributed(h, dataDir, jobId);
    expect(result.paramsSha256).toBe(reference);
    expect(faults.size).toBe(0);
    const { stats, logs } = { stats: h.executor.stats, logs: h.logs };
    expect(stats.rejected['non-finite']).toBe(1);
    expect(stats.rejected['wrong-length']).toBe(1);
    expect(stats.rejected['stale-version']).toBe(3);
    expect(stats.rejected['job-failed']).toBeGreaterThanOrEqual(1);
    expect(stats.duplicates).toBeGreaterThanOrEqual(1);
    // Each shard counted once, whatever was delivered.
    expect(stats.accepted).toBe(12 * 4 + 2 * 4);
    expect(stats.recomputes).toBe(5 + stats.rejected['job-failed']);
    const rejected = (shardJob: string): ExecutorLogEntry | undefined => logs.find((l) => l.event === 'rejected' && l.message.includes(`shard job ${shardJob} `));
    expect(rejected(`${jobId}-s1-2`)?.message).toMatch(/non-finite\): gradient\[17\] is NaN/);
    expect(rejected(`${jobId}-s3-0`)?.message).toMatch(/wrong-length\): Gradient.gradient: expected \d+ values, got \d+/);
    expect(rejected(`${jobId}-s4-3`)?.message).toMatch(/stale-version\): computed with parameter version 5, the task needs 4/);
    expect(rejected(`${jobId}-s5-1`)?.message).toMatch(/stale-version\): gradient computed with parameter version 6 \(publication [0-9a-f]+\), the task needs 5/);
    expect(logs.find((l) => l.event === 'rejected' && l.reason === 'job-failed')?.message).toMatch(/shard job faulty-s7-\d rejected \(job-failed\): MissingBlobError: parameter version 7 of job faulty is not in Redis/);
    expect(rejected(`${jobId}-e6-1`)?.message).toMatch(/stale-version\): computed with publication deadbeef0000 of version 6, the current one is [0-9a-f]+/);
    expect(logs.some((l) => l.event === 'republish' && l.step === 7)).toBe(true);
    expect(logs.some((l) => l.event === 'duplicate' && l.message.includes(`${jobId}-s2-1`))).toBe(true);
  });

  it('gives up on a shard that is NaN every time after its recomputes: the step is skipped, the job goes on', async () => {
    harness();
    const jobId = 'always-nan';
    startWorker(h, 2, new Map<string, Fault>([[`${jobId}-s3-1`, 'nan-always']]));
    const result = await runDistributed(h, dataDir, jobId);
    expect(result.status).toBe('succeeded');
    expect(result.paramsSha256).not.toBe(reference);
    const { stats } = h.executor;
    // The first run and maxRecomputes (3) more, each rejected for what it is and enqueued again.
    expect(stats.rejected['non-finite']).toBe(4);
    expect(stats.recomputes).toBe(3);
    expect(stats.rejected['job-missing']).toBe(0);
    expect(h.logs.filter((l) => l.event === 'rejected' && l.message.includes(`shard job ${jobId}-s3-1 `)).length).toBe(4);
  });

  it('survives Redis dropping every connection, three times mid-run: same bytes', async () => {
    harness();
    startWorker(h, 2);
    const myId = await h.redis.client('ID');
    const dropped: number[] = [];
    const drop = async (): Promise<void> => {
      const list = (await h.redis.client('LIST')) as string;
      const ids = list
        .split('\n')
        .map((line) => ({ id: /\bid=(\d+)/.exec(line)?.[1], name: /\bname=(\S*)/.exec(line)?.[1] ?? '' }))
        // Ours are named `role@prefix`; BullMQ names its blocking connections `prefix:queue...`.
        .filter((c) => c.id && Number(c.id) !== myId && (c.name.endsWith(`@${h.config.prefix}`) || c.name.startsWith(`${h.config.prefix}:`)));
      for (const c of ids) await h.redis.client('KILL', 'ID', c.id!).catch(() => 0);
      dropped.push(ids.length);
    };
    // Should the run hang, say where: what the executor logged and the state of each shard it waits for.
    const diagnose = setTimeout(() => {
      void (async () => {
        const states = await Promise.all([...h.executor.pendingShardJobs()].map(async (id) => `${id}: ${await h.executor.queue.getJobState(id)}`));
        console.log(`still running after 40 s; waiting for ${states.join(', ') || 'nothing'}; executor log:\n${h.logs.map((l) => l.message).join('\n')}`);
      })();
    }, 40_000);
    const result = await train(SMALL_SPEC, {
      executor: h.executor,
      dataDir,
      jobId: 'reconnect',
      resume: false,
      on: { step: (e) => void ([2, 5, 9].includes(e.step) && drop()) },
    }).finally(() => clearTimeout(diagnose));
    expect(result.paramsSha256).toBe(reference);
    expect(dropped.length).toBe(3);
    // Executor (queue, events, blobs) and worker (blocking, commands, blobs) connections were cut each time.
    for (const n of dropped) expect(n).toBeGreaterThanOrEqual(5);
    console.log(`reconnects: dropped ${dropped.join(', ')} connections; executor retried through them`);
  });

  it('gives up on a shard that keeps failing, naming it, and aborts promptly', async () => {
    harness();
    // No worker at all: an abort must not wait for anything.
    const ac = new AbortController();
    const job = {
      jobId: 'abort',
      modelSpec: SMALL_SPEC.model as never,
      task: 'classification' as const,
      normalization: { mean: [0.1307], std: [0.3081] },
      seed: 1,
      stateLength: 4,
      gradientLength: 4,
      bufferLength: 0,
    };
    await h.executor.publishParams(job, 0, new Uint8Array(16));
    const task = { kind: 'train' as const, jobId: 'abort', step: 0, shard: 0, paramsVersion: 0, count: 1, images: new Uint8Array(784), labels: new Uint8Array(1) };
    const run = h.executor.runShards(job, [task], ac.signal);
    setTimeout(() => ac.abort(new Error('stop now')), 100);
    // No worker runs: without the abort the shard would wait forever, so rejecting is the check.
    await expect(run).rejects.toThrow('stop now');
    // A task for another version than the one published is refused outright.
    await expect(h.executor.runShards(job, [{ ...task, paramsVersion: 1 }])).rejects.toThrow(/needs version 1, published is 0/);

    // A worker whose model cannot be built from the context fails the shard for good: the step fails with the reason.
    startWorker(h, 1);
    const err = await h.executor.runShards(job, [task]).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).name).toBe('ShardResultError');
    expect((err as Error).message).toMatch(/job abort train step 0 shard 0: shard job failed for good: .*in thread/);
  });

  it("stages the next step's inputs while a step computes, and deletes those of a step that never ran on release", async () => {
    harness();
    startWorker(h, 2);
    // Every train step after the first must find its inputs in Redis before its runShards is
    // called: only prepareShards can have put them there.
    const stagedBefore: number[] = [];
    const inner = h.executor;
    const inputKeys = (step: number): string[] => [0, 1, 2, 3].map((shard) => h.keys.input('staged', 'train', step, shard));
    const waitForKeys = async (keys: string[]): Promise<number> => {
      for (let i = 0; i < 500; i++) {
        const n = await h.redis.exists(...keys);
        if (n === keys.length) return n;
        await new Promise((r) => setTimeout(r, 10));
      }
      return h.redis.exists(...keys);
    };
    const executor: Executor = {
      publishParams: (job, v, state) => inner.publishParams(job, v, state),
      prepareShards: (job, tasks) => inner.prepareShards(job, tasks),
      runShards: async (job, tasks, signal) => {
        if (tasks[0].kind === 'train' && tasks[0].step > 0) stagedBefore.push(await waitForKeys(inputKeys(tasks[0].step)));
        return inner.runShards(job, tasks, signal);
      },
      releaseJob: (id) => inner.releaseJob(id),
      close: () => inner.close(),
    };
    const result = await train(SMALL_SPEC, { executor, dataDir, jobId: 'staged', resume: false });
    expect(result.paramsSha256).toBe(reference);
    expect(stagedBefore).toEqual(new Array(SMALL_SPEC.steps! - 1).fill(4));
    // Nothing left: every staged input was used and cleaned up with its step.
    expect((await h.redis.keys(`${h.config.prefix}:job:staged:*`)).filter((k) => /:input:/.test(k))).toEqual([]);

    // Inputs staged for a step that never runs (the job paused or failed first) go with the job.
    const job = { jobId: 'never', modelSpec: SMALL_SPEC.model as never, task: 'classification' as const, normalization: { mean: [0.1307], std: [0.3081] }, seed: 1, stateLength: 4, gradientLength: 4, bufferLength: 0 };
    const tasks = [0, 1].map((shard) => ({ kind: 'train' as const, jobId: 'never', step: 7, shard, paramsVersion: 7, count: 1, images: new Uint8Array(784), labels: new Uint8Array(1) }));
    inner.prepareShards(job, tasks);
    const keys = tasks.map((t) => h.keys.input('never', 'train', 7, t.shard));
    expect(await waitForKeys(keys)).toBe(2);
    await inner.releaseJob('never');
    expect(await h.redis.exists(...keys)).toBe(0);
  });
});

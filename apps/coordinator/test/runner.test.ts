// The job runner against real Redis and real worker processes: a coordinator SIGKILLed mid-job
// resumes by itself when started again, with the bytes of an uninterrupted run; pause, resume,
// cancel, graceful hand-back and the one-runner-per-job lease through the Coordinator class.
import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { jobPaths, LocalExecutor, MetricsLog, train, type JobSpecInput, type JobStatus } from '@stride/engine';
import { bullConnection, createRedis, JobsClient, JOBS_QUEUE, Keys, type JobProgress, type TransportConfig } from '@stride/queue';
import { Coordinator, JobStateError, readRecord, type JobRecord } from '../src/index.ts';
import { COORDINATOR_MAIN, deletePrefix, killAll, runnerConfig, spawnNode, until, WORKER_MAIN, type Spawned } from './runner-helpers.ts';

const SMALL_MODEL = {
  name: 'small-cnn',
  input: [1, 28, 28] as [number, number, number],
  layers: [
    { type: 'conv2d' as const, outChannels: 4, kernelSize: 5, stride: 2 },
    { type: 'relu' as const },
    { type: 'maxPool2d' as const, kernelSize: 2 },
    { type: 'flatten' as const },
    { type: 'linear' as const, outFeatures: 10 },
  ],
};

/** Shards the job's metrics.jsonl says it used: steps × shards + evaluations × eval shards. */
async function shardsInMetrics(dataDir: string, record: JobRecord): Promise<number> {
  const metrics = await MetricsLog.read(jobPaths(dataDir, record.id).metrics);
  const steps = metrics.filter((m) => m.type === 'step').length;
  const evals = metrics.filter((m) => m.type === 'eval').length;
  return steps * record.spec.shards + evals * record.spec.evalShards;
}

function shardsInTally(record: JobRecord | undefined): number {
  return (record?.workers ?? []).reduce((a, w) => a + w.shards, 0);
}

/** LeNet-5 for 30 steps, a checkpoint every 5. */
const LENET: JobSpecInput = { model: 'lenet5', dataset: 'mnist', steps: 30, batchSize: 64, shards: 4, seed: 9, checkpointEvery: 5, evalShards: 2, evalSamples: 200 };

describe('coordinator', () => {
  let dataDir: string;
  let config: TransportConfig;
  let env: Record<string, string>;
  let redis: Redis;
  let procs: Spawned[];

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'stride-coordinator-'));
  });
  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  function setUp(label: string): void {
    config = runnerConfig(label);
    env = { REDIS_URL: config.redisUrl, STRIDE_QUEUE_PREFIX: config.prefix, STRIDE_DATA_DIR: join(dataDir, label) };
    redis = createRedis(config, 'test');
    procs = [];
  }
  afterEach(async () => {
    await killAll(procs);
    await deletePrefix(redis, config.prefix);
    await redis.quit();
  });

  function startWorkers(threads: number[]): Promise<void[]> {
    return Promise.all(
      threads.map(async (t) => {
        const w = spawnNode(WORKER_MAIN, ['--threads', String(t)], env);
        procs.push(w);
        await w.waitFor(/worker \S+: \d+ threads/);
      }),
    );
  }

  it('SIGKILL mid-job, start again: the job resumes by itself from its checkpoint, same bytes', async () => {
    setUp('kill');
    const local = new LocalExecutor({ threads: 2 });
    const expected = (await train(LENET, { executor: local, dataDir, jobId: 'reference', resume: false }).finally(() => local.close())).paramsSha256;

    // Submitted while no coordinator runs: it waits in the queue.
    const client = new JobsClient(config);
    await client.submit(LENET, { jobId: 'crash-test' });
    await startWorkers([1, 1]);
    const first = spawnNode(COORDINATOR_MAIN, ['--no-api'], env);
    procs.push(first);

    let progress: JobProgress | undefined;
    const followed = client.follow('crash-test', (p) => (progress = p), { pollMs: 500 });
    await until(() => (progress?.step ?? 0) >= 12, 'step 12 of the first run', 60_000, 20);
    first.child.kill('SIGKILL');
    const killedAt = Date.now();
    const killedStep = progress!.step;
    await first.exited;

    const second = spawnNode(COORDINATOR_MAIN, ['--no-api'], env);
    procs.push(second);
    await second.waitFor(/job crash-test running/, 60_000);
    const resumeMs = Date.now() - killedAt;
    const outcome = await followed;
    await client.close();
    expect(outcome.state).toBe('completed');
    const result = outcome.state === 'completed' ? outcome.result : undefined;
    console.log(`coordinator SIGKILL at step ${killedStep}: resumed from step ${result?.resumedFrom} after ${(resumeMs / 1000).toFixed(1)} s`);
    expect(result?.status).toBe('succeeded');
    expect(result?.paramsSha256).toBe(expected);
    // Resumed from a checkpoint (every 5 steps; progress reports lag a little behind the run), not from scratch.
    expect(result?.resumedFrom).toBeGreaterThanOrEqual(10);
    expect(result!.resumedFrom % 5).toBe(0);
    expect(result?.resumedFrom).toBeLessThan(30);
    const record = await readRecord(env.STRIDE_DATA_DIR, 'crash-test');
    expect(record?.state.status).toBe('succeeded');
    expect(record?.runs).toBe(2);
    // The workers that served it: the two spawned ones (ids `${host}:${pid}:${hex}`, hosts from
    // their heartbeats). job.json keeps the tally as of each checkpoint, so the steps recomputed
    // after the kill count once; only a kill between a checkpoint and the record write that
    // follows it (a few ms) can leave out one checkpoint interval.
    const tally = record!.workers ?? [];
    expect(tally.length).toBeGreaterThanOrEqual(1);
    expect(tally.length).toBeLessThanOrEqual(2);
    for (const w of tally) {
      expect(w.id).toMatch(/^.+:\d+:[0-9a-f]{6}$/);
      expect(w.host).toBe(hostname());
      expect(w.computeMs).toBeGreaterThan(0);
    }
    expect(Math.max(...tally.map((w) => Date.parse(w.lastSeen)))).toBeGreaterThan(killedAt);
    const used = await shardsInMetrics(env.STRIDE_DATA_DIR, record!);
    expect(used).toBe(30 * 4 + 1 * 2); // 30 steps of 4 shards, the final evaluation in 2
    expect(shardsInTally(record)).toBeLessThanOrEqual(used);
    expect(shardsInTally(record)).toBeGreaterThanOrEqual(used - 5 * 4 - 2);
    console.log(`workers tally after the crash: ${shardsInTally(record)} shards of ${used} used`);

    // A clean stop of an idle coordinator.
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  });

  it('pause, resume, hand back on close, resume elsewhere, cancel; a leased job waits for its lease', async () => {
    setUp('ctl');
    await startWorkers([1]);
    const opts = { config, dataDir: env.STRIDE_DATA_DIR, locks: { lockDurationMs: 3000, stalledIntervalMs: 1500 }, workersPollMs: 200, liveRecordMs: 100 };
    let coordinator = new Coordinator(opts);
    const states: [string, JobStatus][] = [];
    let lastStep = -1;
    let liveTallies = 0;
    const listen = (c: Coordinator): void => {
      c.on('job', (r: JobRecord) => {
        states.push([r.id, r.state.status]);
        if (r.state.status === 'running' && shardsInTally(r) > 0) liveTallies++;
      });
      c.on('step', (e) => (lastStep = e.step));
    };
    listen(coordinator);
    await coordinator.start();
    const jobsQueue = new Queue(JOBS_QUEUE, { connection: bullConnection(config), prefix: config.prefix });
    const status = async (id: string, c = coordinator): Promise<JobStatus | undefined> => (await c.get(id))?.state.status;

    const spec: JobSpecInput = { model: SMALL_MODEL, dataset: 'mnist', steps: 5000, batchSize: 64, shards: 2, seed: 2, checkpointEvery: 1000, evalSamples: 100 };
    await expect(coordinator.submit({ ...spec, batchSize: 0 })).rejects.toThrow(/batchSize/);
    const id = await coordinator.submit(spec, { jobId: 'ctl-job' });
    await until(() => lastStep >= 5, 'five steps');

    // Pause: checkpoint at the step boundary, parked as a delayed job.
    await coordinator.pause(id);
    await until(async () => (await status(id)) === 'paused', 'paused');
    const pausedAt = (await coordinator.get(id))!.state;
    expect(pausedAt.status === 'paused' && pausedAt.step).toBeGreaterThanOrEqual(5);
    expect(await jobsQueue.getJobState(id)).toBe('delayed');
    const ckpts = await coordinator.checkpoints(id);
    expect(ckpts.at(-1)?.step).toBe(pausedAt.status === 'paused' ? pausedAt.step : -1);
    expect((await coordinator.metrics(id)).filter((m) => m.type === 'step').length).toBe(pausedAt.status === 'paused' ? pausedAt.step : -1);
    await expect(coordinator.pause(id)).rejects.toThrow(JobStateError);

    // Resume: runs again from the checkpoint.
    await coordinator.resume(id);
    await until(() => lastStep >= (pausedAt.status === 'paused' ? pausedAt.step : 0) + 3, 'three more steps after resume');
    expect(await status(id)).toBe('running');
    expect((await coordinator.workers()).length).toBe(1);
    expect((await coordinator.queueCounts()).jobs.active).toBe(1);

    // Close: the running job checkpoints and goes back to the queue; another coordinator picks it up at once.
    await coordinator.close();
    await coordinator.close(); // idempotent
    expect((await readRecord(opts.dataDir, id))?.state.status).toBe('queued');
    expect(await jobsQueue.getJobState(id)).toBe('waiting');
    const handedBackAt = lastStep;
    coordinator = new Coordinator(opts);
    listen(coordinator);
    await coordinator.start();
    await until(() => lastStep > handedBackAt + 2, 'steps in the second coordinator');
    expect((await coordinator.get(id))?.runs).toBe(3);

    // Cancel: stops at a step boundary; a cancelled job cannot be resumed.
    await coordinator.cancel(id);
    await until(async () => (await status(id)) === 'cancelled', 'cancelled');
    await expect(coordinator.resume(id)).rejects.toThrow(/only a paused job can be resumed/);
    expect(states.filter(([j]) => j === id).map(([, s]) => s)).toEqual(expect.arrayContaining(['queued', 'running', 'paused', 'cancelled']));
    // Over its three runs (pause/resume, hand-back, cancel) one worker served every shard used, once.
    const cancelled = (await readRecord(opts.dataDir, id))!;
    expect(cancelled.workers?.map((w) => [w.host, w.shards])).toEqual([[hostname(), await shardsInMetrics(opts.dataDir, cancelled)]]);
    expect(shardsInTally(await coordinator.get(id))).toBe(shardsInTally(cancelled));
    expect(liveTallies).toBeGreaterThan(0);

    // A job whose lease another runner holds is not run until the lease is gone.
    const keys = new Keys(config.prefix);
    await redis.set(keys.lease('leased'), 'someone-else', 'PX', 60_000);
    await coordinator.submit({ ...spec, steps: 3 }, { jobId: 'leased' });
    await new Promise((r) => setTimeout(r, 1500));
    expect(await status('leased')).toBe('queued');
    await redis.del(keys.lease('leased'));
    await until(async () => (await status('leased')) === 'succeeded', 'the leased job to run once free');
    const leased = (await readRecord(opts.dataDir, 'leased'))!;
    expect(shardsInTally(leased)).toBe(3 * 2 + leased.spec.evalShards);
    expect(shardsInTally(leased)).toBe(await shardsInMetrics(opts.dataDir, leased));
    expect((await coordinator.list()).map((r) => r.id).sort()).toEqual(['ctl-job', 'leased']);

    await coordinator.close();
    await jobsQueue.close();
  });
});

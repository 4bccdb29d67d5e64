// Worker processes against real Redis, the coordinator's side (trainer + BullMQ executor) in this
// process: several workers give the bytes of local training; SIGKILL mid-shard loses only time;
// a worker started mid-job takes shards at once; SIGTERM closes cleanly.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LocalExecutor, train, type JobSpecInput, type ShardResult, type StepMetrics } from '@stride/engine';
import { bullConnection, BullmqExecutor, createRedis, Keys, listWorkers, resolveTransportConfig, SHARDS_QUEUE, type TransportConfig } from '@stride/queue';
import { ShardWorker } from '../src/index.ts';
import { deletePrefix, killAll, startWorker, type Spawned } from './process.ts';

const SMALL: JobSpecInput = {
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
  steps: 40,
  batchSize: 64,
  shards: 4,
  seed: 11,
  evalEvery: 20,
  evalShards: 4,
  evalSamples: 1000,
};

/** LeNet-5: shards long enough (a few hundred ms) to be killed in the middle. */
const LENET: JobSpecInput = { model: 'lenet5', dataset: 'mnist', steps: 20, batchSize: 64, shards: 4, seed: 3, evalShards: 2, evalSamples: 200 };

describe('worker processes', () => {
  let dataDir: string;
  let config: TransportConfig;
  let env: Record<string, string>;
  let redis: Redis;
  let executor: BullmqExecutor;
  let procs: Spawned[];
  const references = new Map<JobSpecInput, string>();

  async function reference(spec: JobSpecInput): Promise<string> {
    let sha = references.get(spec);
    if (!sha) {
      const local = new LocalExecutor({ threads: 2 });
      try {
        sha = (await train(spec, { executor: local, dataDir, jobId: `ref-${references.size}`, resume: false })).paramsSha256;
      } finally {
        await local.close();
      }
      references.set(spec, sha);
    }
    return sha;
  }

  /** Records who computed each accepted shard, and when. */
  function recordResults(): { workerId: string; at: number }[] {
    const seen: { workerId: string; at: number }[] = [];
    const run = executor.runShards.bind(executor);
    executor.runShards = async (...args) => {
      const results: ShardResult[] = await run(...args);
      for (const r of results) seen.push({ workerId: r.workerId ?? '?', at: Date.now() });
      return results;
    };
    return seen;
  }

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'stride-worker-'));
  });
  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  function setUp(): void {
    config = resolveTransportConfig({ prefix: `{stride-test-worker-${randomBytes(4).toString('hex')}}` });
    env = { REDIS_URL: config.redisUrl, STRIDE_QUEUE_PREFIX: config.prefix };
    redis = createRedis(config, 'test');
    executor = new BullmqExecutor({ config, pollIntervalMs: 250, onLog: () => undefined });
    procs = [];
  }

  afterEach(async () => {
    await killAll(procs);
    await executor.close();
    await deletePrefix(redis, config.prefix);
    await redis.quit();
  });

  it('three worker processes (1, 2 and 1 threads) train the bytes of local training', async () => {
    setUp();
    const expected = await reference(SMALL);
    procs.push(...(await Promise.all([startWorker(env, 1), startWorker(env, 2), startWorker(env, 1)])));
    const seen = recordResults();
    const result = await train(SMALL, { executor, dataDir, jobId: 'three', resume: false });
    expect(result.paramsSha256).toBe(expected);
    expect(new Set(seen.map((s) => s.workerId)).size).toBeGreaterThanOrEqual(2);
    expect(executor.stats.accepted).toBe(40 * 4 + 2 * 4);
  });

  it('takes a shard ahead only while a step has more shards than all live workers have threads; gradients precede completions', async () => {
    setUp();
    const ahead = { ...env, STRIDE_PREFETCH: '1' };
    procs.push(await startWorker(ahead, 1));
    procs.push(await startWorker(ahead, 1));
    // Both have read each other's heartbeat (every 2 s) before the first step.
    await new Promise((r) => setTimeout(r, 3000));
    const held: ShardResult[] = [];
    const run = executor.runShards.bind(executor);
    executor.runShards = async (...args) => {
      const results: ShardResult[] = await run(...args);
      if (results[0]?.kind === 'train') held.push(...results);
      return results;
    };
    /** Most shards one worker had in hand at once (from taking a shard to its gradient sent). */
    const mostInHand = (): number => {
      let most = 0;
      for (const r of held) {
        const at = r.timing!.startedAt;
        most = Math.max(most, held.filter((o) => o.workerId === r.workerId && o.timing!.startedAt <= at && at < o.timing!.doneAt).length);
      }
      held.length = 0;
      return most;
    };
    const spec = (shards: number): JobSpecInput => ({ ...SMALL, steps: 10, batchSize: 16 * shards, shards, evalEvery: 10, evalShards: 2, evalSamples: 200 });
    // 2 shards for 2 threads: a shard taken ahead would wait while the other worker's thread idles.
    await train(spec(2), { executor, dataDir, jobId: 'ahead-2', resume: false });
    expect(mostInHand()).toBe(1);
    // 6 shards for 2 threads: each worker fetches its next shard while it computes one.
    await train(spec(6), { executor, dataDir, jobId: 'ahead-6', resume: false });
    expect(mostInHand()).toBe(2);
    // The gradient write is not awaited: it goes out before the completion, on the same connection.
    expect(executor.stats.rejected['missing-gradient']).toBe(0);
    expect(executor.stats.recomputes).toBe(0);
  });

  it('SIGKILL of a worker in the middle of a shard, three times: same bytes, bounded time lost', async () => {
    setUp();
    // 128 images a shard: a shard of 16 is in a worker's hands for a few ms on a fast, quiet
    // machine, and the monkey (polling every 15 ms) could see too few of them in 20 steps.
    const KILLED: JobSpecInput = { ...LENET, batchSize: 512 };
    const expected = await reference(KILLED);
    const workers = [await startWorker(env, 1), await startWorker(env, 1)];
    procs.push(...workers);
    const queue = new Queue(SHARDS_QUEUE, { connection: bullConnection(config), prefix: config.prefix });
    const kills: { at: number; shardJob: string; step: number }[] = [];
    const steps: StepMetrics[] = [];
    let done = false;
    // The chaos monkey: whenever a step with no kill yet has a shard in a worker's hands, kill that worker and start a fresh one.
    const monkey = (async () => {
      while (!done && kills.length < 3) {
        const active = await queue.getJobs(['active']);
        const victim = active.find((j) => j.name === 'train' && !kills.some((k) => k.step >= j.data.step - 2) && workers.some((w) => w.id === j.processedBy));
        const proc = victim && workers.find((w) => w.id === victim.processedBy);
        if (victim && proc) {
          proc.child.kill('SIGKILL');
          kills.push({ at: Date.now(), shardJob: victim.id!, step: victim.data.step });
          workers.splice(workers.indexOf(proc), 1);
          const fresh = await startWorker(env, 1);
          workers.push(fresh);
          procs.push(fresh);
        }
        await new Promise((r) => setTimeout(r, 15));
      }
    })();
    const result = await train(KILLED, { executor, dataDir, jobId: 'killed', resume: false, on: { step: (e) => steps.push(e) } });
    done = true;
    await monkey;
    await queue.close();
    expect(kills.length).toBe(3);
    expect(result.paramsSha256).toBe(expected);
    // Time lost per kill: the killed step's time beyond the median step.
    const sorted = steps.map((s) => s.stepMs).sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    const lost = kills.map((k) => steps.find((s) => s.step === k.step)!.stepMs - median);
    console.log(`worker SIGKILL: median step ${median.toFixed(0)} ms; time lost per kill (ms): ${lost.map((l) => l.toFixed(0)).join(', ')}`);
    // Bounded by lockDuration + stalledInterval (5 s + 2.5 s) plus a recomputation; the slack absorbs a busy machine.
    for (const l of lost) expect(l).toBeLessThan(7500 + Math.max(3 * median, 5000));
  });

  it('closed while it starts (its threads not up yet): start resolves and the worker closes cleanly', async () => {
    setUp();
    const worker = new ShardWorker({ config, threads: 1 });
    const started = worker.start();
    const closing = worker.close();
    await expect(started).resolves.toBeUndefined();
    await closing;
    await worker.closed;
    expect(await listWorkers(redis, new Keys(config.prefix))).toEqual([]);
  });

  it('a worker started mid-job takes shards at once; SIGTERM finishes the shard in hand and leaves cleanly', async () => {
    setUp();
    const first = await startWorker(env, 1);
    procs.push(first);
    const seen = recordResults();
    let late: (Spawned & { id: string }) | undefined;
    let lateReady = 0;
    const stop = new AbortController();
    // A long job (it is stopped as soon as the late worker has shown up): its first step starts the late worker.
    const result = await train(
      { ...LENET, steps: 400 },
      {
        executor,
        dataDir,
        jobId: 'elastic',
        resume: false,
        signal: stop.signal,
        on: {
          step: (e) => {
            if (e.step === 0) {
              void startWorker(env, 1).then((w) => {
                late = w;
                lateReady = Date.now();
                procs.push(w);
              });
            }
            if (late && seen.filter((s) => s.workerId === late!.id).length >= 4) stop.abort('pause');
          },
        },
      },
    );
    expect(result.status).toBe('paused');
    const firstShard = seen.find((s) => s.workerId === late!.id)!;
    console.log(`elasticity: the late worker's first shard was accepted ${firstShard.at - lateReady} ms after it was ready (steps take ${(result.wallMs / result.steps).toFixed(0)} ms)`);
    // It takes a shard of the very next step: at most about two steps' time.
    expect(firstShard.at - lateReady).toBeLessThan(3000);

    const keys = new Keys(config.prefix);
    expect((await listWorkers(redis, keys)).map((w) => w.id).sort()).toEqual([first.id, late!.id].sort());
    first.child.kill('SIGTERM');
    late!.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    expect(await late!.exited).toBe(0);
    expect(first.output()).toMatch(/SIGTERM, finishing the shards in hand[\s\S]*closed/);
    // A clean exit removes the heartbeat at once.
    expect(await listWorkers(redis, keys)).toEqual([]);
  });
});

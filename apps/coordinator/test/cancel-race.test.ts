// A user's cancel is never undone by a lease race. A coordinator in this process runs a job with no
// worker anywhere, so the run waits on its first step's shards; then its lease is lost and the job
// cancelled. The final checkpoint (a fenced write) fails with a LeaseLostError and the job is handed
// back, but the cancel request stays in Redis: the next run applies it and the job ends cancelled,
// never trained again. Real Redis, a unique prefix per test.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest';
import { jobPaths, type JobSpecInput } from '@stride/engine';
import { bullConnection, createRedis, JOBS_QUEUE, Keys, SHARDS_QUEUE, type TransportConfig } from '@stride/queue';
import { Coordinator, readRecord, type JobRecord } from '../src/index.ts';
import { readFence } from '../src/lease.ts';
import { deletePrefix, runnerConfig, until } from './runner-helpers.ts';

const SPEC: JobSpecInput = {
  model: { name: 'tiny', input: [1, 28, 28], layers: [{ type: 'flatten' }, { type: 'linear', outFeatures: 10 }] },
  dataset: 'mnist',
  steps: 100,
  batchSize: 8,
  shards: 2,
  checkpointEvery: 50,
};

describe('cancel against a lost lease', () => {
  let root: string;
  let config: TransportConfig;
  let redis: Redis;
  let keys: Keys;
  let coordinator: Coordinator;
  let queues: Queue[];

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'stride-cancel-race-'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });
  afterEach(async () => {
    await coordinator.close();
    for (const q of queues) await q.close();
    await deletePrefix(redis, config.prefix);
    await redis.quit();
  });

  /** A coordinator on a fresh prefix with the job submitted and waiting on its first step's shards (there is no worker). */
  async function runningJob(label: string): Promise<{ id: string; dataDir: string; log: string[]; states: JobRecord['state']['status'][] }> {
    config = runnerConfig(label);
    redis = createRedis(config, 'test');
    keys = new Keys(config.prefix);
    const dataDir = join(root, label);
    // Short locks: a job handed back without a word to BullMQ comes back through the stalled check soon.
    coordinator = new Coordinator({ config, dataDir, locks: { lockDurationMs: 2000, stalledIntervalMs: 1000 }, leaseMs: 1000 });
    const log: string[] = [];
    const states: JobRecord['state']['status'][] = [];
    coordinator.on('log', (e) => log.push(`${e.level}: ${e.message}`));
    coordinator.on('job', (r) => states.push(r.state.status));
    queues = [new Queue(JOBS_QUEUE, { connection: bullConnection(config), prefix: config.prefix }), new Queue(SHARDS_QUEUE, { connection: bullConnection(config), prefix: config.prefix })];
    await coordinator.start();
    const id = await coordinator.submit(SPEC, { jobId: `race-${label}` });
    await until(async () => (await queues[1].getJobCounts('waiting')).waiting === SPEC.shards, 'the first step\'s shards in the queue');
    expect((await coordinator.get(id))?.state.status).toBe('running');
    return { id, dataDir, log, states };
  }

  /** The job ends cancelled, is completed in BullMQ, ran once, and its cancel request is gone. */
  async function expectCancelled(id: string, dataDir: string, states: string[]): Promise<void> {
    await until(async () => (await readRecord(dataDir, id))?.state.status === 'cancelled', `job ${id} cancelled on disk`);
    await until(async () => (await queues[0].getJobState(id)) === 'completed', `job ${id} completed in the jobs queue`);
    const record = (await readRecord(dataDir, id))!;
    expect(record.state).toMatchObject({ status: 'cancelled', step: 0 }); // its final checkpoint was refused: none was written
    expect(record.runs).toBe(1); // not trained again after the cancel
    expect(states.at(-1)).toBe('cancelled');
    expect(states.filter((s) => s === 'running')).toHaveLength(1);
    expect(await redis.get(keys.control(id))).toBeNull();
    await expect(coordinator.cancel(id)).rejects.toThrow(/is cancelled; only a queued, paused or running job can be cancelled/);
  }

  it('the lease expires just before the cancel: the final checkpoint is refused, the job handed back, and the cancel sticks', async () => {
    const { id, dataDir, log, states } = await runningJob('expired');
    // The lease lapses (as under a long stall), then the user cancels; whichever the run sees
    // first — the failed renewal or the cancel — the final checkpoint write is refused.
    await redis.del(keys.lease(id));
    await coordinator.cancel(id);
    await expectCancelled(id, dataDir, states);
    expect(log.join('\n')).toMatch(/handed back to the queue/);
  });

  it('a newer fencing token appears just before the cancel: nothing is written by the stale run, and the cancel sticks', async () => {
    const { id, dataDir, log, states } = await runningJob('fenced');
    // Deterministic: the Redis lease stays ours (renewals go on), only the fence on disk moved on,
    // so the run notices nothing until the cancel stops it and its final checkpoint is refused.
    const dir = jobPaths(dataDir, id).dir;
    await writeFile(join(dir, 'lease.fence'), `${(await readFence(dir)) + 1}\n`);
    await coordinator.cancel(id);
    await expectCancelled(id, dataDir, states);
    expect(log.join('\n')).toMatch(/fencing token \d+ is stale/);
  });
});

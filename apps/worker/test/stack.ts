// Test helper: a BullmqExecutor and two one-thread worker processes on a fresh key prefix of the
// real Redis, plus a temporary data directory, for the whole describe block; all removed after it.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { BullmqExecutor, createRedis, resolveTransportConfig, type TransportConfig } from '@stride/queue';
import { deletePrefix, killAll, startWorker, type Spawned } from './process.ts';

export interface WorkerStack {
  /** The temporary data directory (job records, checkpoints, user datasets under `datasets/`). */
  readonly dataDir: string;
  readonly executor: BullmqExecutor;
}

/** Registers beforeAll/afterAll hooks; read the fields inside tests. `prepare` fills the data directory first. */
export function useTwoWorkerStack(label: string, prepare?: (dataDir: string) => Promise<void>): WorkerStack {
  const stack = {} as { dataDir: string; executor: BullmqExecutor };
  let config: TransportConfig;
  let redis: Redis;
  let procs: Spawned[] = [];

  beforeAll(async () => {
    stack.dataDir = await mkdtemp(join(tmpdir(), `stride-${label}-`));
    await prepare?.(stack.dataDir);
    config = resolveTransportConfig({ prefix: `{stride-test-${label}-${randomBytes(4).toString('hex')}}` });
    redis = createRedis(config, 'test');
    stack.executor = new BullmqExecutor({ config, pollIntervalMs: 250, onLog: () => undefined });
    const env = { REDIS_URL: config.redisUrl, STRIDE_QUEUE_PREFIX: config.prefix };
    procs = await Promise.all([startWorker(env, 1), startWorker(env, 1)]);
  }, 60_000);

  afterAll(async () => {
    await killAll(procs);
    await stack.executor.close();
    await deletePrefix(redis, config.prefix);
    await redis.quit();
    await rm(stack.dataDir, { recursive: true, force: true });
  });

  return stack;
}

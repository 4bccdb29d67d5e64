// The job lease with its fencing token, against the real Redis (unique key prefix per test): a
// runner whose lease expired while it was frozen is refused every write once another runner took
// the job, even if Redis forgot the fencing counter; and Redis out of memory counts as transient.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isTransientRedisError } from '@stride/queue';
import { JobLease, readFence } from '../src/lease.ts';

let redis: Redis;
let dir: string;
const prefix = `{stride-test-lease-${randomBytes(4).toString('hex')}}`;
beforeAll(async () => {
  redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: 3 });
  dir = await mkdtemp(join(tmpdir(), 'stride-lease-'));
});
afterAll(async () => {
  const keys = await redis.keys(`${prefix.replace(/[{}]/g, (c) => `\\${c}`)}:*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
  await rm(dir, { recursive: true, force: true });
});

describe('JobLease fencing', () => {
  it('a runner that lost its lease is fenced off; tokens only grow, even when Redis forgets the counter', async () => {
    const key = `${prefix}:lease:job-a`;
    const jobDir = join(dir, 'jobs', 'job-a');
    const a = new JobLease(redis, key, 300, 'coordinator-a', jobDir);
    expect(await a.tryAcquire()).toBe(true);
    expect(a.fence).toBeGreaterThan(0);
    expect(await readFence(jobDir)).toBe(a.fence);
    await expect(a.check()).resolves.toBeUndefined();

    const b = new JobLease(redis, key, 5000, 'coordinator-b', jobDir);
    expect(await b.tryAcquire()).toBe(false); // a still holds it
    await new Promise((r) => setTimeout(r, 450)); // a "froze" past its expiry
    expect(await b.tryAcquire()).toBe(true);
    expect(b.fence).toBeGreaterThan(a.fence);
    expect((await readFile(join(jobDir, 'lease.fence'), 'utf8')).trim()).toBe(String(b.fence));

    // a wakes up: renewal fails, every write is refused, naming why.
    expect(await a.renew()).toBe(false);
    await expect(a.check('checkpoint write')).rejects.toMatchObject({ name: 'LeaseLostError', message: expect.stringMatching(/lease lost before a checkpoint write/) });
    expect(await a.fenceIsOurs()).toBe(false);
    // Even if a's token were back in Redis (a race with the takeover), the fence file refuses it.
    await redis.set(key, a.token, 'PX', 5000);
    await expect(a.check()).rejects.toMatchObject({ name: 'LeaseLostError', message: expect.stringMatching(/fencing token \d+ is stale/) });
    await redis.set(key, b.token, 'PX', 5000);
    await expect(b.check()).resolves.toBeUndefined();
    await a.release(); // not a's: nothing happens
    expect(await b.holder()).toBe(b.token);
    await b.release();
    expect(await b.holder()).toBeNull();

    // Redis lost the counter (flushed, restored from an old AOF): the next token still exceeds the one on disk.
    await redis.del(`${key}:fence`);
    const c = new JobLease(redis, key, 5000, 'coordinator-c', jobDir);
    expect(await c.tryAcquire()).toBe(true);
    expect(c.fence).toBe(b.fence + 1);
    await expect(b.check()).rejects.toMatchObject({ name: 'LeaseLostError' });
    await c.release();
  });

  it('Redis out of memory (maxmemory, noeviction) is a transient error: writes are retried until memory is freed', () => {
    const oom = new Error("OOM command not allowed when used memory > 'maxmemory'.");
    expect(isTransientRedisError(oom)).toBe(true);
    expect(isTransientRedisError(new Error('ERR wrong number of arguments'))).toBe(false);
  });
});

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import type { JobContext } from '@stride/engine';
import { BlobStore, createRedis, Heartbeat, Keys, listWorkers, MessageError, MissingBlobError, StaleJobError, type TransportConfig, type WorkerInfo } from '../src/index.ts';
import { deletePrefix, testConfig, waitFor } from './helpers.ts';

const context: JobContext = {
  jobId: 'job-a',
  modelSpec: { input: [1, 4, 4], layers: [{ type: 'flatten' }, { type: 'linear', outFeatures: 2 }] },
  task: 'classification',
  normalization: { mean: [0.5], std: [0.25] },
  seed: 7,
  stateLength: 34,
  gradientLength: 34,
  bufferLength: 0,
};

describe('BlobStore', () => {
  let config: TransportConfig;
  let redis: Redis;
  let keys: Keys;

  beforeEach(() => {
    config = testConfig('blob');
    redis = createRedis(config, 'test');
    keys = new Keys(config.prefix);
  });
  afterEach(async () => {
    await deletePrefix(config);
    await redis.quit();
  });

  it('publishes a parameter version under its key with an expiry, and reads it back', async () => {
    const store = new BlobStore(redis, keys, { ttlMs: 5000 });
    const state = new Uint8Array(new Float32Array(34).map((_, i) => i - 0.5).buffer);
    await store.putParams('job-a', 3, 'feedbeef', state);
    const key = `${config.prefix}:job:job-a:params:3`;
    const ttl = await redis.pttl(key);
    expect(ttl).toBeGreaterThan(4000);
    expect(ttl).toBeLessThanOrEqual(5000);
    expect(Array.from(await store.getParams('job-a', 3, 'feedbeef', 34))).toEqual(Array.from(state));
    // Published again under another token: a shard job of the old publication is stale.
    await expect(store.getParams('job-a', 3, 'cafebabe', 34)).rejects.toThrow(StaleJobError);
    // Wrong length for the job: a MessageError naming the field.
    await expect(store.getParams('job-a', 3, 'feedbeef', 35)).rejects.toThrow(MessageError);
  });

  it('a blob that expired is a MissingBlobError naming the key', async () => {
    const store = new BlobStore(redis, keys, { ttlMs: 1000 });
    await store.putParams('job-a', 1, 'feedbeef', new Uint8Array(34 * 4));
    await store.putContext(context);
    expect((await store.getContext('job-a')).stateLength).toBe(34);
    await waitFor(async () => (await redis.exists(keys.params('job-a', 1))) === 0, 3000, 50, 'the params key to expire');
    const err = await store.getParams('job-a', 1, 'feedbeef', 34).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MissingBlobError);
    expect((err as MissingBlobError).key).toBe(keys.params('job-a', 1));
    await expect(store.getContext('job-a')).rejects.toThrow(/context of job job-a is not in Redis/);
  });

  it('refresh pushes expiries back; delete removes', async () => {
    const store = new BlobStore(redis, keys, { ttlMs: 1500 });
    await store.putParams('job-a', 1, 'feedbeef', new Uint8Array(34 * 4));
    await new Promise((r) => setTimeout(r, 700));
    await store.refresh([keys.params('job-a', 1), keys.params('job-a', 99)]);
    expect(await redis.pttl(keys.params('job-a', 1))).toBeGreaterThan(1200);
    await store.delete([keys.params('job-a', 1)]);
    expect(await redis.exists(keys.params('job-a', 1))).toBe(0);
  });

  it('stores shard inputs and gradients as binary keys', async () => {
    const store = new BlobStore(redis, keys);
    const images = Uint8Array.from({ length: 32 }, (_, i) => i);
    await store.putInputs([{ jobId: 'job-a', kind: 'train', step: 5, shard: 1, count: 2, images, labels: new Uint8Array([1, 0]) }]);
    const input = await store.getInput({ jobId: 'job-a', kind: 'train', step: 5, shard: 1, count: 2, sampleBytes: 16 });
    expect(Array.from(input.images)).toEqual(Array.from(images));
    const gradient = new Float32Array(34).fill(-0);
    await store.putGradient({ jobId: 'job-a', step: 5, shard: 1, paramsVersion: 5, paramsToken: 'feedbeef', count: 2, gradient });
    const g = await store.getGradient('job-a', 5, 1, { gradientLength: 34, bufferLength: 0 });
    expect(g?.paramsVersion).toBe(5);
    expect(Object.is(g!.gradient[0], -0)).toBe(true);
    expect(await store.getGradient('job-a', 5, 2, { gradientLength: 34, bufferLength: 0 })).toBeUndefined();
  });

  it('checks the job context it reads', async () => {
    const store = new BlobStore(redis, keys);
    await redis.set(keys.context('job-a'), JSON.stringify({ ...context, stateLength: 'x' }));
    await expect(store.getContext('job-a')).rejects.toThrow(/JobContext.stateLength: expected an integer/);
    await redis.set(keys.context('job-a'), JSON.stringify({ ...context, normalization: { mean: [0.5, 1], std: [1] } }));
    await expect(store.getContext('job-a')).rejects.toThrow(/JobContext.normalization.mean: expected 1 finite numbers/);
    await redis.set(keys.context('job-a'), '{not json');
    await expect(store.getContext('job-a')).rejects.toThrow(/JobContext: not valid JSON/);
  });
});

describe('heartbeats', () => {
  let config: TransportConfig;
  let redis: Redis;
  let keys: Keys;

  beforeEach(() => {
    config = testConfig('hb');
    redis = createRedis(config, 'test');
    keys = new Keys(config.prefix);
  });
  afterEach(async () => {
    await deletePrefix(config);
    await redis.quit();
  });

  const info = (id: string, shardsDone: number): Omit<WorkerInfo, 'lastSeen'> => ({
    id,
    host: 'h',
    pid: 1,
    threads: 2,
    shardsDone,
    shardsFailed: 0,
    busyMs: 10,
    active: 0,
    state: 'running',
    startedAt: Date.now(),
  });

  it('workers report themselves; a stopped one leaves; a dead one ages out', async () => {
    let done = 0;
    const a = new Heartbeat(redis, keys, { intervalMs: 100, info: () => info('w-a', done) });
    const b = new Heartbeat(redis, keys, { intervalMs: 100, info: () => info('w-b', 0) });
    await a.start();
    await b.start();
    expect((await listWorkers(redis, keys, 300)).map((w) => w.id)).toEqual(['w-a', 'w-b']);
    done = 5;
    await waitFor(async () => (await listWorkers(redis, keys, 300)).find((w) => w.id === 'w-a')?.shardsDone === 5, 2000, 50, 'an updated heartbeat');

    // A clean stop removes the record at once.
    await b.stop();
    await b.stop(); // idempotent
    expect((await listWorkers(redis, keys, 300)).map((w) => w.id)).toEqual(['w-a']);

    // A worker that stops beating without a word (SIGKILL) ages out after the stale limit.
    const dead = { ...info('w-dead', 1), lastSeen: Date.now() };
    await redis.hset(keys.workers(), 'w-dead', JSON.stringify(dead));
    expect((await listWorkers(redis, keys, 300)).map((w) => w.id)).toEqual(['w-a', 'w-dead']);
    await new Promise((r) => setTimeout(r, 400));
    expect((await listWorkers(redis, keys, 300)).map((w) => w.id)).toEqual(['w-a']);
    expect(await redis.hexists(keys.workers(), 'w-dead')).toBe(0);

    // Garbage in the hash is dropped, not returned.
    await redis.hset(keys.workers(), 'junk', '{"id": 3}');
    expect((await listWorkers(redis, keys, 300)).map((w) => w.id)).toEqual(['w-a']);
    // The hash itself has an expiry, so it disappears when no worker is left.
    expect(await redis.pttl(keys.workers())).toBeGreaterThan(0);
    await a.stop();
    expect(await listWorkers(redis, keys, 300)).toEqual([]);
  });
});

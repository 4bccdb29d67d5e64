// ShardProcessor against the real Redis: parameters and inputs written in one round trip replace the
// older version; the worker computes the same bytes as the engine does in-process; results carry the
// worker's timeline.
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildModel, createRng } from '@stride/cnn';
import { packState, ShardComputer, stateLayout, stateToBytes, type JobContext } from '@stride/engine';
import { BlobStore, createRedis, Keys, parseParamsAnnouncement, ShardProcessor, type ShardJobData, type TransportConfig } from '../src/index.ts';
import { deletePrefix, testConfig } from './helpers.ts';

const modelSpec = {
  input: [1, 12, 12] as [number, number, number],
  layers: [{ type: 'conv2d' as const, outChannels: 3, kernelSize: 3 }, { type: 'relu' as const }, { type: 'flatten' as const }, { type: 'linear' as const, outFeatures: 10 }],
};

describe('ShardProcessor', () => {
  let config: TransportConfig;
  let redis: Redis;
  let keys: Keys;
  let store: BlobStore;
  const processors: ShardProcessor[] = [];

  beforeEach(() => {
    config = testConfig('proc');
    redis = createRedis(config, 'test');
    keys = new Keys(config.prefix);
    store = new BlobStore(redis, keys, { ttlMs: 60_000 });
  });
  afterEach(async () => {
    await Promise.all(processors.splice(0).map((p) => p.close()));
    await deletePrefix(config);
    await redis.quit();
  });

  it('computes a shard from parameters and inputs written in one round trip, reports its timeline', async () => {
    const model = buildModel(modelSpec, { seed: 3 });
    const context: JobContext = { jobId: 'job-p', modelSpec, task: 'classification', normalization: { mean: [0.5], std: [0.25] }, seed: 3, ...stateLayout(model) };
    await store.putContext(context);
    // An older version, superseded by the write of version 1 together with the inputs.
    await store.putParams('job-p', 0, 'aaaaaaaa', stateToBytes(packState(model)));
    const state = packState(model).map((v, i) => v + (i % 7) * 1e-3);
    const rng = createRng(9);
    const count = 8;
    const inputs = [0, 1].map((shard) => ({
      jobId: 'job-p',
      kind: 'train' as const,
      step: 1,
      shard,
      count,
      images: Uint8Array.from({ length: count * 144 }, () => Math.floor(rng.next() * 256)),
      labels: Uint8Array.from({ length: count }, () => Math.floor(rng.next() * 10)),
    }));
    await store.putInputs(inputs, { jobId: 'job-p', version: 1, token: 'bbbbbbbb', state: stateToBytes(state), unlink: [keys.params('job-p', 0)] });
    expect(await redis.exists(keys.params('job-p', 0))).toBe(0);
    expect(await redis.exists(keys.params('job-p', 1))).toBe(1);

    const job = (shard: number): Job => ({ data: { jobId: 'job-p', kind: 'train', step: 1, shard, paramsVersion: 1, paramsToken: 'bbbbbbbb', count, enqueuedAt: performance.timeOrigin + performance.now() } satisfies ShardJobData }) as Job;
    const gradient = async (shard: number): Promise<Buffer> => {
      const g = await store.getGradient('job-p', 1, shard, { gradientLength: context.gradientLength, bufferLength: 0 });
      await redis.del(keys.grad('job-p', 1, shard));
      return Buffer.from(g!.gradient.buffer, g!.gradient.byteOffset, g!.gradient.byteLength);
    };
    const processor = new ShardProcessor({ store, workerId: 'w0', threads: 1 });
    processors.push(processor);
    const before = performance.timeOrigin + performance.now();
    const ret = await processor.process(job(0));
    const after = performance.timeOrigin + performance.now();
    const t = ret.timing!;
    expect(t.startedAt).toBeGreaterThanOrEqual(before);
    expect(t.doneAt).toBeLessThanOrEqual(after);
    expect(t.doneAt - t.startedAt).toBeGreaterThanOrEqual(t.fetchMs + ret.computeMs + t.uploadMs - 0.01);
    expect(Math.min(t.fetchMs, t.uploadMs, ret.computeMs)).toBeGreaterThan(0);
    // The gradient blob is the one a LocalExecutor-style computation of the same version gives.
    const g0 = await gradient(0);
    const computer = new ShardComputer(context);
    computer.setState(1, state);
    const expected = computer.compute({ ...inputs[0], paramsVersion: 1 }).gradient!;
    expect(g0.equals(Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength))).toBe(true);
  });

  it('fetches a version announced on the params channel ahead, only for jobs whose previous version it computed', async () => {
    const model = buildModel(modelSpec, { seed: 4 });
    const context: JobContext = { jobId: 'job-a', modelSpec, task: 'classification', normalization: { mean: [0.5], std: [0.25] }, seed: 4, ...stateLayout(model) };
    await store.putContext(context);
    // The announcement goes out on the channel with the write, after it.
    const sub = createRedis(config, 'test-sub');
    const heard: string[] = [];
    sub.on('message', (_c: string, text: string) => heard.push(text));
    await sub.subscribe(keys.paramsChannel());
    const count = 4;
    const input = (step: number) => ({ jobId: 'job-a', kind: 'train' as const, step, shard: 0, count, images: new Uint8Array(count * 144).fill(step * 40), labels: Uint8Array.from({ length: count }, (_, i) => i) });
    const state0 = packState(model);
    await store.putInputs([input(0)], { jobId: 'job-a', version: 0, token: 'aaaaaaaa', state: stateToBytes(state0) });
    const job = (step: number, token: string): Job => ({ data: { jobId: 'job-a', kind: 'train', step, shard: 0, paramsVersion: step, paramsToken: token, count, enqueuedAt: Date.now() } satisfies ShardJobData }) as Job;
    const processor = new ShardProcessor({ store, workerId: 'w1', threads: 1 });
    processors.push(processor);
    // Nothing computed for the job yet: an announcement is not acted on.
    expect(processor.announced({ jobId: 'job-a', version: 0, token: 'aaaaaaaa' })).toBeUndefined();
    await processor.process(job(0, 'aaaaaaaa'));

    const state1 = state0.map((v) => v * 0.5);
    await store.putInputs([input(1)], { jobId: 'job-a', version: 1, token: 'bbbbbbbb', state: stateToBytes(state1), unlink: [keys.params('job-a', 0)] });
    for (let i = 0; i < 200 && heard.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    await sub.quit();
    expect(heard.map((t) => parseParamsAnnouncement(t))).toEqual([
      { jobId: 'job-a', version: 0, token: 'aaaaaaaa' },
      { jobId: 'job-a', version: 1, token: 'bbbbbbbb' },
    ]);
    // Version 1 follows the one this worker computed: fetched now. Other jobs and versions are not.
    const fetching = processor.announced({ jobId: 'job-a', version: 1, token: 'bbbbbbbb' });
    expect(fetching).toBeInstanceOf(Promise);
    expect(processor.announced({ jobId: 'job-a', version: 2, token: 'cccccccc' })).toBeUndefined();
    expect(processor.announced({ jobId: 'job-other', version: 1, token: 'bbbbbbbb' })).toBeUndefined();
    // Proof that it was fetched ahead: the shard of version 1 computes although the version has
    // left Redis in the meantime (its own fetch would fail with MissingBlobError).
    await fetching;
    await redis.del(keys.params('job-a', 1));
    const ret = await processor.process(job(1, 'bbbbbbbb'));
    expect(ret.paramsVersion).toBe(1);
    const g = await store.getGradient('job-a', 1, 0, { gradientLength: context.gradientLength, bufferLength: 0 });
    const computer = new ShardComputer(context);
    computer.setState(1, state1);
    const expected = computer.compute({ ...input(1), paramsVersion: 1 }).gradient!;
    expect(Buffer.from(g!.gradient.buffer, g!.gradient.byteOffset, g!.gradient.byteLength).equals(Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength))).toBe(true);
  });

  it('parses announcements strictly', () => {
    expect(parseParamsAnnouncement('{"jobId":"j1","version":3,"token":"abcdef12"}')).toEqual({ jobId: 'j1', version: 3, token: 'abcdef12' });
    expect(() => parseParamsAnnouncement('{"jobId":"j1","version":3}')).toThrow(/ParamsAnnouncement\.token/);
    expect(() => parseParamsAnnouncement('{"jobId":"j1","version":-1,"token":"abcdef12"}')).toThrow(/ParamsAnnouncement\.version/);
    expect(() => parseParamsAnnouncement('{"jobId":"../x","version":1,"token":"abcdef12"}')).toThrow(/ParamsAnnouncement\.jobId/);
    expect(() => parseParamsAnnouncement('{"jobId":"j1","version":1,"token":"abcdef12","code":"x"}')).toThrow(/ParamsAnnouncement\.code: unexpected field/);
    expect(() => parseParamsAnnouncement('not json')).toThrow(/not valid JSON/);
    expect(() => parseParamsAnnouncement(`"${'x'.repeat(600)}"`)).toThrow(/exceeds the limit/);
  });
});

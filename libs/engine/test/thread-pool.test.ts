import { afterAll, describe, expect, it } from 'vitest';
import { ThreadError, ThreadPool } from '../src/index.ts';

const entry = new URL('./fixtures/echo-thread.ts', import.meta.url);

describe('ThreadPool', () => {
  // Thread start-up costs a second or two (tsx registers in every thread): the tests share pools.
  const pool = new ThreadPool<any, any>({ entry, size: 2, data: { tag: 'x' } });
  afterAll(() => pool.close());

  it('runs requests on threads with the pool data, in parallel, and broadcasts', async () => {
    await Promise.all([pool.runOn(0, { op: 'echo', value: 0 }), pool.runOn(1, { op: 'echo', value: 0 })]); // both threads up
    const replies = await Promise.all([1, 2, 3, 4].map((value) => pool.run({ op: 'echo', value })));
    expect(replies.map((r) => r.value)).toEqual([1, 2, 3, 4]);
    expect(replies[0].tag).toBe('x');
    expect(replies[0].buffer).toBeInstanceOf(Float32Array);
    // In parallel: the two sleeps overlap in time (a property of the schedule, not of the machine's speed).
    const [a, b] = await Promise.all([pool.run({ op: 'sleep', ms: 300 }), pool.run({ op: 'sleep', ms: 300 })]);
    expect(a.start < b.end && b.start < a.end).toBe(true);
    const counts = await pool.broadcast({ op: 'whoami' });
    expect(counts).toHaveLength(2);
    expect(counts.reduce((a, c) => a + c.served, 0)).toBe(2 + 4 + 2 + 2);
  });

  it('rejects with the thread error name when a handler throws, and keeps the thread', async () => {
    const before = (await pool.runOn(0, { op: 'whoami' })).served;
    const err = await pool.runOn(0, { op: 'throw' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ThreadError);
    expect((err as ThreadError).remoteName).toBe('RangeError');
    expect((err as Error).message).toMatch(/RangeError in thread stride-0: asked to throw/);
    expect((await pool.runOn(0, { op: 'whoami' })).served).toBe(before + 2);
  });

  it('replaces a thread that dies, failing only its request; closes idempotently', async () => {
    const single = new ThreadPool<any, any>({ entry, size: 1, data: { tag: 'z' } });
    const died = await single.run({ op: 'exit' }).catch((e: unknown) => e);
    expect(died).toBeInstanceOf(ThreadError);
    expect((died as ThreadError).remoteName).toBeUndefined();
    expect((died as Error).message).toMatch(/thread stride-0 died: exit code 3/);
    // The replacement serves from a fresh start.
    expect((await single.run({ op: 'whoami' })).served).toBe(1);

    const pending = expect(single.run({ op: 'sleep', ms: 5000 })).rejects.toThrow(/closed/);
    const first = single.close();
    expect(single.close()).toBe(first);
    await first;
    await pending;
    await expect(single.run({ op: 'whoami' })).rejects.toThrow(/closed/);
  });
});

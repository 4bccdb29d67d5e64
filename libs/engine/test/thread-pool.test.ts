import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleExecArgv, THREAD_BUNDLE_DIR, threadBundle } from '@stride/data';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ThreadError, ThreadPool } from '../src/index.ts';

const entry = new URL('./fixtures/echo-thread.ts', import.meta.url);

describe('ThreadPool', () => {
  // Thread start-up takes 0.1 s (from a bundle) to 0.6 s (through tsx): the tests share pools.
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

  it('idle: a thread is idle once up and while it holds no request', async () => {
    const single = new ThreadPool<any, any>({ entry, size: 1, data: { tag: 'i' } });
    try {
      // Just created: its ready message cannot have been handled yet.
      expect(single.idle(0)).toBe(false);
      await single.run({ op: 'echo', value: 1 });
      expect(single.idle(0)).toBe(true);
      const busy = single.run({ op: 'sleep', ms: 50 });
      expect(single.idle(0)).toBe(false);
      await busy;
      expect(single.idle(0)).toBe(true);
      expect(single.idle(1)).toBe(false); // no such thread
    } finally {
      await single.close();
    }
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

describe('ThreadPool: blocked waits (parked threads, waitReply)', () => {
  // Parked for up to a minute after each reply: longer than any test here, so every request after
  // the first is taken off the port by a parked thread.
  const pool = new ThreadPool<any, any>({ entry, size: 1, data: { tag: 'p', parkMs: 60_000 }, spinMs: 0.5 });
  afterAll(() => pool.close());

  it('a parked thread answers requests in order, from synchronous and asynchronous handlers', async () => {
    expect((await pool.runOn(0, { op: 'echo', value: -1 })).value).toBe(-1);
    const before = (await pool.runOn(0, { op: 'whoami' })).served;
    const values: number[] = [];
    for (let i = 0; i < 20; i++) {
      values.push((await pool.runOn(0, { op: 'echo', value: i })).value);
      if (i % 5 === 0) expect((await pool.runOn(0, { op: 'sleep', ms: 5 })).slept).toBe(5);
      // Gaps longer than the spin: the thread sleeps on the counter before the next request.
      if (i % 3 === 0) await new Promise((resolve) => setTimeout(resolve, 3));
    }
    expect(values).toEqual(Array.from({ length: 20 }, (_, i) => i));
    // A burst queued at once, an asynchronous request in the middle: answered in order.
    const burst = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => (i === 2 ? pool.runOn(0, { op: 'sleep', ms: 10 }) : pool.runOn(0, { op: 'whoami' }))));
    expect(burst.map((r) => r.served ?? 'sleep')).toEqual([before + 25, before + 26, 'sleep', before + 28, before + 29, before + 30]);
    const err = await pool.runOn(0, { op: 'throw' }).catch((e: unknown) => e);
    expect((err as ThreadError).remoteName).toBe('RangeError');
    expect((await pool.runOn(0, { op: 'echo', value: 7 })).value).toBe(7);
  });

  it('waitReply handles the reply where it blocks, without a turn of the event loop', async () => {
    await pool.runOn(0, { op: 'whoami' });
    expect(pool.waitReply(0, 1000)).toBe(true); // nothing in flight
    const reply = pool.runOn(0, { op: 'busy', ms: 30 });
    let answer: { busy: number } | undefined;
    void reply.then((r) => (answer = r));
    expect(pool.waitReply(0, 10_000)).toBe(true);
    // Microtasks only, no event: a reply left to the event loop would still be on its way.
    for (let i = 0; i < 5; i++) await null;
    expect(answer?.busy).toBe(30);
  });

  it('waitReply gives up after its timeout; the reply then arrives as an event', async () => {
    await pool.runOn(0, { op: 'whoami' });
    const reply = pool.runOn(0, { op: 'busy', ms: 300 });
    expect(pool.waitReply(0, 20)).toBe(false);
    expect((await reply).busy).toBe(300);
  });

  it('close terminates a parked thread', async () => {
    const parked = new ThreadPool<any, any>({ entry, size: 1, data: { tag: 'q', parkMs: 600_000 }, spinMs: 0 });
    expect((await parked.run({ op: 'echo', value: 1 })).value).toBe(1);
    // The thread now blocks in Atomics.wait for ten minutes; terminating it must not wait for that.
    await parked.close();
    await expect(parked.run({ op: 'whoami' })).rejects.toThrow(/closed/);
  });
});

describe('thread bundles', () => {
  // Entry modules written for these tests, next to the fixtures (inside the repository, as the
  // bundles' npm imports are found from node_modules).
  const dir = new URL(`./fixtures/tmp-bundle-${process.pid}/`, import.meta.url);
  const answerFile = new URL('answer.ts', dir);
  const entryFile = new URL('answer-thread.ts', dir);
  beforeAll(() => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(answerFile, 'export const answer: number = 1;\n');
    writeFileSync(entryFile, "import { serveThread } from '../../../src/index.ts';\nimport { answer } from './answer.ts';\nserveThread(() => ({ answer }));\n");
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    // The bundles built for these entries (their names hash the entry's path, new at every run).
    const prefix = fileURLToPath(dir);
    for (const file of readdirSync(THREAD_BUNDLE_DIR).filter((f) => f.endsWith('.json'))) {
      const manifest = JSON.parse(readFileSync(join(THREAD_BUNDLE_DIR, file), 'utf8')) as { entry: string };
      if (!manifest.entry.startsWith(prefix)) continue;
      for (const ext of ['.json', '.mjs', '.mjs.map']) rmSync(join(THREAD_BUNDLE_DIR, file.replace(/\.json$/, ext)), { force: true });
    }
  });

  async function answerOf(options: { bundle?: boolean } = {}): Promise<{ answer: number; startsFrom: string }> {
    const pool = new ThreadPool<unknown, { answer: number }>({ entry: entryFile, size: 1, ...options });
    try {
      return { answer: (await pool.run({})).answer, startsFrom: pool.startsFrom };
    } finally {
      await pool.close();
    }
  }

  it('threads start on a bundle of the entry (through tsx with bundle: false), and answer the same', async () => {
    expect(await answerOf()).toEqual({ answer: 1, startsFrom: 'bundle' });
    expect(await answerOf({ bundle: false })).toEqual({ answer: 1, startsFrom: 'tsx' });
    const url = threadBundle(entryFile)!;
    expect(fileURLToPath(url).startsWith(THREAD_BUNDLE_DIR)).toBe(true);
  });

  it('builds the bundle again when one of its input files changed, and only then', async () => {
    const bundle = fileURLToPath(threadBundle(entryFile)!);
    const built = statSync(bundle).mtimeMs;
    expect(fileURLToPath(threadBundle(entryFile)!)).toBe(bundle);
    expect(statSync(bundle).mtimeMs).toBe(built);
    // An imported module (not the entry) changes: the next pool runs the new code.
    writeFileSync(answerFile, 'export const answer: number = 2;\n');
    expect(await answerOf()).toEqual({ answer: 2, startsFrom: 'bundle' });
    expect(statSync(bundle).mtimeMs).toBeGreaterThan(built);
  });

  it('no bundle for an entry that is not TypeScript or does not build: threads start through tsx', async () => {
    expect(threadBundle(new URL('./fixtures/none.js', import.meta.url))).toBeUndefined();
    const broken = new URL('broken-thread.ts', dir);
    writeFileSync(broken, "import { serveThread } from '../../../src/index.ts';\nserveThread(() => ({ answer: ));\n");
    expect(threadBundle(broken)).toBeUndefined();
    const pool = new ThreadPool({ entry: broken, size: 1 });
    try {
      expect(pool.startsFrom).toBe('tsx');
    } finally {
      await pool.close();
    }
  });

  it('a bundle that builds but does not run: the threads start through tsx instead', async () => {
    const entry = new URL('only-from-source-thread.ts', dir);
    writeFileSync(entry, "import { serveThread } from '../../../src/index.ts';\nif (!import.meta.url.endsWith('.ts')) throw new Error('not from the source');\nserveThread(() => ({ ok: true }));\n");
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.message);
    process.on('warning', onWarning);
    const pool = new ThreadPool<unknown, { ok: boolean }>({ entry, size: 1 });
    try {
      expect(pool.startsFrom).toBe('bundle');
      expect(await pool.run({})).toEqual({ ok: true });
      expect(pool.startsFrom).toBe('tsx');
      expect(warnings.join('\n')).toMatch(/did not start from its bundle \(.*not from the source/);
    } finally {
      process.off('warning', onWarning);
      await pool.close();
    }
  });

  it('an entry that cannot load: requests fail with why, and no thread is started again', async () => {
    const entry = new URL('failing-thread.ts', dir);
    writeFileSync(entry, "throw new Error('cannot load');\n");
    const pool = new ThreadPool<unknown, unknown>({ entry, size: 1, bundle: false });
    const failed = await pool.run({}).then(
      () => undefined,
      (err: Error) => err,
    );
    expect(failed).toBeInstanceOf(ThreadError);
    expect(failed!.message).toMatch(/its threads die before they are up \(3 in a row; last: .*cannot load/);
    await expect(pool.run({})).rejects.toThrow(failed!.message);
    await pool.close();
  });

  it('a bundled thread gets the module loaders of the process but tsx, and the options that act per thread', () => {
    expect(bundleExecArgv(['--import', 'tsx', '--interrupt-budget=8192', '--enable-source-maps', '--import=./otel.mjs', '--require', 'tsx/cjs', '-r', 'dotenv/config', '--conditions', 'dev', '--max-old-space-size=512'])).toEqual([
      '--enable-source-maps',
      '--import=./otel.mjs',
      '-r=dotenv/config',
      '--conditions=dev',
    ]);
  });
});

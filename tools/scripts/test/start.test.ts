// The pieces of `npm start`: Redis probing, log prefixing, child supervision.
import { createServer, type Server } from 'node:net';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseRedisUrl, probeRedis, type ProbeResult } from '../src/redis-probe.ts';
import { prefixLine, Supervisor } from '../src/supervisor.ts';

const REDIS = parseRedisUrl(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');

function collect(stream: PassThrough): () => string {
  let text = '';
  stream.on('data', (c: Buffer) => (text += c.toString('utf8')));
  return () => text;
}

describe('parseRedisUrl', () => {
  it.each([
    ['redis://127.0.0.1:6379', { host: '127.0.0.1', port: 6379 }],
    ['redis://localhost', { host: 'localhost', port: 6379 }],
    ['redis://:s%40cret@db.example:6380/2', { host: 'db.example', port: 6380, password: 's@cret' }],
    ['redis://user:pw@[::1]:7000', { host: '::1', port: 7000, username: 'user', password: 'pw' }],
  ])('%s', (url, expected) => {
    expect(parseRedisUrl(url)).toMatchObject(expected);
  });

  it('rejects what is not a redis:// URL, naming it', () => {
    expect(() => parseRedisUrl('127.0.0.1:6379')).toThrow(/REDIS_URL "127.0.0.1:6379"/);
    expect(() => parseRedisUrl('http://127.0.0.1:6379')).toThrow(/only redis:\/\/ URLs/);
  });
});

describe('probeRedis', () => {
  let server: Server | undefined;
  afterEach(async () => {
    await new Promise<void>((res) => (server ? server.close(() => res()) : res()));
    server = undefined;
  });

  it('gets PONG from the real Redis', async () => {
    expect(await probeRedis(REDIS)).toEqual({ ok: true });
  });

  it('reports a closed port', async () => {
    // Bind then close: the port is free, nobody listens.
    const port = await new Promise<number>((res) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => res(p));
      });
    });
    const r = await probeRedis({ host: '127.0.0.1', port });
    expect(r).toEqual({ ok: false, reason: 'ECONNREFUSED' });
  });

  it('times out on a server that never answers, and reports a non-Redis one', async () => {
    let received = '';
    server = createServer((socket) => socket.on('data', (d: Buffer) => (received += d.toString('latin1')))); // reads and never answers
    await new Promise<void>((res) => server!.listen(0, '127.0.0.1', () => res()));
    const port = (server.address() as { port: number }).port;
    // The probe's timer runs on a clock the test moves: it gives up at 200 ms, not before.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      let r: ProbeResult | undefined;
      const probe = probeRedis({ host: '127.0.0.1', port }, 200).then((result) => (r = result));
      while (!received.includes('PING')) await new Promise((res) => setImmediate(res));
      await vi.advanceTimersByTimeAsync(199);
      expect(r).toBeUndefined();
      await vi.advanceTimersByTimeAsync(1);
      await probe;
      expect(r).toEqual({ ok: false, reason: 'no answer within 200 ms' });
    } finally {
      vi.useRealTimers();
    }
  });

  it('sends AUTH when the URL has a password, and reports the refusal', async () => {
    const r = await probeRedis({ ...REDIS, password: 'not-the-password' });
    // The test Redis has no password: it refuses AUTH with an error that the probe passes on.
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/^Redis answered (ERR|WRONGPASS)/);
  });
});

describe('prefixLine', () => {
  it('pads names so that the columns line up', () => {
    expect(prefixLine('redis', 11, 'Ready to accept connections')).toBe('redis       | Ready to accept connections\n');
    expect(prefixLine('coordinator', 11, 'listening')).toBe('coordinator | listening\n');
  });
  it('colors the prefix when given a color', () => {
    expect(prefixLine('worker-1', 8, 'up', 36)).toBe('\x1b[36mworker-1 |\x1b[0m up\n');
  });
});

describe('Supervisor', () => {
  const node = process.execPath;

  it('prefixes every line of stdout and stderr with the child name', async () => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const out = collect(stdout);
    const err = collect(stderr);
    const sup = new Supervisor(['alpha', 'b'], { stdout, stderr, color: false });
    const exit = await sup.start({ name: 'b', command: node, args: ['-e', 'console.log("one\\ntwo"); console.error("oops")'], oneShot: true });
    expect(exit).toEqual({ code: 0, signal: null });
    await new Promise((r) => setImmediate(r));
    expect(out()).toBe('b     | one\nb     | two\n');
    expect(err()).toBe('b     | oops\n');
  });

  it('says when a critical child dies and stops the others', async () => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const err = collect(stderr);
    collect(stdout);
    const deaths: string[] = [];
    const sup = new Supervisor(['sleeper', 'crasher'], { stdout, stderr, color: false, onCriticalExit: (name, code) => deaths.push(`${name}:${code}`) });
    const sleeper = sup.start({ name: 'sleeper', command: node, args: ['-e', 'setInterval(() => {}, 1000)'] });
    const crasher = sup.start({ name: 'crasher', command: node, args: ['-e', 'setTimeout(() => process.exit(3), 100)'] });
    expect(await crasher).toEqual({ code: 3, signal: null });
    expect(await sleeper).toEqual({ code: null, signal: 'SIGTERM' });
    expect(deaths).toEqual(['crasher:3']);
    expect(err()).toContain('crasher exited with code 3 unexpectedly: stopping everything');
    expect(sup.isRunning('sleeper')).toBe(false);
  });

  it('reports a non-critical child and keeps the rest running', async () => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const err = collect(stderr);
    collect(stdout);
    const sup = new Supervisor(['sleeper', 'worker-1'], { stdout, stderr, color: false });
    void sup.start({ name: 'sleeper', command: node, args: ['-e', 'setInterval(() => {}, 1000)'] });
    await sup.start({ name: 'worker-1', command: node, args: ['-e', 'process.exit(1)'], critical: false });
    await new Promise((r) => setTimeout(r, 50));
    expect(err()).toContain('worker-1 exited with code 1 unexpectedly; the rest keeps running');
    expect(sup.isRunning('sleeper')).toBe(true);
    await sup.stop();
    expect(sup.isRunning('sleeper')).toBe(false);
  });

  it('stops by descending stop group, the children of a group together', async () => {
    const stdout = new PassThrough();
    const out = collect(stdout);
    const sup = new Supervisor(['redis', 'coordinator', 'worker-1', 'worker-2', 'dashboard'], { stdout, stderr: new PassThrough(), color: false });
    // Says goodbye on SIGTERM, then takes 100 ms to exit: the next group must wait for it.
    const script = (name: string) => `process.on("SIGTERM", () => { console.log("bye ${name}"); setTimeout(() => process.exit(0), 100); }); console.log("up"); setInterval(() => {}, 1000)`;
    const groups: [string, number][] = [['redis', 0], ['coordinator', 2], ['worker-1', 1], ['worker-2', 1], ['dashboard', 3]];
    for (const [name, stopGroup] of groups) void sup.start({ name, command: node, args: ['-e', script(name)], stopGroup });
    while ((out().match(/\| up/g) ?? []).length < groups.length) await new Promise((r) => setTimeout(r, 20));
    await sup.stop();
    const byes = [...out().matchAll(/\| bye (\S+)/g)].map((m) => m[1]);
    expect(byes.slice(0, 2)).toEqual(['dashboard', 'coordinator']);
    expect(byes.slice(2, 4).sort()).toEqual(['worker-1', 'worker-2']);
    expect(byes[4]).toBe('redis');
  });

  it('kills a child that ignores SIGTERM after the grace period', async () => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const err = collect(stderr);
    const out = collect(stdout);
    const sup = new Supervisor(['stubborn'], { stdout, stderr, color: false, graceMs: 300 });
    const exit = sup.start({ name: 'stubborn', command: node, args: ['-e', 'process.on("SIGTERM", () => console.log("ignoring")); console.log("ready"); setInterval(() => {}, 1000)'] });
    while (!out().includes('ready')) await new Promise((r) => setTimeout(r, 20));
    // The grace period runs on a clock the test moves: SIGTERM first, SIGKILL at 300 ms, not before.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const stopped = sup.stop();
      while (!out().includes('ignoring')) await new Promise((r) => setImmediate(r));
      await vi.advanceTimersByTimeAsync(299);
      expect(err()).not.toContain('did not stop');
      await vi.advanceTimersByTimeAsync(1);
      expect(err()).toContain('stubborn did not stop within 300 ms: killing it');
      expect(await exit).toEqual({ code: null, signal: 'SIGKILL' });
      await stopped;
    } finally {
      vi.useRealTimers();
    }
  });
});

// A Redis of this test's own, with a password, on a free port: connecting through a
// password-protected REDIS_URL works, and a wrong password is reported at once, in words.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkRedis, createRedis, RedisUnreachableError, resolveTransportConfig } from '../src/index.ts';

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });

describe('REDIS_URL with a password', () => {
  let redis: ChildProcess;
  let port = 0;

  beforeAll(async () => {
    port = await freePort();
    redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--requirepass', 's3cret', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    for (let i = 0; i < 100; i++) {
      const ok = await checkRedis(resolveTransportConfig({ redisUrl: `redis://:s3cret@127.0.0.1:${port}` }, {}), 500).then(
        () => true,
        () => false,
      );
      if (ok) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`redis-server did not start on port ${port}`);
  });
  afterAll(() => void redis?.kill('SIGTERM'));

  it('connects with the right password', async () => {
    const config = resolveTransportConfig({ redisUrl: `redis://:s3cret@127.0.0.1:${port}` }, {});
    await expect(checkRedis(config)).resolves.toBeUndefined();
    const client = createRedis(config, 'test');
    try {
      await client.set('stride-auth-test', '1', 'PX', 1000);
      expect(await client.get('stride-auth-test')).toBe('1');
    } finally {
      client.disconnect();
    }
  });

  it('names a wrong or missing password as a credentials problem, without printing it', async () => {
    for (const url of [`redis://:wrong@127.0.0.1:${port}`, `redis://127.0.0.1:${port}`]) {
      const err = await checkRedis(resolveTransportConfig({ redisUrl: url }, {})).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RedisUnreachableError);
      expect((err as RedisUnreachableError).auth).toBe(true);
      expect((err as Error).message).toMatch(/refused the credentials in REDIS_URL/);
      expect((err as Error).message).not.toContain('wrong');
    }
  });

  it('says when nothing answers', async () => {
    const closed = await freePort();
    const err = await checkRedis(resolveTransportConfig({ redisUrl: `redis://127.0.0.1:${closed}` }, {}), 2000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RedisUnreachableError);
    expect((err as RedisUnreachableError).auth).toBe(false);
    expect((err as Error).message).toMatch(new RegExp(`no Redis answers at redis://127.0.0.1:${closed}`));
  });
});

import { describe, expect, it } from 'vitest';
import { connectionName, redactUrl, resolveTransportConfig, withDefaults } from '../src/index.ts';

describe('transport config', () => {
  it('reads REDIS_URL and STRIDE_QUEUE_PREFIX, with defaults', () => {
    expect(resolveTransportConfig({}, {})).toEqual({ redisUrl: 'redis://127.0.0.1:6379', prefix: 'stride' });
    expect(resolveTransportConfig({}, { REDIS_URL: 'rediss://:s3cret@redis.example:6380/2', STRIDE_QUEUE_PREFIX: '{stride}' })).toEqual({
      redisUrl: 'rediss://:s3cret@redis.example:6380/2',
      prefix: '{stride}',
    });
    // Options win over the environment.
    expect(resolveTransportConfig({ prefix: 'p2' }, { STRIDE_QUEUE_PREFIX: 'p1' }).prefix).toBe('p2');
  });

  it('refuses what ioredis would misread, naming the variable', () => {
    expect(() => resolveTransportConfig({}, { REDIS_URL: 'http://localhost:6379' })).toThrow(/REDIS_URL must use redis:\/\/ or rediss:\/\/, got http:/);
    expect(() => resolveTransportConfig({}, { REDIS_URL: 'not a url' })).toThrow(/REDIS_URL must be a redis:\/\/ or rediss:\/\/ URL/);
    expect(() => resolveTransportConfig({}, { STRIDE_QUEUE_PREFIX: 'a b' })).toThrow(/prefix/);
  });

  it('never prints a password; names connections by role and prefix', () => {
    expect(redactUrl('rediss://user:s3cret@host:6380/0')).toBe('rediss://user:***@host:6380/0');
    expect(redactUrl('redis://host:6379')).toBe('redis://host:6379');
    expect(connectionName({ redisUrl: 'redis://h', prefix: '{p}' }, 'stride worker')).toBe('stride_worker@{p}');
  });

  it('withDefaults keeps a default when the option is explicitly undefined', () => {
    expect(withDefaults({ threads: 4, name: 'x' }, { threads: undefined, name: 'y' })).toEqual({ threads: 4, name: 'y' });
  });
});

// Shared by the queue tests: a unique key prefix per test against the real Redis, and cleanup.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { resolveTransportConfig, type TransportConfig } from '../src/index.ts';

/** A config with a fresh prefix (hash-tagged, as on Redis Cluster) so tests never see each other's keys. */
export function testConfig(label = 't'): TransportConfig {
  return resolveTransportConfig({ prefix: `{stride-test-${label}-${randomBytes(4).toString('hex')}}` });
}

/** Deletes every key under the config's prefix. */
export async function deletePrefix(config: TransportConfig): Promise<number> {
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 3 });
  try {
    let cursor = '0';
    let n = 0;
    const pattern = `${config.prefix.replace(/[{}[\]*?\\]/g, (c) => `\\${c}`)}:*`;
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length) n += await redis.unlink(...keys);
    } while (cursor !== '0');
    return n;
  } finally {
    redis.disconnect();
  }
}

/** Resolves when `cond()` is true, polling every `everyMs`; rejects after `timeoutMs`. */
export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 20_000, everyMs = 25, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

// Where Redis is and how to connect to it.
import { Redis } from 'ioredis';
import { checkPrefix, DEFAULT_PREFIX } from './keys.ts';

/** Default Redis URL when neither the option nor `REDIS_URL` is set. */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** How to reach the transport's Redis. */
export interface TransportConfig {
  /**
   * `redis://[user:password@]host:port[/db]`, or `rediss://...` for TLS (ioredis reads both from the
   * URL). Default: `REDIS_URL`, else `redis://127.0.0.1:6379`.
   */
  readonly redisUrl: string;
  /**
   * Prefix of every key, BullMQ's and ours. A hash tag such as `{stride}` puts them all in one
   * Redis Cluster slot. Default: `STRIDE_QUEUE_PREFIX`, else `stride`.
   */
  readonly prefix: string;
}

/** Fills a `TransportConfig` from options, then the environment, then defaults, and checks it. */
export function resolveTransportConfig(options: Partial<TransportConfig> = {}, env: NodeJS.ProcessEnv = process.env): TransportConfig {
  const redisUrl = options.redisUrl ?? env.REDIS_URL ?? DEFAULT_REDIS_URL;
  let parsed: URL;
  try {
    parsed = new URL(redisUrl);
  } catch {
    throw new RangeError(`REDIS_URL must be a redis:// or rediss:// URL, got ${JSON.stringify(redisUrl)}`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new RangeError(`REDIS_URL must use redis:// or rediss://, got ${parsed.protocol}//`);
  }
  const prefix = checkPrefix(options.prefix ?? env.STRIDE_QUEUE_PREFIX ?? DEFAULT_PREFIX);
  return { redisUrl, prefix };
}

/** The URL with its password masked, for logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(invalid url)';
  }
}

/**
 * A Redis client for our own keys. `maxRetriesPerRequest: null` makes commands wait for a
 * reconnect instead of failing after a few retries, so a Redis restart pauses training instead
 * of failing it.
 */
export function createRedis(config: TransportConfig, role: string): Redis {
  return new Redis(config.redisUrl, { maxRetriesPerRequest: null, connectionName: connectionName(config, role) });
}

/** Redis does not answer at the configured URL, or refuses its credentials. */
export class RedisUnreachableError extends Error {
  override readonly name = 'RedisUnreachableError';
  constructor(
    message: string,
    /** True when Redis answered but refused the user/password: retrying will not help. */
    readonly auth: boolean,
  ) {
    super(message);
  }
}

/**
 * One PING over a fresh connection that does not retry, so a wrong password or an unreachable
 * server is reported at once, in words, instead of as silent reconnect attempts.
 */
export async function checkRedis(config: TransportConfig, timeoutMs = 5000): Promise<void> {
  const where = redactUrl(config.redisUrl);
  const probe = new Redis(config.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: timeoutMs, enableOfflineQueue: false });
  let lastError = '';
  probe.on('error', (err: Error) => void (lastError = err.message)); // ioredis reports a refused AUTH here, then closes
  try {
    await probe.connect();
    await probe.ping();
  } catch (err) {
    const message = [lastError, (err as Error).message ?? String(err)].filter(Boolean).join('; ');
    if (/WRONGPASS|NOAUTH|invalid password|invalid username/i.test(message)) {
      throw new RedisUnreachableError(`Redis at ${where} refused the credentials in REDIS_URL (${message})`, true);
    }
    throw new RedisUnreachableError(`no Redis answers at ${where} (${message}); set REDIS_URL, or start redis-server`, false);
  } finally {
    probe.disconnect();
  }
}

/**
 * Start-up check of a long-running service: wrong credentials are fatal (retrying will not help,
 * so this throws); an unreachable Redis is logged and waited for (the clients reconnect by themselves).
 */
export async function checkRedisAtStart(config: TransportConfig, log: (line: string) => void): Promise<void> {
  try {
    await checkRedis(config);
  } catch (err) {
    if (err instanceof RedisUnreachableError && !err.auth) log(`warning: ${err.message}; waiting for it`);
    else throw err;
  }
}

/**
 * `CLIENT SETNAME` of our connections: `${role}@${prefix}`, so `CLIENT LIST` shows who is who and
 * a deployment's connections can be told from another's on a shared Redis.
 */
export function connectionName(config: TransportConfig, role: string): string {
  return `${role}@${config.prefix}`.replace(/\s/g, '_');
}

/**
 * Connection options for BullMQ classes. BullMQ creates its own ioredis clients from them; its
 * workers need `maxRetriesPerRequest: null` for their blocking commands.
 */
export function bullConnection(config: TransportConfig, role = 'stride-bullmq'): { url: string; maxRetriesPerRequest: null; connectionName: string } {
  return { url: config.redisUrl, maxRetriesPerRequest: null, connectionName: connectionName(config, role) };
}

/**
 * `{ ...defaults, ...options }` where an option explicitly set to `undefined` keeps its default
 * (a plain spread would let `{ threads: undefined }` erase the default).
 */
export function withDefaults<D extends object, O extends object>(defaults: D, options: O): D & O {
  const out = { ...defaults } as Record<string, unknown>;
  for (const [key, value] of Object.entries(options)) if (value !== undefined) out[key] = value;
  return out as D & O;
}

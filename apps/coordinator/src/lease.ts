// At most one runner per training job: a Redis key holding the runner's token, with an expiry the
// runner keeps pushing back. A runner that dies stops renewing, and the lease frees itself.
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';

const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

export class JobLease {
  readonly token: string;

  constructor(
    private readonly redis: Redis,
    readonly key: string,
    readonly ttlMs: number,
    owner: string,
  ) {
    if (!Number.isInteger(ttlMs) || ttlMs < 100) throw new RangeError(`JobLease: ttlMs must be an integer >= 100, got ${ttlMs}`);
    this.token = `${owner}:${randomBytes(6).toString('hex')}`;
  }

  /** Takes the lease if nobody holds it. */
  async tryAcquire(): Promise<boolean> {
    return (await this.redis.set(this.key, this.token, 'PX', this.ttlMs, 'NX')) === 'OK';
  }

  /** Pushes the expiry back; false when the lease is no longer ours (expired, taken over). */
  async renew(): Promise<boolean> {
    return (await this.redis.eval(RENEW, 1, this.key, this.token, this.ttlMs)) === 1;
  }

  /** Gives the lease up if it is still ours. */
  async release(): Promise<void> {
    await this.redis.eval(RELEASE, 1, this.key, this.token);
  }

  /** Who holds the lease now (a token), if anyone. */
  holder(): Promise<string | null> {
    return this.redis.get(this.key);
  }
}

// At most one runner per training job: a Redis key holding the runner's token, with an expiry the
// runner keeps pushing back. A runner that dies stops renewing, and the lease frees itself.
//
// Fencing. A runner can lose its lease without knowing it (frozen by SIGSTOP or a long GC pause
// past the expiry, cut off from Redis) while another runner takes the job over; when it wakes up it
// must not write anything for the job. Each acquisition therefore draws a fencing token, a number
// that grows with every acquisition of the job (a Redis counter, never below the last token written
// to disk, so a Redis that lost the counter cannot hand out an old number), and writes it to
// `<job dir>/lease.fence` before doing anything else. `check()` — called before every write that
// matters: parameter publication, checkpoint, job record, result — fails with a `LeaseLostError`
// unless the Redis key still holds this runner's token AND the fence file still holds its token.
// The file is the storage-side half: a runner whose lease expired cannot pass it once the next
// runner has started, even if the Redis check raced with the takeover.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { LeaseLostError, writeFileAtomic } from '@stride/engine';

const ACQUIRE = `if redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  local n = redis.call('incr', KEYS[2])
  if n <= tonumber(ARGV[3]) then n = tonumber(ARGV[3]) + 1; redis.call('set', KEYS[2], n) end
  return n
else return 0 end`;
const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;
const DELETE_IF = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

/** Deletes `key` only while it holds `value`; true when it did. */
export async function deleteIfEquals(redis: Redis, key: string, value: string): Promise<boolean> {
  return (await redis.eval(DELETE_IF, 1, key, value)) === 1;
}

/** The fencing token on disk for a job directory (0 when none was ever written). */
export async function readFence(jobDir: string): Promise<number> {
  try {
    const n = Number((await readFile(join(jobDir, 'lease.fence'), 'utf8')).trim());
    return Number.isSafeInteger(n) && n > 0 ? n : 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
}

export class JobLease {
  readonly token: string;
  /** The fencing token of the current acquisition (0 before one). */
  fence = 0;

  constructor(
    private readonly redis: Redis,
    readonly key: string,
    readonly ttlMs: number,
    owner: string,
    /** The job's directory, where `lease.fence` lives. Without one, `check()` only asks Redis. */
    readonly jobDir?: string,
  ) {
    if (!Number.isInteger(ttlMs) || ttlMs < 100) throw new RangeError(`JobLease: ttlMs must be an integer >= 100, got ${ttlMs}`);
    this.token = `${owner}:${randomBytes(6).toString('hex')}`;
  }

  /** Takes the lease if nobody holds it, draws a fencing token and writes it to the job directory. */
  async tryAcquire(): Promise<boolean> {
    const onDisk = this.jobDir ? await readFence(this.jobDir) : 0;
    const n = Number(await this.redis.eval(ACQUIRE, 2, this.key, `${this.key}:fence`, this.token, this.ttlMs, onDisk));
    if (!(n > 0)) return false;
    this.fence = n;
    if (this.jobDir) {
      await mkdir(this.jobDir, { recursive: true });
      await writeFileAtomic(join(this.jobDir, 'lease.fence'), `${n}\n`);
    }
    return true;
  }

  /** Pushes the expiry back; false when the lease is no longer ours (expired, taken over). */
  async renew(): Promise<boolean> {
    return (await this.redis.eval(RENEW, 1, this.key, this.token, this.ttlMs)) === 1;
  }

  /** Gives the lease up if it is still ours. */
  async release(): Promise<void> {
    await deleteIfEquals(this.redis, this.key, this.token);
  }

  /** Who holds the lease now (a token), if anyone. */
  holder(): Promise<string | null> {
    return this.redis.get(this.key);
  }

  /** True while no later acquisition has written its fencing token to the job directory. */
  async fenceIsOurs(): Promise<boolean> {
    return !this.jobDir || (await readFence(this.jobDir)) === this.fence;
  }

  /** Throws a `LeaseLostError` unless this runner still holds the lease and its fencing token is current. */
  async check(what = 'write'): Promise<void> {
    const holder = await this.holder();
    if (holder !== this.token) throw new LeaseLostError(`${this.key}: lease lost before a ${what} (held by ${holder ?? 'nobody'}); not writing`);
    if (!(await this.fenceIsOurs())) {
      const onDisk = this.jobDir ? await readFence(this.jobDir) : 0;
      throw new LeaseLostError(`${this.key}: fencing token ${this.fence} is stale (${onDisk} on disk) before a ${what}; another runner took the job over; not writing`);
    }
  }
}

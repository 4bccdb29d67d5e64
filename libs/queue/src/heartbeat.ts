// Worker heartbeats: each worker writes its record into one Redis hash every few seconds; readers
// drop records older than a few intervals (dead workers age out) and the hash itself expires when
// no worker beats any more. One key, so it also works on Redis Cluster.
import type { Redis } from 'ioredis';
import { Fields } from './codec.ts';
import type { Keys } from './keys.ts';

/** What a worker reports about itself. */
export interface WorkerInfo {
  /** Unique per worker process: `${host}:${pid}:${random}`. */
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  /** Compute threads (= shard jobs it runs at once). */
  readonly threads: number;
  /** Shards computed since start. */
  readonly shardsDone: number;
  /** Shards that failed since start. */
  readonly shardsFailed: number;
  /** Thread-milliseconds spent computing shards since start. */
  readonly busyMs: number;
  /** Shards in hand right now. */
  readonly active: number;
  readonly state: 'running' | 'closing';
  /** ms since epoch. */
  readonly startedAt: number;
  /** ms since epoch of the last heartbeat. */
  readonly lastSeen: number;
}

/** Options of a Heartbeat. */
export interface HeartbeatOptions {
  /** Interval between beats (ms). Default: 2000. */
  intervalMs?: number;
  /** Called for every beat: the record to write (`lastSeen` is set by the heartbeat). */
  info: () => Omit<WorkerInfo, 'lastSeen'>;
  /** Called when a beat fails (Redis down...); beats go on. Default: ignore. */
  onError?: (err: Error) => void;
}

/** A record older than this many intervals belongs to a dead worker. */
export const STALE_INTERVALS = 3;

/** Writes a worker's record every `intervalMs` until `stop()`. */
export class Heartbeat {
  readonly intervalMs: number;
  private timer?: NodeJS.Timeout;
  private stopping?: Promise<void>;
  private inFlight: Promise<void> = Promise.resolve();

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly options: HeartbeatOptions,
  ) {
    this.intervalMs = options.intervalMs ?? 2000;
    if (!Number.isInteger(this.intervalMs) || this.intervalMs < 10) throw new RangeError(`Heartbeat: intervalMs must be an integer >= 10, got ${this.intervalMs}`);
  }

  /** Beats now, then every `intervalMs`. */
  start(): Promise<void> {
    if (this.timer || this.stopping) return this.inFlight;
    this.timer = setInterval(() => void this.beat(), this.intervalMs);
    this.timer.unref();
    return this.beat();
  }

  /** Writes the record once. */
  beat(): Promise<void> {
    const run = async (): Promise<void> => {
      const info: WorkerInfo = { ...this.options.info(), lastSeen: Date.now() };
      const key = this.keys.workers();
      await this.redis.multi().hset(key, info.id, JSON.stringify(info)).pexpire(key, this.intervalMs * STALE_INTERVALS * 10).exec();
    };
    this.inFlight = this.inFlight.then(run).catch((e: Error) => this.options.onError?.(e));
    return this.inFlight;
  }

  /** Stops beating and removes the record (the worker is leaving). Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (this.timer) clearInterval(this.timer);
      this.timer = undefined;
      await this.inFlight;
      try {
        await this.redis.hdel(this.keys.workers(), this.options.info().id);
      } catch (e) {
        this.options.onError?.(e as Error);
      }
    })();
    return this.stopping;
  }
}

/**
 * The live workers, sorted by id. Records older than `staleMs` (default: 3 × 2 s) or unreadable
 * are removed from the hash as a side effect.
 */
export async function listWorkers(redis: Redis, keys: Keys, staleMs = STALE_INTERVALS * 2000): Promise<WorkerInfo[]> {
  const key = keys.workers();
  const all = await redis.hgetall(key);
  const now = Date.now();
  const live: WorkerInfo[] = [];
  const dead: string[] = [];
  for (const [field, raw] of Object.entries(all)) {
    let info: WorkerInfo | undefined;
    try {
      info = parseWorkerInfo(JSON.parse(raw));
    } catch {
      info = undefined;
    }
    if (!info || info.id !== field || now - info.lastSeen > staleMs) dead.push(field);
    else live.push(info);
  }
  if (dead.length > 0) await redis.hdel(key, ...dead);
  return live.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

export function parseWorkerInfo(value: unknown): WorkerInfo {
  const f = new Fields('WorkerInfo', value);
  const info: WorkerInfo = {
    id: f.string('id', 300),
    host: f.string('host', 255),
    pid: f.int('pid', 0, 2 ** 31),
    threads: f.int('threads', 0, 4096),
    shardsDone: f.int('shardsDone', 0, Number.MAX_SAFE_INTEGER),
    shardsFailed: f.int('shardsFailed', 0, Number.MAX_SAFE_INTEGER),
    busyMs: f.finite('busyMs'),
    active: f.int('active', 0, 4096),
    state: f.oneOf('state', ['running', 'closing'] as const),
    startedAt: f.finite('startedAt'),
    lastSeen: f.finite('lastSeen'),
  };
  f.done();
  return info;
}

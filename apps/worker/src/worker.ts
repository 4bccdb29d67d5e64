// A Stride worker: takes shard jobs from the shards queue, computes them on a pool of threads,
// reports itself by heartbeat. Stateless: everything it needs comes with the job or from Redis,
// so it can join, leave or be killed at any time.
import { randomBytes } from 'node:crypto';
import { availableParallelism, hostname } from 'node:os';
import { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  BlobStore,
  bullConnection,
  createRedis,
  Heartbeat,
  Keys,
  SHARD_WORKER_LOCKS,
  SHARDS_QUEUE,
  ShardProcessor,
  type LockTuning,
  type ShardReturn,
  type TransportConfig,
  type WorkerInfo,
  withDefaults,
} from '@stride/queue';
import { parseTestFaults, withTestFaults } from './test-faults.ts';

/** Options of a ShardWorker. */
export interface ShardWorkerOptions {
  /** Redis URL and key prefix. */
  config: TransportConfig;
  /** Compute threads = shard jobs run at once. Default: `os.availableParallelism()`. */
  threads?: number;
  /** Worker id in heartbeats and results. Default: `${host}:${pid}:${random}`. */
  id?: string;
  /** Lock and stall settings of the shard jobs. Default: `SHARD_WORKER_LOCKS` (5 s lock, 2.5 s stalled check). */
  locks?: Partial<LockTuning>;
  /** Heartbeat interval (ms). Default 2000. */
  heartbeatMs?: number;
  /** Where the worker's log lines go. Default: stderr. */
  log?: (line: string) => void;
}

export class ShardWorker {
  readonly id: string;
  readonly threads: number;
  readonly startedAt = Date.now();
  private readonly redis: Redis;
  private readonly processor: ShardProcessor;
  private readonly worker: Worker<unknown, ShardReturn>;
  private readonly heartbeat: Heartbeat;
  private readonly log: (line: string) => void;
  private state: WorkerInfo['state'] = 'running';
  private closing?: Promise<void>;
  private markClosed!: () => void;
  /** Resolves when `close()` has finished. */
  readonly closed = new Promise<void>((resolve) => (this.markClosed = resolve));

  constructor(options: ShardWorkerOptions) {
    const opts = withDefaults({ threads: availableParallelism(), heartbeatMs: 2000, log: (line: string): void => void process.stderr.write(`${line}\n`) }, options);
    if (!Number.isInteger(opts.threads) || opts.threads < 1) throw new RangeError(`ShardWorker: threads must be an integer >= 1, got ${opts.threads}`);
    const locks = withDefaults(SHARD_WORKER_LOCKS, opts.locks ?? {});
    this.id = opts.id ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    this.threads = opts.threads;
    this.log = opts.log;
    const keys = new Keys(opts.config.prefix);
    this.redis = createRedis(opts.config, `stride-worker-${this.id}`);
    this.redis.on('error', () => {
      // ioredis reconnects by itself; commands wait for it.
    });
    const store = new BlobStore(this.redis, keys);
    this.processor = new ShardProcessor({ store, workerId: this.id, threads: this.threads });
    // Test-only (tools/chaos): STRIDE_TEST_FAULTS makes chosen shards crash the worker or corrupt their gradient.
    const process_ = withTestFaults(this.processor.process, parseTestFaults(process.env.STRIDE_TEST_FAULTS), { redis: this.redis, keys, store, log: this.log });
    this.worker = new Worker<unknown, ShardReturn>(SHARDS_QUEUE, process_, {
      connection: bullConnection(opts.config),
      prefix: opts.config.prefix,
      name: this.id,
      concurrency: this.threads,
      lockDuration: locks.lockDurationMs,
      stalledInterval: locks.stalledIntervalMs,
      maxStalledCount: locks.maxStalledCount,
      // Started by `start()` once the threads are up: a shard taken earlier would wait for them.
      autorun: false,
    });
    this.worker.on('error', (err) => this.log(`worker ${this.id}: ${err.message}`));
    this.worker.on('failed', (job, err) => this.log(`worker ${this.id}: shard job ${job?.id ?? '?'} failed (attempt ${job?.attemptsMade ?? '?'}): ${err.message}`));
    this.heartbeat = new Heartbeat(this.redis, keys, {
      intervalMs: opts.heartbeatMs,
      info: () => this.info(),
      onError: (err) => this.log(`worker ${this.id}: heartbeat failed: ${err.message}`),
    });
    void this.heartbeat.start();
  }

  /**
   * Waits for the threads and the connection, then starts taking jobs; resolves once it does.
   * Nothing is taken before (a shard would wait for threads still starting).
   */
  async start(): Promise<void> {
    await Promise.all([this.processor.ready(), this.worker.waitUntilReady()]);
    if (this.closing) return;
    this.worker.run().catch((err: Error) => this.log(`worker ${this.id}: ${err.message}`));
    // run() starts the fetch loop; the worker is running once it has set itself up.
    while (!this.worker.isRunning() && !this.closing) await new Promise((r) => setTimeout(r, 5));
  }

  /** What the heartbeat reports. */
  info(): Omit<WorkerInfo, 'lastSeen'> {
    const s = this.processor.stats;
    return {
      id: this.id,
      host: hostname(),
      pid: process.pid,
      threads: this.threads,
      shardsDone: s.shardsDone,
      shardsFailed: s.shardsFailed,
      busyMs: Math.round(s.busyMs),
      active: s.active,
      state: this.state,
      startedAt: this.startedAt,
    };
  }

  /**
   * Stops taking jobs, finishes the shards in hand, then releases threads and connections.
   * Idempotent: every call returns the same promise.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.state = 'closing';
      void this.heartbeat.beat();
      for (const step of [() => this.worker.close(), () => this.processor.close(), () => this.heartbeat.stop(), () => this.redis.quit()]) {
        try {
          await step();
        } catch (err) {
          this.log(`worker ${this.id}: while closing: ${(err as Error).message}`);
        }
      }
      this.markClosed();
    })();
    return this.closing;
  }
}

// A Stride worker: takes shard jobs from the shards queue, computes them on a pool of threads,
// reports itself by heartbeat. Stateless: everything it needs comes with the job or from Redis,
// so it can join, leave or be killed at any time.
import { randomBytes } from 'node:crypto';
import { availableParallelism, hostname } from 'node:os';
import { Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  BlobStore,
  createRedis,
  Heartbeat,
  Keys,
  listWorkers,
  SHARD_WORKER_LOCKS,
  workerTuning,
  SHARDS_QUEUE,
  ShardProcessor,
  parseParamsAnnouncement,
  publishShardNews,
  type LockTuning,
  type ParamsAnnouncement,
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
  /** Compute threads = shards computed at once. Default: `os.availableParallelism()`. */
  threads?: number;
  /**
   * Shard jobs taken beyond `threads` (ahead): while a thread computes one shard, the next one's
   * parameters and input are fetched and the last one's gradient sent, instead of the thread
   * waiting for Redis between shards. Only while the shards enqueued together outnumber the threads
   * of all live workers (heartbeats): otherwise a shard taken ahead here would wait for a thread
   * while another worker's thread idles. 0 never takes one ahead. Default 0: on the 2-core machine
   * it was measured on, the fetching competes with the compute threads and the ratio did not move
   * beyond the noise (see the README); it is meant for workers whose cores wait on Redis.
   */
  prefetch?: number;
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
  /** Subscribed to the params channel (a connection in subscriber mode can do nothing else). */
  private readonly subscriber: Redis;
  private readonly processor: ShardProcessor;
  private readonly worker: Worker<unknown, ShardReturn>;
  private readonly heartbeat: Heartbeat;
  private readonly keys: Keys;
  private readonly prefetch: number;
  /** Threads of every live worker, this one's included (0: not known yet). */
  private liveThreads = 0;
  /** Counts the live threads, only when shards may be taken ahead. */
  private readonly liveTimer?: NodeJS.Timeout;
  private readonly log: (line: string) => void;
  private state: WorkerInfo['state'] = 'running';
  private closing?: Promise<void>;
  private markClosed!: () => void;
  /** Resolves when `close()` has finished. */
  readonly closed = new Promise<void>((resolve) => (this.markClosed = resolve));

  constructor(options: ShardWorkerOptions) {
    const opts = withDefaults({ threads: availableParallelism(), prefetch: 0, heartbeatMs: 2000, log: (line: string): void => void process.stderr.write(`${line}\n`) }, options);
    if (!Number.isInteger(opts.threads) || opts.threads < 1) throw new RangeError(`ShardWorker: threads must be an integer >= 1, got ${opts.threads}`);
    if (!Number.isInteger(opts.prefetch) || opts.prefetch < 0) throw new RangeError(`ShardWorker: prefetch must be an integer >= 0, got ${opts.prefetch}`);
    const locks = withDefaults(SHARD_WORKER_LOCKS, opts.locks ?? {});
    this.id = opts.id ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    this.threads = opts.threads;
    this.log = opts.log;
    const keys = new Keys(opts.config.prefix);
    this.keys = keys;
    this.prefetch = opts.prefetch;
    this.redis = createRedis(opts.config, `stride-worker-${this.id}`);
    this.redis.on('error', () => {
      // ioredis reconnects by itself; commands wait for it.
    });
    const store = new BlobStore(this.redis, keys);
    // The BullMQ worker below sends job completions on the store's connection, after the gradient.
    this.processor = new ShardProcessor({ store, workerId: this.id, threads: this.threads, completesOnStoreConnection: true, log: this.log });
    // Test-only (tools/chaos): STRIDE_TEST_FAULTS makes chosen shards crash the worker or corrupt their gradient.
    const process_ = withTestFaults(this.processor.process, parseTestFaults(process.env.STRIDE_TEST_FAULTS), { redis: this.redis, keys, store, log: this.log });
    const processJob = (job: Job): Promise<ShardReturn> => {
      this.adjustConcurrency(job.data);
      return process_(job);
    };
    this.worker = new Worker<unknown, ShardReturn>(SHARDS_QUEUE, processJob, {
      // Shared with the store (BullMQ leaves it open and takes its own blocking connection): a job's
      // completion follows its gradient on one connection, so the gradient is not waited for.
      connection: this.redis,
      prefix: opts.config.prefix,
      name: this.id,
      // Raised by `prefetch` while steps have more shards than live threads (see adjustConcurrency).
      // A shard taken ahead waits in the pool's queue, its data in hand; its lock is renewed like
      // any active job's, by this main thread, which the computation never blocks.
      concurrency: this.threads,
      ...workerTuning(locks),
      // Started by `start()` once the threads are up: a shard taken earlier would wait for them.
      autorun: false,
    });
    this.worker.on('error', (err) => this.log(`worker ${this.id}: ${err.message}`));
    // Completed (and so removed) in BullMQ: the coordinator hears the result. A job whose lock was
    // lost does not complete here and says nothing: its other run will.
    this.worker.on('completed', (job, ret) => publishShardNews(this.redis, keys, job.id!, ret, this.log));
    this.worker.on('failed', (job, err) => {
      this.log(`worker ${this.id}: shard job ${job?.id ?? '?'} failed (attempt ${job?.attemptsMade ?? '?'}): ${err.message}`);
      // Moved to failed (or back to wait for another attempt): the coordinator looks it up.
      if (job?.id) publishShardNews(this.redis, keys, job.id, undefined, this.log);
    });
    // Parameter versions announced by coordinators: fetched ahead when this worker is likely to need them.
    this.subscriber = createRedis(opts.config, `stride-worker-sub-${this.id}`);
    this.subscriber.on('error', () => {
      // ioredis reconnects and subscribes again by itself; shard jobs fetch what they need anyway.
    });
    this.subscriber.on('message', (_channel: string, text: string) => {
      let announcement: ParamsAnnouncement;
      try {
        announcement = parseParamsAnnouncement(text);
      } catch (err) {
        this.log(`worker ${this.id}: ignored a malformed parameter announcement: ${(err as Error).message}`);
        return;
      }
      void this.processor.announced(announcement);
    });
    void this.subscriber.subscribe(keys.paramsChannel()).catch((err: Error) => this.log(`worker ${this.id}: not subscribed to parameter announcements: ${err.message}`));
    this.heartbeat = new Heartbeat(this.redis, keys, {
      intervalMs: opts.heartbeatMs,
      info: () => this.info(),
      onError: (err) => this.log(`worker ${this.id}: heartbeat failed: ${err.message}`),
    });
    void this.heartbeat.start();
    if (this.prefetch > 0) {
      this.liveTimer = setInterval(() => void this.countLiveThreads(), opts.heartbeatMs);
      this.liveTimer.unref();
    }
  }

  /** Takes shards ahead (up to `prefetch`) while the shards enqueued with `data`'s outnumber the live threads. */
  private adjustConcurrency(data: unknown): void {
    const shards = (data as { shards?: unknown } | null)?.shards;
    const ahead = typeof shards === 'number' && shards > Math.max(this.liveThreads, this.threads) ? this.prefetch : 0;
    if (this.worker.concurrency !== this.threads + ahead) this.worker.concurrency = this.threads + ahead;
  }

  /** Reads the live workers' thread counts from their heartbeats. */
  private async countLiveThreads(): Promise<void> {
    try {
      this.liveThreads = (await listWorkers(this.redis, this.keys)).reduce((sum, w) => sum + w.threads, 0);
    } catch {
      // Redis away: keep the last count; the heartbeat reports the error.
    }
  }

  /**
   * Waits for the threads and the connection, then starts taking jobs; resolves once it does.
   * Nothing is taken before (a shard would wait for threads still starting).
   */
  async start(): Promise<void> {
    try {
      await Promise.all([this.processor.ready(), this.worker.waitUntilReady(), this.heartbeat.beat().then(() => this.countLiveThreads())]);
    } catch (err) {
      // Closed while starting (a SIGTERM right after launch): the threads it waited for are gone,
      // which is what was asked, not a failure.
      if (this.closing) return;
      throw err;
    }
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
      clearInterval(this.liveTimer);
      void this.heartbeat.beat();
      for (const step of [() => this.worker.close(), () => this.subscriber.quit(), () => this.processor.close(), () => this.heartbeat.stop(), () => this.redis.quit()]) {
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

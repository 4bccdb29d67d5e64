// The shard processor run by workers: BullMQ shard job in, gradient blob + small JSON out.
//
// For each job: check its data, fetch the job context and the parameter version it names (both
// cached), fetch the shard's input, compute it with the engine's ShardComputer on a thread of the
// pool, write the gradient as a binary blob and return counts and timings. Nothing is kept that a
// restart would miss: a killed worker loses only the shard in hand, which BullMQ hands to another.
import { availableParallelism } from 'node:os';
import { UnrecoverableError, type Job } from 'bullmq';
import { isNamedError, ThreadError, ThreadPool, wallClock, type JobContext, type ShardResult, type ShardTask } from '@stride/engine';
import type { BlobStore } from './blob-store.ts';
import { withDefaults } from './config.ts';
import type { Redis } from 'ioredis';
import { encodeShardNews, parseShardJobData, type ParamsAnnouncement, type ShardJobData, type ShardReturn } from './codec.ts';
import { parseShardJobId, type Keys } from './keys.ts';
import type { ShardThreadRequest } from './shard-thread.ts';

/** Options of a ShardProcessor. */
export interface ShardProcessorOptions {
  /** Where contexts, parameters, inputs and gradients live. */
  store: BlobStore;
  /** Reported in results and heartbeats. */
  workerId: string;
  /** Compute threads. Default: `os.availableParallelism()`. */
  threads?: number;
  /** Parameter versions kept in memory (over all jobs). Default 4. */
  cachedVersions?: number;
  /**
   * True when the BullMQ Worker running `process` uses the store's Redis connection (passed as its
   * `connection`): a job's completion then goes out after its gradient on that one connection, in
   * that order, so `process` sends the gradient and returns without waiting for Redis's reply. Were
   * the write refused, the coordinator would find no gradient and have the shard computed again.
   * Default false: the write is awaited.
   */
  completesOnStoreConnection?: boolean;
  /** Where failures nobody awaits (see `completesOnStoreConnection`) are reported. Default: stderr. */
  log?: (line: string) => void;
}

/** Counters for heartbeats. */
export interface ProcessorStats {
  shardsDone: number;
  shardsFailed: number;
  /** Thread-milliseconds spent computing. */
  busyMs: number;
  /** Shards in hand. */
  active: number;
}


/** Errors that no retry of the same job can fix: the job fails at once with the error's name in its reason. */
const PERMANENT = ['MessageError', 'MissingBlobError', 'StaleJobError', 'JobSpecError'];

export class ShardProcessor {
  readonly threads: number;
  readonly stats: ProcessorStats = { shardsDone: 0, shardsFailed: 0, busyMs: 0, active: 0 };
  private readonly pool: ThreadPool<ShardThreadRequest, ShardResult | 'pong'>;
  private readonly store: BlobStore;
  private readonly workerId: string;
  private readonly cachedVersions: number;
  private readonly completesOnStoreConnection: boolean;
  private readonly log: (line: string) => void;
  /** `${jobId}:${version}:${token}` → the version's state in shared memory; Map order = least recently used first. */
  private readonly versions = new Map<string, Promise<SharedArrayBuffer>>();
  private readonly contexts = new Map<string, Promise<JobContext>>();
  /** Per job: the latest parameter version this worker computed a shard with. */
  private readonly lastVersion = new Map<string, number>();
  private closing?: Promise<void>;

  constructor(options: ShardProcessorOptions) {
    const opts = withDefaults({ threads: availableParallelism(), cachedVersions: 4, completesOnStoreConnection: false, log: (line: string): void => void process.stderr.write(`${line}\n`) }, options);
    if (!Number.isInteger(opts.threads) || opts.threads < 1) throw new RangeError(`ShardProcessor: threads must be an integer >= 1, got ${opts.threads}`);
    if (!Number.isInteger(opts.cachedVersions) || opts.cachedVersions < 1) throw new RangeError(`ShardProcessor: cachedVersions must be an integer >= 1, got ${opts.cachedVersions}`);
    this.threads = opts.threads;
    this.store = opts.store;
    this.workerId = opts.workerId;
    this.cachedVersions = opts.cachedVersions;
    this.completesOnStoreConnection = opts.completesOnStoreConnection;
    this.log = opts.log;
    this.pool = new ThreadPool({ entry: new URL('./shard-thread.ts', import.meta.url), size: this.threads, name: 'stride-shard' });
  }

  /**
   * The BullMQ processor. Throws an `UnrecoverableError` whose message starts with the cause's
   * name (`MissingBlobError: ...`) when retrying cannot help; other errors (a thread that died)
   * are retried by BullMQ.
   */
  process = async (job: Job): Promise<ShardReturn> => {
    const startedAt = wallClock();
    this.stats.active++;
    try {
      const data = parseShardJobData(job.data);
      const { result, readyAt } = await this.fetchAndCompute(data, Math.max(0, startedAt - data.enqueuedAt));
      this.stats.busyMs += result.computeMs;
      const uploadStart = wallClock();
      if (result.kind === 'train') {
        const upload = this.store.putGradient({
          jobId: data.jobId,
          step: data.step,
          shard: data.shard,
          paramsVersion: result.paramsVersion,
          paramsToken: data.paramsToken,
          count: result.count,
          gradient: result.gradient!,
          buffers: result.buffers,
        });
        if (!this.completesOnStoreConnection) await upload;
        else {
          upload.catch((err: Error) => {
            this.stats.shardsFailed++;
            this.log(`shard job ${job.id}: gradient not stored (${err.message}); the coordinator will have it computed again`);
          });
        }
      }
      const doneAt = wallClock();
      this.stats.shardsDone++;
      // Fetching: job data, context, parameters and input, then the thread's loading of the version and
      // the hand-off of the result. Not the time the shard waited for a thread busy with another one
      // (a worker takes more shards than it has threads, to fetch the next while computing one).
      const thread = result.timing;
      const fetchMs = thread ? readyAt - startedAt + thread.fetchMs + Math.max(0, uploadStart - thread.doneAt) : Math.max(0, uploadStart - startedAt - result.computeMs);
      return {
        jobId: result.jobId,
        kind: result.kind,
        step: result.step,
        shard: result.shard,
        paramsVersion: result.paramsVersion,
        paramsToken: data.paramsToken,
        count: result.count,
        lossSum: result.lossSum,
        correct: result.correct,
        ...(result.stats === undefined ? {} : { stats: result.stats }),
        computeMs: result.computeMs,
        queueMs: result.queueMs ?? 0,
        workerId: this.workerId,
        timing: { startedAt, fetchMs, uploadMs: doneAt - uploadStart, doneAt },
      };
    } catch (err) {
      this.stats.shardsFailed++;
      throw asJobFailure(err);
    } finally {
      this.stats.active--;
    }
  };

  /** Computes one shard (no Redis writes): context, parameters and input are fetched as needed. */
  async compute(data: ShardJobData, queueMs: number): Promise<ShardResult> {
    return (await this.fetchAndCompute(data, queueMs)).result;
  }

  /** `compute`, and when everything the shard needs was in hand (wall-clock ms). */
  private async fetchAndCompute(data: ShardJobData, queueMs: number): Promise<{ result: ShardResult; readyAt: number }> {
    if ((this.lastVersion.get(data.jobId) ?? -1) < data.paramsVersion) {
      this.lastVersion.delete(data.jobId);
      this.lastVersion.set(data.jobId, data.paramsVersion);
      while (this.lastVersion.size > this.cachedVersions) this.lastVersion.delete(this.lastVersion.keys().next().value!);
    }
    const context = await this.context(data.jobId);
    const [c, h, w] = context.modelSpec.input;
    const [state, input] = await Promise.all([
      this.params(context, data.paramsVersion, data.paramsToken),
      this.store.getInput({ jobId: data.jobId, kind: data.kind, step: data.step, shard: data.shard, count: data.count, sampleBytes: c * h * w, task: context.task, pixels: h * w }),
    ]);
    const task: ShardTask = { kind: data.kind, jobId: data.jobId, step: data.step, shard: data.shard, paramsVersion: data.paramsVersion, count: data.count, images: input.images, labels: input.labels, ...(input.targets ? { targets: input.targets } : {}) };
    const readyAt = wallClock();
    const result = (await this.pool.run({ type: 'shard', context, version: data.paramsVersion, state, task, queueMs, workerId: this.workerId })) as ShardResult;
    return { result, readyAt };
  }

  /**
   * A parameter version was announced (see `Keys.paramsChannel`). When this worker computed a
   * shard of the job with the version before it, the next step's shards are likely to come here
   * too: the version is fetched now, while the coordinator enqueues them, instead of after one is
   * taken. Nothing else changes: a shard job still names its version and token, and finds this
   * fetch in the cache or makes its own. Returns undefined when nothing is fetched, else a promise
   * that settles when the fetch is over (failures are left to the shard job, which fetches again
   * and reports them).
   */
  announced(a: ParamsAnnouncement): Promise<void> | undefined {
    if (this.closing || this.lastVersion.get(a.jobId) !== a.version - 1) return undefined;
    const context = this.contexts.get(a.jobId);
    if (!context) return undefined;
    return context.then((c) => this.params(c, a.version, a.token)).then(
      () => undefined,
      () => undefined,
    );
  }

  /** Resolves once every thread is up (started and its modules loaded), so the first shard does not wait for that. */
  async ready(): Promise<void> {
    await this.pool.broadcast({ type: 'ping' });
  }

  private context(jobId: string): Promise<JobContext> {
    let p = this.contexts.get(jobId);
    if (!p) {
      p = this.store.getContext(jobId);
      this.contexts.set(jobId, p);
      // A failed fetch is not cached: the coordinator may publish the context again.
      p.catch(() => this.contexts.delete(jobId));
      while (this.contexts.size > this.cachedVersions) this.contexts.delete(this.contexts.keys().next().value!);
    }
    return p;
  }

  /** Parameter version `version` (publication `token`) in shared memory, fetched once however many shards ask at the same time. */
  private params(context: JobContext, version: number, token: string): Promise<SharedArrayBuffer> {
    const key = `${context.jobId}:${version}:${token}`;
    let p = this.versions.get(key);
    if (p) {
      this.versions.delete(key);
    } else {
      p = this.store.getParams(context.jobId, version, token, context.stateLength).then((bytes) => {
        const shared = new SharedArrayBuffer(bytes.byteLength);
        new Uint8Array(shared).set(bytes);
        return shared;
      });
      p.catch(() => {
        if (this.versions.get(key) === p) this.versions.delete(key);
      });
      while (this.versions.size >= this.cachedVersions) this.versions.delete(this.versions.keys().next().value!);
    }
    this.versions.set(key, p);
    return p;
  }

  /** Stops the threads. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.versions.clear();
      this.contexts.clear();
      try {
        await this.pool.close();
      } catch {
        // Nothing left to release.
      }
    })();
    return this.closing;
  }
}

/**
 * Maps a processing error to what BullMQ should do with the job. Validation and missing-blob
 * errors, and errors thrown by the computation itself (a model the spec cannot build), fail the
 * job at once; a thread that died is worth a retry.
 */
export function asJobFailure(err: unknown): Error {
  if (!(err instanceof Error)) return new Error(String(err));
  if (PERMANENT.some((name) => isNamedError(err, name))) return new UnrecoverableError(`${err.name}: ${err.message}`);
  if (err instanceof ThreadError && err.remoteName !== undefined) return new UnrecoverableError(err.message);
  return err;
}

/**
 * Tells coordinators that shard job `id` finished (see `Keys.shardNewsChannel`): `ret` for a
 * completed one, nothing for a failed one. Call it once BullMQ has moved the job (its Worker's
 * 'completed' and 'failed' events), so whoever hears the news finds the job finished, and on the
 * connection the gradient was written on, so it finds the gradient too. A refused or lost message
 * costs time, not a result: the coordinator's poll looks the job up.
 */
export function publishShardNews(redis: Redis, keys: Keys, id: string, ret: ShardReturn | undefined, log: (line: string) => void): void {
  // Not a shard job (something else in the queue): no coordinator waits for it.
  if (!parseShardJobId(id)) return;
  const news = encodeShardNews(ret === undefined ? { id, status: 'failed' } : { id, status: 'completed', returnvalue: ret });
  redis.publish(keys.shardNewsChannel(), news).catch((err: Error) => log(`shard job ${id}: news not sent (${err.message}); the coordinator's poll will find the job`));
}

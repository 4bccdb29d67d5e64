// The LocalExecutor: computes shards on a pool of worker threads of this process.
//
// Parameter versions live in shared memory (one SharedArrayBuffer per published version), so a
// thread reads a version without a copy per task and loads it into its model once.
import { availableParallelism } from 'node:os';
import { ThreadError } from './errors.ts';
import { wallClock, type Executor, type JobContext, type ShardResult, type ShardTask } from './executor.ts';
import type { LocalThreadReply, LocalThreadRequest } from './local-thread.ts';
import { ThreadPool } from './thread-pool.ts';

/** Options of a LocalExecutor. */
export interface LocalExecutorOptions {
  /** Worker threads. Default: `os.availableParallelism()`. */
  threads?: number;
  /** Attempts per shard when its thread dies mid-task (a thrown error is not retried). Default 2. */
  maxAttempts?: number;
}

interface Published {
  readonly version: number;
  readonly state: SharedArrayBuffer;
}

export class LocalExecutor implements Executor {
  readonly threads: number;
  private readonly maxAttempts: number;
  private readonly pool: ThreadPool<LocalThreadRequest, LocalThreadReply>;
  private readonly published = new Map<string, Published>();
  private closing?: Promise<void>;

  constructor(options: LocalExecutorOptions = {}) {
    const { threads, maxAttempts } = { threads: availableParallelism(), maxAttempts: 2, ...options };
    if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`LocalExecutor: threads must be an integer >= 1, got ${threads}`);
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw new RangeError(`LocalExecutor: maxAttempts must be an integer >= 1, got ${maxAttempts}`);
    this.threads = threads;
    this.maxAttempts = maxAttempts;
    this.pool = new ThreadPool({
      entry: new URL('./local-thread.ts', import.meta.url),
      size: threads,
      name: 'stride-local',
    });
  }

  async publishParams(job: JobContext, version: number, state: Uint8Array): Promise<void> {
    if (state.byteLength !== job.stateLength * 4) {
      throw new RangeError(`LocalExecutor.publishParams: job ${job.jobId} version ${version}: ${state.byteLength} bytes, expected ${job.stateLength * 4}`);
    }
    const shared = new SharedArrayBuffer(state.byteLength);
    new Uint8Array(shared).set(state);
    this.published.set(job.jobId, { version, state: shared });
  }

  async runShards(job: JobContext, tasks: readonly ShardTask[], signal?: AbortSignal): Promise<ShardResult[]> {
    const published = this.published.get(job.jobId);
    for (const task of tasks) {
      if (!published || task.paramsVersion !== published.version) {
        throw new ThreadError(`LocalExecutor.runShards: job ${job.jobId} step ${task.step} shard ${task.shard} needs version ${task.paramsVersion}, published is ${published?.version ?? 'none'}`);
      }
    }
    signal?.throwIfAborted();
    const work = Promise.all(tasks.map((task) => this.runOne(job, published!, task)));
    if (!signal) return work;
    return new Promise<ShardResult[]>((resolve, reject) => {
      const onAbort = (): void => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  private async runOne(job: JobContext, published: Published, task: ShardTask): Promise<ShardResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        const reply = await this.pool.run({ type: 'shard', job, version: published.version, state: published.state, task, queuedAt: wallClock() });
        return reply as ShardResult;
      } catch (err) {
        // A thread that died (no remote error name) is replaced by the pool: try again there.
        const died = err instanceof ThreadError && err.remoteName === undefined && !this.closing;
        if (!died || attempt >= this.maxAttempts) throw err;
      }
    }
  }

  async releaseJob(jobId: string): Promise<void> {
    this.published.delete(jobId);
    if (!this.closing) await this.pool.broadcast({ type: 'release', jobId });
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.published.clear();
      try {
        await this.pool.close();
      } catch {
        // Nothing left to release.
      }
    })();
    return this.closing;
  }
}

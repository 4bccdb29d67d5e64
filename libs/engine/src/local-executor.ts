// The LocalExecutor: computes shards on the threads of this process.
//
// Parameter versions live in shared memory (one SharedArrayBuffer per published version), so a
// thread reads a version without a copy per task and loads it into its model once. A runShards
// call sends every compute thread one message with all its tasks (pixels in shared memory too);
// the threads then take task indices from one shared counter until none is left, so the work
// balances itself whatever the number of shards.
//
// With `callerComputes`, the calling thread is one of the compute threads (threads − 1 worker
// threads are started), as OpenMP's master thread is: on a machine with as many cores as compute
// threads, no core then hosts both a computing thread and the thread that waits for them, which
// measured ~10 % more LeNet-5 training throughput on 2 cores (`npm run bench`). It blocks the
// caller's event loop while it computes a shard: for processes that do nothing else meanwhile
// (`stride train`, the benchmark), not for a server.
import { availableParallelism } from 'node:os';
import { ThreadError } from './errors.ts';
import { wallClock, type Executor, type JobContext, type ShardResult, type ShardTask } from './executor.ts';
import { claimShards, shareImages, type ClaimedShard, type LocalShardsRequest } from './local-shards.ts';
import type { LocalThreadReply, LocalThreadRequest } from './local-thread.ts';
import { ShardComputer } from './shard.ts';
import { ThreadPool } from './thread-pool.ts';

/** Options of a LocalExecutor. */
export interface LocalExecutorOptions {
  /** Compute threads (the calling thread included with `callerComputes`). Default: `os.availableParallelism()`. */
  threads?: number;
  /** Attempts per shard when its thread dies mid-task (a thrown error is not retried). Default 2. */
  maxAttempts?: number;
  /** The calling thread computes shards too, blocking its event loop meanwhile (see the file comment). Default false. */
  callerComputes?: boolean;
}

/**
 * How long a thread waiting for its next shards, or a caller waiting for a thread's reply, spins
 * before it sleeps (see `ThreadPoolOptions.spinMs`). It covers a LeNet-5 step's serial part
 * (reduction, optimizer, publication: ~0.5 ms). LeNet-5 on 2 cores (Zen 4, 2 threads, batch 64,
 * six alternating rounds against the event-loop hand-off): 1 ms of spin gave 1.09× the images/s
 * (1.00–1.22 per round), no spin 1.04× (0.93–1.27), 3 ms 1.12× (0.93–1.24).
 */
const SPIN_MS = 1;

/** Bounds of how long a computing caller waits blocked for the threads' replies (see `runShards`). */
const WAIT_REPLY_MIN_MS = 2;
const WAIT_REPLY_MAX_MS = 50;

/**
 * A job's shared memory, reused by its calls: each call waits for all its threads' replies, so a
 * call's buffers are free again once it returns. An aborted call returns before its threads are
 * done: the next call gets a new task counter and pixel buffer, its gradients go to slots nobody
 * holds, and `releaseJob` (the trainer's last word on every run, aborted ones included) drops the
 * rest, so a resumed job never writes over memory an orphaned thread might still use.
 */
interface JobMemory {
  readonly version: number;
  /** The packed state of `version`. */
  readonly state: SharedArrayBuffer;
  /** The tasks' pixels of the last call that had helper threads (a larger call makes a new one). */
  pixels?: SharedArrayBuffer;
  /** Int32 [1]: the shared task counter (see `LocalShardsRequest.claim`), zeroed per call. */
  claim: Int32Array;
  /** Gradient slots (`stateLength` float32 each) handed back with `recycle`, free for the next train call. */
  readonly free: SharedArrayBuffer[];
  /** Every gradient slot made for the job, held weakly: a slot never handed back is collected. */
  readonly slots: WeakSet<SharedArrayBuffer>;
}

/** Free gradient slots kept per job, at most. */
const MAX_FREE_SLOTS = 64;

export class LocalExecutor implements Executor {
  readonly threads: number;
  readonly callerComputes: boolean;
  private readonly maxAttempts: number;
  /** Undefined when the calling thread is the only compute thread. */
  private readonly pool?: ThreadPool<LocalThreadRequest, LocalThreadReply>;
  private readonly published = new Map<string, JobMemory>();
  /** The calling thread's models (`callerComputes`). */
  private readonly computers = new Map<string, ShardComputer>();
  private closing?: Promise<void>;

  constructor(options: LocalExecutorOptions = {}) {
    const { threads, maxAttempts, callerComputes } = { threads: availableParallelism(), maxAttempts: 2, callerComputes: false, ...options };
    if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`LocalExecutor: threads must be an integer >= 1, got ${threads}`);
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw new RangeError(`LocalExecutor: maxAttempts must be an integer >= 1, got ${maxAttempts}`);
    this.threads = threads;
    this.callerComputes = callerComputes;
    this.maxAttempts = maxAttempts;
    const poolSize = callerComputes ? threads - 1 : threads;
    // Waiting sides spin briefly only when every compute thread can have a core of its own.
    const spinMs = threads <= availableParallelism() ? SPIN_MS : 0;
    if (poolSize > 0) this.pool = new ThreadPool({ entry: new URL('./local-thread.ts', import.meta.url), size: poolSize, name: 'stride-local', spinMs });
  }

  async publishParams(job: JobContext, version: number, state: Uint8Array): Promise<void> {
    if (state.byteLength !== job.stateLength * 4) {
      throw new RangeError(`LocalExecutor.publishParams: job ${job.jobId} version ${version}: ${state.byteLength} bytes, expected ${job.stateLength * 4}`);
    }
    // One buffer per job, written over by each version: a version is read only by the runShards
    // calls made for it, which are over before the trainer publishes the next (see `JobMemory`).
    const previous = this.published.get(job.jobId);
    const shared = previous?.state.byteLength === state.byteLength ? previous.state : new SharedArrayBuffer(state.byteLength);
    new Uint8Array(shared).set(state);
    this.published.set(job.jobId, previous ? { ...previous, version, state: shared } : { version, state: shared, claim: new Int32Array(new SharedArrayBuffer(4)), free: [], slots: new WeakSet() });
  }

  /**
   * Takes back the gradient slots of `results` (of this executor's train calls for the job): the
   * next train calls write their gradients there instead of into new arrays.
   */
  recycle(job: JobContext, results: readonly ShardResult[]): void {
    const memory = this.published.get(job.jobId);
    if (!memory) return;
    for (const r of results) {
      const slot = r.gradient?.buffer;
      if (!(slot instanceof SharedArrayBuffer) || !memory.slots.has(slot) || memory.free.includes(slot)) continue;
      if (memory.free.length < MAX_FREE_SLOTS) memory.free.push(slot);
    }
  }

  async runShards(job: JobContext, tasks: readonly ShardTask[], signal?: AbortSignal): Promise<ShardResult[]> {
    if (this.closing) throw new ThreadError('LocalExecutor: closed');
    const published = this.published.get(job.jobId);
    for (const task of tasks) {
      if (!published || task.paramsVersion !== published.version) {
        throw new ThreadError(`LocalExecutor.runShards: job ${job.jobId} step ${task.step} shard ${task.shard} needs version ${task.paramsVersion}, published is ${published?.version ?? 'none'}`);
      }
    }
    signal?.throwIfAborted();
    if (tasks.length === 0) return [];
    // With the caller computing, a thread still starting (0.1 s from a bundle, 0.6 s through tsx,
    // after the pool is created or a thread died) takes no part in the call: the caller computes its
    // share rather than wait for it. Threads that would find no task left are not woken (the
    // caller takes one at least).
    const pool = this.pool;
    const up = pool ? [...Array(pool.size).keys()].filter((i) => !this.callerComputes || pool.idle(i)) : [];
    const helpers = up.slice(0, this.callerComputes ? tasks.length - 1 : tasks.length);
    const memory = published!;
    let shared = tasks;
    if (helpers.length > 0) {
      const images = shareImages(tasks, memory.pixels);
      memory.pixels = images.buffer;
      shared = images.tasks;
    }
    Atomics.store(memory.claim, 0, 0);
    // Train calls: every task's gradient goes into a slot of shared memory, one handed back by
    // `recycle` when there is one.
    const out = tasks[0].kind === 'train' ? tasks.map(() => this.slot(memory, job)) : undefined;
    const req: LocalShardsRequest = {
      type: 'shards',
      job,
      version: memory.version,
      state: memory.state,
      tasks: shared,
      claim: memory.claim.buffer as SharedArrayBuffer,
      queuedAt: wallClock(),
      ...(out ? { out } : {}),
    };
    const results: (ShardResult | undefined)[] = new Array(tasks.length);
    let computeError: unknown;
    const replies: Promise<void>[] = [];
    for (const i of helpers) {
      replies.push(
        pool!.runOn(i, req).then(
          (reply) => {
            for (const { index, result } of doneOf(reply)) results[index] = out ? inSlot(result, out[index], job) : result;
          },
          (err: unknown) => {
            // A thread that died (no remote error name) lost the tasks it held: they are run again below.
            if (!(err instanceof ThreadError && err.remoteName === undefined && !this.closing)) computeError ??= err;
          },
        ),
      );
    }
    const work = (async () => {
      if (this.callerComputes) {
        const started = performance.now();
        try {
          for (const { index, result } of claimShards(this.callerComputer(job), req, 'caller', signal)) results[index] = result;
        } catch (err) {
          // Nobody takes another task; the threads finish the ones they hold.
          Atomics.store(new Int32Array(req.claim), 0, tasks.length);
          computeError ??= err;
        }
        // The caller's event loop stood still while it computed: it waits for the threads' last
        // shards the same way, blocked, and takes each reply the moment it is posted, without the
        // event loop's wake-up (see ThreadPool). For about as long as its own shards took: a
        // thread that takes much longer (or died) is then awaited as usual.
        const budget = Math.min(WAIT_REPLY_MAX_MS, Math.max(WAIT_REPLY_MIN_MS, performance.now() - started));
        const until = performance.now() + budget;
        for (const i of helpers) if (!pool!.waitReply(i, until - performance.now())) break;
        // Threads still starting become usable once the event loop has handled their ready
        // messages: a call with nothing to wait for would otherwise never give it a turn.
        if (pool && up.length < pool.size) await new Promise((resolve) => setImmediate(resolve));
      }
      await Promise.all(replies);
      if (computeError !== undefined) throw computeError;
      signal?.throwIfAborted();
      // Tasks of threads that died: once more each, on the pool's per-task retry.
      const missing = tasks.flatMap((_, i) => (results[i] === undefined ? [i] : []));
      await Promise.all(
        missing.map(async (i) => {
          const result = await this.runOne(job, req, i);
          results[i] = out ? inSlot(result, out[i], job) : result;
        }),
      );
      return results as ShardResult[];
    })();
    if (!signal) return work;
    return new Promise<ShardResult[]>((resolve, reject) => {
      const onAbort = (): void => {
        // Threads may still be at this call's tasks: a later call of the job (were it made before
        // `releaseJob`) gets a task counter and pixels of its own.
        memory.claim = new Int32Array(new SharedArrayBuffer(4));
        memory.pixels = undefined;
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  /** Task `index` of `req` alone, on the next idle thread (or the caller), tried again if its thread dies. */
  private async runOne(job: JobContext, req: LocalShardsRequest, index: number): Promise<ShardResult> {
    const alone: LocalShardsRequest = { ...req, tasks: [req.tasks[index]], claim: new SharedArrayBuffer(4), ...(req.out ? { out: [req.out[index]] } : {}) };
    for (let attempt = 2; ; attempt++) {
      try {
        const done = this.pool ? doneOf(await this.pool.run(alone)) : claimShards(this.callerComputer(job), alone, 'caller');
        return done[0].result;
      } catch (err) {
        // A thread that died (no remote error name) is replaced by the pool: try again there.
        const died = err instanceof ThreadError && err.remoteName === undefined && !this.closing;
        if (!died || attempt >= this.maxAttempts) throw err;
      }
    }
  }

  /** A free gradient slot of the job, or a new one. */
  private slot(memory: JobMemory, job: JobContext): SharedArrayBuffer {
    const free = memory.free.pop();
    if (free) return free;
    const slot = new SharedArrayBuffer(job.stateLength * 4);
    memory.slots.add(slot);
    return slot;
  }

  private callerComputer(job: JobContext): ShardComputer {
    let computer = this.computers.get(job.jobId);
    if (!computer) {
      computer = new ShardComputer(job);
      this.computers.set(job.jobId, computer);
    }
    return computer;
  }

  async releaseJob(jobId: string): Promise<void> {
    this.published.delete(jobId);
    this.computers.delete(jobId);
    if (!this.closing && this.pool) await this.pool.broadcast({ type: 'release', jobId });
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.published.clear();
      this.computers.clear();
      try {
        await this.pool?.close();
      } catch {
        // Nothing left to release.
      }
    })();
    return this.closing;
  }
}

/**
 * A thread's train result with its gradient and buffers as views of `slot` (the memory the thread
 * wrote them into) made on this thread, so `recycle` knows the slot when it is handed back.
 */
function inSlot(result: ShardResult, slot: SharedArrayBuffer, job: JobContext): ShardResult {
  const buffer = result.gradient?.buffer;
  // Ours already (the caller computed it), or not written into shared memory at all.
  if (buffer === slot || !(buffer instanceof SharedArrayBuffer)) return result;
  return {
    ...result,
    gradient: new Float32Array(slot, 0, job.gradientLength),
    ...(result.buffers ? { buffers: new Float32Array(slot, job.gradientLength * 4, job.bufferLength) } : {}),
  };
}

function doneOf(reply: LocalThreadReply): readonly ClaimedShard[] {
  if (!('done' in reply)) throw new ThreadError(`LocalExecutor: a thread answered a shards request with ${JSON.stringify(reply)}`);
  return reply.done;
}

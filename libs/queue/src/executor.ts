// The BullMQ executor: the engine's Executor over Redis, driven by the coordinator.
//
// publishParams makes parameter version v current; runShards writes it once as a binary key
// together with each shard's input (one round trip for all), enqueues one shard job per task with
// a deterministic id (`${jobId}-s${step}-${shard}`), and waits until every job has an accepted
// result.
//
// Exactly-once accounting on an at-least-once queue: a shard's entry leaves the pending table the
// moment its result is accepted, so it is counted once. Before that, a result is judged: it must
// be for this job, step, shard and parameter version, hold a gradient of the right length, and be
// finite. A result that fails is rejected, logged, and its shard recomputed (the job is removed and
// enqueued again under the same id); a completion seen again after acceptance is logged as a
// duplicate and ignored. Results are never averaged here: the engine reduces what we return.
//
// Waiting must not miss a completion. Workers say on a Pub/Sub channel (`Keys.shardNewsChannel`)
// that a shard job finished: a completion carries the return value, sent once BullMQ has completed
// the job, on the connection the gradient went out on, and is judged at once; a failure makes us
// look the job up. (Sent before the completion, the news let us reject a result and find its job
// still active, as if a worker ran it again: nothing was enqueued again, and the shard was lost
// until the poll noticed — found by the chaos run's numbers-nonfinite scenario.) Completed shard
// jobs remove themselves (`SHARD_JOB_DEFAULTS`), so nothing is left to remove for an accepted
// shard. A message is lost when a connection drops: a poll of every quiet pending job (every
// `pollIntervalMs`) finds it failed, or gone (completed and removed, or never there), and has it
// computed again; a job found gone is given one more poll for its news first.
// Measured against BullMQ's QueueEvents, which this replaced: one XREAD written per event batch,
// ~20 events per step parsed, and 4 removals per step cost the coordinator more CPU than the news.
import { randomBytes } from 'node:crypto';
import { Queue, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { crashPoint, ShardResultError, sumOfSquares, wallClock, type Executor, type JobContext, type ShardResult, type ShardTask } from '@stride/engine';
import { BlobStore } from './blob-store.ts';
import { parseShardNews, parseShardReturn, type ShardJobData, type ShardReturn } from './codec.ts';
import { bullConnection, createRedis, withDefaults, type TransportConfig } from './config.ts';
import { MessageError } from './errors.ts';
import { Keys, parseShardJobId, SHARDS_QUEUE, shardJobId } from './keys.ts';
import { isTransientRedisError, retryTransient } from './retry.ts';
import { SHARD_JOB_DEFAULTS } from './queues.ts';

/** Why a shard result was not accepted. */
export type RejectReason =
  /** The result names another job, kind, step or shard than the task. */
  | 'mismatch'
  /** Computed with another parameter version than the task's. */
  | 'stale-version'
  /** Gradient (or buffers, or sample count) of the wrong length. */
  | 'wrong-length'
  /** NaN or ±Infinity in the gradient or buffers. */
  | 'non-finite'
  /** Return value or gradient blob not readable against its schema. */
  | 'malformed'
  /** The job completed but its gradient blob is not in Redis. */
  | 'missing-gradient'
  /** The shard job failed (attempts exhausted, stalled too often, or a blob it needed was gone). */
  | 'job-failed'
  /** The shard job vanished from the queue before its result was accepted. */
  | 'job-missing';

/** One line of the executor's log. */
export interface ExecutorLogEntry {
  readonly level: 'info' | 'warn' | 'error';
  readonly event: 'rejected' | 'duplicate' | 'recompute' | 'republish' | 'error';
  readonly message: string;
  readonly jobId?: string;
  readonly kind?: 'train' | 'eval';
  readonly step?: number;
  readonly shard?: number;
  readonly reason?: RejectReason;
}

/** Counters since the executor started. */
export interface ExecutorStats {
  accepted: number;
  duplicates: number;
  recomputes: number;
  rejected: Record<RejectReason, number>;
}

/** Options of a BullmqExecutor. */
export interface BullmqExecutorOptions {
  /** Redis URL and key prefix. */
  config: TransportConfig;
  /** Expiry of every blob written (ms); refreshed while the job runs. Default 3 600 000 (1 h). */
  blobTtlMs?: number;
  /** BullMQ attempts of a shard job (a worker error is retried this many times in all). Default 5. */
  attempts?: number;
  /** First backoff between attempts (ms, exponential). Default 200. */
  backoffMs?: number;
  /** Times one shard may be recomputed after a rejected result or a failed job, before the step fails. Default 3. */
  maxRecomputes?: number;
  /** How often a pending shard job with no news is looked up (ms). Default 1000. */
  pollIntervalMs?: number;
  /** Receives rejections, duplicates, recomputes. Default: warnings and errors to stderr. */
  onLog?: (entry: ExecutorLogEntry) => void;
}

interface Pending {
  readonly bullId: string;
  readonly job: JobContext;
  readonly task: ShardTask;
  /** Publication token of the task's parameter version. */
  readonly token: string;
  readonly resolve: (result: ShardResult) => void;
  readonly reject: (err: Error) => void;
  recomputes: number;
  settling: boolean;
  again: boolean;
  lastCheck: number;
  /** Shards of the runShards call it belongs to (see `ShardJobData.shards`). */
  readonly shards: number;
  /** When the shard job was in the queue (wall-clock ms), for the step-time breakdown. */
  enqueuedAt?: number;
  /** A result delivered with completion news, to judge without reading the job back. */
  delivered?: unknown;
  /** The last check found the job gone (the next one recomputes it if it still is). */
  gone?: boolean;
}

interface PublishedJob {
  readonly context: JobContext;
  version: number;
  /** Random per publishParams call: results must carry it (see `ParamsMessage.token`). */
  token: string;
  /** Our copy of the state of `version`, to publish it again if its key expires. */
  state: Uint8Array;
  /**
   * Set while `version` is not in Redis yet: it is written with the next shard inputs, in the same
   * round trip (no shard job can ask for it before), and these keys (superseded versions) deleted.
   */
  unwritten?: { unlink: string[] };
}

/** BullMQ's failedReason of a job whose lock was lost more than `maxStalledCount` times (workers crashed holding it). */
const STALLED_TOO_OFTEN = /stalled more than allowable limit/;

/** Accepted shard job ids remembered to tell duplicates from strays. */
const ACCEPTED_MEMORY = 10_000;

export class BullmqExecutor implements Executor {
  readonly keys: Keys;
  readonly store: BlobStore;
  readonly queue: Queue;
  readonly stats: ExecutorStats = {
    accepted: 0,
    duplicates: 0,
    recomputes: 0,
    rejected: { mismatch: 0, 'stale-version': 0, 'wrong-length': 0, 'non-finite': 0, malformed: 0, 'missing-gradient': 0, 'job-failed': 0, 'job-missing': 0 },
  };
  private readonly redis: Redis;
  /** Subscribed to the shard news channel (a connection in subscriber mode can do nothing else). */
  private readonly subscriber: Redis;
  private readonly jobOptions: JobsOptions;
  private readonly maxRecomputes: number;
  private readonly pollIntervalMs: number;
  private readonly log: (entry: ExecutorLogEntry) => void;
  private readonly published = new Map<string, PublishedJob>();
  private readonly pending = new Map<string, Pending>();
  private readonly accepted = new Set<string>();
  private readonly background = new Set<Promise<unknown>>();
  /** Clean-ups in flight, by shard job id. */
  private readonly cleaning = new Map<string, Promise<void>>();
  /** Inputs written ahead by `prepareShards`, by input key: resolves true once stored. */
  private readonly staged = new Map<string, { jobId: string; written: Promise<boolean> }>();
  /** The enqueue of the runShards in progress (staged writes go out after it). */
  private enqueuing: Promise<unknown> = Promise.resolve();
  private readonly ready: Promise<void>;
  private readonly pollTimer: NodeJS.Timeout;
  private readonly keepAliveTimer: NodeJS.Timeout;
  private closing?: Promise<void>;

  constructor(options: BullmqExecutorOptions) {
    const opts = withDefaults({ blobTtlMs: 3_600_000, attempts: 5, backoffMs: 200, maxRecomputes: 3, pollIntervalMs: 1000, onLog: defaultLog }, options);
    for (const [name, min] of [['attempts', 1], ['backoffMs', 0], ['maxRecomputes', 0], ['pollIntervalMs', 10]] as const) {
      if (!Number.isInteger(opts[name]) || opts[name] < min) throw new RangeError(`BullmqExecutor: ${name} must be an integer >= ${min}, got ${opts[name]}`);
    }
    this.keys = new Keys(opts.config.prefix);
    this.redis = createRedis(opts.config, 'stride-executor');
    this.redis.on('error', () => {
      // ioredis reconnects by itself; commands wait for it (maxRetriesPerRequest: null).
    });
    this.store = new BlobStore(this.redis, this.keys, { ttlMs: opts.blobTtlMs });
    const connection = bullConnection(opts.config);
    this.queue = new Queue(SHARDS_QUEUE, { connection, prefix: opts.config.prefix });
    this.queue.on('error', (err) => this.log({ level: 'error', event: 'error', message: `shards queue: ${err.message}` }));
    this.subscriber = createRedis(opts.config, 'stride-executor-news');
    this.subscriber.on('error', () => {
      // ioredis reconnects and subscribes again by itself; the poll finds what was missed meanwhile.
    });
    this.subscriber.on('message', (_channel: string, text: string) => this.onNewsMessage(text));
    this.jobOptions = { ...SHARD_JOB_DEFAULTS, attempts: opts.attempts, backoff: { type: 'exponential', delay: opts.backoffMs } };
    this.maxRecomputes = opts.maxRecomputes;
    this.pollIntervalMs = opts.pollIntervalMs;
    this.log = opts.onLog;
    this.ready = Promise.all([this.queue.waitUntilReady(), this.subscriber.subscribe(this.keys.shardNewsChannel())]).then(() => undefined);
    this.ready.catch(() => undefined);
    this.pollTimer = setInterval(() => this.poll(), this.pollIntervalMs);
    this.pollTimer.unref();
    this.keepAliveTimer = setInterval(() => this.keepAlive(), Math.min(60_000, Math.floor(opts.blobTtlMs / 3)));
    this.keepAliveTimer.unref();
  }

  async publishParams(job: JobContext, version: number, state: Uint8Array): Promise<void> {
    if (this.closing) throw new Error('BullmqExecutor: closed');
    if (state.byteLength !== job.stateLength * 4) {
      throw new RangeError(`BullmqExecutor.publishParams: job ${job.jobId} version ${version}: ${state.byteLength} bytes, expected ${job.stateLength * 4}`);
    }
    let pub = this.published.get(job.jobId);
    if (!pub) {
      await this.retry(() => this.store.putContext(job));
      pub = { context: job, version, token: '', state: state.slice() };
      this.published.set(job.jobId, pub);
    }
    // Written by the next runShards together with its inputs (one round trip for both). Only the
    // current version is kept: a shard of an older one is stale whoever asks for it.
    const unlink = new Set(pub.unwritten?.unlink ?? []);
    if (pub.version !== version) unlink.add(this.keys.params(job.jobId, pub.version));
    unlink.delete(this.keys.params(job.jobId, version));
    pub.version = version;
    pub.token = randomBytes(6).toString('hex');
    pub.state = state.slice();
    pub.unwritten = { unlink: [...unlink] };
  }

  async runShards(job: JobContext, tasks: readonly ShardTask[], signal?: AbortSignal): Promise<ShardResult[]> {
    signal?.throwIfAborted();
    if (this.closing) throw new Error('BullmqExecutor: closed');
    const pub = this.published.get(job.jobId);
    for (const task of tasks) {
      if (task.jobId !== job.jobId) throw new RangeError(`BullmqExecutor.runShards: task of job ${task.jobId} in a call for job ${job.jobId}`);
      if (!pub || task.paramsVersion !== pub.version) {
        throw new RangeError(`BullmqExecutor.runShards: job ${job.jobId} ${task.kind} step ${task.step} shard ${task.shard} needs version ${task.paramsVersion}, published is ${pub?.version ?? 'none'}`);
      }
    }
    await this.ready;
    const token = pub!.token;
    const bullIds = tasks.map((t) => shardJobId(t.jobId, t.kind, t.step, t.shard));
    for (const bullId of bullIds) {
      if (this.pending.has(bullId)) throw new RangeError(`BullmqExecutor.runShards: shard ${bullId} is already running`);
    }
    // The same shards again (the engine re-requests rejected ones): let the previous clean-up (which
    // deletes their inputs) finish first.
    await Promise.all(bullIds.map((id) => this.cleaning.get(id)));
    const entries: Pending[] = [];
    const results: Promise<ShardResult>[] = [];
    for (const [i, task] of tasks.entries()) {
      const bullId = bullIds[i];
      results.push(
        new Promise<ShardResult>((resolve, reject) => {
          const entry: Pending = { bullId, job, task, token, shards: tasks.length, resolve, reject, recomputes: 0, settling: false, again: false, lastCheck: Date.now() };
          entries.push(entry);
          this.pending.set(bullId, entry);
        }),
      );
    }
    let onAbort: (() => void) | undefined;
    try {
      const enqueuedAt = wallClock();
      const jobs = tasks.map((task, i) => ({ name: task.kind, data: shardJobData(task, token, enqueuedAt, tasks.length), opts: { ...this.jobOptions, jobId: bullIds[i] } }));
      // Inputs (and the version) first, then the jobs: a job is never in the queue before its input.
      // (Sending both at once on one connection saved no measurable time and, with a connection cut
      // between them, let a worker take a job whose input was not written.) Idempotent: a job id
      // that exists already is left as it is.
      const enqueue = (async () => {
        await this.retry(() => this.writeStagedInputs(tasks, pub!), signal);
        await this.retry(() => this.queue.addBulk(jobs), signal);
      })();
      this.enqueuing = enqueue;
      await enqueue;
      crashPoint('shards-enqueued');
      const added = wallClock();
      for (const e of entries) e.enqueuedAt = added;
      const all = Promise.all(results);
      if (!signal) return await all;
      return await new Promise<ShardResult[]>((resolve, reject) => {
        onAbort = () => reject(signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
        all.then(resolve, reject);
      });
    } finally {
      if (onAbort) signal!.removeEventListener('abort', onAbort);
      for (const e of entries) if (this.pending.get(e.bullId) === e) this.pending.delete(e.bullId);
      // Suppress late rejections of entries dropped on the way out.
      for (const r of results) r.catch(() => undefined);
      const cleaning = this.cleanUp(tasks);
      for (const id of bullIds) this.cleaning.set(id, cleaning);
      this.track(cleaning.finally(() => bullIds.forEach((id) => this.cleaning.get(id) === cleaning && this.cleaning.delete(id))));
    }
  }

  /**
   * Writes the inputs of `tasks` (the next step's) now, after the current step's enqueue, so that
   * step starts with only its parameter version and jobs to send. Best effort: a failed write is
   * logged and done again by `runShards`.
   */
  prepareShards(job: JobContext, tasks: readonly ShardTask[]): void {
    if (this.closing || tasks.length === 0) return;
    const fresh = tasks.filter((t) => t.jobId === job.jobId && !this.staged.has(this.inputKey(t)));
    if (fresh.length === 0) return;
    const written = this.enqueuing
      .catch(() => undefined)
      .then(() => this.writeInputs(fresh))
      .then(
        () => true,
        (err: Error) => {
          this.log({ level: 'info', event: 'error', jobId: job.jobId, message: `inputs of step ${fresh[0].step} not written ahead (${err.message}); they go with the step` });
          return false;
        },
      );
    for (const t of fresh) this.staged.set(this.inputKey(t), { jobId: job.jobId, written });
    this.track(written);
  }

  /** Ids of the shard jobs whose results are awaited (for diagnostics). */
  pendingShardJobs(): string[] {
    return [...this.pending.keys()];
  }

  async releaseJob(jobId: string): Promise<void> {
    for (const e of [...this.pending.values()]) {
      if (e.task.jobId !== jobId) continue;
      this.pending.delete(e.bullId);
      e.reject(new Error(`BullmqExecutor: job ${jobId} released`));
    }
    const pub = this.published.get(jobId);
    this.published.delete(jobId);
    const keys = [this.keys.context(jobId)];
    if (pub) keys.push(this.keys.params(jobId, pub.version), ...(pub.unwritten?.unlink ?? []));
    const staged = [...this.staged].filter(([, s]) => s.jobId === jobId);
    for (const [key] of staged) this.staged.delete(key);
    // Written ahead for a step that will not run: deleted once their writes are done.
    await Promise.all(staged.map(([, s]) => s.written));
    keys.push(...staged.map(([key]) => key));
    if (!this.closing) await this.store.delete(keys);
  }

  /** Closes the connections. Idempotent: every call returns the same promise. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.pollTimer);
      clearInterval(this.keepAliveTimer);
      for (const e of this.pending.values()) e.reject(new Error('BullmqExecutor: closed'));
      this.pending.clear();
      await Promise.allSettled([...this.background]);
      for (const step of [() => this.subscriber.quit(), () => this.queue.close(), () => this.redis.quit()]) {
        try {
          await step();
        } catch {
          // Closing what is already gone.
        }
      }
    })();
    return this.closing;
  }

  // -- waiting ----------------------------------------------------------------------------------

  /** A message of the shard news channel. */
  private onNewsMessage(text: string): void {
    let news;
    try {
      news = parseShardNews(text);
    } catch (err) {
      this.log({ level: 'warn', event: 'error', message: `ignored malformed shard news: ${(err as Error).message}` });
      return;
    }
    this.onNews(news.id, news.status === 'completed' ? news.returnvalue : undefined);
  }

  /** News of a shard job; `returnvalue` is a completed job's return value. */
  private onNews(bullId: string, returnvalue?: unknown): void {
    const e = this.pending.get(bullId);
    if (e) {
      if (returnvalue !== undefined) e.delivered = returnvalue;
      void this.settle(bullId);
    } else if (this.accepted.has(bullId)) {
      this.stats.duplicates++;
      const id = parseShardJobId(bullId);
      this.log({ level: 'warn', event: 'duplicate', ...id, message: `shard job ${bullId}: result delivered again after it was accepted; ignored` });
    }
  }

  /** Looks up every pending job nobody has looked at for `pollIntervalMs`. */
  private poll(): void {
    const now = Date.now();
    for (const e of this.pending.values()) {
      if (now - e.lastCheck >= this.pollIntervalMs) void this.settle(e.bullId);
    }
  }

  /** Checks one pending job and acts on its state. One check at a time per job; news during a check re-runs it. */
  private async settle(bullId: string): Promise<void> {
    const e = this.pending.get(bullId);
    if (!e) return;
    if (e.settling) {
      e.again = true;
      return;
    }
    e.settling = true;
    try {
      do {
        e.again = false;
        e.lastCheck = Date.now();
        await this.check(e);
      } while (e.again && this.pending.get(bullId) === e);
    } catch (err) {
      if (isTransientRedisError(err)) {
        // Redis went away mid-check: the next poll looks again.
        this.log({ level: 'warn', event: 'error', jobId: e.task.jobId, step: e.task.step, shard: e.task.shard, message: `shard job ${bullId}: check interrupted (${(err as Error).message}); will look again` });
      } else if (this.pending.get(bullId) === e) {
        this.pending.delete(bullId);
        e.reject(err as Error);
      }
    } finally {
      e.settling = false;
    }
  }

  private async check(e: Pending): Promise<void> {
    if (e.delivered !== undefined) {
      // The result completion news delivered: accepted, or rejected and computed again.
      const delivered = e.delivered;
      e.delivered = undefined;
      e.gone = false;
      await this.judge(e, delivered);
      return;
    }
    const state = await this.queue.getJobState(e.bullId);
    if (this.pending.get(e.bullId) !== e) return;
    if (state !== 'unknown') e.gone = false;
    if (state === 'completed' || state === 'failed') {
      const job = await this.queue.getJob(e.bullId);
      if (!job) return this.recompute(e, 'job-missing', 'shard job vanished right after it finished');
      if (state === 'completed') {
        await this.judge(e, job.returnvalue);
        return;
      }
      return this.onFailed(e, job.failedReason ?? '(no reason)');
    }
    if (state === 'unknown') {
      // Completed and removed, its news lost or still on the way; or never enqueued, or deleted.
      // The news gets one more poll to arrive; then the shard is computed again.
      if (!e.gone) {
        e.gone = true;
        return;
      }
      e.gone = false;
      return this.recompute(e, 'job-missing', 'shard job is not in the queue and no news of it came');
    }
    // waiting, active, delayed, prioritized: news will come.
  }

  /** Accepts the return value of a completed job, or rejects it and has the shard computed again. */
  private async judge(e: Pending, returnvalue: unknown): Promise<void> {
    const t = e.task;
    const reject = (reason: RejectReason, detail: string): Promise<void> => this.reject(e, reason, detail);
    let ret: ShardReturn;
    try {
      ret = parseShardReturn(returnvalue);
    } catch (err) {
      return reject('malformed', (err as Error).message);
    }
    if (ret.jobId !== t.jobId || ret.kind !== t.kind || ret.step !== t.step || ret.shard !== t.shard) {
      return reject('mismatch', `result is for ${ret.jobId} ${ret.kind} step ${ret.step} shard ${ret.shard}`);
    }
    if (ret.paramsVersion !== t.paramsVersion) return reject('stale-version', `computed with parameter version ${ret.paramsVersion}, the task needs ${t.paramsVersion}`);
    if (ret.paramsToken !== e.token) return reject('stale-version', `computed with publication ${ret.paramsToken} of version ${t.paramsVersion}, the current one is ${e.token}`);
    if (ret.count !== t.count) return reject('wrong-length', `result covers ${ret.count} samples, the shard has ${t.count}`);

    let gradient: Float32Array | undefined;
    let gradientSumSquares: number | undefined;
    let buffers: Float32Array | undefined;
    if (t.kind === 'train') {
      const grad = await this.readGradient(e);
      if (!grad) return;
      if (grad.jobId !== t.jobId || grad.step !== t.step || grad.shard !== t.shard || grad.count !== t.count) {
        return reject('mismatch', `gradient blob is for ${grad.jobId} step ${grad.step} shard ${grad.shard} (${grad.count} samples)`);
      }
      if (grad.paramsVersion !== t.paramsVersion || grad.paramsToken !== e.token) {
        return reject('stale-version', `gradient computed with parameter version ${grad.paramsVersion} (publication ${grad.paramsToken}), the task needs ${t.paramsVersion} (${e.token})`);
      }
      for (const [name, values] of [['gradient', grad.gradient], ['buffers', grad.buffers]] as const) {
        if (!values) continue;
        const scanned = scanFinite(values);
        if ('index' in scanned) return reject('non-finite', `${name}[${scanned.index}] is ${scanned.value}`);
        // Handed to the engine, whose checks then need no second pass over the gradient.
        if (name === 'gradient') gradientSumSquares = scanned.squares;
      }
      gradient = grad.gradient;
      buffers = grad.buffers;
    }
    if (this.pending.get(e.bullId) !== e) return;
    this.pending.delete(e.bullId);
    this.remember(e.bullId);
    this.stats.accepted++;
    e.resolve({
      kind: t.kind,
      jobId: t.jobId,
      step: t.step,
      shard: t.shard,
      paramsVersion: ret.paramsVersion,
      count: ret.count,
      lossSum: ret.lossSum,
      correct: ret.correct,
      ...(ret.stats === undefined ? {} : { stats: ret.stats }),
      gradient,
      ...(gradientSumSquares === undefined ? {} : { gradientSumSquares }),
      buffers,
      computeMs: ret.computeMs,
      queueMs: ret.queueMs,
      workerId: ret.workerId,
      timing: ret.timing && { ...ret.timing, enqueuedAt: e.enqueuedAt },
    });
  }

  /** The gradient blob of a pending shard, or undefined after rejecting it. */
  private async readGradient(e: Pending): Promise<Awaited<ReturnType<BlobStore['getGradient']>>> {
    const t = e.task;
    try {
      const grad = await this.store.getGradient(t.jobId, t.step, t.shard, { gradientLength: e.job.gradientLength, bufferLength: e.job.bufferLength });
      if (!grad) await this.reject(e, 'missing-gradient', `gradient blob ${this.keys.grad(t.jobId, t.step, t.shard)} is not in Redis`);
      return grad;
    } catch (err) {
      if (!(err instanceof MessageError)) throw err;
      const lengthError = (err.field === 'Gradient.gradient' || err.field === 'Gradient.buffers') && /^.*: expected \d+ values, got \d+$/.test(err.message);
      await this.reject(e, lengthError ? 'wrong-length' : 'malformed', err.message);
      return undefined;
    }
  }

  /** A shard job failed: publish again what it missed, or recompute, or give up on permanent errors. */
  private async onFailed(e: Pending, reason: string): Promise<void> {
    const t = e.task;
    if (/^(MessageError|JobSpecError)\b|^\w+ in thread /.test(reason)) {
      throw new ShardResultError(`job ${t.jobId} ${t.kind} step ${t.step} shard ${t.shard}: shard job failed for good: ${reason}`, 'failed');
    }
    if (STALLED_TOO_OFTEN.test(reason)) {
      // Poison: the shard took down (or froze) every worker that picked it up, maxStalledCount + 1
      // times in a row. Recomputing would only crash more workers: the step fails here.
      this.log({ level: 'error', event: 'rejected', jobId: t.jobId, kind: t.kind, step: t.step, shard: t.shard, reason: 'job-failed', message: `shard job ${e.bullId}: ${reason}; giving up on it` });
      throw new ShardResultError(
        `job ${t.jobId} ${t.kind} step ${t.step} shard ${t.shard}: the shard crashed or froze every worker that took it (BullMQ: ${reason}); a poison shard`,
        'poison',
      );
    }
    if (reason.startsWith('StaleJobError')) return this.reject(e, 'stale-version', reason);
    if (reason.startsWith('MissingBlobError')) {
      // Expired while nobody refreshed it (coordinator away): publish the context, version and input again.
      const pub = this.published.get(t.jobId);
      if (!pub) throw new ShardResultError(`job ${t.jobId}: shard job failed (${reason}) and the job is no longer published`);
      this.log({ level: 'warn', event: 'republish', jobId: t.jobId, kind: t.kind, step: t.step, shard: t.shard, message: `shard job ${e.bullId} missed a blob; publishing again: ${reason}` });
      await this.retry(() => this.store.putContext(pub.context));
      await this.retry(() => this.store.putParams(t.jobId, pub.version, pub.token, pub.state, pub.unwritten?.unlink));
      pub.unwritten = undefined;
      await this.retry(() => this.writeInputs([t]));
    }
    return this.reject(e, 'job-failed', reason);
  }

  private async reject(e: Pending, reason: RejectReason, detail: string): Promise<void> {
    const t = e.task;
    this.stats.rejected[reason]++;
    this.log({ level: 'warn', event: 'rejected', jobId: t.jobId, kind: t.kind, step: t.step, shard: t.shard, reason, message: `shard job ${e.bullId} rejected (${reason}): ${detail}` });
    return this.recompute(e, reason, detail);
  }

  /** Removes the shard job and its gradient, and enqueues it again under the same id. */
  private async recompute(e: Pending, reason: RejectReason, detail: string): Promise<void> {
    const t = e.task;
    if (e.recomputes >= this.maxRecomputes) {
      throw new ShardResultError(`job ${t.jobId} ${t.kind} step ${t.step} shard ${t.shard}: no acceptable result after ${e.recomputes + 1} runs; last (${reason}): ${detail}`, reason);
    }
    e.recomputes++;
    this.stats.recomputes++;
    this.log({ level: 'info', event: 'recompute', jobId: t.jobId, kind: t.kind, step: t.step, shard: t.shard, reason, message: `shard job ${e.bullId}: recompute ${e.recomputes}/${this.maxRecomputes}` });
    if ((await this.retry(() => this.queue.remove(e.bullId))) === 0 && (await this.retry(() => this.queue.getJobState(e.bullId))) !== 'unknown') {
      // Locked by a worker: it is running again already; its completion will be judged.
      return;
    }
    if (t.kind === 'train') await this.retry(() => this.store.delete([this.keys.grad(t.jobId, t.step, t.shard)]));
    await this.retry(() => this.queue.add(t.kind, shardJobData(t, e.token, Date.now(), e.shards), { ...this.jobOptions, jobId: e.bullId }));
  }

  // -- blobs --------------------------------------------------------------------------------------

  /** Writes the tasks' inputs, and `pub`'s parameter version if it is not in Redis yet, in one round trip. */
  private async writeInputs(tasks: readonly ShardTask[], pub?: PublishedJob): Promise<void> {
    const inputs = tasks.map((t) => ({ jobId: t.jobId, kind: t.kind, step: t.step, shard: t.shard, count: t.count, images: t.images, labels: t.labels, ...(t.targets ? { targets: t.targets } : {}) }));
    const unwritten = pub?.unwritten;
    const params = unwritten && { jobId: pub.context.jobId, version: pub.version, token: pub.token, state: pub.state, unlink: unwritten.unlink };
    await this.store.putInputs(inputs, params);
    if (pub && pub.unwritten === unwritten) pub.unwritten = undefined;
  }

  /**
   * `writeInputs` for a runShards: inputs staged by `prepareShards` are waited for instead of sent
   * again (those whose staging failed are sent now, with the parameter version).
   */
  private async writeStagedInputs(tasks: readonly ShardTask[], pub: PublishedJob): Promise<void> {
    const staged = tasks.map((t) => {
      const key = this.inputKey(t);
      const entry = this.staged.get(key);
      this.staged.delete(key);
      return entry?.written ?? Promise.resolve(false);
    });
    const done = await Promise.all(staged);
    await this.writeInputs(tasks.filter((_, i) => !done[i]), pub);
  }

  private inputKey(t: ShardTask): string {
    return this.keys.input(t.jobId, t.kind, t.step, t.shard);
  }

  /** After a runShards: shard jobs and their blobs are no longer needed. */
  private async cleanUp(tasks: readonly ShardTask[]): Promise<void> {
    const keys: string[] = [];
    for (const t of tasks) {
      keys.push(this.keys.input(t.jobId, t.kind, t.step, t.shard));
      if (t.kind === 'train') keys.push(this.keys.grad(t.jobId, t.step, t.shard));
    }
    // Accepted shards' jobs remove themselves on completion. The others (a step that failed or was
    // aborted): an active job cannot be removed (returns 0); the queue's age limit removes it later.
    const unfinished = tasks.map((t) => shardJobId(t.jobId, t.kind, t.step, t.shard)).filter((id) => !this.accepted.has(id));
    if (unfinished.length > 0) await this.retry(() => Promise.all(unfinished.map((id) => this.queue.remove(id))));
    await this.retry(() => this.store.delete(keys));
  }

  /** Refreshes the expiry of everything a running job still needs. */
  private keepAlive(): void {
    const keys: string[] = [];
    for (const [jobId, pub] of this.published) keys.push(this.keys.context(jobId), this.keys.params(jobId, pub.version));
    for (const e of this.pending.values()) keys.push(this.keys.input(e.task.jobId, e.task.kind, e.task.step, e.task.shard));
    this.track(this.store.refresh(keys));
  }

  /** Runs an idempotent Redis operation until it goes through a reconnect. */
  private retry<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return retryTransient(fn, {
      signal,
      onRetry: (err, attempt) => {
        if (attempt === 1) this.log({ level: 'warn', event: 'error', message: `Redis operation interrupted (${err.message}); retrying` });
      },
    });
  }

  private track(p: Promise<unknown>): void {
    const tracked = p.catch((err: Error) => this.log({ level: 'warn', event: 'error', message: `background Redis work failed: ${err.message}` }));
    this.background.add(tracked);
    void tracked.finally(() => this.background.delete(tracked));
  }

  private remember(bullId: string): void {
    this.accepted.add(bullId);
    if (this.accepted.size > ACCEPTED_MEMORY) this.accepted.delete(this.accepted.values().next().value!);
  }
}

function shardJobData(t: ShardTask, paramsToken: string, enqueuedAt: number, shards: number): ShardJobData {
  return { jobId: t.jobId, kind: t.kind, step: t.step, shard: t.shard, paramsVersion: t.paramsVersion, paramsToken, count: t.count, enqueuedAt, shards };
}

/** Σ v² of `a` (float64, the engine's `sumOfSquares`) when every value is finite, else the first NaN or ±Infinity. */
function scanFinite(a: Float32Array): { squares: number } | { index: number; value: number } {
  // Σ v² (one pass) is finite exactly when every value is: the element-wise scan only runs to name
  // the culprit.
  const squares = sumOfSquares(a);
  if (Number.isFinite(squares)) return { squares };
  for (let i = 0; i < a.length; i++) {
    const v = a[i];
    // v - v is 0 for finite v, NaN for NaN and ±Infinity: one test per element.
    if (v - v !== 0) return { index: i, value: v };
  }
  // Not reached: a non-finite sum has a non-finite term.
  return { index: -1, value: squares };
}

function defaultLog(entry: ExecutorLogEntry): void {
  if (entry.level !== 'info') console.warn(`stride executor: ${entry.message}`);
}


// The coordinator: takes training jobs from the jobs queue and runs them with the engine's trainer
// over the BullMQ executor; keeps each job's record, checkpoints and metrics under the data dir.
//
// Survival: a job being run is an active BullMQ job in the jobs queue, its lock renewed by this
// process. If the process dies, the lock expires, BullMQ's stalled-job check moves the job back to
// wait, and the next coordinator (the same one restarted) takes it and the trainer resumes from the
// latest checkpoint. A Redis lease per job makes sure that, even if a lock is lost by mistake, two
// runners never train the same job at once; its fencing token (lease.ts) guards every parameter
// publication, checkpoint, result and job-record write, so a runner that froze past its lease and
// woke up after another took over writes nothing. On start the coordinator also enqueues again
// every job its records say is queued or running, in case Redis lost them.
//
// A pause or cancel request stays in Redis (the job's control key) until the job's record says
// paused or cancelled: a run that stops for it but cannot write that down — its lease lapsed or was
// taken over during the final checkpoint — hands the job back with the request still there, and the
// next runner (or the one holding the job) applies it. A user's cancel is never undone by a lease race.
//
// A run that cannot go on by itself — a poison shard (it crashed every worker that took it),
// shards that never gave a usable result, a diverging loss — is paused with the reason in its
// record (`state.reason`), not failed and not retried forever; `resume` continues it from its
// latest checkpoint once the cause is fixed.
//
// The HTTP API calls the methods of this class: submit, list, get, cancel, pause, resume, metrics,
// checkpoints, workers, queueCounts; and listens to its typed events.
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { DelayedError, Queue, UnrecoverableError, WaitingError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  isNamedError,
  jobPaths,
  MetricsLog,
  normalizeJobSpec,
  train,
  TypedEmitter,
  type EvalMetrics,
  type JobSpec,
  type JobSpecInput,
  type JobState,
  type MetricsRecord,
  type StepMetrics,
  type TrainResult,
} from '@stride/engine';
import {
  bullConnection,
  BullmqExecutor,
  checkJobId,
  createRedis,
  JOB_WORKER_LOCKS,
  workerTuning,
  JOBS_QUEUE,
  evalProgress,
  Keys,
  listWorkers,
  newJobId,
  parseTrainJobData,
  PAUSED_DELAY_MS,
  retryTransient,
  SHARDS_QUEUE,
  TRAIN_JOB_DEFAULTS,
  type BullmqExecutorOptions,
  type JobOutcome,
  type JobProgress,
  type LockTuning,
  type TrainJobData,
  type TransportConfig,
  type WorkerInfo,
  withDefaults,
} from '@stride/queue';
import { deleteIfEquals, JobLease } from './lease.ts';
import { addShardsToTally, readAllRecords, readRecord, recordFile, TERMINAL, writeRecord, type JobRecord } from './records.ts';

/** Options of a Coordinator. */
export interface CoordinatorOptions {
  /** Redis URL and key prefix. */
  config: TransportConfig;
  /** Root of job directories, checkpoints and metrics. Default: `STRIDE_DATA_DIR`, else `./data`. */
  dataDir?: string;
  /** Training jobs run at once. Default 2. */
  concurrency?: number;
  /** Take and run jobs. false: only submit, inspect and control (e.g. an API-only process). Default true. */
  runJobs?: boolean;
  /** Lock and stall settings of the jobs queue. Default: `JOB_WORKER_LOCKS` (10 s lock, 5 s stalled check). */
  locks?: Partial<LockTuning>;
  /** Expiry of a job's runner lease (ms); renewed every second. Default 10 000. */
  leaseMs?: number;
  /** Options of the BullMQ executor (config and logging are filled in). */
  executor?: Omit<BullmqExecutorOptions, 'config'>;
  /** How often worker heartbeats are read and emitted as a `workers` event (ms). Default 2000. */
  workersPollMs?: number;
  /** Least time between two progress reports of a job to Redis (ms). Default 500. */
  progressMs?: number;
  /**
   * Least time between two `job` events that re-emit a running job's record as its workers tally
   * grows (ms). Default 1000. State changes are emitted at once regardless.
   */
  liveRecordMs?: number;
  /** Identifies this coordinator in leases and logs. Default: `${host}:${pid}`. */
  id?: string;
}

/** A step's metrics, as emitted. */
export type StepEvent = StepMetrics & { readonly jobId: string; readonly totalSteps: number; readonly etaMs?: number };

/** What the coordinator tells the API and the dashboard. */
export interface CoordinatorListener {
  /** A job changed state (or was submitted); a running job's record also every `liveRecordMs` as its workers tally grows. */
  job(record: JobRecord): void;
  step(e: StepEvent): void;
  eval(e: EvalMetrics & { readonly jobId: string }): void;
  checkpoint(e: { readonly jobId: string; readonly step: number; readonly file: string }): void;
  /** Live workers, every `workersPollMs`. */
  workers(workers: WorkerInfo[]): void;
  log(e: { readonly jobId?: string; readonly level: 'info' | 'warn' | 'error'; readonly message: string }): void;
}

/** A control request did not fit the job's state (e.g. resume of a running job). */
export class JobStateError extends Error {
  override readonly name = 'JobStateError';
  constructor(
    readonly jobId: string,
    readonly status: string,
    message: string,
  ) {
    super(message);
  }
}

/** A job id nobody knows. */
export class JobNotFoundError extends Error {
  override readonly name = 'JobNotFoundError';
  constructor(readonly jobId: string) {
    super(`job ${jobId} not found`);
  }
}

/** A checkpoint file of a job. */
export interface CheckpointInfo {
  readonly step: number;
  readonly file: string;
  readonly bytes: number;
  readonly createdAt: string;
}

type StopReason = 'pause' | 'cancel' | 'shutdown' | 'lease-lost';

interface Running {
  readonly id: string;
  readonly lease: JobLease;
  readonly abort: AbortController;
  record: JobRecord;
  reason?: StopReason;
}

const CHECKPOINT_RE = /^step-(\d{8,})\.ckpt$/;
const CONTROL_TTL_MS = 24 * 3600 * 1000;

export class Coordinator extends TypedEmitter<CoordinatorListener> {
  readonly id: string;
  readonly dataDir: string;
  readonly keys: Keys;
  private readonly config: TransportConfig;
  private readonly opts: Required<Pick<CoordinatorOptions, 'concurrency' | 'runJobs' | 'leaseMs' | 'workersPollMs' | 'progressMs' | 'liveRecordMs'>> & { locks: LockTuning };
  private readonly redis: Redis;
  private readonly jobsQueue: Queue;
  private readonly shardsQueue: Queue;
  private readonly executorOptions: Omit<BullmqExecutorOptions, 'config'>;
  private executor?: BullmqExecutor;
  private worker?: Worker;
  private readonly running = new Map<string, Running>();
  /** Writes of job.json in flight, per job, chained so that they land in the order they were made. */
  private readonly writes = new Map<string, Promise<void>>();
  /** Worker id → host, from the latest heartbeats read. */
  private hosts = new Map<string, string>();
  private workersTimer?: NodeJS.Timeout;
  private started?: Promise<void>;
  private closing?: Promise<void>;
  private markClosed!: () => void;
  /** Resolves when `close()` has finished. */
  readonly closed = new Promise<void>((resolve) => (this.markClosed = resolve));

  constructor(options: CoordinatorOptions) {
    super();
    const opts = withDefaults({ dataDir: process.env.STRIDE_DATA_DIR ?? './data', concurrency: 2, runJobs: true, leaseMs: 10_000, workersPollMs: 2000, progressMs: 500, liveRecordMs: 1000 }, options);
    for (const [name, min] of [['concurrency', 1], ['leaseMs', 1000], ['workersPollMs', 50], ['progressMs', 0], ['liveRecordMs', 0]] as const) {
      if (!Number.isInteger(opts[name]) || opts[name] < min) throw new RangeError(`Coordinator: ${name} must be an integer >= ${min}, got ${opts[name]}`);
    }
    this.opts = { ...opts, locks: withDefaults(JOB_WORKER_LOCKS, options.locks ?? {}) };
    this.id = opts.id ?? `${hostname()}:${process.pid}`;
    this.dataDir = opts.dataDir;
    this.config = opts.config;
    this.keys = new Keys(opts.config.prefix);
    this.executorOptions = opts.executor ?? {};
    this.redis = createRedis(opts.config, `stride-coordinator-${this.id}`);
    this.redis.on('error', () => {
      // ioredis reconnects by itself; commands wait for it.
    });
    const connection = bullConnection(opts.config);
    this.jobsQueue = new Queue(JOBS_QUEUE, { connection, prefix: opts.config.prefix });
    this.shardsQueue = new Queue(SHARDS_QUEUE, { connection, prefix: opts.config.prefix });
    for (const q of [this.jobsQueue, this.shardsQueue]) q.on('error', (err) => this.log('warn', `queue ${q.name}: ${err.message}`));
  }

  /**
   * Enqueues again the jobs the records say are queued or running (Redis may have lost them),
   * then starts taking jobs. Idempotent.
   */
  start(): Promise<void> {
    this.started ??= (async () => {
      await this.jobsQueue.waitUntilReady();
      if (!this.opts.runJobs) return;
      await this.recover();
      this.executor = new BullmqExecutor({
        config: this.config,
        onLog: (e) => this.emit('log', { jobId: e.jobId, level: e.level, message: e.message }),
        ...this.executorOptions,
      });
      this.worker = new Worker(JOBS_QUEUE, (job, token) => this.runJob(job, token), {
        connection: bullConnection(this.config),
        prefix: this.config.prefix,
        name: `coordinator-${this.id}`,
        concurrency: this.opts.concurrency,
        ...workerTuning(this.opts.locks),
      });
      this.worker.on('error', (err) => this.log('warn', `jobs worker: ${err.message}`));
      this.worker.on('stalled', (jobId) => this.log('warn', `job ${jobId} stalled (its coordinator died or froze); it goes back to the queue`, jobId));
      this.worker.on('lockRenewalFailed', (ids: string[]) => {
        for (const id of ids) this.stop(id, 'lease-lost');
      });
      await this.worker.waitUntilReady();
      this.workersTimer = setInterval(() => void this.pollWorkers(), this.opts.workersPollMs);
      this.workersTimer.unref();
    })();
    return this.started;
  }

  // -- API ----------------------------------------------------------------------------------------

  /** Validates the spec (throws `JobSpecError` naming the field), records the job and enqueues it. */
  async submit(spec: JobSpecInput | JobSpec, options: { jobId?: string } = {}): Promise<string> {
    const normalized = normalizeJobSpec(spec);
    const id = checkJobId(options.jobId ?? newJobId());
    if (await readRecord(this.dataDir, id)) throw new JobStateError(id, 'exists', `job ${id} already exists`);
    const now = new Date().toISOString();
    const record: JobRecord = { id, name: normalized.name, spec: normalized, state: { status: 'queued' }, submittedAt: now, updatedAt: now, runs: 0 };
    await this.persist(record);
    try {
      await this.enqueue({ jobId: id, spec: normalized, submittedAt: Date.parse(now) });
    } catch (err) {
      // Redis refused it (down, or full: maxmemory): nothing half-submitted stays behind.
      await rm(recordFile(this.dataDir, id), { force: true }).catch(() => undefined);
      throw err;
    }
    this.emit('job', record);
    return id;
  }

  /** Every job: the records on disk and the jobs still only in the queue (submitted elsewhere), newest first. */
  async list(): Promise<JobRecord[]> {
    const records = await readAllRecords(this.dataDir);
    const known = new Set(records.map((r) => r.id));
    for (const job of await this.jobsQueue.getJobs(['waiting', 'delayed', 'active', 'prioritized'])) {
      if (!job?.id || known.has(job.id)) continue;
      const rec = this.recordFromQueue(job);
      if (rec) records.push(rec);
    }
    return records.map((r) => this.live(r)).sort((a, b) => (a.submittedAt < b.submittedAt ? 1 : a.submittedAt > b.submittedAt ? -1 : 0));
  }

  /** One job, or undefined. */
  async get(id: string): Promise<JobRecord | undefined> {
    const running = this.running.get(id);
    if (running) return this.live(running.record);
    const record = await readRecord(this.dataDir, id);
    if (record) return record;
    const job = await this.jobsQueue.getJob(id);
    return job ? this.recordFromQueue(job) : undefined;
  }

  /** Cancels a queued, paused or running job (a running one stops at the next step boundary, after a checkpoint). */
  async cancel(id: string): Promise<JobRecord> {
    const record = await this.require(id);
    if (TERMINAL.has(record.state.status)) throw new JobStateError(id, record.state.status, `job ${id} is ${record.state.status}; only a queued, paused or running job can be cancelled`);
    if (record.state.status !== 'running' && (await this.jobsQueue.remove(id)) === 1) {
      return this.setRecord(record, { state: { status: 'cancelled', step: stepOf(record.state), totalSteps: totalOf(record) }, finishedAt: new Date().toISOString() });
    }
    await this.control(id, 'cancel');
    return record;
  }

  /** Pauses a queued or running job (a running one stops at the next step boundary, after a checkpoint). */
  async pause(id: string): Promise<JobRecord> {
    const record = await this.require(id);
    if (record.state.status !== 'queued' && record.state.status !== 'running') {
      throw new JobStateError(id, record.state.status, `job ${id} is ${record.state.status}; only a queued or running job can be paused`);
    }
    if ((await this.redis.get(this.keys.control(id))) === 'cancel') throw new JobStateError(id, record.state.status, `job ${id} is being cancelled; it cannot be paused`);
    if (record.state.status === 'queued') {
      const job = await this.jobsQueue.getJob(id);
      if (job && (await this.jobsQueue.remove(id)) === 1) {
        const updated = await this.setRecord(record, { state: { status: 'paused', step: 0, totalSteps: totalOf(record) } });
        await this.enqueue(job.data as TrainJobData, PAUSED_DELAY_MS);
        return updated;
      }
    }
    await this.control(id, 'pause');
    return record;
  }

  /** Puts a paused job back in the queue; it resumes from its latest checkpoint. */
  async resume(id: string): Promise<JobRecord> {
    const record = await this.require(id);
    if (record.state.status !== 'paused') throw new JobStateError(id, record.state.status, `job ${id} is ${record.state.status}; only a paused job can be resumed`);
    // A stale pause request goes; a cancel not yet applied stays, and the next run applies it.
    await deleteIfEquals(this.redis, this.keys.control(id), 'pause');
    const updated = await this.setRecord(record, { state: { status: 'queued' } });
    const job = await this.jobsQueue.getJob(id);
    const state = job ? await job.getState() : 'unknown';
    if (job && state === 'delayed') await job.promote();
    else if (state !== 'waiting' && state !== 'active' && state !== 'prioritized') {
      if (job) await this.jobsQueue.remove(id);
      await this.enqueue({ jobId: id, spec: record.spec, submittedAt: Date.parse(record.submittedAt) });
    }
    return updated;
  }

  /** The job's metrics.jsonl records (steps and evaluations), oldest first; a line that is not one is skipped with a warning. */
  async metrics(id: string): Promise<MetricsRecord[]> {
    try {
      return await MetricsLog.read(jobPaths(this.dataDir, id).metrics, { onInvalidLine: (e) => this.log('warn', `job ${id}: metrics.jsonl line ${e.line} skipped: ${e.reason}`, id) });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  /** The job's checkpoint files, oldest first (read-only: does not touch a checkpoint being written). */
  async checkpoints(id: string): Promise<CheckpointInfo[]> {
    checkJobId(id);
    const dir = jobPaths(this.dataDir, id).checkpoints;
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: CheckpointInfo[] = [];
    for (const name of names) {
      const m = CHECKPOINT_RE.exec(name);
      if (!m) continue;
      const file = join(dir, name);
      const st = await stat(file).catch(() => undefined);
      if (st) out.push({ step: Number(m[1]), file, bytes: st.size, createdAt: st.mtime.toISOString() });
    }
    return out.sort((a, b) => a.step - b.step);
  }

  /** Live workers (from their heartbeats). */
  workers(): Promise<WorkerInfo[]> {
    return listWorkers(this.redis, this.keys);
  }

  /** Job counts of both queues. */
  async queueCounts(): Promise<{ jobs: Record<string, number>; shards: Record<string, number> }> {
    const types = ['waiting', 'active', 'delayed', 'completed', 'failed', 'prioritized'] as const;
    const [jobs, shards] = await Promise.all([this.jobsQueue.getJobCounts(...types), this.shardsQueue.getJobCounts(...types)]);
    return { jobs, shards };
  }

  /** Stats of the executor (accepted, rejected by reason, duplicates, recomputes). */
  executorStats(): BullmqExecutor['stats'] | undefined {
    return this.executor?.stats;
  }

  /**
   * Stops taking jobs; running jobs stop at their next step boundary, write a checkpoint and go back
   * to the queue, where the next coordinator resumes them. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.workersTimer);
      for (const id of this.running.keys()) this.stop(id, 'shutdown');
      const steps: (() => Promise<unknown>)[] = [() => this.started ?? Promise.resolve(), () => this.worker?.close() ?? Promise.resolve(), () => this.executor?.close() ?? Promise.resolve()];
      steps.push(() => this.jobsQueue.close(), () => this.shardsQueue.close(), () => this.redis.quit());
      for (const step of steps) {
        try {
          await step();
        } catch (err) {
          this.log('warn', `while closing: ${(err as Error).message}`);
        }
      }
      this.markClosed();
    })();
    return this.closing;
  }

  // -- running a job --------------------------------------------------------------------------

  /** The jobs-queue processor: runs (or resumes) one training job to its end, pause or cancellation. */
  private async runJob(bullJob: Job, token?: string): Promise<JobOutcome> {
    let data: TrainJobData;
    try {
      data = parseTrainJobData(bullJob.data);
    } catch (err) {
      this.log('error', `jobs-queue job ${bullJob.id} has invalid data: ${(err as Error).message}`);
      throw new UnrecoverableError((err as Error).message);
    }
    const id = data.jobId;
    const lease = new JobLease(this.redis, this.keys.lease(id), this.opts.leaseMs, this.id, jobPaths(this.dataDir, id).dir);
    while (!(await retryTransient(() => lease.tryAcquire()))) {
      // Another runner holds it (a lost lock re-delivered the job): wait for it to finish or die.
      if (this.closing) throw await this.handBack(bullJob, token);
      await sleep(500);
    }
    try {
      let record = (await readRecord(this.dataDir, id)) ?? this.newRecord(data);
      if (TERMINAL.has(record.state.status)) {
        // Finished by an earlier run whose completion never reached the queue.
        if (record.state.status === 'failed') throw new UnrecoverableError(record.state.error);
        return record.result ?? this.emptyResult(record);
      }
      const control = await retryTransient(() => this.redis.get(this.keys.control(id)));
      if (control === 'cancel' || control === 'pause') return await this.finishStopped(bullJob, token, record, control, record.result);
      record = await this.setRecord(record, {
        state: { status: 'running', step: stepOf(record.state), totalSteps: totalOf(record) },
        runs: record.runs + 1,
        startedAt: record.startedAt ?? new Date().toISOString(),
      });
      return await this.train(bullJob, token, lease, record);
    } finally {
      await lease.release().catch(() => undefined);
    }
  }

  private async train(bullJob: Job, token: string | undefined, lease: JobLease, record: JobRecord): Promise<JobOutcome> {
    const id = record.id;
    const run: Running = { id, lease, abort: new AbortController(), record };
    this.running.set(id, run);
    const watch = setInterval(() => void this.watch(run, lease), 1000);
    const runStart = performance.now();
    let startStep = -1;
    let lastProgress = 0;
    let lastLiveRecord = -Infinity;
    void this.pollWorkers(); // the hosts of the workers about to serve it
    const report = (progress: JobProgress, force = false): void => {
      run.record = { ...run.record, progress };
      const now = performance.now();
      if (!force && now - lastProgress < this.opts.progressMs) return;
      lastProgress = now;
      bullJob.updateProgress(progress).catch(() => undefined);
    };
    try {
      const result = await train(record.spec, {
        executor: this.executor!,
        dataDir: this.dataDir,
        jobId: id,
        signal: run.abort.signal,
        // Fencing: every publication, checkpoint and the result are written only while this runner holds the lease.
        guard: () => retryTransient(() => lease.check('parameter or checkpoint write')),
        on: {
          step: (e) => {
            if (startStep < 0) startStep = e.step;
            // The live record follows every step (job.json only changes with the state).
            run.record = { ...run.record, state: { status: 'running', step: e.step + 1, totalSteps: e.totalSteps } };
            const doneThisRun = e.step + 1 - startStep;
            const etaMs = ((performance.now() - runStart) / doneThisRun) * (e.totalSteps - e.step - 1);
            const prev = run.record.progress;
            report({
              status: 'running',
              step: e.step + 1,
              totalSteps: e.totalSteps,
              epoch: e.epoch,
              epochProgress: e.epochProgress,
              loss: e.loss,
              accuracy: e.accuracy,
              imagesPerSec: e.imagesPerSec,
              etaMs,
              ...evalProgress(prev),
            });
            this.emit('step', { ...e, etaMs });
          },
          eval: (e) => {
            const prev = run.record.progress ?? { status: 'running' as const, step: e.step, totalSteps: totalOf(record) };
            report({ ...prev, ...evalProgress(e) }, true);
            this.emit('eval', e);
          },
          shards: (e) => {
            run.record = { ...run.record, workers: addShardsToTally(run.record.workers, e, (w) => this.hosts.get(w), new Date().toISOString()) };
            const now = performance.now();
            if (now - lastLiveRecord < this.opts.liveRecordMs) return;
            lastLiveRecord = now;
            this.emit('job', run.record);
          },
          checkpoint: (e) => {
            // The tally on disk follows the checkpoints: a resumed run recomputes (and counts again)
            // only the steps after the checkpoint it resumes from.
            // Fenced, in order: queued now, behind the writes already made, ahead of later ones.
            this.persist(run.record, () => lease.check('job record write')).catch((err: Error) => this.log('warn', `job ${id}: writing its record failed: ${err.message}`, id));
            this.emit('checkpoint', e);
          },
          log: (e) => this.emit('log', e),
        },
      });
      if (result.status === 'succeeded') {
        await this.setRecord(run.record, { state: { status: 'succeeded', result }, result, finishedAt: new Date().toISOString() });
        return result;
      }
      const reason = run.reason ?? 'cancel';
      if (reason === 'shutdown' || reason === 'lease-lost') throw await this.handBack(bullJob, token, run.record, result, lease);
      // Recorded only while the job is still ours; else (LeaseLostError, below) it is handed back
      // with the request still in Redis, for whoever runs the job next.
      await retryTransient(() => lease.check(`${reason} record write`));
      return await this.finishStopped(bullJob, token, run.record, reason, result);
    } catch (err) {
      if (err instanceof DelayedError || err instanceof WaitingError) throw err;
      if (run.reason === 'shutdown' || run.reason === 'lease-lost' || isNamedError(err, 'LeaseLostError')) throw await this.handBack(bullJob, token, run.record, undefined, lease);
      const message = (err as Error).message;
      if (isNamedError(err, 'ShardResultError') || isNamedError(err, 'DivergenceError')) {
        // A poison shard (it crashed every worker that took it), shards that never gave a usable
        // result, or a diverging run: retrying on its own would loop. Paused with the reason; the
        // user resumes it (from its latest checkpoint) once the cause is fixed.
        this.log('error', `job ${id} paused: ${message}`, id);
        return await this.finishStopped(bullJob, token, run.record, 'pause', undefined, message);
      }
      await this.setRecord(run.record, { state: { status: 'failed', step: run.record.progress?.step ?? stepOf(run.record.state), error: message }, finishedAt: new Date().toISOString() });
      throw new UnrecoverableError(message);
    } finally {
      clearInterval(watch);
      this.running.delete(id);
    }
  }

  /** Renews the lease and reads control requests; stops the run when either says so. */
  private async watch(run: Running, lease: JobLease): Promise<void> {
    try {
      if (!(await lease.renew())) {
        this.log('error', `job ${run.id}: lost its lease to another runner; stopping here`, run.id);
        this.stop(run.id, 'lease-lost');
        return;
      }
      // The request stays in Redis until finishStopped has recorded it.
      const control = await this.redis.get(this.keys.control(run.id));
      if (control === 'pause' || control === 'cancel') this.stop(run.id, control);
    } catch (err) {
      this.log('warn', `job ${run.id}: lease/control check failed: ${(err as Error).message}`, run.id);
    }
  }

  private stop(id: string, reason: StopReason): void {
    const run = this.running.get(id);
    if (!run) return;
    if (run.abort.signal.aborted) {
      // A cancel while a pause or a shutdown is under way wins: it stops at the same step boundary.
      if (reason === 'cancel' && (run.reason === 'pause' || run.reason === 'shutdown')) run.reason = 'cancel';
      return;
    }
    run.reason = reason;
    // The trainer pauses (checkpoint, status paused) on the reason 'pause', and stops as cancelled on any other.
    run.abort.abort(reason === 'pause' ? 'pause' : reason);
  }

  /**
   * Paused: parked in the jobs queue as a delayed job until resumed. Cancelled: completed. The
   * control request `how` is cleared once the record says so (a newer, different request stays).
   */
  private async finishStopped(bullJob: Job, token: string | undefined, record: JobRecord, how: 'pause' | 'cancel', result?: TrainResult, reason?: string): Promise<JobOutcome> {
    // A job handed back is `queued` on disk: its last checkpoint says where it stopped.
    const step = result?.steps ?? ('step' in record.state ? record.state.step : ((await this.checkpoints(record.id)).at(-1)?.step ?? 0));
    const clearRequest = (): Promise<boolean> => retryTransient(() => deleteIfEquals(this.redis, this.keys.control(record.id), how));
    if (how === 'pause') {
      const paused = await this.setRecord(record, { state: { status: 'paused', step, totalSteps: totalOf(record, result), ...(reason === undefined ? {} : { reason }) }, result: result ?? record.result });
      // A cancel that came in while the run was pausing (too late to change how it stopped).
      if (!(await clearRequest()) && (await retryTransient(() => this.redis.get(this.keys.control(record.id)))) === 'cancel') {
        return this.finishStopped(bullJob, token, paused, 'cancel', result);
      }
      await retryTransient(() => bullJob.moveToDelayed(Date.now() + PAUSED_DELAY_MS, token));
      throw new DelayedError();
    }
    // A cancel that overtook a pause: the trainer stopped as paused.
    const final = result && { ...result, status: 'cancelled' as const };
    const updated = await this.setRecord(record, { state: { status: 'cancelled', step, totalSteps: totalOf(record, result) }, result: final ?? record.result, finishedAt: new Date().toISOString() });
    await clearRequest();
    return final ?? this.emptyResult(updated);
  }

  /** Gives a job back to the queue (this coordinator is going away); the next one resumes it. Returns the error to throw. */
  private async handBack(bullJob: Job, token: string | undefined, record?: JobRecord, result?: TrainResult, lease?: JobLease): Promise<WaitingError> {
    if (lease && !(await lease.fenceIsOurs().catch(() => false))) {
      // Another runner took the job over (this one froze or was cut off): its record, checkpoints
      // and queue entry are that runner's now. Write nothing; tell BullMQ to leave the job alone.
      this.log('warn', `job ${bullJob.id}: another runner holds it now (fencing token ${lease.fence} is stale); stopped here without writing`, bullJob.id);
      return new WaitingError();
    }
    if (record) await this.setRecord(record, { state: { status: 'queued' }, result: result ?? record.result });
    await retryTransient(() => bullJob.moveToWait(token));
    this.log('info', `job ${bullJob.id} handed back to the queue`, bullJob.id);
    return new WaitingError();
  }

  // -- records and queue ----------------------------------------------------------------------

  /** Puts every job the records say is queued, running or paused back in the jobs queue if Redis lost it. */
  private async recover(): Promise<void> {
    for (const record of await readAllRecords(this.dataDir)) {
      if (TERMINAL.has(record.state.status)) continue;
      const state = await this.jobsQueue.getJobState(record.id);
      const paused = record.state.status === 'paused';
      if (state === 'completed' || state === 'failed') await this.jobsQueue.remove(record.id);
      else if (state !== 'unknown') continue;
      this.log('warn', `job ${record.id} is ${record.state.status} on disk but ${state} in the jobs queue; enqueueing it again`, record.id);
      await this.enqueue({ jobId: record.id, spec: record.spec, submittedAt: Date.parse(record.submittedAt) }, paused ? PAUSED_DELAY_MS : undefined);
    }
  }

  private async enqueue(data: TrainJobData, delayMs?: number): Promise<void> {
    await this.jobsQueue.add('train', data, { ...TRAIN_JOB_DEFAULTS, jobId: data.jobId, delay: delayMs });
  }

  /**
   * Leaves the request in Redis for whoever runs the job (finishStopped clears it once recorded),
   * and stops the job at once if it runs here. A pause never overwrites a cancel not yet applied.
   */
  private async control(id: string, what: 'pause' | 'cancel'): Promise<void> {
    if (what === 'pause') await this.redis.set(this.keys.control(id), what, 'PX', CONTROL_TTL_MS, 'NX');
    else await this.redis.set(this.keys.control(id), what, 'PX', CONTROL_TTL_MS);
    this.stop(id, what);
  }

  private async require(id: string): Promise<JobRecord> {
    const record = await this.get(id);
    if (!record) throw new JobNotFoundError(id);
    if (!(await readRecord(this.dataDir, id))) await this.persist(record);
    return record;
  }

  private async setRecord(record: JobRecord, changes: Partial<JobRecord>): Promise<JobRecord> {
    const updated: JobRecord = { ...record, ...changes, updatedAt: new Date().toISOString() };
    await this.persist(updated);
    const run = this.running.get(updated.id);
    if (run) run.record = updated;
    this.emit('job', updated);
    return updated;
  }

  /**
   * Writes job.json after the job's writes still in flight (so an older record never lands last);
   * `guard` (the lease's fencing check) runs right before the write, in the same order.
   */
  private persist(record: JobRecord, guard?: () => Promise<void>): Promise<void> {
    const write = (this.writes.get(record.id) ?? Promise.resolve()).then(async () => {
      await guard?.();
      await writeRecord(this.dataDir, record);
    });
    const settled = write.then(
      () => undefined,
      () => undefined,
    );
    this.writes.set(record.id, settled);
    void settled.then(() => {
      if (this.writes.get(record.id) === settled) this.writes.delete(record.id);
    });
    return write;
  }

  private newRecord(data: TrainJobData): JobRecord {
    const at = new Date(data.submittedAt).toISOString();
    return { id: data.jobId, name: data.spec.name, spec: data.spec, state: { status: 'queued' }, submittedAt: at, updatedAt: at, runs: 0 };
  }

  private recordFromQueue(job: Job): JobRecord | undefined {
    try {
      const rec = this.newRecord(parseTrainJobData(job.data));
      return job.delay >= PAUSED_DELAY_MS / 2 ? { ...rec, state: { status: 'paused', step: 0, totalSteps: 0 } } : rec;
    } catch {
      return undefined;
    }
  }

  /** A running job's record with its live progress. */
  private live(record: JobRecord): JobRecord {
    return this.running.get(record.id)?.record ?? record;
  }

  private emptyResult(record: JobRecord): TrainResult {
    return {
      jobId: record.id,
      status: record.state.status === 'cancelled' ? 'cancelled' : 'paused',
      paramsSha256: '',
      steps: stepOf(record.state),
      totalSteps: totalOf(record),
      epochs: 0,
      wallMs: 0,
      elapsedMs: 0,
      resumedFrom: 0,
    };
  }

  private async pollWorkers(): Promise<void> {
    try {
      const workers = await this.workers();
      this.hosts = new Map(workers.map((w) => [w.id, w.host]));
      this.emit('workers', workers);
    } catch (err) {
      this.log('warn', `reading worker heartbeats failed: ${(err as Error).message}`);
    }
  }

  private log(level: 'info' | 'warn' | 'error', message: string, jobId?: string): void {
    this.emit('log', { jobId, level, message });
  }
}

function stepOf(state: JobState): number {
  return 'step' in state ? state.step : state.status === 'succeeded' ? state.result.steps : 0;
}

function totalOf(record: JobRecord, result?: TrainResult): number {
  if (result) return result.totalSteps;
  const s = record.state;
  if ('totalSteps' in s) return s.totalSteps;
  return record.progress?.totalSteps ?? 0;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}


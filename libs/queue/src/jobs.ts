// The jobs queue: training jobs waiting for a coordinator, their progress and their outcome.
//
// Anyone with Redis access submits (the CLI, the HTTP API); coordinators take jobs from it. A job
// submitted while every coordinator is busy or down waits in the queue. The BullMQ job id is the
// training job id, so submitting the same id twice is a no-op and a coordinator restarting can
// enqueue the jobs it finds on disk again without duplicating them.
import { randomBytes } from 'node:crypto';
import { Queue, QueueEvents, type JobsOptions } from 'bullmq';
import { normalizeJobSpec, type JobSpec, type JobSpecInput, type TrainResult } from '@stride/engine';
import type { JobProgress } from '@stride/protocol';
import { Fields } from './codec.ts';
import { bullConnection, type TransportConfig } from './config.ts';
import { MessageError } from './errors.ts';
import { checkJobId, JOBS_QUEUE } from './keys.ts';

/** The data of a jobs-queue job. */
export interface TrainJobData {
  readonly jobId: string;
  /** Normalised (validated, fully defaulted) spec. */
  readonly spec: JobSpec;
  /** ms since epoch. */
  readonly submittedAt: number;
}

export type { JobProgress } from '@stride/protocol';

/** The evaluation fields of a `JobProgress`, taken from an evaluation (or a previous progress). */
export function evalProgress(e: Partial<Pick<JobProgress, 'task' | 'testLoss' | 'testAccuracy' | 'meanIoU' | 'locAccuracy' | 'mAP50' | 'mIoU' | 'pixelAccuracy'>> | undefined): Partial<JobProgress> {
  const out: Record<string, unknown> = {};
  if (!e) return out;
  for (const key of ['task', 'testLoss', 'testAccuracy', 'meanIoU', 'locAccuracy', 'mAP50', 'mIoU', 'pixelAccuracy'] as const) if (e[key] !== undefined) out[key] = e[key];
  return out;
}

/** The return value of a jobs-queue job: how the run ended (`failed` goes through BullMQ's failedReason). */
export type JobOutcome = TrainResult;

/**
 * Options of every jobs-queue job. One attempt: a training failure is final (its reason is in the
 * job record); coordinator crashes are stalls, not attempts. Finished jobs are kept a week so
 * `--follow` and listings find them.
 */
export const TRAIN_JOB_DEFAULTS: JobsOptions = {
  attempts: 1,
  removeOnComplete: { age: 7 * 24 * 3600 },
  removeOnFail: { age: 7 * 24 * 3600 },
};

/** Delay of a paused job in the jobs queue: "until resumed" (resume promotes it). */
export const PAUSED_DELAY_MS = 100 * 365 * 24 * 3600 * 1000;

/** A new job id: time-ordered, unique enough across submitters (`j-lz3k9q1a-5f0c2b7e`). */
export function newJobId(): string {
  return `j-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

/** Checks the data of a jobs-queue job; the spec is validated (and normalised) by the engine. */
export function parseTrainJobData(value: unknown): TrainJobData {
  const f = new Fields('TrainJobData', value);
  const jobId = f.jobId('jobId');
  const submittedAt = f.finite('submittedAt');
  let spec: JobSpec;
  try {
    spec = normalizeJobSpec(f.value('spec'));
  } catch (err) {
    throw new MessageError('TrainJobData.spec', (err as Error).message);
  }
  f.done();
  return { jobId, spec, submittedAt };
}

/** How a followed job ended. */
export type FollowOutcome = { readonly state: 'completed'; readonly result: JobOutcome } | { readonly state: 'failed'; readonly reason: string } | { readonly state: 'missing' };

/** Submits training jobs and follows them, through Redis only (no coordinator API needed). */
export class JobsClient {
  readonly queue: Queue;
  private events?: QueueEvents;
  private closing?: Promise<void>;

  constructor(readonly config: TransportConfig) {
    this.queue = new Queue(JOBS_QUEUE, { connection: bullConnection(config), prefix: config.prefix });
    this.queue.on('error', () => {
      // Reconnects by itself; calls wait.
    });
  }

  /**
   * Validates and normalises `spec` (throws `JobSpecError` naming the field) and enqueues it.
   * Refuses a job id the queue already holds (BullMQ would silently keep the old job).
   */
  async submit(spec: JobSpecInput | JobSpec, options: { jobId?: string; delayMs?: number } = {}): Promise<TrainJobData> {
    const data: TrainJobData = { jobId: checkJobId(options.jobId ?? newJobId()), spec: normalizeJobSpec(spec), submittedAt: Date.now() };
    if (options.jobId !== undefined && (await this.queue.getJobState(data.jobId)) !== 'unknown') throw new RangeError(`job ${data.jobId} already exists`);
    await this.queue.add('train', data, { ...TRAIN_JOB_DEFAULTS, jobId: data.jobId, delay: options.delayMs });
    return data;
  }

  /**
   * Calls `onProgress` with each progress report of the job until it completes or fails. Misses
   * nothing that matters: the job's state is checked after subscribing (it may have ended before)
   * and every `pollMs` (events lost over a Redis reconnect).
   */
  async follow(jobId: string, onProgress: (p: JobProgress) => void, options: { pollMs?: number; signal?: AbortSignal } = {}): Promise<FollowOutcome> {
    options.signal?.throwIfAborted();
    if (!this.events) {
      this.events = new QueueEvents(JOBS_QUEUE, { connection: bullConnection(this.config), prefix: this.config.prefix });
      // Once per client, not per follow: Redis hiccups are ridden out by the polls.
      this.events.on('error', () => undefined);
    }
    const events = this.events;
    await events.waitUntilReady();
    let lastProgress = '';
    const report = (p: unknown): void => {
      const text = JSON.stringify(p);
      if (text === lastProgress || typeof p !== 'object' || p === null) return;
      lastProgress = text;
      onProgress(p as JobProgress);
    };
    return new Promise<FollowOutcome>((resolve, reject) => {
      let done = false;
      const finish = (outcome: FollowOutcome | Error): void => {
        if (done) return;
        done = true;
        clearInterval(timer);
        events.off('progress', onEventProgress);
        events.off('completed', onEventEnd);
        events.off('failed', onEventEnd);
        options.signal?.removeEventListener('abort', onAbort);
        if (outcome instanceof Error) reject(outcome);
        else resolve(outcome);
      };
      const check = async (): Promise<void> => {
        try {
          const job = await this.queue.getJob(jobId);
          if (!job) return finish({ state: 'missing' });
          const state = await job.getState();
          // The job may have completed between getJob and getState: read its return value again then.
          if (state === 'completed') return finish({ state: 'completed', result: (job.returnvalue ?? (await this.queue.getJob(jobId))?.returnvalue) as JobOutcome });
          if (state === 'failed') return finish({ state: 'failed', reason: job.failedReason ?? '(no reason)' });
          report(job.progress);
        } catch (err) {
          // Redis away: the next poll tries again.
          void err;
        }
      };
      const onEventProgress = ({ jobId: id, data }: { jobId: string; data: unknown }): void => {
        if (id === jobId) report(data);
      };
      const onEventEnd = ({ jobId: id }: { jobId: string }): void => {
        if (id === jobId) void check();
      };
      const onAbort = (): void => finish(options.signal!.reason instanceof Error ? options.signal!.reason : new Error(String(options.signal!.reason)));
      events.on('progress', onEventProgress);
      events.on('completed', onEventEnd);
      events.on('failed', onEventEnd);
      options.signal?.addEventListener('abort', onAbort, { once: true });
      const timer = setInterval(() => void check(), options.pollMs ?? 2000);
      void check();
    });
  }

  /** Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const c of [this.events, this.queue]) {
        try {
          await c?.close();
        } catch {
          // Already gone.
        }
      }
    })();
    return this.closing;
  }
}

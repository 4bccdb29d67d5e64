// Client-side state shared by the views: the jobs and the workers, loaded once over HTTP and
// kept current by the live event stream. Every (re)connection of the stream refetches, since
// events sent while the browser was disconnected are not replayed.
import { FINAL_STATES, type MetricName } from '@stride/protocol';
import { ApiError, getJson } from './api.ts';
import { live } from './live.ts';
import type { EvalEvent, Job, StepEvent, Worker } from './types.ts';

const METRIC_NAMES: readonly MetricName[] = ['testAccuracy', 'meanIoU', 'locAccuracy', 'mAP50', 'mIoU', 'pixelAccuracy'];

type Listener = () => void;

/** Weight of the newest step in the smoothed throughput shown in lists. */
const EMA = 0.2;

class Emitter {
  private readonly listeners = new Set<Listener>();
  /** Calls `fn` on every change; returns the unsubscribe function. */
  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
  protected changed(): void {
    for (const fn of this.listeners) fn();
  }
}

export class JobsStore extends Emitter {
  readonly jobs = new Map<string, Job>();
  /** Smoothed images/s of running jobs, from their step events. */
  readonly imagesPerSec = new Map<string, number>();
  /** Set when the last load failed (the views show it). */
  error?: ApiError;
  loaded = false;
  private loading?: Promise<void>;

  /** Newest first. */
  list(): Job[] {
    return [...this.jobs.values()].sort((a, b) => b.submittedAt.localeCompare(a.submittedAt) || b.id.localeCompare(a.id));
  }

  refresh(): Promise<void> {
    this.loading ??= (async () => {
      try {
        const { jobs } = await getJson<{ jobs: Job[] }>('/api/jobs');
        // Merged, not swapped in: an event that arrived while the list was on its way (a job
        // cancelled meanwhile, say) is newer than the list's copy of that job.
        for (const j of jobs) this.put(j);
        this.error = undefined;
      } catch (err) {
        this.error = err as ApiError;
      } finally {
        this.loaded = true;
        this.loading = undefined;
        this.changed();
      }
    })();
    return this.loading;
  }

  /** Stores a job record (from an event, an action's answer or a single fetch). */
  upsert(job: Job): void {
    if (this.put(job)) this.changed();
  }

  /** Stores `job` unless the one held is newer; false when it kept the one held. */
  private put(job: Job): boolean {
    const old = this.jobs.get(job.id);
    // Responses and events can arrive out of order: an older record (say, the answer to a cancel
    // request that was sent before the job stopped, or a list fetched before it stopped) never
    // replaces a newer one, nor a final state.
    if (old && ((old.updatedAt ?? '') > (job.updatedAt ?? '') || (FINAL_STATES.has(old.state.status) && !FINAL_STATES.has(job.state.status)))) return false;
    // A record written before the latest step events must not move the progress back.
    const keep = old?.progress && job.progress && old.progress.step > job.progress.step && job.state.status === 'running';
    this.jobs.set(job.id, keep ? { ...job, progress: old.progress } : job);
    if (job.state.status !== 'running') this.imagesPerSec.delete(job.id);
    return true;
  }

  /** Applies a step event to the job's live progress, as the coordinator does to its record. */
  step(ev: StepEvent): void {
    const job = this.jobs.get(ev.jobId);
    if (!job) {
      void this.refresh(); // a job this page has not seen yet
      return;
    }
    if (job.progress && job.progress.step > ev.step + 1) return;
    const prev = this.imagesPerSec.get(ev.jobId);
    this.imagesPerSec.set(ev.jobId, prev === undefined ? ev.imagesPerSec : prev + EMA * (ev.imagesPerSec - prev));
    this.jobs.set(ev.jobId, {
      ...job,
      progress: {
        ...job.progress,
        status: 'running',
        step: ev.step + 1,
        totalSteps: ev.totalSteps,
        epoch: ev.epoch,
        epochProgress: ev.epochProgress,
        loss: ev.loss,
        accuracy: ev.accuracy,
        imagesPerSec: ev.imagesPerSec,
        etaMs: ev.etaMs,
      },
    });
    this.changed();
  }

  /** The last evaluation seen on the event stream, per job (its task metrics may be absent from the record's progress). */
  readonly lastEval = new Map<string, EvalEvent>();

  /** Applies an evaluation to the job's live progress: its loss and its task's metrics. */
  evaluated(ev: EvalEvent): void {
    const prev = this.lastEval.get(ev.jobId);
    if (!prev || prev.step <= ev.step) this.lastEval.set(ev.jobId, ev);
    const job = this.jobs.get(ev.jobId);
    if (!job?.progress) return;
    const metrics: Record<string, number> = { testLoss: ev.testLoss };
    for (const key of METRIC_NAMES) {
      const v = ev[key];
      if (typeof v === 'number') metrics[key] = v;
    }
    this.jobs.set(ev.jobId, { ...job, progress: { ...job.progress, ...metrics } });
    this.changed();
  }
}

export class WorkersStore extends Emitter {
  workers: Worker[] = [];
  queues: Record<string, Record<string, number>> = {};
  error?: ApiError;
  loaded = false;

  list(): Worker[] {
    return [...this.workers].sort((a, b) => Number(b.alive) - Number(a.alive) || a.id.localeCompare(b.id));
  }

  async refresh(): Promise<void> {
    try {
      const [{ workers }, { queues }] = await Promise.all([
        getJson<{ workers: Worker[] }>('/api/workers'),
        getJson<{ queues: Record<string, Record<string, number>> }>('/api/queues'),
      ]);
      this.workers = workers;
      this.queues = queues;
      this.error = undefined;
    } catch (err) {
      this.error = err as ApiError;
    } finally {
      this.loaded = true;
      this.changed();
    }
  }

  /** The live workers, as a `workers` event lists them. */
  replace(workers: Worker[]): void {
    this.workers = workers;
    this.changed();
  }
}

export const jobsStore = new JobsStore();
export const workersStore = new WorkersStore();

live.on('job', (job) => jobsStore.upsert(job));
live.on('step', (ev) => jobsStore.step(ev));
live.on('eval', (ev) => jobsStore.evaluated(ev));
live.on('workers', (list) => workersStore.replace(list));
live.onStatus((s) => {
  if (s !== 'open') return;
  if (jobsStore.loaded) void jobsStore.refresh();
  if (workersStore.loaded) void workersStore.refresh();
});

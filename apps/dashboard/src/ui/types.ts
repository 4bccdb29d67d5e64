// What the dashboard reads from the coordinator's API. The records themselves (job spec, metrics,
// checkpoint meta, job state, progress and record) are @stride/protocol's, the very types the
// engine, the queue and the coordinator write; below are the shapes only the HTTP API and its
// event stream have.
import type { EvalMetrics, JobRecord, JobSpec, StepMetrics, StoredBest, TaskName } from '@stride/protocol';

/** A training job: the coordinator's `JobRecord` (`GET /api/jobs/:id`, items of `GET /api/jobs`, `job` events). */
export interface Job extends JobRecord {
  /** The job's best evaluation, when the record carries it (also in `result.best`). */
  readonly best?: StoredBest;
}

/** `step` events: the step's metrics with the job id, the run length and the coordinator's ETA. */
export type StepEvent = StepMetrics & { readonly jobId: string; readonly totalSteps: number; readonly etaMs?: number };
export type EvalEvent = EvalMetrics & { readonly jobId: string };
export interface CheckpointEvent {
  readonly jobId: string;
  readonly step: number;
  /** File name, as in the checkpoint list. */
  readonly name: string;
}

/** A worker's heartbeat record (libs/queue `WorkerInfo` + `alive`; `GET /api/workers`, `workers` events). */
export interface Worker {
  readonly id: string;
  readonly alive: boolean;
  readonly host?: string;
  readonly pid?: number;
  readonly threads?: number;
  readonly shardsDone?: number;
  readonly shardsFailed?: number;
  /** Thread-milliseconds of compute since start. */
  readonly busyMs?: number;
  readonly active?: number;
  readonly state?: string;
  /** ms since epoch. */
  readonly startedAt?: number;
  readonly lastSeen?: number;
}

/** A checkpoint file of a job (`GET /api/jobs/:id/checkpoints`). */
export interface Checkpoint {
  /** File name, e.g. `step-00000100.ckpt`. */
  readonly name: string;
  readonly step: number;
  readonly bytes?: number;
  readonly createdAt?: string;
}

/** BullMQ counts of one queue. */
export type QueueCounts = Readonly<Record<string, number>>;

/** `GET /api/config`: what the submit form offers, and the defaults of a blank form. */
export interface ApiConfig {
  /** Names, or `{ name, task?, input?, numClasses? }` (libs/engine's dataset table). */
  readonly datasets: readonly (string | { readonly name: string; readonly task?: TaskName; readonly input?: readonly number[]; readonly numClasses?: number })[];
  readonly optimizers: readonly string[];
  readonly models: readonly string[];
  readonly defaults?: Partial<JobSpec>;
}

/** Events of `GET /api/events`. */
export interface EventMap {
  job: Job;
  step: StepEvent;
  eval: EvalEvent;
  checkpoint: CheckpointEvent;
  workers: Worker[];
}

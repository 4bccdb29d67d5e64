// A training job's lifecycle: its state, live progress, outcome and the coordinator's record of it
// (`<dataDir>/jobs/<id>/job.json`, `GET /api/jobs/:id`).
import type { TaskMetrics } from './metrics.ts';
import type { JobSpec } from './spec.ts';
import type { PrimaryMetricName, TaskName } from './tasks.ts';

/** A job's lifecycle: one named state with its payload. */
export type JobState =
  | { readonly status: 'queued' }
  | { readonly status: 'running'; readonly step: number; readonly totalSteps: number }
  | { readonly status: 'paused'; readonly step: number; readonly totalSteps: number; readonly reason?: string }
  | { readonly status: 'succeeded'; readonly result: TrainResult }
  | { readonly status: 'failed'; readonly step: number; readonly error: string }
  | { readonly status: 'cancelled'; readonly step: number; readonly totalSteps: number };

export type JobStatus = JobState['status'];

/** Statuses a job does not leave. */
export const FINAL_STATES: ReadonlySet<JobStatus> = new Set(['succeeded', 'failed', 'cancelled']);

/** How a run ended (libs/engine `Trainer.run`; a failure rejects it instead). */
export interface TrainResult extends TaskMetrics {
  readonly jobId: string;
  readonly status: 'succeeded' | 'paused' | 'cancelled';
  /** SHA-256 hex of the canonical parameter bytes at the end of the run. */
  readonly paramsSha256: string;
  /** The job's task. */
  readonly task?: TaskName;
  /**
   * Loss and task metrics of the last evaluation (the final one when succeeded); undefined before
   * any. The metrics present depend on the task (see EvalMetrics).
   */
  readonly testLoss?: number;
  /** The best evaluation of the job so far, by the task's primary metric. */
  readonly best?: BestEval;
  /** Optimizer steps applied, of `totalSteps`. */
  readonly steps: number;
  readonly totalSteps: number;
  /** Epochs completed (fractional). */
  readonly epochs: number;
  /** Wall time of this run and accumulated over all runs of the job, ms. */
  readonly wallMs: number;
  readonly elapsedMs: number;
  /** The step this run resumed from (0 for a fresh start). */
  readonly resumedFrom: number;
  /** The last checkpoint written or loaded. */
  readonly checkpoint?: string;
  /** Image folders with `skipBadFiles`: how many unreadable files were left out, and the first few with the reason. */
  readonly skippedFiles?: SkippedFiles;
}

/**
 * The best evaluation of a job by its task's primary metric (classification testAccuracy,
 * localization locAccuracy, detection mAP50, segmentation mIoU). `testAccuracy` is kept for
 * classification (records and checkpoints written before the vision tasks hold only step and it).
 */
export interface BestEval {
  readonly step: number;
  readonly metric: PrimaryMetricName;
  readonly value: number;
  readonly testAccuracy?: number;
}

/** A best-evaluation record as stored: new (`{ step, metric, value }`) or old (`{ step, testAccuracy }`); libs/engine `normalizeBest` reads both. */
export interface StoredBest {
  readonly step: number;
  readonly metric?: string;
  readonly value?: number;
  readonly testAccuracy?: number;
}

/** Image folders with `skipBadFiles`: how many unreadable files were left out, and the first few with the reason. */
export interface SkippedFiles {
  readonly count: number;
  readonly files: readonly { readonly path: string; readonly reason: string }[];
}

/** What a running job reports through BullMQ progress (for `stride submit --follow` and other processes). */
export interface JobProgress extends TaskMetrics {
  readonly status: JobStatus;
  /** Optimizer steps applied. */
  readonly step: number;
  readonly totalSteps: number;
  readonly epoch?: number;
  readonly epochProgress?: number;
  /** Last step's mean training loss and accuracy. */
  readonly loss?: number;
  readonly accuracy?: number;
  readonly imagesPerSec?: number;
  /** Estimated time to the end (ms), from this run's average step time. */
  readonly etaMs?: number;
  /**
   * Last evaluation: its task, loss and the task's metrics (see EvalMetrics: classification
   * testAccuracy; localization testAccuracy, meanIoU, locAccuracy; detection mAP50; segmentation
   * mIoU, pixelAccuracy).
   */
  readonly task?: TaskName;
  readonly testLoss?: number;
}

/** A job as the coordinator knows it. */
export interface JobRecord {
  readonly id: string;
  readonly name: string;
  /** Normalised spec. */
  readonly spec: JobSpec;
  /** One named state with its payload (queued, running, paused, succeeded, failed, cancelled). */
  readonly state: JobState;
  /** ISO times. */
  readonly submittedAt: string;
  readonly updatedAt: string;
  readonly startedAt?: string;
  readonly finishedAt?: string;
  /** Times a coordinator started or resumed the job. */
  readonly runs: number;
  /** Last progress known (live while it runs in this process). */
  readonly progress?: JobProgress;
  /** How the last run ended (succeeded, paused or cancelled). */
  readonly result?: TrainResult;
  /**
   * The workers whose accepted shard results (train and eval) the job used, over all its runs.
   * Live while it runs; on disk as of the latest checkpoint, so a resumed run counts the steps it
   * recomputes once.
   */
  readonly workers?: readonly WorkerTally[];
}

/** One worker's share of a job. */
export interface WorkerTally {
  /** The worker's id, as in its results and heartbeats (the coordinator's `UNKNOWN_WORKER` when a result named none). */
  readonly id: string;
  /** Its host, from its heartbeat, when the coordinator saw one. */
  readonly host?: string;
  /** Accepted shard results of the job it computed (train and eval). */
  readonly shards: number;
  /** Time it spent computing them, ms. */
  readonly computeMs?: number;
  /** ISO time of the latest of its results the job used. */
  readonly lastSeen: string;
}

// What the dashboard reads from the coordinator's API.
//
// The records are the engine's (libs/engine: JobSpec, StepMetrics, EvalMetrics, CheckpointMeta),
// but the Nx rule "platform:browser projects depend only on platform:browser libs" forbids even
// `import type` from @stride/engine here, so the fields the dashboard reads are restated below,
// with the engine's names and meanings. Fields it does not read are left out; optional ones are
// drawn only when present.
import type { ModelSpec, OptimizerSpec } from '@stride/cnn';

/** libs/engine `JobSpec.dataset`: a dataset name or a user dataset source. */
export type DatasetRef = string | { readonly type: string; readonly path: string };

/** libs/engine `JobSpec`: a validated, fully defaulted job spec. */
export interface JobSpec {
  readonly name: string;
  readonly model: string | ModelSpec;
  /** A dataset name, or a user dataset source (`{ type: 'image-folder' | 'cifar10', path, … }`). */
  readonly dataset: DatasetRef;
  /** Present when the spec names it; otherwise derived from the dataset. */
  readonly task?: Task;
  /** Generated datasets: the sizes of the train and test splits. */
  readonly trainSamples?: number;
  readonly testSamples?: number;
  /** Exactly one of `epochs` and `steps` is present. */
  readonly epochs?: number;
  readonly steps?: number;
  readonly batchSize: number;
  readonly shards: number;
  readonly seed: number;
  readonly optimizer: Required<OptimizerSpec>;
  readonly schedule: { readonly type: string };
  readonly evalEvery: number | 'epoch';
  readonly evalShards: number;
  readonly checkpointEvery: number;
  readonly keepCheckpoints: number;
}

/** libs/engine `StepMetrics`: one training step. Times in ms. */
export interface StepMetrics {
  readonly type: 'step';
  /** 0-based index of the step just applied. */
  readonly step: number;
  readonly epoch: number;
  /** Fractional epochs completed after this step. */
  readonly epochProgress: number;
  readonly loss: number;
  /** Classification, and localization (the class); absent for detection and segmentation. */
  readonly accuracy?: number;
  readonly count: number;
  readonly lr: number;
  readonly imagesPerSec: number;
  readonly stepMs: number;
  readonly queueMs: number;
  readonly computeMs: number;
  readonly publishMs: number;
  readonly reduceMs: number;
  readonly optimizerMs: number;
  readonly time: string;
}

/** What a job trains for; libs/engine derives it from the dataset. Records without it are classification. */
export type Task = 'classification' | 'localization' | 'detection' | 'segmentation';

/**
 * The task metrics of an evaluation (libs/engine's metrics contract). Every evaluation has
 * `testLoss`; the others are present for their task: classification `testAccuracy`; localization
 * `testAccuracy` (class only), `meanIoU` (of the boxes) and `locAccuracy` (class right and IoU ≥ 0.5);
 * detection `mAP50`; segmentation `mIoU` (over classes) and `pixelAccuracy`. All in [0, 1].
 */
export interface TaskMetrics {
  readonly testAccuracy?: number;
  readonly meanIoU?: number;
  readonly locAccuracy?: number;
  readonly mAP50?: number;
  readonly mIoU?: number;
  readonly pixelAccuracy?: number;
}

export type MetricName = keyof TaskMetrics;

/** libs/engine `EvalMetrics`: one evaluation on the test split. */
export interface EvalMetrics extends TaskMetrics {
  readonly type: 'eval';
  /** Absent on records written before the vision tasks: classification. */
  readonly task?: Task;
  /** Optimizer steps applied when evaluated (the parameter version). */
  readonly step: number;
  readonly epochProgress: number;
  readonly testLoss: number;
  readonly count: number;
  readonly evalMs: number;
  readonly time: string;
}

/**
 * The best evaluation of a job by its task's primary metric: `{ step, metric, value }`;
 * classification records (old ones only) keep `testAccuracy`.
 */
export interface BestEval {
  readonly step: number;
  readonly metric?: MetricName;
  readonly value?: number;
  readonly testAccuracy?: number;
}

/** libs/engine `CheckpointMeta`: the JSON part of a checkpoint file (the fields the playground reads). */
export interface CheckpointMeta {
  readonly kind: 'stride-checkpoint';
  readonly jobId: string;
  readonly spec: JobSpec;
  /** The resolved model spec: enough to rebuild the model anywhere. */
  readonly modelSpec: ModelSpec;
  /** Per-channel input normalisation, `(pixel/255 - mean[c]) / std[c]`. */
  readonly normalization: { readonly mean: readonly number[]; readonly std: readonly number[] };
  readonly classNames: readonly string[];
  readonly step: number;
  readonly totalSteps: number;
  readonly evals: readonly EvalMetrics[];
  readonly best?: BestEval;
  readonly createdAt: string;
}

/** A job's lifecycle state, one named state with its payload (libs/engine `JobState`). */
export type JobState =
  | { readonly status: 'queued' }
  | { readonly status: 'running'; readonly step: number; readonly totalSteps: number }
  | { readonly status: 'paused'; readonly step: number; readonly totalSteps: number }
  | { readonly status: 'succeeded'; readonly result: TrainResult }
  | { readonly status: 'failed'; readonly step: number; readonly error: string }
  | { readonly status: 'cancelled'; readonly step: number; readonly totalSteps: number };

export type JobStatus = JobState['status'];

/** Statuses a job does not leave. */
export const FINAL_STATES: ReadonlySet<string> = new Set(['succeeded', 'failed', 'cancelled']);

/** libs/engine `TrainResult`: how a run ended. */
export interface TrainResult extends TaskMetrics {
  readonly status: 'succeeded' | 'paused' | 'cancelled';
  readonly task?: Task;
  readonly testLoss?: number;
  readonly best?: BestEval;
  readonly steps: number;
  readonly totalSteps: number;
  /** Training wall time accumulated over all runs of the job, ms. */
  readonly elapsedMs: number;
}

/** libs/queue `JobProgress`: the live summary of a running job, kept in its record. */
export interface JobProgress extends TaskMetrics {
  readonly status: JobStatus;
  /** Optimizer steps applied. */
  readonly step: number;
  readonly totalSteps: number;
  readonly epoch?: number;
  readonly epochProgress?: number;
  readonly loss?: number;
  readonly accuracy?: number;
  readonly imagesPerSec?: number;
  /** Estimated time to the end, ms. */
  readonly etaMs?: number;
  readonly testLoss?: number;
}

/** A training job: the coordinator's `JobRecord` (`GET /api/jobs/:id`, items of `GET /api/jobs`, `job` events). */
export interface Job {
  readonly id: string;
  readonly name: string;
  /** The job's best evaluation, when the record carries it (also in `result.best`). */
  readonly best?: BestEval;
  /** The normalised spec. */
  readonly spec: JobSpec;
  readonly state: JobState;
  /** ISO times. */
  readonly submittedAt: string;
  readonly updatedAt?: string;
  readonly startedAt?: string;
  readonly finishedAt?: string;
  /** Times a coordinator started or resumed it. */
  readonly runs?: number;
  readonly progress?: JobProgress;
  readonly result?: TrainResult;
  /**
   * The workers whose accepted shard results (train and eval) the job used, over all its runs
   * (the coordinator's `WorkerTally`). Absent on records written before it was kept.
   */
  readonly workers?: readonly JobWorker[];
}

/** One worker's share of a job (apps/coordinator `WorkerTally`). */
export interface JobWorker {
  readonly id: string;
  /** From the worker's heartbeat, when the coordinator saw one. */
  readonly host?: string;
  readonly shards: number;
  /** Time it spent computing the job's shards, ms. */
  readonly computeMs?: number;
  /** ISO time of the latest of its results the job used. */
  readonly lastSeen?: string;
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
  readonly datasets: readonly (string | { readonly name: string; readonly task?: Task; readonly input?: readonly number[]; readonly numClasses?: number })[];
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

// Public face of @stride/protocol: the records Stride's processes exchange over HTTP, BullMQ, files
// and events — the job spec, metrics, checkpoint meta, job state, progress and record — as types,
// with the few pure helpers both ends need. No Node APIs: the dashboard imports it in the browser;
// libs/engine, libs/queue and the coordinator re-export these names as their own.
export { TASKS, PRIMARY_METRIC, hasTrainAccuracy } from './tasks.ts';
export type { TaskName, PrimaryMetricName } from './tasks.ts';
export { datasetLabel } from './dataset.ts';
export type { DatasetName, SourceType, ImageFolderSource, Cifar10Source, DatasetSource, DatasetSourceInput, AugmentSpec, DatasetRef } from './dataset.ts';
export type { JobSpec, JobSpecInput } from './spec.ts';
export type { StepMetrics, TaskMetrics, MetricName, EvalMetrics, SkippedStep, MetricsRecord } from './metrics.ts';
export type { CheckpointMeta } from './checkpoint.ts';
export { FINAL_STATES } from './job.ts';
export type { JobState, JobStatus, TrainResult, BestEval, StoredBest, SkippedFiles, JobProgress, JobRecord, WorkerTally } from './job.ts';

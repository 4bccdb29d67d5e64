// The metrics of a job: one record per training step, evaluation or skipped step (libs/engine
// writes them to metrics.jsonl, one JSON object a line; the coordinator streams them as events).
import type { TaskName } from './tasks.ts';

/** Metrics of one training step. Times are milliseconds. */
export interface StepMetrics {
  readonly type: 'step';
  /** 0-based index of the step just applied; the parameters are now at version step + 1. */
  readonly step: number;
  readonly epoch: number;
  /** Fractional epochs completed after this step. */
  readonly epochProgress: number;
  /** Mean training loss over the batch. */
  readonly loss: number;
  /**
   * Training accuracy over the batch, in [0, 1]: classification, and localization (the class).
   * Absent for detection and segmentation, where a per-image accuracy means nothing.
   */
  readonly accuracy?: number;
  /** Samples in the batch. */
  readonly count: number;
  /** Learning rate applied at this step. */
  readonly lr: number;
  /** Batch samples / wall time of the step. */
  readonly imagesPerSec: number;
  /** Wall time of the whole step. */
  readonly stepMs: number;
  /** Longest wait of a shard before compute, when the executor reports it. */
  readonly queueMs: number;
  /** Longest shard compute time, and the sum over shards. */
  readonly computeMs: number;
  readonly computeMsTotal: number;
  /** Publishing the parameters, validating + summing shard results, the optimizer update. */
  readonly publishMs: number;
  readonly reduceMs: number;
  readonly optimizerMs: number;
  /** ISO time the step ended. */
  readonly time: string;
}

/** The metrics an evaluation reports besides its loss; which are present depends on the task. */
export interface TaskMetrics {
  /** classification: accuracy; localization: class accuracy. Absent for detection and segmentation. */
  readonly testAccuracy?: number;
  /** localization: mean IoU of the predicted boxes, and localization accuracy (class right and IoU ≥ 0.5). */
  readonly meanIoU?: number;
  readonly locAccuracy?: number;
  /** detection: mAP@0.5 (VOC, all-point) over the evaluated test images. */
  readonly mAP50?: number;
  /** segmentation: mean IoU over the pixel classes (background included), and pixel accuracy. */
  readonly mIoU?: number;
  readonly pixelAccuracy?: number;
}

/** Metrics of one evaluation on the test split. */
export interface EvalMetrics extends TaskMetrics {
  readonly type: 'eval';
  /** Optimizer steps applied when evaluated (the parameter version). */
  readonly step: number;
  readonly epochProgress: number;
  /** The job's task; always written since the vision tasks (absent in older records: classification). */
  readonly task?: TaskName;
  /** Mean test loss per image (the task's loss). */
  readonly testLoss: number;
  readonly count: number;
  readonly evalMs: number;
  readonly time: string;
}

/**
 * A training step that was not applied: its shards kept giving non-finite or outlier gradients.
 * The parameters and the optimizer state stay as they were; the next step uses the next batch.
 */
export interface SkippedStep {
  readonly type: 'skip';
  /** 0-based index of the step skipped. */
  readonly step: number;
  /** Why, naming the shards and the check that failed. */
  readonly reason: string;
  readonly time: string;
}

export type MetricsRecord = StepMetrics | EvalMetrics | SkippedStep;

/** The name of one task metric. */
export type MetricName = keyof TaskMetrics;

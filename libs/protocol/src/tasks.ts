// The four vision tasks and the metric each one is judged by.

/** What a job trains for; derived from the dataset. Records without one are classification. */
export type TaskName = 'classification' | 'localization' | 'detection' | 'segmentation';
export const TASKS: readonly TaskName[] = ['classification', 'localization', 'detection', 'segmentation'];

/** The metric that picks a job's best checkpoint, per task (higher is better for all). */
export const PRIMARY_METRIC = {
  classification: 'testAccuracy',
  localization: 'locAccuracy',
  detection: 'mAP50',
  segmentation: 'mIoU',
} as const satisfies Record<TaskName, string>;

export type PrimaryMetricName = (typeof PRIMARY_METRIC)[TaskName];

/** Whether training steps of this task report an accuracy (classification; localization: the class). */
export function hasTrainAccuracy(task: TaskName): boolean {
  return task === 'classification' || task === 'localization';
}

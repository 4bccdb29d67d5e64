// The four vision tasks as the views see them: which task a job or a dataset is, which zoo models
// suit it, and which metrics it reports (names, labels, the primary one the charts and lists show).
import { TASKS, type DatasetRef, type EvalMetrics, type MetricName, type StoredBest, type TaskMetrics, type TaskName } from '@stride/protocol';
import { pct } from './format.ts';
import type { Job } from './types.ts';

/** The generated vision datasets and their task (libs/data `GENERATED_DATASET_NAMES`). */
const DATASET_TASKS: Readonly<Record<string, TaskName>> = {
  'mnist-localization': 'localization',
  'mnist-detection': 'detection',
  'mnist-segmentation': 'segmentation',
};

const isTask = (v: unknown): v is TaskName => typeof v === 'string' && (TASKS as readonly string[]).includes(v);

/** The task of a dataset: what the API's dataset table says, else the generated sets' names, else classification (user sources too). */
export function taskOfDataset(dataset: DatasetRef, declared?: unknown): TaskName {
  if (isTask(declared)) return declared;
  return (typeof dataset === 'string' ? DATASET_TASKS[dataset] : undefined) ?? 'classification';
}

/** The task of a job: its spec's, else its dataset's; old records are classification. */
export function taskOfJob(job: Pick<Job, 'spec'>): TaskName {
  return taskOfDataset(job.spec.dataset, job.spec.task);
}

/** Zoo models made for a task, best first. Every other zoo model is a classifier. */
const TASK_MODELS: Readonly<Record<Exclude<TaskName, 'classification'>, readonly string[]>> = {
  localization: ['localizer'],
  detection: ['yolo'],
  segmentation: ['unet'],
};
const VISION_MODELS = new Set(Object.values(TASK_MODELS).flat());

/** The zoo models (of `zoo`, in its order) that suit `task`, the suggested one first. */
export function modelsForTask(task: TaskName, zoo: readonly string[]): string[] {
  if (task === 'classification') return zoo.filter((m) => !VISION_MODELS.has(m));
  const preferred = TASK_MODELS[task];
  return preferred.filter((m) => zoo.includes(m));
}

/** The model to preselect for a task: LeNet-5 for classification when there, else the first that suits. */
export function suggestedModel(task: TaskName, zoo: readonly string[]): string | undefined {
  const fit = modelsForTask(task, zoo);
  if (task === 'classification' && fit.includes('lenet5')) return 'lenet5';
  return fit[0];
}

export interface MetricInfo {
  readonly key: MetricName;
  /** Short label for stats and legends. */
  readonly label: string;
  /** A sentence for tooltips. */
  readonly help: string;
}

const METRICS: Readonly<Record<MetricName, MetricInfo>> = {
  testAccuracy: { key: 'testAccuracy', label: 'test acc.', help: 'share of test images whose class is right' },
  locAccuracy: { key: 'locAccuracy', label: 'loc. acc.', help: 'share of test images with the right class and a box of IoU ≥ 0.5' },
  meanIoU: { key: 'meanIoU', label: 'mean IoU', help: 'mean intersection over union of the predicted and true boxes' },
  mAP50: { key: 'mAP50', label: 'mAP@0.5', help: 'mean average precision over the classes, a detection counting when its IoU ≥ 0.5' },
  mIoU: { key: 'mIoU', label: 'mIoU', help: 'mean over the classes of the pixel intersection over union' },
  pixelAccuracy: { key: 'pixelAccuracy', label: 'pixel acc.', help: 'share of test pixels whose class is right' },
};

/** The metrics a task's evaluations carry (besides the loss), the primary one first. */
export const TASK_METRICS: Readonly<Record<TaskName, readonly MetricName[]>> = {
  classification: ['testAccuracy'],
  localization: ['locAccuracy', 'meanIoU', 'testAccuracy'],
  detection: ['mAP50'],
  segmentation: ['mIoU', 'pixelAccuracy'],
};

export function metricInfo(key: MetricName): MetricInfo {
  return METRICS[key];
}

/** The metric the job's best checkpoint is chosen by, and the lists and charts lead with. */
export function primaryMetric(task: TaskName): MetricInfo {
  return METRICS[TASK_METRICS[task][0]];
}

/** Metric values are fractions: shown as percentages. */
export function formatMetric(v: number | undefined | null): string {
  return pct(v);
}

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isMetric = (v: unknown): v is MetricName => typeof v === 'string' && Object.hasOwn(METRICS, v);

/** The task of an evaluation record (older records have none: classification). */
export function taskOfEval(e: Pick<EvalMetrics, 'task'>, fallback: TaskName = 'classification'): TaskName {
  return isTask(e.task) ? e.task : fallback;
}

/** The value of `key` in the first of `sources` that has it. */
export function metricValue(key: MetricName, ...sources: (TaskMetrics | undefined | null)[]): number | undefined {
  for (const s of sources) {
    const v = s?.[key];
    if (finite(v)) return v;
  }
  return undefined;
}

/** The best evaluation as `{ step, metric, value }`, from the new record or an old `{ step, testAccuracy }`. */
export function normalizeBest(best: StoredBest | undefined | null): { step: number; metric: MetricName; value: number } | undefined {
  if (!best || !Number.isSafeInteger(best.step)) return undefined;
  if (isMetric(best.metric) && finite(best.value)) return { step: best.step, metric: best.metric, value: best.value };
  if (finite(best.testAccuracy)) return { step: best.step, metric: 'testAccuracy', value: best.testAccuracy };
  return undefined;
}

/** A job's best evaluation, from the record, its result or the final state. */
export function bestOf(job: Job): ReturnType<typeof normalizeBest> {
  const fromState = job.state.status === 'succeeded' ? job.state.result.best : undefined;
  return normalizeBest(job.best) ?? normalizeBest(fromState) ?? normalizeBest(job.result?.best);
}

/**
 * The latest value of a job's primary metric, as the list shows it: the live progress, the last
 * evaluation seen on the event stream, the result of the run.
 */
export function latestPrimary(job: Job, lastEval?: TaskMetrics): number | undefined {
  const key = primaryMetric(taskOfJob(job)).key;
  const result = job.state.status === 'succeeded' ? job.state.result : job.result;
  return metricValue(key, lastEval, job.progress, result);
}

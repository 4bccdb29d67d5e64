// The four vision tasks inside the engine: each task's loss, its training accuracy count, the
// statistics an evaluation shard returns, their validation, and the evaluation metrics computed
// from the reduced statistics.
//
// Every statistic is either a sum (localization counts, the segmentation confusion matrix) that
// the engine adds in shard order, or a list (detections) that it concatenates in shard order, so
// the metrics of an evaluation do not depend on who computed which shard. Detection mAP@0.5 needs
// every detection of the test split at once: shards send their decoded detections, the engine
// computes `meanAveragePrecision` over the whole split.
//
// Stats layouts (`ShardResult.stats`, eval only):
//   localization  [iouSum, classCorrect, locCorrect]
//   segmentation  the K×K confusion matrix, row-major [truth·K + predicted]
//   detection     7 numbers per detection [image index in the shard, class, score, cx, cy, w, h],
//                 images in order, each image's detections highest score first
import {
  crossEntropy,
  decodeYolo,
  encodeYoloTargets,
  labeledBoxesFromFlat,
  planModel,
  localizationCounts,
  localizationLoss,
  meanAveragePrecision,
  segmentationConfusion,
  segmentationLoss,
  segmentationMetrics,
  yoloLoss,
  type Detection,
  type LabeledBox,
  type Tensor,
} from '@stride/cnn';
import { ShardResultError } from './errors.ts';
import type { JobContext, ShardResult, ShardTask } from './executor.ts';
import { PRIMARY_METRIC, type PrimaryMetricName, type TaskName } from '@stride/protocol';

export { TASKS, PRIMARY_METRIC, hasTrainAccuracy } from '@stride/protocol';
export type { TaskName, PrimaryMetricName } from '@stride/protocol';

/** The task metrics of one evaluation (beside `testLoss`); which ones are present depends on the task. */
export interface TaskEvalMetrics {
  /** classification: accuracy; localization: class accuracy. */
  testAccuracy?: number;
  /** localization: mean IoU of the predicted box with the true one. */
  meanIoU?: number;
  /** localization: class right and IoU ≥ 0.5. */
  locAccuracy?: number;
  /** detection: VOC mean average precision at IoU 0.5 over the evaluated split. */
  mAP50?: number;
  /** segmentation: mean IoU over the classes (background included) and pixel accuracy. */
  mIoU?: number;
  pixelAccuracy?: number;
}

/** Decoding of detections for mAP: a low score threshold, a cap per image. */
export const DETECTION_EVAL = { scoreThreshold: 0.05, iouThreshold: 0.5, maxDetections: 20 } as const;
const DETECTION_FIELDS = 7;

function fail(job: JobContext, task: ShardTask, message: string): never {
  throw new ShardResultError(`job ${job.jobId} step ${task.step} shard ${task.shard} (${job.task}): ${message}`);
}

function classesOf(job: JobContext, task: ShardTask): number {
  const k = job.numClasses;
  if (typeof k !== 'number' || !Number.isInteger(k) || k < 1) fail(job, task, `the job context has no numClasses (got ${String(k)})`);
  return k;
}

/**
 * Checks a shard's targets against its task before any computation: present where the task needs
 * them, of the right lengths, in range. Throws `ShardResultError` naming the field.
 */
export function checkTaskTargets(job: JobContext, task: ShardTask): void {
  const t = task.targets;
  const n = task.count;
  if (job.task === 'classification') {
    if (t !== undefined) fail(job, task, 'a classification shard carries no targets');
    return;
  }
  if (!t) fail(job, task, 'targets are missing');
  const k = classesOf(job, task);
  const [, h, w] = job.modelSpec.input;
  const boxesOk = (boxes: Float32Array | undefined, objects: number): boolean => {
    if (!(boxes instanceof Float32Array) || boxes.length !== 4 * objects) fail(job, task, `targets.boxes must hold ${4 * objects} values, got ${boxes?.length ?? 'none'}`);
    for (let i = 0; i < boxes.length; i++) {
      const v = boxes[i];
      if (!(v >= 0 && v <= 1)) fail(job, task, `targets.boxes[${i}] = ${v} is not in [0, 1]`);
    }
    return true;
  };
  if (job.task === 'localization') {
    boxesOk(t.boxes, n);
    for (let i = 0; i < n; i++) if (task.labels[i] >= k) fail(job, task, `labels[${i}] = ${task.labels[i]} is not a class in [0, ${k})`);
  } else if (job.task === 'detection') {
    const off = t.boxOffsets;
    if (!(off instanceof Uint32Array) || off.length !== n + 1 || off[0] !== 0) fail(job, task, `targets.boxOffsets must hold ${n + 1} offsets starting at 0, got ${off?.length ?? 'none'}`);
    for (let i = 0; i < n; i++) if (off[i + 1] < off[i]) fail(job, task, `targets.boxOffsets decrease at sample ${i}`);
    const objects = off[n];
    boxesOk(t.boxes, objects);
    if (!(t.boxLabels instanceof Uint8Array) || t.boxLabels.length !== objects) fail(job, task, `targets.boxLabels must hold ${objects} classes, got ${t.boxLabels?.length ?? 'none'}`);
    for (let j = 0; j < objects; j++) {
      if (t.boxLabels[j] >= k) fail(job, task, `targets.boxLabels[${j}] = ${t.boxLabels[j]} is not a class in [0, ${k})`);
      if (!(t.boxes![4 * j + 2] > 0 && t.boxes![4 * j + 3] > 0)) fail(job, task, `targets.boxes of object ${j} has an empty size`);
    }
  } else {
    const masks = t.masks;
    if (!(masks instanceof Uint8Array) || masks.length !== n * h * w) fail(job, task, `targets.masks must hold ${n}×${h}×${w} = ${n * h * w} classes, got ${masks?.length ?? 'none'}`);
    for (let i = 0; i < masks.length; i++) if (masks[i] >= k) fail(job, task, `targets.masks[${i}] = ${masks[i]} is not a class in [0, ${k})`);
  }
}

/** The task's loss of a shard, summed over its samples (a scalar tensor). */
export function taskLoss(job: JobContext, output: Tensor, task: ShardTask): Tensor {
  const t = task.targets;
  switch (job.task) {
    case 'classification':
      return crossEntropy(output, task.labels, { reduction: 'sum' });
    case 'localization':
      return localizationLoss(output, task.labels, t!.boxes!, { reduction: 'sum' });
    case 'detection': {
      const gridSize = output.shape[2];
      const objects = labeledBoxesFromFlat(t!.boxes!, t!.boxLabels!, t!.boxOffsets!);
      return yoloLoss(output, encodeYoloTargets(objects, gridSize, classesOf(job, task)), { reduction: 'sum' });
    }
    case 'segmentation':
      return segmentationLoss(output, t!.masks!, { reduction: 'sum' });
  }
}

/** Index of the largest of `classes` values at `row`; ties go to the first. */
function argmax(data: Float32Array, row: number, classes: number): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let k = 0; k < classes; k++) {
    if (data[row + k] > bestValue) {
      bestValue = data[row + k];
      best = k;
    }
  }
  return best;
}

/** Samples whose class is right: classification and localization (the first C outputs); 0 for the other tasks. */
export function taskCorrect(job: JobContext, output: Tensor, task: ShardTask): number {
  if (job.task !== 'classification' && job.task !== 'localization') return 0;
  const row = output.data.length / task.count;
  const classes = job.task === 'localization' ? row - 4 : row;
  let correct = 0;
  for (let n = 0; n < task.count; n++) if (argmax(output.data, n * row, classes) === task.labels[n]) correct++;
  return correct;
}

/** The statistics of an evaluation shard (see the layouts at the top); undefined for classification. */
export function taskEvalStats(job: JobContext, output: Tensor, task: ShardTask): number[] | undefined {
  const t = task.targets;
  switch (job.task) {
    case 'classification':
      return undefined;
    case 'localization': {
      const c = localizationCounts(output, task.labels, t!.boxes!);
      return [c.iouSum, c.classCorrect, c.correct];
    }
    case 'segmentation':
      return Array.from(segmentationConfusion(output, t!.masks!));
    case 'detection': {
      const out: number[] = [];
      decodeYolo(output, DETECTION_EVAL).forEach((dets, image) => {
        for (const d of dets) out.push(image, d.classId, d.score, d.box.cx, d.box.cy, d.box.w, d.box.h);
      });
      return out;
    }
  }
}

/**
 * Checks the statistics of a result against its task and job. Returns the problem as a sentence,
 * or undefined when acceptable. Train results carry none.
 */
export function checkTaskStats(job: JobContext, task: ShardTask, r: ShardResult): string | undefined {
  const stats = r.stats;
  if (task.kind === 'train' || job.task === 'classification') return stats === undefined ? undefined : `unexpected stats for a ${job.task} ${task.kind} shard`;
  if (!Array.isArray(stats)) return 'no stats';
  for (let i = 0; i < stats.length; i++) if (typeof stats[i] !== 'number' || !Number.isFinite(stats[i])) return `stats[${i}] is not a finite number`;
  const n = task.count;
  const k = job.numClasses ?? 0;
  if (job.task === 'localization') {
    if (stats.length !== 3) return `localization stats hold ${stats.length} values, expected 3`;
    const [iouSum, classCorrect, locCorrect] = stats;
    if (iouSum < 0 || iouSum > n) return `iouSum ${iouSum} outside [0, ${n}]`;
    if (!Number.isInteger(classCorrect) || classCorrect < 0 || classCorrect > n) return `classCorrect ${classCorrect} outside [0, ${n}]`;
    if (!Number.isInteger(locCorrect) || locCorrect < 0 || locCorrect > classCorrect) return `locCorrect ${locCorrect} outside [0, classCorrect ${classCorrect}]`;
    if (r.correct !== classCorrect) return `correct ${r.correct} differs from classCorrect ${classCorrect}`;
    return undefined;
  }
  if (job.task === 'segmentation') {
    if (stats.length !== k * k) return `segmentation stats hold ${stats.length} values, a ${k}×${k} confusion matrix has ${k * k}`;
    const [, h, w] = job.modelSpec.input;
    let total = 0;
    for (let i = 0; i < stats.length; i++) {
      if (!Number.isInteger(stats[i]) || stats[i] < 0) return `confusion[${i}] = ${stats[i]} is not a count`;
      total += stats[i];
    }
    if (total !== n * h * w) return `the confusion matrix counts ${total} pixels, the shard has ${n * h * w}`;
    return undefined;
  }
  // detection
  if (stats.length % DETECTION_FIELDS !== 0) return `detection stats hold ${stats.length} values, not a multiple of ${DETECTION_FIELDS}`;
  const perImage = new Map<number, number>();
  let previous = 0;
  for (let o = 0; o < stats.length; o += DETECTION_FIELDS) {
    const [image, classId, score, cx, cy, bw, bh] = stats.slice(o, o + DETECTION_FIELDS);
    const which = `detection ${o / DETECTION_FIELDS}`;
    if (!Number.isInteger(image) || image < previous || image >= n) return `${which}: image ${image} is not in [${previous}, ${n})`;
    previous = image;
    if (!Number.isInteger(classId) || classId < 0 || classId >= k) return `${which}: class ${classId} is not in [0, ${k})`;
    if (score < 0 || score > 1) return `${which}: score ${score} is not in [0, 1]`;
    if ([cx, cy, bw, bh].some((v) => v < 0 || v > 1)) return `${which}: box values must be in [0, 1]`;
    const count = (perImage.get(image) ?? 0) + 1;
    if (count > DETECTION_EVAL.maxDetections) return `${which}: more than ${DETECTION_EVAL.maxDetections} detections for image ${image}`;
    perImage.set(image, count);
  }
  return undefined;
}

/** What the engine knows about the evaluated split that the metrics need: detection's ground truth. */
export interface EvalTruth {
  /** detection: the objects of every evaluated image, in order. */
  readonly objects?: readonly (readonly LabeledBox[])[];
}

/** The metrics of an evaluation from its validated results, in shard order, and `correct` summed. */
export function taskEvalMetrics(job: JobContext, results: readonly ShardResult[], count: number, correct: number, truth: EvalTruth = {}): TaskEvalMetrics {
  const sumStats = (length: number): Float64Array => {
    const acc = new Float64Array(length);
    for (const r of results) for (let i = 0; i < length; i++) acc[i] += r.stats![i];
    return acc;
  };
  switch (job.task) {
    case 'classification':
      return { testAccuracy: count > 0 ? correct / count : 0 };
    case 'localization': {
      const [iouSum, classCorrect, locCorrect] = sumStats(3);
      return count > 0 ? { testAccuracy: classCorrect / count, meanIoU: iouSum / count, locAccuracy: locCorrect / count } : { testAccuracy: 0, meanIoU: 0, locAccuracy: 0 };
    }
    case 'segmentation': {
      const k = job.numClasses!;
      const m = segmentationMetrics(sumStats(k * k), k);
      return { mIoU: m.meanIou, pixelAccuracy: m.pixelAccuracy };
    }
    case 'detection': {
      const detections: Detection[][] = [];
      for (const r of results) {
        const base = detections.length;
        for (let i = 0; i < r.count; i++) detections.push([]);
        const s = r.stats!;
        for (let o = 0; o < s.length; o += DETECTION_FIELDS) {
          detections[base + s[o]].push({ classId: s[o + 1], score: s[o + 2], box: { cx: s[o + 3], cy: s[o + 4], w: s[o + 5], h: s[o + 6] } });
        }
      }
      const objects = truth.objects;
      if (!objects || objects.length !== detections.length) {
        throw new ShardResultError(`job ${job.jobId}: detection evaluation of ${detections.length} images needs the ground truth of as many, got ${objects?.length ?? 'none'}`);
      }
      return { mAP50: meanAveragePrecision(detections, objects, { numClasses: job.numClasses!, iouThreshold: 0.5 }).map };
    }
  }
}

/** The value of the task's primary metric in an evaluation's metrics (0 when absent). */
export function primaryMetricOf(task: TaskName, metrics: TaskEvalMetrics): { metric: PrimaryMetricName; value: number } {
  const metric = PRIMARY_METRIC[task];
  return { metric, value: metrics[metric] ?? 0 };
}

function pct(v: number | undefined): string {
  return v === undefined ? 'n/a' : `${(100 * v).toFixed(2)}%`;
}

/** One line of an evaluation's task metrics, for logs and the CLI: `test accuracy 98.10%` or `mAP@0.5 41.20%`. */
export function formatEvalMetrics(task: TaskName | undefined, m: TaskEvalMetrics): string {
  switch (task ?? 'classification') {
    case 'classification':
      return `test accuracy ${pct(m.testAccuracy)}`;
    case 'localization':
      return `loc accuracy ${pct(m.locAccuracy)}, mean IoU ${pct(m.meanIoU)}, class accuracy ${pct(m.testAccuracy)}`;
    case 'detection':
      return `mAP@0.5 ${pct(m.mAP50)}`;
    case 'segmentation':
      return `mIoU ${pct(m.mIoU)}, pixel accuracy ${pct(m.pixelAccuracy)}`;
  }
}

/**
 * The mean loss per image of an uninformed model (uniform class scores, objectness ½, boxes at
 * the centre): the scale a "the loss blew up" check should compare against. Classification and
 * segmentation ln C; localization ln C plus the box term of centred boxes (λ = 5 × 4 coordinates ×
 * a variance of about 1/12); detection the objectness of every cell (S², weighted λnoobj = ½ where
 * empty) plus the class and objectness terms of up to 4 objects.
 */
export function chanceLoss(job: Pick<JobContext, 'task' | 'numClasses' | 'modelSpec'>, classes: number = job.numClasses ?? 0): number {
  const lnC = Math.log(Math.max(2, classes));
  switch (job.task) {
    case 'classification':
    case 'segmentation':
      return lnC;
    case 'localization':
      return lnC + (5 * 4) / 12;
    case 'detection': {
      const s = planModel(job.modelSpec).outputShape[1] ?? 1;
      return s * s * 0.5 * Math.LN2 + 4 * (Math.LN2 + lnC + (5 * 4) / 12);
    }
  }
}

// The vision tasks through the engine: specs on the generated datasets, short trainings whose loss
// falls, evaluation metrics that equal a direct computation on the final parameters, and the
// validation of task statistics.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildModel,
  decodeYolo,
  fromData,
  getZooSpec,
  loadNamedArrays,
  localizationCounts,
  localizationMetrics,
  meanAveragePrecision,
  noGrad,
  segmentationConfusion,
  segmentationMetrics,
  type ModelSpec,
} from '@stride/cnn';
import { normalizeInto } from '@stride/data';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CheckpointStore,
  checkTaskStats,
  DETECTION_EVAL,
  groundTruthObjects,
  InlineExecutor,
  jobPaths,
  loadJobDataset,
  normalizeBest,
  normalizeJobSpec,
  shardTargets,
  train,
  type EvalMetrics,
  type JobContext,
  type JobSpecInput,
  type ShardResult,
  type ShardTask,
  type StepMetrics,
  type TrainResult,
} from '../src/index.ts';
import { rangeIndices } from '../src/data.ts';

const common = { optimizer: { type: 'adam', lr: 0.005 }, schedule: { type: 'constant' }, seed: 5 } as const;

const SPECS = {
  localization: {
    model: getZooSpec('localizer', { height: 64, width: 64, numClasses: 10, baseChannels: 4 }),
    dataset: 'mnist-localization',
    trainSamples: 384,
    testSamples: 96,
    steps: 24,
    batchSize: 32,
    shards: 2,
    evalEvery: 12,
    evalShards: 3,
    ...common,
  },
  detection: {
    model: getZooSpec('yolo', { height: 96, width: 96, numClasses: 10, baseChannels: 4 }),
    dataset: 'mnist-detection',
    trainSamples: 192,
    testSamples: 48,
    steps: 14,
    batchSize: 16,
    shards: 2,
    evalEvery: 7,
    evalShards: 3,
    ...common,
  },
  segmentation: {
    model: getZooSpec('unet', { height: 96, width: 96, numClasses: 11, baseChannels: 2, depth: 1 }),
    dataset: 'mnist-segmentation',
    trainSamples: 96,
    testSamples: 24,
    steps: 10,
    batchSize: 8,
    shards: 2,
    evalEvery: 5,
    evalShards: 3,
    ...common,
    optimizer: { type: 'adam', lr: 0.03 },
  },
} satisfies Record<string, JobSpecInput>;

type Task = keyof typeof SPECS;

let dataDir: string;
beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'stride-tasks-'));
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe('job specs of the vision tasks', () => {
  it('derives the task from the dataset, defaults the generated sizes and resolves the zoo model per task', () => {
    const det = normalizeJobSpec({ model: 'yolo', dataset: 'mnist-detection' });
    expect(det.task).toBe('detection');
    expect([det.trainSamples, det.testSamples]).toEqual([5000, 1000]);
    expect(normalizeJobSpec({ model: 'unet', dataset: 'mnist-segmentation', task: 'segmentation', trainSamples: 300 })).toMatchObject({ task: 'segmentation', trainSamples: 300, testSamples: 1000 });
    expect(normalizeJobSpec({ model: 'localizer', dataset: 'mnist-localization' })).toMatchObject({ task: 'localization', trainSamples: 10000, testSamples: 2000 });
    // Classification specs stay as they were (same canonical JSON, so old checkpoints still resume).
    const mnist = normalizeJobSpec({ model: 'lenet5', dataset: 'mnist' });
    expect('task' in mnist || 'trainSamples' in mnist).toBe(false);
  });

  it('rejects inconsistent tasks, sizes and models, naming the field', () => {
    expect(() => normalizeJobSpec({ model: 'yolo', dataset: 'mnist-detection', task: 'segmentation' })).toThrow(/^task: mnist-detection is a detection dataset/);
    expect(() => normalizeJobSpec({ model: 'lenet5', dataset: 'mnist', trainSamples: 100 })).toThrow(/^trainSamples: only generated datasets/);
    expect(() => normalizeJobSpec({ model: 'yolo', dataset: 'mnist-detection', testSamples: 0 })).toThrow(/^testSamples: must be an integer in \[1, 100000\]/);
    expect(() => normalizeJobSpec({ model: 'yolo', dataset: 'mnist-detection', trainSamples: 100_001 })).toThrow(/^trainSamples:/);
    expect(() => normalizeJobSpec({ model: 'lenet5', dataset: 'mnist-detection' })).toThrow(/^model: .*\[15, S, S\].*zoo models for detection: yolo/);
    expect(() => normalizeJobSpec({ model: 'unet', dataset: 'mnist-detection' })).toThrow(/^model: must output a YOLO grid/);
    expect(() => normalizeJobSpec({ model: 'yolo', dataset: 'mnist-segmentation' })).toThrow(/^model: must output 11 class scores per pixel/);
    expect(() => normalizeJobSpec({ model: 'lenet5', dataset: 'mnist-localization' })).toThrow(/^model: .*\[14\]/);
  });

  it('reads best-evaluation records of old checkpoints', () => {
    expect(normalizeBest({ step: 40, testAccuracy: 0.97 })).toEqual({ step: 40, metric: 'testAccuracy', value: 0.97, testAccuracy: 0.97 });
    expect(normalizeBest({ step: 8, metric: 'mAP50', value: 0.3 })).toEqual({ step: 8, metric: 'mAP50', value: 0.3 });
    expect(normalizeBest({ step: 8 })).toBeUndefined();
  });
});

/** The model of a job's last checkpoint. */
async function finalModel(jobId: string, spec: ModelSpec): Promise<ReturnType<typeof buildModel>> {
  const store = new CheckpointStore(jobPaths(dataDir, jobId).checkpoints);
  const ckpt = (await store.loadLatest())!;
  const model = buildModel(spec, { seed: 0 });
  loadNamedArrays(model.params, ckpt.params);
  loadNamedArrays(model.buffers, ckpt.buffers);
  return model;
}

async function run(task: Task): Promise<{ result: TrainResult; steps: StepMetrics[]; evals: EvalMetrics[] }> {
  const steps: StepMetrics[] = [];
  const evals: EvalMetrics[] = [];
  const executor = new InlineExecutor();
  try {
    const result = await train(SPECS[task], { executor, dataDir, jobId: task, resume: false, on: { step: (e) => steps.push(e), eval: (e) => evals.push(e) } });
    return { result, steps, evals };
  } finally {
    await executor.close();
  }
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

describe.each(Object.keys(SPECS) as Task[])('%s trains through the engine', (task) => {
  it('the loss falls, and the final evaluation equals the metrics computed directly on the final parameters', async () => {
    const { result, steps, evals } = await run(task);
    const spec = SPECS[task];
    expect(result.status).toBe('succeeded');
    expect(result.task).toBe(task);
    const losses = steps.map((s) => s.loss);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(mean(losses.slice(-3))).toBeLessThan(0.9 * mean(losses.slice(0, 3)));
    expect(steps.every((s) => (task === 'localization' ? typeof s.accuracy === 'number' : s.accuracy === undefined))).toBe(true);
    expect(evals.map((e) => e.step)).toEqual([spec.evalEvery, spec.steps]);
    for (const e of evals) expect(e.task).toBe(task);

    // Direct computation over the whole test split in one batch.
    const last = evals.at(-1)!;
    const test = await loadJobDataset(normalizeJobSpec(spec), 'test');
    const model = await finalModel(task, spec.model);
    const x = new Float32Array(test.images.length);
    normalizeInto(test.images, test.count, 1, test.height * test.width, test.mean, test.std, x);
    const out = noGrad(() => model.forward(fromData(x, [test.count, 1, test.height, test.width]), { training: false }));
    const targets = shardTargets(task, test, rangeIndices(0, test.count))!;
    if (task === 'localization') {
      const m = localizationMetrics(localizationCounts(out, test.labels, targets.boxes!));
      expect(last.locAccuracy).toBeCloseTo(m.accuracy, 12);
      expect(last.meanIoU).toBeCloseTo(m.meanIou, 6);
      expect(last.testAccuracy).toBeCloseTo(m.classAccuracy, 12);
      expect(last.meanIoU!).toBeGreaterThan(0);
      expect(result.best?.metric).toBe('locAccuracy');
    } else if (task === 'detection') {
      const m = meanAveragePrecision(decodeYolo(out, DETECTION_EVAL), groundTruthObjects(test, test.count), { numClasses: 10 });
      expect(last.mAP50).toBeCloseTo(m.map, 12);
      expect(last.testAccuracy).toBeUndefined();
      expect(result.mAP50).toBe(last.mAP50);
      expect(result.best?.metric).toBe('mAP50');
    } else {
      const m = segmentationMetrics(segmentationConfusion(out, targets.masks!), 11);
      expect(last.mIoU).toBeCloseTo(m.meanIou, 12);
      expect(last.pixelAccuracy).toBeCloseTo(m.pixelAccuracy, 12);
      expect(result.best?.metric).toBe('mIoU');
    }
    const best = evals.reduce((b, e) => (e[result.best!.metric]! > b[result.best!.metric]! ? e : b));
    expect(result.best).toMatchObject({ step: best.step, value: best[result.best!.metric] });
  }, 240_000);
});

describe('a vision job paused and resumed', () => {
  it('ends with the bytes and metrics of an uninterrupted run, its best record in the new form', async () => {
    const spec: JobSpecInput = { ...SPECS.localization, steps: 8, evalEvery: 4, checkpointEvery: 2 };
    const executor = new InlineExecutor();
    try {
      const whole = await train(spec, { executor, dataDir, jobId: 'loc-whole', resume: false });
      const abort = new AbortController();
      const paused = await train(spec, { executor, dataDir, jobId: 'loc-paused', resume: false, signal: abort.signal, on: { step: (e) => e.step === 4 && abort.abort('pause') } });
      expect(paused.status).toBe('paused');
      expect(paused.steps).toBeLessThan(8);
      const resumed = await train(spec, { executor, dataDir, jobId: 'loc-paused' });
      expect(resumed.resumedFrom).toBe(paused.steps);
      expect(resumed.paramsSha256).toBe(whole.paramsSha256);
      expect(resumed.locAccuracy).toBe(whole.locAccuracy);
      expect(resumed.best).toEqual(whole.best);
      const store = new CheckpointStore(jobPaths(dataDir, 'loc-paused').checkpoints);
      const meta = (await store.loadLatest())!.meta;
      expect(meta.best).toMatchObject({ metric: 'locAccuracy', step: whole.best!.step });
      expect(meta.evals.map((e) => e.task)).toEqual(['localization', 'localization']);
    } finally {
      await executor.close();
    }
  }, 240_000);
});

describe('task statistics are validated before they are reduced', () => {
  const job = (task: JobContext['task'], numClasses: number, input: [number, number, number]): JobContext => ({
    jobId: 'j',
    modelSpec: { input, layers: [] } as unknown as ModelSpec,
    task,
    numClasses,
    normalization: { mean: [0], std: [1] },
    seed: 1,
    stateLength: 1,
    gradientLength: 1,
    bufferLength: 0,
  });
  const task = (count: number): ShardTask => ({ kind: 'eval', jobId: 'j', step: 1, shard: 0, paramsVersion: 1, count, images: new Uint8Array(0), labels: new Uint8Array(count) });
  const result = (count: number, stats: number[] | undefined, correct = 0): ShardResult => ({ kind: 'eval', jobId: 'j', step: 1, shard: 0, paramsVersion: 1, count, lossSum: 1, correct, stats, computeMs: 0 });

  it('localization: three sums within the shard', () => {
    const j = job('localization', 10, [1, 64, 64]);
    expect(checkTaskStats(j, task(4), result(4, [2.5, 3, 2], 3))).toBeUndefined();
    expect(checkTaskStats(j, task(4), result(4, [2.5, 3], 3))).toMatch(/3 values, expected 3|hold 2 values/);
    expect(checkTaskStats(j, task(4), result(4, [4.5, 3, 2], 3))).toMatch(/iouSum 4.5 outside/);
    expect(checkTaskStats(j, task(4), result(4, [2, 3, 4], 3))).toMatch(/locCorrect 4/);
    expect(checkTaskStats(j, task(4), result(4, [2, 3, 2], 1))).toMatch(/correct 1 differs/);
    expect(checkTaskStats(j, task(4), result(4, undefined, 3))).toBe('no stats');
  });

  it('segmentation: a K×K matrix of counts covering every pixel', () => {
    const j = job('segmentation', 2, [1, 2, 2]);
    expect(checkTaskStats(j, task(1), result(1, [2, 1, 0, 1]))).toBeUndefined();
    expect(checkTaskStats(j, task(1), result(1, [2, 1, 0]))).toMatch(/2×2 confusion matrix has 4/);
    expect(checkTaskStats(j, task(1), result(1, [2, 1, 0, 2]))).toMatch(/counts 5 pixels, the shard has 4/);
    expect(checkTaskStats(j, task(1), result(1, [2.5, 0.5, 0, 1]))).toMatch(/is not a count/);
    expect(checkTaskStats(j, task(1), result(1, [2, 1, Number.NaN, 1]))).toMatch(/not a finite number/);
  });

  it('detection: 7 numbers per detection, images in order, classes, scores and boxes in range', () => {
    const j = job('detection', 10, [1, 96, 96]);
    const d = (image: number, cls = 3, score = 0.5, box = [0.5, 0.5, 0.2, 0.2]): number[] => [image, cls, score, ...box];
    expect(checkTaskStats(j, task(2), result(2, [...d(0), ...d(1), ...d(1)]))).toBeUndefined();
    expect(checkTaskStats(j, task(2), result(2, []))).toBeUndefined();
    expect(checkTaskStats(j, task(2), result(2, d(0).slice(0, 6)))).toMatch(/not a multiple of 7/);
    expect(checkTaskStats(j, task(2), result(2, d(2)))).toMatch(/image 2 is not in/);
    expect(checkTaskStats(j, task(2), result(2, [...d(1), ...d(0)]))).toMatch(/image 0 is not in \[1, 2\)/);
    expect(checkTaskStats(j, task(2), result(2, d(0, 10)))).toMatch(/class 10/);
    expect(checkTaskStats(j, task(2), result(2, d(0, 3, 1.5)))).toMatch(/score 1.5/);
    expect(checkTaskStats(j, task(2), result(2, d(0, 3, 0.5, [0.5, 0.5, 1.2, 0.1])))).toMatch(/box values/);
    const many = Array.from({ length: DETECTION_EVAL.maxDetections + 1 }, () => d(0)).flat();
    expect(checkTaskStats(j, task(2), result(2, many))).toMatch(/more than 20 detections/);
  });

  it('train results and classification results carry no stats', () => {
    const j = job('classification', 10, [1, 28, 28]);
    expect(checkTaskStats(j, task(2), result(2, [1]))).toMatch(/unexpected stats/);
    expect(checkTaskStats(j, task(2), result(2, undefined))).toBeUndefined();
  });
});

import { describe, expect, it } from 'vitest';
import { zooNames } from '@stride/cnn';
import { datasetChoices, modelChoices } from '../src/pages/submit.ts';
import { bestOf, latestPrimary, metricValue, modelsForTask, normalizeBest, primaryMetric, suggestedModel, taskOfDataset, taskOfJob } from '../src/ui/tasks.ts';
import type { Job } from '../src/ui/types.ts';

const zoo = zooNames();

const job = (dataset: string, extra: Partial<Job> = {}): Job =>
  ({ id: 'j', name: 'j', spec: { dataset, model: 'x' }, state: { status: 'running', step: 1, totalSteps: 2 }, submittedAt: '2026-01-01T00:00:00Z', ...extra }) as unknown as Job;

describe('tasks of datasets and jobs', () => {
  it('treats user dataset sources as classification', () => {
    const folder = { type: 'image-folder', path: 'pets', size: [32, 32], channels: 3 };
    expect(taskOfDataset(folder)).toBe('classification');
    expect(taskOfJob({ spec: { dataset: folder } } as unknown as Job)).toBe('classification');
  });

  it('derives the task from the dataset, a declared task winning; old records are classification', () => {
    expect(taskOfDataset('mnist')).toBe('classification');
    expect(taskOfDataset('fashion-mnist')).toBe('classification');
    expect(taskOfDataset('mnist-localization')).toBe('localization');
    expect(taskOfDataset('mnist-detection')).toBe('detection');
    expect(taskOfDataset('mnist-segmentation')).toBe('segmentation');
    expect(taskOfDataset('my-folder', 'detection')).toBe('detection');
    expect(taskOfDataset('mnist-detection', 'nonsense')).toBe('detection');
    expect(taskOfJob(job('mnist-segmentation'))).toBe('segmentation');
  });

  it('offers the models made for each task, from the zoo the API lists', () => {
    expect(modelsForTask('detection', zoo)).toEqual(['yolo']);
    expect(modelsForTask('segmentation', zoo)).toEqual(['unet']);
    expect(modelsForTask('localization', zoo)).toEqual(['localizer']);
    const classifiers = modelsForTask('classification', zoo);
    expect(classifiers).toContain('lenet5');
    expect(classifiers).toContain('resnet');
    for (const m of ['yolo', 'unet', 'localizer']) expect(classifiers).not.toContain(m);
    expect(classifiers.length + 3).toBe(zoo.length);
    expect(suggestedModel('classification', zoo)).toBe('lenet5');
    expect(suggestedModel('detection', zoo)).toBe('yolo');
    expect(suggestedModel('detection', ['lenet5'])).toBeUndefined();
  });

  it('leads with each task’s primary metric (the one the best checkpoint is chosen by)', () => {
    expect(primaryMetric('classification').key).toBe('testAccuracy');
    expect(primaryMetric('localization').key).toBe('locAccuracy');
    expect(primaryMetric('detection').key).toBe('mAP50');
    expect(primaryMetric('segmentation').key).toBe('mIoU');
  });
});

describe('best and latest metrics', () => {
  it('reads the best evaluation in the new form and the old classification one', () => {
    expect(normalizeBest({ step: 40, metric: 'mIoU', value: 0.61 })).toEqual({ step: 40, metric: 'mIoU', value: 0.61 });
    expect(normalizeBest({ step: 12, testAccuracy: 0.98 })).toEqual({ step: 12, metric: 'testAccuracy', value: 0.98 });
    expect(normalizeBest({ step: 12 })).toBeUndefined();
    expect(normalizeBest({ step: 12, metric: 'nonsense' as never, value: 1 })).toBeUndefined();
    expect(normalizeBest(undefined)).toBeUndefined();
  });

  it('finds a job’s best in its record, its final result or its result', () => {
    const done = job('mnist-detection', { state: { status: 'succeeded', result: { status: 'succeeded', steps: 9, totalSteps: 9, elapsedMs: 1, best: { step: 8, metric: 'mAP50', value: 0.4 } } } } as Partial<Job>);
    expect(bestOf(done)).toEqual({ step: 8, metric: 'mAP50', value: 0.4 });
    expect(bestOf(job('mnist', { best: { step: 3, testAccuracy: 0.9 } }))).toEqual({ step: 3, metric: 'testAccuracy', value: 0.9 });
    expect(bestOf(job('mnist'))).toBeUndefined();
  });

  it('shows the primary metric of the latest evaluation: stream, then progress, then result', () => {
    const seg = job('mnist-segmentation', { progress: { status: 'running', step: 3, totalSteps: 9, mIoU: 0.2, testAccuracy: 0.99 } } as Partial<Job>);
    expect(latestPrimary(seg)).toBe(0.2);
    expect(latestPrimary(seg, { mIoU: 0.3 })).toBe(0.3);
    // A localization job's list figure is its localization accuracy, not the class accuracy.
    expect(latestPrimary(job('mnist-localization', { progress: { status: 'running', step: 3, totalSteps: 9, testAccuracy: 0.9 } } as Partial<Job>))).toBeUndefined();
    expect(metricValue('mAP50', undefined, { mAP50: Number.NaN }, { mAP50: 0.5 })).toBe(0.5);
  });
});

describe('submit form choices', () => {
  const datasets = [
    { name: 'mnist', input: [1, 28, 28], numClasses: 10 },
    { name: 'mnist-detection', input: [1, 96, 96], numClasses: 10 },
    { name: 'images', task: 'classification' as const },
    'mnist-segmentation',
  ];

  it('labels datasets with their input size and knows their task', () => {
    expect(datasetChoices(datasets)).toEqual([
      { name: 'mnist', label: 'mnist (28×28)', task: 'classification' },
      { name: 'mnist-detection', label: 'mnist-detection (96×96)', task: 'detection' },
      { name: 'images', label: 'images', task: 'classification' },
      { name: 'mnist-segmentation', label: 'mnist-segmentation', task: 'segmentation' },
    ]);
  });

  it('switches the model to the suggested one when the task changes, keeps a fitting choice', () => {
    const det = modelChoices('detection', zoo, 'lenet5');
    expect(det.suited).toEqual(['yolo']);
    expect(det.selected).toBe('yolo');
    expect(det.others).toContain('lenet5');
    expect(det.suited.length + det.others.length).toBe(zoo.length);
    expect(modelChoices('classification', zoo, 'resnet').selected).toBe('resnet');
    expect(modelChoices('classification', zoo, 'unet').selected).toBe('lenet5');
  });
});

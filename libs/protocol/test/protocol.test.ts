import { describe, expect, it } from 'vitest';
import { datasetLabel, FINAL_STATES, hasTrainAccuracy, PRIMARY_METRIC, TASKS, type ImageFolderSource } from '../src/index.ts';

describe('protocol helpers', () => {
  it('labels a dataset by its name, or a source by its type and path', () => {
    const folder: ImageFolderSource = { type: 'image-folder', path: 'pets', size: [32, 32], channels: 3, skipBadFiles: false, testFraction: 0.2 };
    expect(datasetLabel('mnist')).toBe('mnist');
    expect(datasetLabel(folder)).toBe('image-folder:pets');
    expect(datasetLabel({ type: 'cifar10', path: 'cifar' })).toBe('cifar10:cifar');
  });

  it('names a primary metric for every task, and a training accuracy for the tasks that have one', () => {
    expect(Object.keys(PRIMARY_METRIC).sort()).toEqual([...TASKS].sort());
    expect(TASKS.filter(hasTrainAccuracy)).toEqual(['classification', 'localization']);
  });

  it('counts succeeded, failed and cancelled as final, queued, running and paused not', () => {
    expect([...FINAL_STATES].sort()).toEqual(['cancelled', 'failed', 'succeeded']);
    for (const status of ['queued', 'running', 'paused'] as const) expect(FINAL_STATES.has(status)).toBe(false);
  });
});

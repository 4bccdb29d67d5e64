// `stride train --local` on the generated vision datasets: the task follows the dataset, the task
// metrics are printed and in the JSON result, and inconsistent flags exit with code 2.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { getZooSpec } from '@stride/cnn';
import { describe, expect, it } from 'vitest';
import { run, tempDirPerTest } from './run-cli.ts';

const tmp = tempDirPerTest('stride-cli-vision-');

describe('stride train on the vision datasets', () => {
  it.each([
    [['train', '--local', '--model', 'lenet5', '--dataset', 'mnist-detection'], /model: must output a YOLO grid \[15, S, S\].*zoo models for detection: yolo/],
    [['train', '--local', '--model', 'lenet5', '--train-samples', '100'], /trainSamples: only generated datasets/],
    [['train', '--local', '--model', 'yolo', '--dataset', 'mnist-detection', '--test-samples', '0'], /--test-samples/],
    [['train', '--local', '--model', 'yolo', '--dataset', 'mnist-pose'], /Allowed choices are .*mnist-detection/],
  ])('%j exits with code 2 and says why', async (args, message) => {
    const { code, stderr } = await run(...args);
    expect(code).toBe(2);
    expect(stderr).toMatch(message);
  });

  it('trains a segmentation model and reports mIoU and pixel accuracy', async () => {
    const model = join(tmp.path, 'unet.json');
    await writeFile(model, JSON.stringify(getZooSpec('unet', { height: 96, width: 96, numClasses: 11, baseChannels: 2, depth: 1 })));
    const out = join(tmp.path, 'out');
    const trained = await run('train', '--local', '--model', model, '--dataset', 'mnist-segmentation', '--train-samples', '16', '--test-samples', '6', '--steps', '2', '--batch-size', '4', '--shards', '2', '--eval-shards', '2', '--threads', '1', '--out', out, '--job-id', 'seg', '--json');
    expect(trained.code, trained.stderr).toBe(0);
    const result = JSON.parse(trained.stdout.trim());
    expect(result).toMatchObject({ status: 'succeeded', task: 'segmentation', steps: 2, spec: { task: 'segmentation', trainSamples: 16, testSamples: 6 } });
    for (const key of ['mIoU', 'pixelAccuracy'] as const) expect(result[key]).toBeGreaterThanOrEqual(0);
    expect(result.testAccuracy).toBeUndefined();
    expect(result.best).toMatchObject({ step: 2, metric: 'mIoU', value: result.mIoU });
    expect(trained.stderr).toMatch(/eval at step 2 .*: mIoU \d+\.\d\d%, pixel accuracy \d+\.\d\d%/);
    expect(trained.stderr).not.toMatch(/acc \d/);

    const inspected = await run('checkpoint', 'inspect', join(out, 'jobs', 'seg', 'checkpoints', 'step-00000002.ckpt'));
    expect(inspected.stdout).toMatch(/best +step 2: mIoU \d/);
  }, 120_000);
});

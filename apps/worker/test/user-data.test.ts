// An image-folder job with augmentation through Redis: the coordinator side reads the PNG/JPEG
// files and augments the pixels, two worker processes that never see the files compute the
// shards, and the trained bytes equal the local executor's.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encode as encodeJpeg } from 'jpeg-js';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { loadDataset } from '@stride/data';
import { LocalExecutor, train, type JobSpecInput } from '@stride/engine';
import { useTwoWorkerStack } from './stack.ts';

/** 3 classes of real MNIST digits (0, 1, 2), each tinted its own colour, as RGB PNG and JPEG files. */
async function writeFolder(dir: string, perClass: number): Promise<void> {
  const mnist = await loadDataset('mnist', 'test');
  const tints = [
    [255, 60, 60],
    [60, 255, 60],
    [60, 60, 255],
  ];
  for (let digit = 0; digit < 3; digit++) {
    await mkdir(join(dir, `class-${digit}`), { recursive: true });
    for (let i = 0, n = 0; i < mnist.count && n < perClass; i++) {
      if (mnist.labels[i] !== digit) continue;
      const rgba = Buffer.alloc(784 * 4);
      for (let p = 0; p < 784; p++) {
        for (let c = 0; c < 3; c++) rgba[4 * p + c] = Math.round((mnist.images[i * 784 + p] * tints[digit][c]) / 255);
        rgba[4 * p + 3] = 255;
      }
      let bytes: Buffer;
      if (n % 2) {
        bytes = encodeJpeg({ width: 28, height: 28, data: rgba }, 90).data;
      } else {
        const png = new PNG({ width: 28, height: 28 });
        png.data = rgba;
        bytes = PNG.sync.write(png);
      }
      await writeFile(join(dir, `class-${digit}`, `${n}.${n % 2 ? 'jpg' : 'png'}`), bytes);
      n++;
    }
  }
}

const spec: JobSpecInput = {
  model: {
    input: [3, 24, 24],
    layers: [
      { type: 'conv2d', outChannels: 4, kernelSize: 3, padding: 1 },
      { type: 'relu' },
      { type: 'maxPool2d', kernelSize: 2 },
      { type: 'flatten' },
      { type: 'linear', outFeatures: 3 },
    ],
  },
  dataset: { type: 'image-folder', path: 'tinted', size: 24 },
  augment: { crop: 3, flip: true },
  steps: 4,
  batchSize: 18,
  shards: 3,
  evalEvery: 4,
  evalShards: 3,
  seed: 5,
  optimizer: { type: 'adam', lr: 0.01 },
  schedule: { type: 'constant' },
};

describe('an image-folder job through Redis with two worker processes', () => {
  const stack = useTwoWorkerStack('userdata', (dir) => writeFolder(join(dir, 'datasets', 'tinted'), 12));

  it('trains to the bytes of local training', async () => {
    const { executor, dataDir } = stack;
    const local = new LocalExecutor({ threads: 2 });
    const reference = await train(spec, { executor: local, dataDir, jobId: 'folder-local', resume: false }).finally(() => local.close());
    const workers = new Set<string>();
    const runShards = executor.runShards.bind(executor);
    executor.runShards = async (...args) => {
      const results = await runShards(...args);
      for (const r of results) workers.add(r.workerId ?? '?');
      return results;
    };
    const viaRedis = await train(spec, { executor, dataDir, jobId: 'folder-redis', resume: false }).finally(() => (executor.runShards = runShards));
    expect(viaRedis.status).toBe('succeeded');
    expect(viaRedis.paramsSha256).toBe(reference.paramsSha256);
    expect(viaRedis.testAccuracy).toBe(reference.testAccuracy);
    expect(workers.size).toBe(2);
  }, 300_000);
});

// Jobs on the user's own data: image folders and CIFAR-10 binary files, with augmentation.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encode as encodeJpeg } from 'jpeg-js';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDataset, type Dataset } from '@stride/data';
import { InlineExecutor, JobSpecError, LocalExecutor, normalizeJobSpec, shardSamples, StepPlanner, train, type JobSpecInput } from '../src/index.ts';

let root: string;
let datasetsDir: string;
let mnist: Dataset;

const DIGITS: Record<string, number> = { one: 1, seven: 7, zero: 0 };

function png(grey: Uint8Array): Buffer {
  const p = new PNG({ width: 28, height: 28, colorType: 0, inputColorType: 0, inputHasAlpha: false });
  p.data = Buffer.from(grey);
  return PNG.sync.write(p, { colorType: 0, inputColorType: 0, inputHasAlpha: false });
}

function jpeg(grey: Uint8Array): Buffer {
  const rgba = Buffer.alloc(28 * 28 * 4);
  for (let i = 0; i < 784; i++) {
    rgba.fill(grey[i], 4 * i, 4 * i + 3);
    rgba[4 * i + 3] = 255;
  }
  return encodeJpeg({ width: 28, height: 28, data: rgba }, 90).data;
}

/** root/<class>/NNN.png|jpg: real MNIST digits (train split), half PNG and half JPEG, plus one truncated file. */
async function writeFolder(dir: string, perClass: number): Promise<void> {
  for (const [name, digit] of Object.entries(DIGITS)) {
    await mkdir(join(dir, name), { recursive: true });
    let n = 0;
    for (let i = 0; i < mnist.count && n < perClass; i++) {
      if (mnist.labels[i] !== digit) continue;
      const grey = mnist.images.subarray(i * 784, (i + 1) * 784);
      await writeFile(join(dir, name, `${String(n).padStart(3, '0')}.${n % 2 ? 'jpg' : 'png'}`), n % 2 ? jpeg(grey) : png(grey));
      n++;
    }
  }
  const whole = await readFile(join(dir, 'seven', '000.png'));
  await writeFile(join(dir, 'seven', 'broken.png'), whole.subarray(0, 40));
}

const smallModel = (channels: number, side: number, classes: number) => ({
  input: [channels, side, side] as [number, number, number],
  layers: [
    { type: 'conv2d' as const, outChannels: 6, kernelSize: 3, padding: 1 },
    { type: 'relu' as const },
    { type: 'maxPool2d' as const, kernelSize: 2 },
    { type: 'flatten' as const },
    { type: 'linear' as const, outFeatures: classes },
  ],
});

const folderSpec: JobSpecInput = {
  model: smallModel(1, 16, 3),
  dataset: { type: 'image-folder', path: 'digits', size: 16, channels: 1, skipBadFiles: true, testFraction: 0.25 },
  augment: { crop: 2, flip: false },
  steps: 24,
  batchSize: 24,
  shards: 3,
  seed: 3,
  evalEvery: 24,
  evalShards: 2,
  optimizer: { type: 'adam', lr: 0.01 },
  schedule: { type: 'constant' },
};

beforeAll(async () => {
  mnist = await loadDataset('mnist', 'train');
  root = await mkdtemp(join(tmpdir(), 'stride-userdata-'));
  datasetsDir = join(root, 'datasets');
  await writeFolder(join(datasetsDir, 'digits'), 40);
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('job specs with the user’s own data', () => {
  it('fills in an image folder’s defaults and keeps augmentation', () => {
    const spec = normalizeJobSpec({ model: smallModel(3, 32, 4), dataset: { type: 'image-folder', path: 'pets/v1' }, augment: { flip: true } });
    expect(spec.dataset).toEqual({ type: 'image-folder', path: 'pets/v1', size: [32, 32], channels: 3, skipBadFiles: false, testFraction: 0.2 });
    expect(spec.augment).toEqual({ crop: 0, flip: true });
    expect(spec.name).toBe('model-v1');
    expect(normalizeJobSpec(spec)).toEqual(spec); // a normalised spec normalises to itself
    expect(normalizeJobSpec({ model: 'resnet', dataset: { type: 'cifar10', path: 'cifar' } }).dataset).toEqual({ type: 'cifar10', path: 'cifar' });
  });

  it.each([
    [{ type: 'image-folder', path: '/etc' }, 'dataset.path', /relative to the datasets directory/],
    [{ type: 'image-folder', path: 'a/../../etc' }, 'dataset.path', /".." is not allowed/],
    [{ type: 'image-folder', path: '' }, 'dataset.path', /non-empty string/],
    [{ type: 'image-folder', path: 'x', size: [0, 4] }, 'dataset.size[0]', /integer in \[1, 1024\]/],
    [{ type: 'image-folder', path: 'x', channels: 2 }, 'dataset.channels', /must be 1 \(grey\) or 3/],
    [{ type: 'image-folder', path: 'x', testFraction: 1 }, 'dataset.testFraction', /\(0, 1\)/],
    [{ type: 'image-folder', path: 'x', colour: true }, 'dataset.colour', /unknown field/],
    [{ type: 'tfrecord', path: 'x' }, 'dataset.type', /image-folder, cifar10/],
    [{ type: 'cifar10', path: 'x', size: 32 }, 'dataset.size', /unknown field/],
  ])('rejects dataset %j at %s', (dataset, path, message) => {
    let err: unknown;
    try {
      normalizeJobSpec({ model: smallModel(3, 32, 4), dataset });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(JobSpecError);
    expect((err as JobSpecError).path).toBe(path);
    expect((err as JobSpecError).detail).toMatch(message);
  });

  it('checks the model’s input against the folder’s size and channels, and augmentation against the task', () => {
    expect(() => normalizeJobSpec({ model: smallModel(3, 32, 4), dataset: { type: 'image-folder', path: 'x', channels: 1 } })).toThrow(/model.input: must be \[1, 32, 32\]/);
    expect(() => normalizeJobSpec({ model: smallModel(3, 32, 1), dataset: { type: 'image-folder', path: 'x' } })).toThrow(/one score per class \(at least 2\)/);
    expect(() => normalizeJobSpec({ model: smallModel(3, 32, 10), dataset: { type: 'cifar10', path: 'x' }, augment: { crop: 32 } })).toThrow(/augment.crop: must be an integer in \[0, 31\]/);
    expect(() => normalizeJobSpec({ model: 'yolo', dataset: 'mnist-detection', augment: { flip: true } })).toThrow(/augment: only classification jobs/);
    expect(() => normalizeJobSpec({ model: smallModel(3, 32, 10), dataset: { type: 'cifar10', path: 'x' }, augment: { rotate: 5 } })).toThrow(/augment.rotate: unknown field/);
  });
});

describe('augmented shards', () => {
  it('carry the same pixels whatever the number of shards', async () => {
    const ds = { ...mnist, count: 200 };
    const whole = new StepPlanner(200, 48, 1, 9);
    const split = new StepPlanner(200, 48, 5, 9);
    for (const step of [0, 5]) {
      const a = whole.plan(step);
      const b = split.plan(step);
      const one = shardSamples(ds, a, a.shards[0], { crop: 3, flip: true, seed: 9 }).images;
      const parts = b.shards.map((sh) => shardSamples(ds, b, sh, { crop: 3, flip: true, seed: 9 }).images);
      expect(Buffer.compare(Buffer.from(one), Buffer.concat(parts.map((p) => Buffer.from(p))))).toBe(0);
      // Augmentation did change them.
      const plain = shardSamples(ds, a, a.shards[0]).images;
      expect(Buffer.compare(Buffer.from(one), Buffer.from(plain))).not.toBe(0);
    }
  });
});

describe('training on an image folder', () => {
  it('trains, skips the bad file and reports it, and matches bit for bit on worker threads', async () => {
    const dataDir = join(root, 'out');
    const logs: string[] = [];
    const losses: number[] = [];
    const inline = new InlineExecutor();
    const result = await train(folderSpec, { executor: inline, dataDir, datasetsDir, jobId: 'folder', on: { log: (e) => logs.push(`${e.level}: ${e.message}`), step: (e) => losses.push(e.loss) } }).finally(() => inline.close());
    expect(result.status).toBe('succeeded');
    expect(result.skippedFiles?.count).toBe(1);
    expect(result.skippedFiles?.files[0].path).toBe(join(datasetsDir, 'digits', 'seven', 'broken.png'));
    expect(logs.join('\n')).toMatch(/warn: dataset image-folder:digits: skipped 1 unreadable file \(skipBadFiles\): .*broken\.png \(truncated PNG/);
    // Three digit classes: chance is 1/3.
    const early = losses.slice(0, 4).reduce((a, b) => a + b) / 4;
    const late = losses.slice(-4).reduce((a, b) => a + b) / 4;
    expect(late).toBeLessThan(early * 0.7);
    expect(result.testAccuracy).toBeGreaterThan(0.7);
    // The checkpoint names the classes (sorted folder names).
    const meta = JSON.parse(await readFile(join(dataDir, 'jobs', 'folder', 'result.json'), 'utf8'));
    expect(meta.skippedFiles.count).toBe(1);

    const local = new LocalExecutor({ threads: 2 });
    const threaded = await train(folderSpec, { executor: local, dataDir, datasetsDir, jobId: 'folder-threads' }).finally(() => local.close());
    expect(threaded.paramsSha256).toBe(result.paramsSha256);
  });

  it('fails on the first bad file, naming it, without skipBadFiles', async () => {
    const inline = new InlineExecutor();
    const run = train({ ...folderSpec, dataset: { type: 'image-folder', path: 'digits', size: 16, channels: 1 } }, { executor: inline, dataDir: join(root, 'out'), datasetsDir, jobId: 'strict' }).finally(() => inline.close());
    await expect(run).rejects.toThrow(/digits\/seven\/broken\.png: truncated PNG/);
  });

  it('checks the model’s class count once the folder is listed', async () => {
    const inline = new InlineExecutor();
    const run = train({ ...folderSpec, model: smallModel(1, 16, 5) }, { executor: inline, dataDir: join(root, 'out'), datasetsDir, jobId: 'classes' }).finally(() => inline.close());
    await expect(run).rejects.toThrow(/model: must output 3 class scores per sample for image-folder:digits \(classes one, seven, zero\)/);
  });

  it('resolves a zoo model for the folder’s classes', async () => {
    const inline = new InlineExecutor();
    const result = await train({ ...folderSpec, model: 'lenet5', dataset: { type: 'image-folder', path: 'digits', size: 28, channels: 1, skipBadFiles: true }, steps: 2 }, { executor: inline, dataDir: join(root, 'out'), datasetsDir, jobId: 'zoo' }).finally(() => inline.close());
    expect(result.steps).toBe(2);
  });

  it('refuses a dataset path that is not there', async () => {
    const inline = new InlineExecutor();
    const run = train({ ...folderSpec, dataset: { type: 'image-folder', path: 'nothing-here', size: 16, channels: 1 } }, { executor: inline, dataDir: join(root, 'out'), datasetsDir, jobId: 'missing' }).finally(() => inline.close());
    await expect(run).rejects.toThrow(`${join(datasetsDir, 'nothing-here')}: image folder does not exist`);
  });
});

describe('training on CIFAR-10 files', () => {
  it('trains a few steps on fake batch files', async () => {
    const dir = join(datasetsDir, 'cifar', 'cifar-10-batches-bin');
    await mkdir(dir, { recursive: true });
    // Record r: label r mod 10, the digit's image (scaled up to 32×32 in the red plane) as pixels.
    const names = ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin', 'test_batch.bin'];
    for (let f = 0; f < names.length; f++) {
      const bytes = new Uint8Array(20 * 3073);
      for (let r = 0; r < 20; r++) {
        const i = f * 20 + r;
        bytes[r * 3073] = mnist.labels[i];
        for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) bytes[r * 3073 + 1 + (y + 2) * 32 + x + 2] = mnist.images[i * 784 + y * 28 + x];
      }
      await writeFile(join(dir, names[f]), bytes);
    }
    const inline = new InlineExecutor();
    const result = await train(
      { model: smallModel(3, 32, 10), dataset: { type: 'cifar10', path: 'cifar' }, augment: { crop: 4, flip: true }, steps: 4, batchSize: 20, shards: 2, evalShards: 2 },
      { executor: inline, dataDir: join(root, 'out'), datasetsDir, jobId: 'cifar' },
    ).finally(() => inline.close());
    expect(result).toMatchObject({ status: 'succeeded', steps: 4 });
    expect(result.skippedFiles).toBeUndefined();
    expect(result.testAccuracy).toBeGreaterThanOrEqual(0);
  });
});

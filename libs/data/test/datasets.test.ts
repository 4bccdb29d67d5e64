import { mkdtemp, mkdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasetError, FASHION_MNIST_CLASSES, FASHION_MNIST_MEAN, FASHION_MNIST_STD, MNIST_MEAN, MNIST_STD, loadDataset, loadFashionMnist, prepareFashionMnist } from '../src/index.ts';
import type { Dataset } from '../src/index.ts';

function labelCounts(ds: Dataset): number[] {
  const counts = new Array<number>(ds.numClasses).fill(0);
  for (const l of ds.labels) counts[l]++;
  return counts;
}

/** Mean and population std of x/255 over every pixel. */
function pixelStats(images: Uint8Array): { mean: number; std: number } {
  const hist = new Float64Array(256);
  for (const v of images) hist[v]++;
  let sum = 0;
  let sq = 0;
  for (let v = 0; v < 256; v++) {
    sum += (hist[v] * v) / 255;
    sq += hist[v] * (v / 255) ** 2;
  }
  const mean = sum / images.length;
  return { mean, std: Math.sqrt(sq / images.length - mean * mean) };
}

describe('MNIST', () => {
  it('loads 60 000 train images whose first label is 5', async () => {
    const ds = await loadDataset('mnist', 'train');
    expect([ds.count, ds.channels, ds.height, ds.width, ds.numClasses]).toEqual([60_000, 1, 28, 28, 10]);
    expect(ds.images.length).toBe(60_000 * 784);
    expect(ds.labels.length).toBe(60_000);
    expect(Array.from(ds.labels.subarray(0, 3))).toEqual([5, 0, 4]);
    expect([ds.mean, ds.std]).toEqual([[MNIST_MEAN], [MNIST_STD]]);
    const stats = pixelStats(ds.images);
    expect(Math.abs(stats.mean - MNIST_MEAN)).toBeLessThan(1e-4);
    expect(Math.abs(stats.std - MNIST_STD)).toBeLessThan(1e-4);
  });

  it('loads 10 000 test images whose first label is 7, once per process', async () => {
    const ds = await loadDataset('mnist', 'test');
    expect(ds.count).toBe(10_000);
    expect(Array.from(ds.labels.subarray(0, 3))).toEqual([7, 2, 1]);
    expect(await loadDataset('mnist', 'test')).toBe(ds);
  });

  it('rejects an unknown dataset name or split', async () => {
    await expect(loadDataset('cifar' as 'mnist', 'train')).rejects.toThrow(DatasetError);
    await expect(loadDataset('cifar' as 'mnist', 'train')).rejects.toThrow(/cifar: unknown dataset; expected one of mnist, fashion-mnist/);
    await expect(loadDataset('mnist', 'val' as 'train')).rejects.toThrow(/unknown split "val"/);
  });
});

describe('Fashion-MNIST', () => {
  // The first call may convert the package's ~150 MB of JSON (about 5 s); later runs read the cache.
  it('splits 6000/1000 per class, interleaved by class, with the documented statistics', async () => {
    const train = await loadDataset('fashion-mnist', 'train');
    const test = await loadDataset('fashion-mnist', 'test');
    expect([train.count, test.count]).toEqual([60_000, 10_000]);
    expect(labelCounts(train)).toEqual(new Array(10).fill(6000));
    expect(labelCounts(test)).toEqual(new Array(10).fill(1000));
    expect(Array.from(train.labels.subarray(0, 12))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    expect(train.classNames).toEqual(FASHION_MNIST_CLASSES);
    expect(train.classNames[9]).toBe('Ankle boot');
    expect(train.images.length).toBe(60_000 * 784);
    const stats = pixelStats(train.images);
    expect(Math.abs(stats.mean - FASHION_MNIST_MEAN)).toBeLessThan(1e-4);
    expect(Math.abs(stats.std - FASHION_MNIST_STD)).toBeLessThan(1e-4);
  });

  it('keeps the JSON order: train sample 0 is the first image of 0.json', async () => {
    const train = await loadDataset('fashion-mnist', 'train');
    // The first 7 pixels of 0.json's first image, as in the package file.
    expect(Array.from(train.images.subarray(0, 9))).toEqual([0, 0, 0, 0, 0, 0, 0, 9, 8]);
  });
});

describe('Fashion-MNIST cache and source validation', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'stride-data-'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('builds a cache, reuses it, and rebuilds it when a file is corrupt or truncated', async () => {
    const cacheDir = join(root, 'cache');
    const first = await prepareFashionMnist({ cacheDir });
    expect(first.rebuilt).toMatch(/no readable manifest\.json/);
    expect((await prepareFashionMnist({ cacheDir })).rebuilt).toBeNull();

    const labels = join(first.dir, 't10k-labels-idx1-ubyte');
    const bytes = await readFile(labels);
    bytes[100] ^= 1;
    await writeFile(labels, bytes);
    expect((await prepareFashionMnist({ cacheDir })).rebuilt).toMatch(/t10k-labels-idx1-ubyte does not match its SHA-256/);

    await truncate(join(first.dir, 'train-images-idx3-ubyte'), 1000);
    expect((await prepareFashionMnist({ cacheDir })).rebuilt).toMatch(/train-images-idx3-ubyte has 1000 bytes, manifest says 47040016/);

    const test = await loadFashionMnist('test', { cacheDir });
    expect(test.count).toBe(10_000);
    expect(labelCounts(test)).toEqual(new Array(10).fill(1000));
  });

  /** A fake source directory whose 0.json is `zero` and 1..9.json are empty lists. */
  async function fakeSource(name: string, zero: unknown): Promise<string> {
    const dir = join(root, name);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, '0.json'), typeof zero === 'string' ? zero : JSON.stringify(zero));
    for (let c = 1; c < 10; c++) await writeFile(join(dir, `${c}.json`), '{"data":[]}');
    return dir;
  }
  const image = (fill = 0): number[] => new Array(784).fill(fill);

  it.each([
    ['a value above 255', { data: [image(), [...image().slice(0, 5), 256, ...image().slice(6)]] }, /0\.json: image at index 1, pixel 5: 256 is not an integer in 0\.\.255/],
    ['a fractional value', { data: [[0.5, ...image().slice(1)]] }, /image at index 0, pixel 0: 0\.5 is not/],
    ['a string value', { data: [[...image().slice(1), '7']] }, /image at index 0, pixel 783: "7" is not/],
    ['an image of 783 values', { data: [image(), [], image().slice(1)] }, /image at index 2 has 783 values, expected 784/],
    ['an entry that is not an array', { data: [image(), 5] }, /entry 1 is not an array/],
    ['no data array', { images: [] }, /expected an object \{"data": number\[\]\[\]\}/],
    ['broken JSON', '{"data": [[1, 2', /0\.json: cannot read JSON/],
    ['too few images', { data: [image(), [], image(3)] }, /0\.json: expected 7000 images, found 2/],
  ])('rejects a source with %s, naming the file and index', async (title, zero, message) => {
    const sourceDir = await fakeSource(title.replace(/\W+/g, '-'), zero);
    const err = await prepareFashionMnist({ cacheDir: join(root, 'bad-cache'), sourceDir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetError);
    expect((err as Error).message).toContain(join(sourceDir, '0.json'));
    expect((err as Error).message).toMatch(message);
  });
});

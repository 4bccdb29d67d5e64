import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasetError, loadDataset, loadImageFolder, resizePlanes, toPlanes, type Dataset } from '../src/index.ts';
import { jpegBytes, pngBomb, pngBytes } from './image-fixtures.ts';

let root: string;
let mnist: Dataset;

/** MNIST test digits of `digit`, the `skip`-th onwards, `n` of them, as 28×28 grey arrays. */
function digits(digit: number, n: number, skip = 0): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0, seen = 0; i < mnist.count && out.length < n; i++) {
    if (mnist.labels[i] !== digit) continue;
    if (seen++ >= skip) out.push(mnist.images.subarray(i * 784, (i + 1) * 784));
  }
  return out;
}

/** A grey digit as RGB: tinted per class, so colour carries information too. */
function tinted(grey: Uint8Array, tint: [number, number, number]): Uint8Array {
  const rgb = new Uint8Array(784 * 3);
  for (let p = 0; p < 784; p++) for (let c = 0; c < 3; c++) rgb[3 * p + c] = Math.round((grey[p] * tint[c]) / 255);
  return rgb;
}

const CLASSES: Record<string, { digit: number; tint: [number, number, number] }> = {
  one: { digit: 1, tint: [255, 80, 80] },
  seven: { digit: 7, tint: [80, 255, 80] },
  zero: { digit: 0, tint: [80, 80, 255] },
};

/** Writes class folders: even files PNG (grey), odd files JPEG (tinted RGB). */
async function writeClasses(dir: string, perClass: number, skip = 0): Promise<void> {
  for (const [name, { digit, tint }] of Object.entries(CLASSES)) {
    await mkdir(join(dir, name), { recursive: true });
    const imgs = digits(digit, perClass, skip);
    for (let i = 0; i < imgs.length; i++) {
      const file = i % 2 === 0 ? `img${String(i).padStart(3, '0')}.png` : `img${String(i).padStart(3, '0')}.jpg`;
      await writeFile(join(dir, name, file), i % 2 === 0 ? pngBytes(28, 28, 1, imgs[i]) : jpegBytes(28, 28, tinted(imgs[i], tint), 92));
    }
  }
}

async function rejection(p: Promise<unknown>): Promise<DatasetError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DatasetError);
  return err as DatasetError;
}

beforeAll(async () => {
  mnist = await loadDataset('mnist', 'test');
  root = await mkdtemp(join(tmpdir(), 'stride-imgfolder-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('loadImageFolder: train/ and test/ folders', () => {
  it('loads sorted classes, converts and resizes every image, measures the train statistics', async () => {
    const dir = join(root, 'split');
    await writeClasses(join(dir, 'train'), 6);
    await writeClasses(join(dir, 'test'), 2, 6);
    await writeFile(join(dir, 'train', 'one', 'notes.txt'), 'not an image');
    await writeFile(join(dir, 'train', 'one', '.DS_Store'), 'hidden');
    const ds = await loadImageFolder(dir, { size: [14, 20], channels: 1 });
    expect(ds.layout).toBe('train-test-folders');
    expect(ds.ignored).toBe(1);
    expect(ds.skipped).toEqual({ count: 0, files: [] });
    const { train, test } = ds;
    expect([train.name, train.count, train.channels, train.height, train.width, train.numClasses]).toEqual(['image-folder', 18, 1, 14, 20, 3]);
    expect(train.classNames).toEqual(['one', 'seven', 'zero']);
    expect(Array.from(train.labels)).toEqual([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2]);
    expect(test.count).toBe(6);
    expect(test.classNames).toEqual(train.classNames);
    // Sample 6 is seven/img000.png: the grey digit, resized exactly as resizePlanes does.
    const seven = digits(7, 1)[0];
    expect(Array.from(train.images.subarray(6 * 280, 7 * 280))).toEqual(Array.from(resizePlanes(seven, 1, 28, 28, 14, 20)));
    // Sample 7 is seven/img001.jpg: the tinted digit, decoded, to grey, resized: close to the same from the source pixels.
    const fromSource = resizePlanes(toPlanes({ format: 'jpeg', width: 28, height: 28, channels: 3, data: tinted(digits(7, 2)[1], CLASSES.seven.tint) }, 1), 1, 28, 28, 14, 20);
    let maxDiff = 0;
    for (let p = 0; p < 280; p++) maxDiff = Math.max(maxDiff, Math.abs(train.images[7 * 280 + p] - fromSource[p]));
    expect(maxDiff).toBeLessThan(40);
    // Train statistics: the measured mean of x/255.
    let sum = 0;
    for (const v of train.images) sum += v / 255;
    expect(train.mean[0]).toBeCloseTo(sum / train.images.length, 3);
    expect(train.std[0]).toBeGreaterThan(0.1);
    expect(test.mean).toEqual(train.mean);
  });

  it('makes three channels from grey and colour files', async () => {
    const ds = await loadImageFolder(join(root, 'split'), { size: [28, 28], channels: 3 });
    const { train } = ds;
    expect(train.images.length).toBe(18 * 3 * 784);
    // A grey PNG: three equal planes. A red-tinted JPEG: red plane brighter than blue.
    const s0 = train.images.subarray(0, 3 * 784);
    expect(Array.from(s0.subarray(0, 784))).toEqual(Array.from(s0.subarray(784 * 2)));
    const s1 = train.images.subarray(3 * 784, 6 * 784);
    const plane = (k: number) => s1.subarray(k * 784, (k + 1) * 784).reduce((a, b) => a + b, 0);
    expect(plane(0)).toBeGreaterThan(2 * plane(2));
    expect(train.mean.length).toBe(3);
  });

  it('rejects a test class that train lacks, and a missing test folder', async () => {
    const dir = join(root, 'unknown-class');
    await writeClasses(join(dir, 'train'), 2);
    await writeClasses(join(dir, 'test'), 1);
    await mkdir(join(dir, 'test', 'eight'));
    const err = await rejection(loadImageFolder(dir));
    expect(err.source).toBe(join(dir, 'test', 'eight'));
    expect(err.message).toMatch(/class "eight" is not in/);
    await rm(join(dir, 'test'), { recursive: true });
    expect((await rejection(loadImageFolder(dir))).source).toBe(join(dir, 'test'));
  });
});

describe('loadImageFolder: one folder, split by the loader', () => {
  it('splits each class by testFraction, the same way every time', async () => {
    const dir = join(root, 'pool');
    await writeClasses(dir, 10);
    const a = await loadImageFolder(dir, { size: [8, 8], testFraction: 0.3 });
    expect(a.layout).toBe('single-folder');
    expect([a.train.count, a.test.count]).toEqual([21, 9]);
    expect(Array.from(a.test.labels)).toEqual([0, 0, 0, 1, 1, 1, 2, 2, 2]);
    // Same folder, same options: the cached result. Other size: loaded again, same split.
    expect(await loadImageFolder(dir, { size: [8, 8], testFraction: 0.3 })).toBe(a);
    const b = await loadImageFolder(dir, { size: [28, 28], channels: 1, testFraction: 0.3 });
    expect(b).not.toBe(a);
    // Every test image of b is one of the class's files and none is also in train.
    const trainSet = new Set<string>();
    for (let i = 0; i < b.train.count; i++) trainSet.add(Buffer.from(b.train.images.subarray(i * 784, (i + 1) * 784)).toString('base64'));
    for (let i = 0; i < b.test.count; i++) expect(trainSet.has(Buffer.from(b.test.images.subarray(i * 784, (i + 1) * 784)).toString('base64'))).toBe(false);
  });

  it('reads the folder again when a file changes', async () => {
    const dir = join(root, 'changing');
    await writeClasses(dir, 4);
    const a = await loadImageFolder(dir, { size: [8, 8] });
    await writeFile(join(dir, 'zero', 'extra.png'), pngBytes(28, 28, 1, digits(0, 1, 20)[0]));
    const b = await loadImageFolder(dir, { size: [8, 8] });
    expect(b).not.toBe(a);
    expect(b.train.count + b.test.count).toBe(a.train.count + a.test.count + 1);
  });

  it('needs two classes with files', async () => {
    const dir = join(root, 'one-class');
    await mkdir(join(dir, 'only'), { recursive: true });
    await writeFile(join(dir, 'only', 'a.png'), pngBytes(2, 2, 1, [0, 1, 2, 3]));
    expect((await rejection(loadImageFolder(dir))).message).toMatch(/needs at least 2 class sub-folders, found 1/);
    await mkdir(join(dir, 'empty'));
    const err = await rejection(loadImageFolder(dir));
    expect(err.source).toBe(join(dir, 'empty'));
    expect(err.message).toMatch(/holds no .png/);
    expect((await rejection(loadImageFolder(join(root, 'does-not-exist')))).message).toMatch(/does not exist/);
  });
});

describe('loadImageFolder: bad files', () => {
  let dir: string;
  beforeAll(async () => {
    dir = join(root, 'bad');
    await writeClasses(dir, 8);
    const good = await readFile(join(dir, 'seven', 'img002.png'));
    await writeFile(join(dir, 'seven', 'img900-truncated.png'), good.subarray(0, good.length >> 1));
    await writeFile(join(dir, 'zero', 'img901-text.jpg'), 'this is not a JPEG');
    await writeFile(join(dir, 'one', 'img902-bomb.png'), pngBomb(50_000));
  });

  it('fails on the first bad file, naming its path', async () => {
    const err = await rejection(loadImageFolder(dir, { size: [10, 10] }));
    expect([join(dir, 'seven', 'img900-truncated.png'), join(dir, 'zero', 'img901-text.jpg'), join(dir, 'one', 'img902-bomb.png')]).toContain(err.source);
    expect(err.message).toContain(err.source);
  });

  it('with skipBadFiles, leaves them out and reports how many and which', async () => {
    const ds = await loadImageFolder(dir, { size: [10, 10], skipBadFiles: true, testFraction: 0.25 });
    expect(ds.skipped.count).toBe(3);
    const byPath = Object.fromEntries(ds.skipped.files.map((f) => [f.path, f.reason]));
    expect(byPath[join(dir, 'seven', 'img900-truncated.png')]).toMatch(/truncated PNG|corrupt/);
    expect(byPath[join(dir, 'zero', 'img901-text.jpg')]).toMatch(/not a PNG or JPEG/);
    expect(byPath[join(dir, 'one', 'img902-bomb.png')]).toMatch(/declares 50000×50000 pixels.*refused before decoding/);
    // 9 files per class listed, 3 unreadable: 24 images remain across the two splits.
    expect(ds.train.count + ds.test.count).toBe(24);
    expect(ds.train.labels.length).toBe(ds.train.count);
    expect(ds.train.images.length).toBe(ds.train.count * 3 * 100);
  });
});

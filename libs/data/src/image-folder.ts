// The user's own images: one sub-folder per class, PNG and JPEG files, converted to the model's
// channels and resized to its input, held in memory.
//
// Two layouts, told apart by whether `root/train` is a directory:
//
//   root/train/<class>/*.png|jpg|jpeg   and   root/test/<class>/...   — the user's own split; the
//       classes are train's sub-folders; test must have no class train lacks (it may lack some).
//   root/<class>/*.png|jpg|jpeg          — one pool, split here: per class, the files sorted by
//       name are shuffled with `permutation(n, SPLIT_SEED, class index)` and the first
//       round(n × testFraction) (at least 1 when the class has 2 or more files and testFraction > 0,
//       never all of them) go to test. The split depends only on the file names and testFraction,
//       not on the job's seed, so jobs with different seeds evaluate on the same images, and a bad
//       file skipped later does not move any other file between the splits.
//
// Classes are the sub-folder names sorted by code point; label k is the k-th. Hidden entries
// (starting with a dot) are ignored, as are files with other extensions and nested folders (counted
// in `ignored`). The format is read from the file's signature, not its extension. Samples are
// ordered by class, then by file name. Every image is converted to `channels` (see images.ts for
// grey↔RGB), resized to `size` (area when shrinking, bilinear when growing, stretched), and stored
// as uint8 CHW. Per-channel mean and std are measured on the train split.
//
// A file that cannot be read or decoded fails the load with a DatasetError naming its path, or,
// with `skipBadFiles`, is left out and reported in `skipped`. A load is cached per process, keyed by
// the options and the folder's listing (every file's path, size and modification time), so a changed
// folder is read again.

import { open, readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Dataset, Split } from './dataset.ts';
import { DatasetError } from './errors.ts';
import { decodeImage, resizePlanes, toPlanes, type ImageLimits } from './images.ts';
import { permutation } from './sampling.ts';

export interface ImageFolderOptions {
  /** Output [height, width]. Default [32, 32]. */
  size?: readonly [number, number];
  /** 1 (grey) or 3 (RGB). Default 3. */
  channels?: 1 | 3;
  /** Leave out files that cannot be read or decoded, and report them, instead of failing. Default false. */
  skipBadFiles?: boolean;
  /** Single-pool layout only: the fraction of each class that goes to test, in [0, 1). Default 0.2. */
  testFraction?: number;
  /** Limits every file is checked against before decoding (see images.ts). */
  limits?: ImageLimits;
  /** Most image files accepted in all. Default 200 000. */
  maxImages?: number;
  /** Most pixel bytes held (count × channels × height × width). Default 1 GiB. */
  maxBytes?: number;
}

/** A file left out by `skipBadFiles`. */
export interface SkippedFile {
  path: string;
  reason: string;
}

export interface ImageFolderDataset {
  root: string;
  layout: 'train-test-folders' | 'single-folder';
  train: Dataset;
  test: Dataset;
  /** Files left out because they could not be read or decoded (only with `skipBadFiles`). */
  skipped: { count: number; /** The first 10. */ files: SkippedFile[] };
  /** Files and folders inside class folders that are not images (other extensions, nested folders). */
  ignored: number;
}

/** Seed of the single-folder split (fixed: the split must not depend on the job). */
export const SPLIT_SEED = 0x73706c74; // "splt"
const IMAGE_EXT = /\.(png|jpe?g)$/i;
const MAX_CLASSES = 256; // labels are uint8
const MAX_SIDE = 1024;
const SKIPPED_LISTED = 10;
const READ_CONCURRENCY = 16;

interface Listed {
  path: string;
  size: number;
  mtimeMs: number;
}

/** Sub-directory names of `dir` (symlinks followed), sorted by code point, hidden ones left out. */
async function subdirs(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch((err: Error) => {
    throw new DatasetError(dir, `cannot list: ${err.message}`, { cause: err });
  });
  const out: string[] = [];
  for (const name of names.filter((n) => !n.startsWith('.')).sort(byCodePoint)) {
    if ((await stat(join(dir, name)).catch(() => undefined))?.isDirectory()) out.push(name);
  }
  return out;
}

const byCodePoint = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** The image files of one class folder, sorted by name, and how many other entries it holds. */
async function listClass(dir: string): Promise<{ files: Listed[]; ignored: number }> {
  const names = await readdir(dir).catch((err: Error) => {
    throw new DatasetError(dir, `cannot list: ${err.message}`, { cause: err });
  });
  const files: Listed[] = [];
  let ignored = 0;
  for (const name of names.filter((n) => !n.startsWith('.')).sort(byCodePoint)) {
    const path = join(dir, name);
    const st = await stat(path).catch(() => undefined);
    if (st?.isFile() && IMAGE_EXT.test(name)) files.push({ path, size: st.size, mtimeMs: Math.floor(st.mtimeMs) });
    else if (st?.isFile() && !IMAGE_EXT.test(name)) ignored++;
    else if (st?.isDirectory()) ignored++;
    else files.push({ path, size: -1, mtimeMs: 0 }); // a broken link: reported as unreadable when read
  }
  return { files, ignored };
}

interface Listing {
  layout: ImageFolderDataset['layout'];
  classNames: string[];
  /** Per split, per class, the files. */
  splits: Record<Split, Listed[][]>;
  ignored: number;
}

async function listFolder(root: string, testFraction: number): Promise<Listing> {
  const st = await stat(root).catch(() => undefined);
  if (!st?.isDirectory()) throw new DatasetError(root, 'image folder does not exist or is not a directory');
  let ignored = 0;
  const trainDir = join(root, 'train');
  if ((await stat(trainDir).catch(() => undefined))?.isDirectory()) {
    const testDir = join(root, 'test');
    if (!(await stat(testDir).catch(() => undefined))?.isDirectory()) {
      throw new DatasetError(testDir, 'missing: with a train/ folder the image folder needs a test/ folder too (or put the class folders directly in the root to have it split)');
    }
    const classNames = await subdirs(trainDir);
    checkClasses(trainDir, classNames);
    const testClasses = await subdirs(testDir);
    const unknown = testClasses.find((c) => !classNames.includes(c));
    if (unknown !== undefined) throw new DatasetError(join(testDir, unknown), `class "${unknown}" is not in ${trainDir} (classes: ${classNames.join(', ')})`);
    const splits: Record<Split, Listed[][]> = { train: [], test: [] };
    for (const name of classNames) {
      const train = await listClass(join(trainDir, name));
      const test = testClasses.includes(name) ? await listClass(join(testDir, name)) : { files: [], ignored: 0 };
      if (train.files.length === 0) throw new DatasetError(join(trainDir, name), 'class folder holds no .png, .jpg or .jpeg files');
      splits.train.push(train.files);
      splits.test.push(test.files);
      ignored += train.ignored + test.ignored;
    }
    if (splits.test.every((f) => f.length === 0)) throw new DatasetError(testDir, 'holds no images');
    return { layout: 'train-test-folders', classNames, splits, ignored };
  }

  const classNames = await subdirs(root);
  checkClasses(root, classNames);
  const splits: Record<Split, Listed[][]> = { train: [], test: [] };
  for (let k = 0; k < classNames.length; k++) {
    const dir = join(root, classNames[k]);
    const { files, ignored: ign } = await listClass(dir);
    ignored += ign;
    if (files.length === 0) throw new DatasetError(dir, 'class folder holds no .png, .jpg or .jpeg files');
    const n = files.length;
    const nTest = testFraction > 0 && n >= 2 ? Math.min(n - 1, Math.max(1, Math.round(n * testFraction))) : 0;
    const perm = permutation(n, SPLIT_SEED, k);
    const isTest = new Uint8Array(n);
    for (let i = 0; i < nTest; i++) isTest[perm[i]] = 1;
    splits.train.push(files.filter((_, i) => !isTest[i]));
    splits.test.push(files.filter((_, i) => isTest[i]));
  }
  if (splits.test.every((f) => f.length === 0)) {
    throw new DatasetError(root, testFraction > 0 ? 'too few images to split off a test set (each class needs at least 2)' : 'testFraction 0 leaves no test images');
  }
  return { layout: 'single-folder', classNames, splits, ignored };
}

function checkClasses(dir: string, classNames: string[]): void {
  if (classNames.length < 2) throw new DatasetError(dir, `needs at least 2 class sub-folders, found ${classNames.length}${classNames.length ? ` (${classNames[0]})` : ''}`);
  if (classNames.length > MAX_CLASSES) throw new DatasetError(dir, `${classNames.length} class sub-folders, at most ${MAX_CLASSES} are supported`);
}

interface Resolved {
  size: [number, number];
  channels: 1 | 3;
  skipBadFiles: boolean;
  testFraction: number;
  limits: ImageLimits;
  maxImages: number;
  maxBytes: number;
}

function resolveOptions(root: string, o: ImageFolderOptions): Resolved {
  const size = o.size ?? [32, 32];
  if (!Array.isArray(size) || size.length !== 2 || !size.every((v) => Number.isInteger(v) && v >= 1 && v <= MAX_SIDE)) {
    throw new DatasetError(root, `size must be [height, width], integers in [1, ${MAX_SIDE}], got ${JSON.stringify(size)}`);
  }
  const channels = o.channels ?? 3;
  if (channels !== 1 && channels !== 3) throw new DatasetError(root, `channels must be 1 or 3, got ${JSON.stringify(channels)}`);
  const testFraction = o.testFraction ?? 0.2;
  if (typeof testFraction !== 'number' || !(testFraction >= 0 && testFraction < 1)) throw new DatasetError(root, `testFraction must be a number in [0, 1), got ${testFraction}`);
  const maxImages = o.maxImages ?? 200_000;
  const maxBytes = o.maxBytes ?? 2 ** 30;
  return { size: [size[0], size[1]], channels, skipBadFiles: o.skipBadFiles === true, testFraction, limits: o.limits ?? {}, maxImages, maxBytes };
}

/** Reads, decodes, converts and resizes one file into `out` at `offset`. */
async function loadOne(file: Listed, r: Resolved, out: Uint8Array, offset: number): Promise<void> {
  if (file.size < 0) throw new DatasetError(file.path, 'cannot read: not a regular file (a broken link?)');
  const maxFileBytes = r.limits.maxFileBytes ?? 32 * 1024 * 1024;
  if (file.size > maxFileBytes) throw new DatasetError(file.path, `file of ${file.size} bytes is over the limit of ${maxFileBytes}`);
  let bytes: Uint8Array;
  try {
    // Checked again on the open file: it may have been replaced since it was listed.
    const fh = await open(file.path, 'r');
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new DatasetError(file.path, 'cannot read: not a regular file');
      if (st.size > maxFileBytes) throw new DatasetError(file.path, `file of ${st.size} bytes is over the limit of ${maxFileBytes}`);
      const buf = await fh.readFile();
      bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    } finally {
      await fh.close();
    }
  } catch (err) {
    if (err instanceof DatasetError) throw err;
    throw new DatasetError(file.path, `cannot read: ${(err as Error).message}`, { cause: err });
  }
  const img = decodeImage(bytes, file.path, r.limits);
  const planes = toPlanes(img, r.channels);
  out.set(resizePlanes(planes, r.channels, img.height, img.width, r.size[0], r.size[1]), offset);
}

function roundStat(v: number): number {
  return Math.round(v * 1e4) / 1e4;
}

async function load(root: string, listing: Listing, r: Resolved): Promise<ImageFolderDataset> {
  const [h, w] = r.size;
  const sampleSize = r.channels * h * w;
  const skipped: SkippedFile[] = [];
  let skippedCount = 0;
  const build = async (split: Split): Promise<Omit<Dataset, 'mean' | 'std'>> => {
    const files = listing.splits[split];
    const total = files.reduce((n, f) => n + f.length, 0);
    const images = new Uint8Array(total * sampleSize);
    const labels = new Uint8Array(total);
    const ok = new Uint8Array(total);
    const flat = files.flatMap((list, label) => list.map((file) => ({ file, label })));
    for (let start = 0; start < flat.length; start += READ_CONCURRENCY) {
      const chunk = flat.slice(start, start + READ_CONCURRENCY);
      const outcomes = await Promise.allSettled(chunk.map(({ file }, j) => loadOne(file, r, images, (start + j) * sampleSize)));
      outcomes.forEach((o, j) => {
        const k = start + j;
        labels[k] = chunk[j].label;
        if (o.status === 'fulfilled') {
          ok[k] = 1;
          return;
        }
        const err = o.reason as Error;
        const bad = err instanceof DatasetError ? err : new DatasetError(chunk[j].file.path, `cannot decode: ${err?.message ?? String(err)}`, { cause: err });
        if (!r.skipBadFiles) throw bad;
        skippedCount++;
        if (skipped.length < SKIPPED_LISTED) skipped.push({ path: chunk[j].file.path, reason: bad.message.startsWith(`${bad.source}: `) ? bad.message.slice(bad.source.length + 2) : bad.message });
      });
    }
    // Compact out the skipped files, keeping the order.
    let n = 0;
    for (let k = 0; k < total; k++) {
      if (!ok[k]) continue;
      if (n !== k) {
        images.copyWithin(n * sampleSize, k * sampleSize, (k + 1) * sampleSize);
        labels[n] = labels[k];
      }
      n++;
    }
    if (split === 'train') {
      const present = new Set(labels.subarray(0, n));
      const missing = listing.classNames.findIndex((_, c) => !present.has(c));
      if (missing >= 0) throw new DatasetError(root, `class "${listing.classNames[missing]}" has no readable training image`);
    }
    if (n === 0) throw new DatasetError(root, `the ${split} split has no readable image`);
    return {
      name: 'image-folder',
      split,
      count: n,
      channels: r.channels,
      height: h,
      width: w,
      numClasses: listing.classNames.length,
      classNames: [...listing.classNames],
      images: n === total ? images : images.slice(0, n * sampleSize),
      labels: n === total ? labels : labels.slice(0, n),
    };
  };
  const train = await build('train');
  const test = await build('test');

  // Per-channel mean and std of x/255 over the train split.
  const mean: number[] = [];
  const std: number[] = [];
  const plane = h * w;
  for (let c = 0; c < r.channels; c++) {
    const hist = new Float64Array(256);
    for (let i = 0; i < train.count; i++) {
      const base = (i * r.channels + c) * plane;
      for (let p = base; p < base + plane; p++) hist[train.images[p]]++;
    }
    let sum = 0;
    let sumSq = 0;
    const total = train.count * plane;
    for (let v = 0; v < 256; v++) {
      sum += hist[v] * (v / 255);
      sumSq += hist[v] * (v / 255) ** 2;
    }
    const m = sum / total;
    const s = Math.sqrt(Math.max(0, sumSq / total - m * m));
    mean.push(roundStat(m));
    std.push(s >= 1e-3 ? roundStat(s) : 1);
  }
  return {
    root,
    layout: listing.layout,
    train: { ...train, mean, std },
    test: { ...test, mean: [...mean], std: [...std] },
    skipped: { count: skippedCount, files: skipped },
    ignored: listing.ignored,
  };
}

const CACHE_ENTRIES = 4;
const cache = new Map<string, Promise<ImageFolderDataset>>();

/**
 * Loads an image folder (see the top of this file). Cached per process by options and the
 * folder's listing; a failed load is not cached. Shared result: do not mutate.
 */
export async function loadImageFolder(root: string, options: ImageFolderOptions = {}): Promise<ImageFolderDataset> {
  const dir = resolve(root);
  const r = resolveOptions(dir, options);
  const listing = await listFolder(dir, r.testFraction);
  const count = listing.splits.train.flat().length + listing.splits.test.flat().length;
  if (count > r.maxImages) throw new DatasetError(dir, `${count} image files, over the limit of ${r.maxImages}`);
  const bytes = count * r.channels * r.size[0] * r.size[1];
  if (bytes > r.maxBytes) throw new DatasetError(dir, `${count} images of ${r.channels}×${r.size[0]}×${r.size[1]} need ${bytes} bytes, over the limit of ${r.maxBytes}`);

  const key = JSON.stringify([dir, r, listing.splits, listing.classNames]);
  let pending = cache.get(key);
  if (pending) {
    cache.delete(key); // re-insert: most recently used last
  } else {
    pending = load(dir, listing, r);
    pending.catch(() => cache.delete(key));
  }
  cache.set(key, pending);
  while (cache.size > CACHE_ENTRIES) cache.delete(cache.keys().next().value!);
  return pending;
}

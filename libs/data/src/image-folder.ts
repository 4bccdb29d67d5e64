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
// The files are read and decoded on a pool of worker threads (`threads`; image-decode.ts), so a
// folder of tens of thousands of images does not block the caller's event loop (a coordinator's
// HTTP API and lease timers); each thread's planes land at the sample's offset, so the bytes are
// the same whatever the pool size, and the same as with `threads: 0` (decoding in this thread).
// The threads are terminated when the load ends, on success or error.
//
// A file that cannot be read or decoded fails the load with a DatasetError naming its path (the
// first bad file in sample order, whatever the threads' timing), or, with `skipBadFiles`, is left
// out and reported in `skipped`. A load is cached per process, keyed by the options (but `threads`)
// and the folder's listing (every file's path, size and modification time), so a changed folder is
// read again.

import { channel } from 'node:diagnostics_channel';
import { readdir, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import type { Dataset, Split } from './dataset.ts';
import { DatasetError } from './errors.ts';
import { decodeBatch, type DecodeFailure, type DecodeReply, type DecodeRequest } from './image-decode.ts';
import type { ImageLimits } from './images.ts';
import { permutation } from './sampling.ts';
import { ThreadError, ThreadPool } from './thread-pool.ts';

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
  /**
   * Worker threads that read and decode the files, so that the calling thread's event loop stays
   * free; 0 decodes in the calling thread, blocking it while each batch is decoded. The dataset is
   * the same whatever the number. Default: one per 256 files, at most `os.availableParallelism()`
   * and 8 (each thread loads its own copy of the decoders).
   */
  threads?: number;
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
/** Files per decoding request (read concurrently, then decoded one by one). */
const BATCH_FILES = 16;
/** The default pool has one thread per this many files, at most one per core and DEFAULT_MAX_THREADS. */
const FILES_PER_THREAD = 256;
const DEFAULT_MAX_THREADS = 8;
const MAX_THREADS = 256;
const DECODE_THREAD = new URL('./image-decode-thread.ts', import.meta.url);

/**
 * The `node:diagnostics_channel` on which every load reports its progress, an ImageFolderProgress
 * after each batch of files is decoded (for monitoring and tests; nothing is published without a
 * subscriber, nor for a load served from the cache).
 */
export const IMAGE_FOLDER_PROGRESS_CHANNEL = 'stride:image-folder:progress';
const progress = channel(IMAGE_FOLDER_PROGRESS_CHANNEL);

/** A message of IMAGE_FOLDER_PROGRESS_CHANNEL. */
export interface ImageFolderProgress {
  /** The folder (absolute). */
  root: string;
  /** Files decoded or failed so far, of `total` (both splits). */
  done: number;
  total: number;
  /** Threads decoding; 0 when decoding in the loading thread. */
  threads: number;
}

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
  /** undefined: the default for the folder's file count. Does not change the result (not in the cache key). */
  threads: number | undefined;
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
  const threads = o.threads;
  if (threads !== undefined && !(Number.isInteger(threads) && threads >= 0 && threads <= MAX_THREADS)) throw new DatasetError(root, `threads must be an integer in [0, ${MAX_THREADS}], got ${JSON.stringify(threads)}`);
  return { size: [size[0], size[1]], channels, skipBadFiles: o.skipBadFiles === true, testFraction, limits: o.limits ?? {}, maxImages, maxBytes, threads };
}

function roundStat(v: number): number {
  return Math.round(v * 1e4) / 1e4;
}

/** Files of one split decoded by one request: `files` are the split's samples `start`, `start + 1`, … */
interface Batch {
  split: Split;
  start: number;
  files: Listed[];
}

/** One split being filled in. */
interface SplitBuffers {
  images: Uint8Array;
  labels: Uint8Array;
  /** 1 for each sample whose file was decoded. */
  ok: Uint8Array;
  files: Listed[];
}

async function load(root: string, listing: Listing, r: Resolved & { threads: number }): Promise<ImageFolderDataset> {
  const [h, w] = r.size;
  const sampleSize = r.channels * h * w;
  const plane = h * w;
  const skipped: SkippedFile[] = [];
  let skippedCount = 0;
  const splits = {} as Record<Split, SplitBuffers>;
  const batches: Batch[] = [];
  for (const split of ['train', 'test'] as const) {
    const flat = listing.splits[split].flatMap((list, label) => list.map((file) => ({ file, label })));
    splits[split] = { images: new Uint8Array(flat.length * sampleSize), labels: Uint8Array.from(flat, (f) => f.label), ok: new Uint8Array(flat.length), files: flat.map((f) => f.file) };
    for (let start = 0; start < flat.length; start += BATCH_FILES) batches.push({ split, start, files: splits[split].files.slice(start, start + BATCH_FILES) });
  }
  const total = splits.train.files.length + splits.test.files.length;
  // Counts of each value 0..255 per channel over the decoded train images, for the mean and std.
  const hist = new Float64Array(256 * r.channels);
  let done = 0;

  // Every batch is decoded by the same function, on the pool's threads or (threads: 0) here; its
  // planes go to the same offsets either way, so the bytes do not depend on the pool.
  const pool = r.threads > 0 ? new ThreadPool<DecodeRequest, DecodeReply>({ entry: DECODE_THREAD, size: Math.min(r.threads, batches.length), name: 'stride-decode' }) : undefined;
  let closing = false;
  const decode = (b: Batch): Promise<readonly DecodeFailure[]> => {
    const request: DecodeRequest = { files: b.files, channels: r.channels, height: h, width: w, limits: r.limits, histogram: b.split === 'train' };
    return (pool ? pool.run(request) : decodeBatch(request)).then(
      (reply) => {
        const s = splits[b.split];
        s.images.set(reply.planes, b.start * sampleSize);
        s.ok.fill(1, b.start, b.start + b.files.length);
        for (const f of reply.failures) s.ok[b.start + f.index] = 0;
        if (reply.histogram) for (let i = 0; i < hist.length; i++) hist[i] += reply.histogram[i];
        done += b.files.length;
        if (progress.hasSubscribers) progress.publish({ root, done, total, threads: pool?.size ?? 0 } satisfies ImageFolderProgress);
        return reply.failures;
      },
      (err: Error) => {
        // The thread decoding the batch died (a file that crashes a decoder, or the memory one
        // needs): its files are decoded again one per request, on fresh threads, so that only a
        // file that kills a thread by itself fails, with that reason.
        if (!closing && b.files.length > 1 && err instanceof ThreadError && err.remoteName === undefined) {
          const alone = b.files.map((file, i) => decode({ split: b.split, start: b.start + i, files: [file] }));
          return Promise.all(alone).then((each) => each.flatMap((failures, i) => failures.map((f) => ({ ...f, index: i }))));
        }
        // Or the pool was closed (the load failed already).
        return b.files.map((_, index) => ({ index, reason: `cannot decode: ${err?.message ?? String(err)}` }));
      },
    );
  };
  try {
    // With a pool, every batch is queued at once (the pool hands them out in order); the failures
    // are then taken in file order, so the first bad file is the one reported whatever the timing.
    const queued = pool ? batches.map(decode) : [];
    for (let i = 0; i < batches.length; i++) {
      const b = batches[i];
      for (const f of await (pool ? queued[i] : decode(b))) {
        const path = b.files[f.index].path;
        if (!r.skipBadFiles) throw new DatasetError(path, f.reason);
        skippedCount++;
        if (skipped.length < SKIPPED_LISTED) skipped.push({ path, reason: f.reason });
      }
    }
  } finally {
    // Terminates the threads, on success and on error alike (batches still queued are dropped).
    closing = true;
    await pool?.close();
  }

  const build = (split: Split): Omit<Dataset, 'mean' | 'std'> => {
    const { images, labels, ok } = splits[split];
    const count = ok.length;
    // Compact out the skipped files, keeping the order.
    let n = 0;
    for (let k = 0; k < count; k++) {
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
      images: n === count ? images : images.slice(0, n * sampleSize),
      labels: n === count ? labels : labels.slice(0, n),
    };
  };
  const train = build('train');
  const test = build('test');

  // Per-channel mean and std of x/255 over the train split.
  const mean: number[] = [];
  const std: number[] = [];
  for (let c = 0; c < r.channels; c++) {
    let sum = 0;
    let sumSq = 0;
    const pixels = train.count * plane;
    for (let v = 0; v < 256; v++) {
      sum += hist[256 * c + v] * (v / 255);
      sumSq += hist[256 * c + v] * (v / 255) ** 2;
    }
    const m = sum / pixels;
    const s = Math.sqrt(Math.max(0, sumSq / pixels - m * m));
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

  const { threads = Math.min(availableParallelism(), DEFAULT_MAX_THREADS, Math.ceil(count / FILES_PER_THREAD)), ...keyed } = r;
  const key = JSON.stringify([dir, keyed, listing.splits, listing.classNames]);
  let pending = cache.get(key);
  if (pending) {
    cache.delete(key); // re-insert: most recently used last
  } else {
    pending = load(dir, listing, { ...r, threads });
    pending.catch(() => cache.delete(key));
  }
  cache.set(key, pending);
  while (cache.size > CACHE_ENTRIES) cache.delete(cache.keys().next().value!);
  return pending;
}

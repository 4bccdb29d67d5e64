// The dataset of a job spec: a built-in dataset's name or the user's own data (an image folder or
// CIFAR-10 binary files on the coordinator's disk; libs/engine sources.ts validates and loads them).

export type DatasetName = 'mnist' | 'fashion-mnist' | 'mnist-localization' | 'mnist-detection' | 'mnist-segmentation';

export type SourceType = 'image-folder' | 'cifar10';

/** An image folder, normalised (every field present). */
export interface ImageFolderSource {
  readonly type: 'image-folder';
  /** Relative to the datasets directory. */
  readonly path: string;
  /** [height, width] every image is resized to. Default [32, 32]. */
  readonly size: readonly [number, number];
  /** 1 (grey) or 3 (RGB). Default 3. */
  readonly channels: 1 | 3;
  /** Leave out unreadable files (and report them) instead of failing the job. Default false. */
  readonly skipBadFiles: boolean;
  /** Single-folder layout: the fraction of each class held out for test. Default 0.2. */
  readonly testFraction: number;
}

/** CIFAR-10 binary files (data_batch_1..5.bin, test_batch.bin). */
export interface Cifar10Source {
  readonly type: 'cifar10';
  /** Relative to the datasets directory. */
  readonly path: string;
}

export type DatasetSource = ImageFolderSource | Cifar10Source;

/** A dataset source as a user writes it. `size` may be one number for a square. */
export type DatasetSourceInput =
  | { type: 'image-folder'; path: string; size?: number | [number, number]; channels?: 1 | 3; skipBadFiles?: boolean; testFraction?: number }
  | { type: 'cifar10'; path: string };

/** Augmentation of a classification job, normalised. */
export interface AugmentSpec {
  /** Zero padding before a random crop back to the input size; 0 = none. */
  readonly crop: number;
  /** Random horizontal flip. */
  readonly flip: boolean;
}

/** Any reference to a dataset as records carry it: a name, or a source object (of any version). */
export type DatasetRef = string | { readonly type: string; readonly path: string };

/** A short label of a spec's dataset for names and displays: `mnist`, `image-folder:pets`, `cifar10:cifar`. */
export function datasetLabel(dataset: DatasetRef): string {
  return typeof dataset === 'string' ? dataset : `${dataset.type}:${dataset.path}`;
}

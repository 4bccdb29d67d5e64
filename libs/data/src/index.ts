// Public face of @stride/data: datasets, the IDX format, deterministic shuffling and sharding, and the
// worker-thread pool the image-folder loader (and the engine) runs on.
export { DatasetError } from './errors.ts';
export { parseIdx, encodeIdx } from './idx.ts';
export type { IdxArray } from './idx.ts';
export { loadDataset, DATASET_NAMES, MNIST_MEAN, MNIST_STD } from './dataset.ts';
export type { Dataset, DatasetName, Split } from './dataset.ts';
export { prepareFashionMnist, loadFashionMnist, FASHION_MNIST_CLASSES, FASHION_MNIST_MEAN, FASHION_MNIST_STD } from './fashion.ts';
export type { FashionMnistOptions, PrepareResult } from './fashion.ts';
export { permutation, batchIndices, shardRanges, gatherSamples, normalizeInto } from './sampling.ts';
export type { ShardRange, SampleBatch } from './sampling.ts';
export { generateDataset, generateFromDigits, gatherTargets, VisionSampleRenderer, GENERATED_DATASET_NAMES, GENERATED_STATS, SEGMENTATION_THRESHOLD } from './generated/datasets.ts';
export type { GeneratedDataset, GeneratedDatasetName, GenerateOptions, VisionTargets, VisionTask } from './generated/datasets.ts';
export { resizeDigit, pasteDigit, DIGIT_SIDE } from './generated/render.ts';
export type { DigitPatch, DigitSource, PlacedDigit } from './generated/render.ts';
export { decodeImage, readImageHeader, toPlanes, resizePlanes, DEFAULT_IMAGE_LIMITS } from './images.ts';
export type { DecodedImage, ImageFormat, ImageHeader, ImageLimits } from './images.ts';
export { loadImageFolder, SPLIT_SEED, IMAGE_FOLDER_PROGRESS_CHANNEL } from './image-folder.ts';
export type { ImageFolderDataset, ImageFolderOptions, ImageFolderProgress, SkippedFile } from './image-folder.ts';
export { loadCifar10, CIFAR10_CLASSES, CIFAR10_FILES, CIFAR10_MEAN, CIFAR10_STD } from './cifar10.ts';
export { augmentInto, augmentDraw, augmentIsActive, AUGMENT_DOMAIN } from './augment.ts';
export type { AugmentOptions } from './augment.ts';
export { ThreadPool, ThreadError, bundleExecArgv, serveThread, threadData, threadIndex } from './thread-pool.ts';
export { threadBundle, THREAD_BUNDLE_DIR } from './thread-bundle.ts';
export type { ThreadPoolOptions, ServeThreadOptions } from './thread-pool.ts';

// Public face of @stride/data: datasets, the IDX format, deterministic shuffling and sharding.
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

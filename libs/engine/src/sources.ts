// The user's own datasets in a job spec: an image folder or CIFAR-10 binary files on the
// coordinator's disk, and augmentation for classification.
//
//   dataset: { type: 'image-folder', path, size?, channels?, skipBadFiles?, testFraction? }
//   dataset: { type: 'cifar10', path }
//   augment: { crop?, flip? }
//
// `path` is relative to the datasets directory (`STRIDE_DATASETS_DIR`, default
// `<STRIDE_DATA_DIR>/datasets`) and is resolved where the job runs — the coordinator, or the CLI
// with --local: a job spec arriving over HTTP cannot name an arbitrary directory. Absolute paths
// and `..` are refused; a symbolic link placed in the datasets directory by its owner is followed.
// Workers never read these files: shard jobs carry the pixels, as for every dataset.
//
// The class count of an image folder is known only once the folder is listed, so the spec check
// (`normalizeJobSpec`) checks the model's input shape and that it outputs one score vector; the
// trainer checks the class count after loading, before the first step.
import { join, relative, resolve, sep } from 'node:path';
import { loadCifar10, loadImageFolder, type AugmentOptions, type Dataset, type SkippedFile, type Split } from '@stride/data';
import type { AugmentSpec, DatasetSource, SourceType } from '@stride/protocol';
import { loadJobDataset, type JobDataset } from './data.ts';
import { JobSpecError } from './errors.ts';
import { describe, isPlainObject } from './values.ts';
import type { JobSpec } from './spec.ts';

export type { SourceType, ImageFolderSource, Cifar10Source, DatasetSource, DatasetSourceInput, AugmentSpec } from '@stride/protocol';
export { datasetLabel } from '@stride/protocol';
export const SOURCE_TYPES: readonly SourceType[] = ['image-folder', 'cifar10'];

const MAX_SIDE = 1024;
const MAX_PATH = 1024;


function checkKeys(o: Record<string, unknown>, allowed: readonly string[], path: string): void {
  for (const key of Object.keys(o)) if (!allowed.includes(key)) throw new JobSpecError(`${path}.${key}`, `unknown field (allowed: ${allowed.join(', ')})`);
}

/** Whether a spec's `dataset` is a source object rather than a built-in dataset's name. */
export function isDatasetSource(v: unknown): v is DatasetSource {
  return isPlainObject(v) && typeof v.type === 'string';
}

function checkPath(v: unknown, path: string): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_PATH) throw new JobSpecError(path, `must be a non-empty string of at most ${MAX_PATH} characters, got ${describe(v)}`);
  if (v.includes('\0')) throw new JobSpecError(path, 'must not contain NUL characters');
  if (v.startsWith('/') || v.startsWith('\\') || /^[A-Za-z]:/.test(v)) {
    throw new JobSpecError(path, `must be relative to the datasets directory (STRIDE_DATASETS_DIR), got the absolute path ${describe(v)}`);
  }
  if (v.split(/[\\/]/).includes('..')) throw new JobSpecError(path, `must stay inside the datasets directory: ".." is not allowed, got ${describe(v)}`);
  return v;
}

/** Validates a dataset source object and fills in its defaults; errors name the field under `path`. */
export function normalizeDatasetSource(v: unknown, path = 'dataset'): DatasetSource {
  if (!isPlainObject(v)) throw new JobSpecError(path, `must be a dataset name or a source object, got ${describe(v)}`);
  if (v.type === 'cifar10') {
    checkKeys(v, ['type', 'path'], path);
    return { type: 'cifar10', path: checkPath(v.path, `${path}.path`) };
  }
  if (v.type !== 'image-folder') throw new JobSpecError(`${path}.type`, `must be one of ${SOURCE_TYPES.join(', ')}, got ${describe(v.type)}`);
  checkKeys(v, ['type', 'path', 'size', 'channels', 'skipBadFiles', 'testFraction'], path);
  const sidePath = `${path}.size`;
  const side = (x: unknown, p: string): number => {
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 1 || x > MAX_SIDE) throw new JobSpecError(p, `must be an integer in [1, ${MAX_SIDE}], got ${describe(x)}`);
    return x;
  };
  let size: [number, number] = [32, 32];
  if (typeof v.size === 'number') size = [side(v.size, sidePath), v.size];
  else if (Array.isArray(v.size)) {
    if (v.size.length !== 2) throw new JobSpecError(sidePath, `must be [height, width] or one number, got ${describe(v.size)}`);
    size = [side(v.size[0], `${sidePath}[0]`), side(v.size[1], `${sidePath}[1]`)];
  } else if (v.size !== undefined) throw new JobSpecError(sidePath, `must be [height, width] or one number, got ${describe(v.size)}`);
  if (v.channels !== undefined && v.channels !== 1 && v.channels !== 3) throw new JobSpecError(`${path}.channels`, `must be 1 (grey) or 3 (RGB), got ${describe(v.channels)}`);
  if (v.skipBadFiles !== undefined && typeof v.skipBadFiles !== 'boolean') throw new JobSpecError(`${path}.skipBadFiles`, `must be true or false, got ${describe(v.skipBadFiles)}`);
  const tf = v.testFraction;
  if (tf !== undefined && (typeof tf !== 'number' || !(tf > 0 && tf < 1))) throw new JobSpecError(`${path}.testFraction`, `must be a number in (0, 1), got ${describe(tf)}`);
  return {
    type: 'image-folder',
    path: checkPath(v.path, `${path}.path`),
    size,
    channels: (v.channels as 1 | 3 | undefined) ?? 3,
    skipBadFiles: (v.skipBadFiles as boolean | undefined) ?? false,
    testFraction: (tf as number | undefined) ?? 0.2,
  };
}

/** Shape and classes of a source known before loading; `numClasses` is 0 when only the data says (image folders). */
export function sourceInfo(src: DatasetSource): { name: SourceType; input: readonly [number, number, number]; numClasses: number; classesFromData: boolean } {
  if (src.type === 'cifar10') return { name: 'cifar10', input: [3, 32, 32], numClasses: 10, classesFromData: false };
  return { name: 'image-folder', input: [src.channels, src.size[0], src.size[1]], numClasses: 0, classesFromData: true };
}

/** Validates `augment` for a job of `task` on inputs of shape `input`. */
export function normalizeAugment(v: unknown, task: string, input: readonly number[]): AugmentSpec {
  if (!isPlainObject(v)) throw new JobSpecError('augment', `must be an object { crop?, flip? }, got ${describe(v)}`);
  if (task !== 'classification') throw new JobSpecError('augment', `only classification jobs can be augmented (a crop or flip would have to move the ${task} targets too); this job's task is ${task}`);
  checkKeys(v, ['crop', 'flip'], 'augment');
  const maxCrop = Math.min(input[1], input[2]) - 1;
  const crop = v.crop === undefined ? 0 : v.crop;
  if (typeof crop !== 'number' || !Number.isInteger(crop) || crop < 0 || crop > maxCrop) throw new JobSpecError('augment.crop', `must be an integer in [0, ${maxCrop}] (pixels of padding), got ${describe(crop)}`);
  if (v.flip !== undefined && typeof v.flip !== 'boolean') throw new JobSpecError('augment.flip', `must be true or false, got ${describe(v.flip)}`);
  return { crop, flip: v.flip === true };
}

/** The datasets directory: `STRIDE_DATASETS_DIR`, else `<dataDir>/datasets`. */
export function datasetsDirOf(dataDir: string): string {
  return resolve(process.env.STRIDE_DATASETS_DIR || join(dataDir, 'datasets'));
}

/** The absolute path of a source; refuses anything outside the datasets directory. */
export function resolveSourcePath(datasetsDir: string, path: string): string {
  const root = resolve(datasetsDir);
  const full = resolve(root, checkPath(path, 'dataset.path'));
  const rel = relative(root, full);
  if (rel === '..' || rel.startsWith(`..${sep}`) || resolve(root, rel) !== full) throw new JobSpecError('dataset.path', `resolves outside the datasets directory ${root}`);
  return full;
}

/** A loaded source: both splits, and for image folders the files left out by `skipBadFiles`. */
export interface LoadedSource {
  readonly train: Dataset;
  readonly test: Dataset;
  readonly skipped?: { readonly count: number; readonly files: readonly SkippedFile[] };
}

/** Loads both splits of a source from under `datasetsDir`. */
export async function loadDatasetSource(src: DatasetSource, datasetsDir: string): Promise<LoadedSource> {
  const dir = resolveSourcePath(datasetsDir, src.path);
  if (src.type === 'cifar10') {
    const [train, test] = await Promise.all(['train', 'test'].map((split) => loadCifar10(dir, split as Split)));
    return { train, test };
  }
  const ds = await loadImageFolder(dir, { size: src.size, channels: src.channels, skipBadFiles: src.skipBadFiles, testFraction: src.testFraction });
  return { train: ds.train, test: ds.test, skipped: src.skipBadFiles ? ds.skipped : undefined };
}

/** The AugmentOptions of a spec's augment (none when absent). */
export function augmentOptions(a: AugmentSpec | undefined): AugmentOptions | undefined {
  return a ? { crop: a.crop, flip: a.flip } : undefined;
}

/**
 * Both splits of a job's dataset: a built-in one (`loadJobDataset`) or the user's own, read from
 * under `datasetsDir`, with the files an image folder left out.
 */
export async function loadJobSplits(spec: Pick<JobSpec, 'dataset' | 'trainSamples' | 'testSamples'>, datasetsDir: string): Promise<{ train: JobDataset; test: JobDataset; skipped?: LoadedSource['skipped'] }> {
  if (isDatasetSource(spec.dataset)) return loadDatasetSource(spec.dataset, datasetsDir);
  const [train, test] = await Promise.all([loadJobDataset(spec, 'train'), loadJobDataset(spec, 'test')]);
  return { train, test };
}

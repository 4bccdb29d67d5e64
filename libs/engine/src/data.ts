// Loading a job's train and test splits, and cutting the task's targets for a shard.
//
// Classification datasets come from @stride/data's `loadDataset`; the generated vision sets
// (mnist-localization, -detection, -segmentation) are rendered from MNIST digits with seed 0 at the
// sizes the job asks for (`trainSamples`, `testSamples`): the same spec sees the same images in
// every process, whatever its own seed.
import { labeledBoxesFromFlat, type LabeledBox } from '@stride/cnn';
import { gatherTargets, generateDataset, loadDataset, type Dataset, type GeneratedDataset, type GeneratedDatasetName, type Split } from '@stride/data';
import type { ShardTargets, TaskName } from './executor.ts';
import { resolveDataset, type JobSpec } from './spec.ts';

/** A loaded split: a classification `Dataset`, or a generated one with its targets. */
export type JobDataset = Dataset | GeneratedDataset;

/** Seed the generated sets are rendered from (fixed: the data of a job does not depend on its seed). */
export const GENERATED_DATA_SEED = 0;

/** Generated splits kept per process (a coordinator may run several jobs on the same set). */
const MAX_CACHED = 4;
const generated = new Map<string, Promise<GeneratedDataset>>();

function isGenerated(ds: JobDataset): ds is GeneratedDataset {
  return 'task' in ds && 'boxOffsets' in ds;
}

/** Loads one split of a job's dataset (generated sets: `trainSamples` / `testSamples` samples). */
export function loadJobDataset(spec: Pick<JobSpec, 'dataset' | 'trainSamples' | 'testSamples'>, split: Split): Promise<JobDataset> {
  const info = resolveDataset(spec);
  if (!info.generated) return loadDataset(info.name as 'mnist' | 'fashion-mnist', split);
  const count = (split === 'train' ? spec.trainSamples : spec.testSamples) ?? info.generated[split];
  const key = `${info.name}/${split}/${count}`;
  let p = generated.get(key);
  if (p) {
    generated.delete(key);
  } else {
    p = generateDataset(info.name as GeneratedDatasetName, split, { count, seed: GENERATED_DATA_SEED });
    p.catch(() => generated.delete(key));
    while (generated.size >= MAX_CACHED) generated.delete(generated.keys().next().value!);
  }
  generated.set(key, p);
  return p;
}

/** The targets of the samples `indices` of a split, as the task's shard needs them (undefined for classification). */
export function shardTargets(task: TaskName, ds: JobDataset, indices: ArrayLike<number>): ShardTargets | undefined {
  if (task === 'classification') return undefined;
  if (!isGenerated(ds) || ds.task !== task) throw new Error(`dataset ${ds.name}/${ds.split} has no ${task} targets`);
  const t = gatherTargets(ds, indices);
  switch (task) {
    case 'localization':
      return { boxes: t.boxes };
    case 'detection':
      return { boxes: t.boxes, boxLabels: t.boxLabels, boxOffsets: t.boxOffsets };
    case 'segmentation':
      return { masks: t.masks! };
  }
}

/** Indices start, start + 1, ..., end - 1. */
export function rangeIndices(start: number, end: number): Uint32Array {
  const out = new Uint32Array(end - start);
  for (let i = 0; i < out.length; i++) out[i] = start + i;
  return out;
}

/** The objects of the first `count` images of a detection split (the ground truth of mAP). */
export function groundTruthObjects(ds: JobDataset, count: number): LabeledBox[][] {
  if (!isGenerated(ds)) throw new Error(`dataset ${ds.name}/${ds.split} has no boxes`);
  const t = gatherTargets(ds, rangeIndices(0, count));
  return labeledBoxesFromFlat(t.boxes, t.boxLabels, t.boxOffsets);
}

// Exports what the PyTorch side of a comparison needs to train a Stride job exactly as Stride does:
// the normalised job spec and its model spec, the train and test splits as raw little-endian arrays
// (images, labels and the task's targets), every epoch's sample order (Stride's permutations) and
// Stride's initial parameters and buffers. tools/torch/train_like_stride.py reads them with numpy.
//
// Layout of a run directory:
//   job.json               spec, modelSpec, task, numClasses, totalSteps, stepsPerEpoch, normalization,
//                          evalCount, detectionEval, order {file, epochs}, init {file, arrays [{name, shape}]},
//                          dataDir (relative), train/test {count}
//   order.u32              epochs × N sample indices, epoch after epoch
//   init.f32               the initial parameters then buffers, in the order of init.arrays
// and of a data directory (shared by the runs on the same dataset and sizes):
//   {split}-images.u8 {split}-labels.u8        every task
//   {split}-masks.u8                            segmentation: N × H × W classes
//   {split}-boxes.f32 {split}-box-labels.u8 {split}-box-offsets.u32   detection: flat boxes (cx, cy, w, h), classes, N + 1 offsets
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { buildModel, type ModelSpec } from '@stride/cnn';
import { generateDataset, loadDataset, permutation, type Dataset, type GeneratedDataset, type GeneratedDatasetName, type Split } from '@stride/data';
import { DATASET_SHAPES, resolveModelSpec, totalStepsOf, type JobSpec } from '@stride/engine';

/** The seed libs/engine renders the generated sets from (engine/src/data.ts GENERATED_DATA_SEED). */
const GENERATED_DATA_SEED = 0;

/** decodeYolo options of a detection evaluation (engine/src/tasks.ts DETECTION_EVAL). */
export const DETECTION_EVAL = { scoreThreshold: 0.05, iouThreshold: 0.5, maxDetections: 20 } as const;

export type TaskName = 'classification' | 'localization' | 'detection' | 'segmentation';

export interface ExportedRun {
  dir: string;
  task: TaskName;
  totalSteps: number;
  modelSpec: ModelSpec;
}

function bytes(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

function isGenerated(ds: Dataset): ds is GeneratedDataset {
  return 'boxOffsets' in ds;
}

/** Loads one split as the engine does: a fixed dataset, or a generated one at the job's size and seed 0. */
async function loadSplit(spec: JobSpec, split: Split): Promise<Dataset> {
  const info = DATASET_SHAPES[spec.dataset as keyof typeof DATASET_SHAPES];
  if (!info.generated) return loadDataset(spec.dataset as 'mnist' | 'fashion-mnist', split);
  const count = (split === 'train' ? spec.trainSamples : spec.testSamples) ?? info.generated[split];
  return generateDataset(spec.dataset as GeneratedDatasetName, split, { count, seed: GENERATED_DATA_SEED });
}

async function writeSplit(dir: string, split: Split, ds: Dataset, task: TaskName): Promise<void> {
  const file = (name: string): string => join(dir, `${split}-${name}`);
  await writeFile(file('images.u8'), ds.images);
  await writeFile(file('labels.u8'), ds.labels);
  if (task === 'segmentation' || task === 'detection') {
    if (!isGenerated(ds)) throw new Error(`${ds.name}/${split}: a ${task} dataset must carry its targets`);
    if (task === 'segmentation') await writeFile(file('masks.u8'), ds.masks!);
    else {
      await writeFile(file('boxes.f32'), bytes(ds.boxes));
      await writeFile(file('box-labels.u8'), ds.boxLabels);
      await writeFile(file('box-offsets.u32'), bytes(ds.boxOffsets));
    }
  }
}

/**
 * Writes the run directory of `spec` into `runDir`, and the dataset into `dataRoot/<dataset>-<train>-<test>`
 * unless already there. Little-endian arrays: this machine's order (x86, arm64).
 */
export async function exportRun(spec: JobSpec, runDir: string, dataRoot: string): Promise<ExportedRun> {
  const info = DATASET_SHAPES[spec.dataset as keyof typeof DATASET_SHAPES];
  const task = info.task as TaskName;
  if (task === 'localization') throw new Error('compare: localization is not mirrored in PyTorch (tools/torch/stride_torch.py)');
  const [train, test] = await Promise.all([loadSplit(spec, 'train'), loadSplit(spec, 'test')]);
  const dataDir = join(dataRoot, `${spec.dataset}-${train.count}-${test.count}`);
  if (!(await exists(join(dataDir, 'complete')))) {
    await mkdir(dataDir, { recursive: true });
    await writeSplit(dataDir, 'train', train, task);
    await writeSplit(dataDir, 'test', test, task);
    await writeFile(join(dataDir, 'complete'), `${new Date().toISOString()}\n`);
  }
  await mkdir(runDir, { recursive: true });
  const modelSpec = resolveModelSpec(spec);
  const model = buildModel(modelSpec, { seed: spec.seed });
  const arrays = [...model.params, ...model.buffers];
  const init = new Float32Array(arrays.reduce((n, a) => n + a.data.length, 0));
  let pos = 0;
  for (const a of arrays) {
    init.set(a.data, pos);
    pos += a.data.length;
  }
  await writeFile(join(runDir, 'init.f32'), bytes(init));
  const totalSteps = totalStepsOf(spec, train.count);
  const stepsPerEpoch = Math.ceil(train.count / spec.batchSize);
  const epochs = Math.ceil(totalSteps / stepsPerEpoch);
  const order = new Uint32Array(epochs * train.count);
  for (let e = 0; e < epochs; e++) order.set(permutation(train.count, spec.seed, e), e * train.count);
  await writeFile(join(runDir, 'order.u32'), bytes(order));
  const evalCount = spec.evalSamples > 0 ? Math.min(spec.evalSamples, test.count) : test.count;
  const job = {
    spec,
    modelSpec,
    task,
    numClasses: info.numClasses,
    totalSteps,
    stepsPerEpoch,
    normalization: { mean: train.mean, std: train.std },
    evalCount,
    detectionEval: DETECTION_EVAL,
    dataDir: relative(runDir, dataDir),
    train: { count: train.count },
    test: { count: test.count },
    order: { file: 'order.u32', epochs },
    init: { file: 'init.f32', arrays: arrays.map((a) => ({ name: a.name, shape: a.shape })) },
  };
  await writeFile(join(runDir, 'job.json'), `${JSON.stringify(job, null, 1)}\n`);
  return { dir: runDir, task, totalSteps, modelSpec };
}

// The job spec: what to train, on what, for how long, how. Arrives as untrusted JSON (HTTP body,
// CLI flags, a file), is validated field by field, and normalised to a fully defaulted spec: the
// normalised spec is what gets stored, hashed and checkpointed.
import { createHash } from 'node:crypto';
import { getZooSpec, planModel, validateModelSpec, validateOptimizerSpec, validateScheduleSpec, zooNames, type ModelSpec, type OptimizerSpec, type ScheduleSpec } from '@stride/cnn';
import { JobSpecError } from './errors.ts';
import { describe, isPlainObject } from './values.ts';
import type { DatasetName, JobSpec, TaskName } from '@stride/protocol';
import { isDatasetSource, normalizeAugment, normalizeDatasetSource, sourceInfo, type DatasetSource, type SourceType } from './sources.ts';

export type { DatasetName, JobSpec, JobSpecInput } from '@stride/protocol';
export const DATASETS: readonly DatasetName[] = ['mnist', 'fashion-mnist', 'mnist-localization', 'mnist-detection', 'mnist-segmentation'];

/** What the engine needs to know about a dataset before loading it. */
export interface DatasetInfo {
  /** Sample shape [C, H, W]. */
  readonly input: readonly [number, number, number];
  /** Classes of the task: image classes; localization / detection object classes; segmentation pixel classes (background included). */
  readonly numClasses: number;
  /** The task its targets are for. */
  readonly task: TaskName;
  /**
   * Generated sets (libs/data generated/): sizes of the train and test splits are chosen by the
   * job (`trainSamples`, `testSamples`), with these defaults.
   */
  readonly generated?: { readonly train: number; readonly test: number };
  /** Image folders: the class count is known only once the folder is listed (`numClasses` is 0 until then). */
  readonly classesFromData?: boolean;
}

/** Sample shape, classes and task of each dataset, to check a model against it at the boundary. */
export const DATASET_SHAPES: Readonly<Record<DatasetName, DatasetInfo>> = {
  mnist: { input: [1, 28, 28], numClasses: 10, task: 'classification' },
  'fashion-mnist': { input: [1, 28, 28], numClasses: 10, task: 'classification' },
  'mnist-localization': { input: [1, 64, 64], numClasses: 10, task: 'localization', generated: { train: 10_000, test: 2_000 } },
  'mnist-detection': { input: [1, 96, 96], numClasses: 10, task: 'detection', generated: { train: 5_000, test: 1_000 } },
  'mnist-segmentation': { input: [1, 96, 96], numClasses: 11, task: 'segmentation', generated: { train: 5_000, test: 1_000 } },
};

/** Largest `trainSamples` / `testSamples` of a generated dataset (the generator's limit). */
export const MAX_GENERATED_SAMPLES = 100_000;

/**
 * The dataset of a job: its shape, classes and task. The one place a new dataset (or a dataset
 * whose shape depends on the spec) is described to the engine.
 */
export function resolveDataset(spec: { readonly dataset: string | DatasetSource }): DatasetInfo & { readonly name: DatasetName | SourceType; readonly source?: DatasetSource } {
  if (isDatasetSource(spec.dataset)) {
    // The user's own data (sources.ts): a normalised source object.
    const { name, input, numClasses, classesFromData } = sourceInfo(spec.dataset);
    return { name, input, numClasses, task: 'classification', ...(classesFromData ? { classesFromData } : {}), source: spec.dataset };
  }
  if (typeof spec.dataset !== 'string' || !Object.hasOwn(DATASET_SHAPES, spec.dataset)) {
    throw new JobSpecError('dataset', `must be one of ${DATASETS.join(', ')}, got ${describe(spec.dataset)}`);
  }
  const name = spec.dataset as DatasetName;
  return { name, ...DATASET_SHAPES[name] };
}

/** The default optimizer: Adam with a one-cycle schedule peaking at 3e-3 (≥ 98% on MNIST with LeNet-5 in one epoch at B = 64). */
export const DEFAULT_OPTIMIZER: OptimizerSpec = { type: 'adam', lr: 3e-3 };
export const DEFAULT_SCHEDULE: ScheduleSpec = { type: 'onecycle' };

const FIELDS = [
  'name',
  'model',
  'dataset',
  'augment',
  'task',
  'trainSamples',
  'testSamples',
  'epochs',
  'steps',
  'batchSize',
  'shards',
  'seed',
  'optimizer',
  'schedule',
  'evalEvery',
  'evalShards',
  'evalSamples',
  'checkpointEvery',
  'keepCheckpoints',
  'numerics',
] as const;
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
const MAX_STEPS = 100_000_000;


/** Rejects `__proto__`, `constructor` and `prototype` keys anywhere in the value (prototype pollution). */
function checkNoForbiddenKeys(v: unknown, path: string, depth = 0): void {
  if (depth > 64) throw new JobSpecError(path, 'nested too deeply');
  if (Array.isArray(v)) {
    v.forEach((item, i) => checkNoForbiddenKeys(item, `${path}[${i}]`, depth + 1));
  } else if (typeof v === 'object' && v !== null) {
    for (const key of Object.keys(v)) {
      const sub = path ? `${path}.${key}` : key;
      if (FORBIDDEN_KEYS.has(key)) throw new JobSpecError(sub, 'forbidden key');
      checkNoForbiddenKeys((v as Record<string, unknown>)[key], sub, depth + 1);
    }
  }
}

function integer(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new JobSpecError(path, `must be an integer in [${min}, ${max}], got ${describe(v)}`);
  }
  return v;
}

/**
 * Re-raises a @stride/cnn spec error (which carries `path`) as a JobSpecError, its path under
 * `under` (`layers[2].kernelSize` → `model.layers[2].kernelSize`).
 */
export function asJobSpecError(err: unknown, under = ''): never {
  const e = err as { path?: unknown; message?: unknown };
  if (err instanceof Error && typeof e.path === 'string') {
    const prefix = `${e.path}: `;
    const message = String(e.message);
    const detail = message.startsWith(prefix) ? message.slice(prefix.length) : message;
    // cnn names the root of a model spec `spec`.
    const sub = e.path === 'spec' ? '' : e.path.replace(/^spec\./, '');
    const path = under && sub ? `${under}.${sub}` : under || sub;
    throw new JobSpecError(path, detail);
  }
  throw err;
}

/**
 * Validates an untrusted job spec and fills in every default. Throws `JobSpecError` naming the
 * first bad field: `optimizer.lr: must be a finite number > 0, got NaN`.
 */
export function normalizeJobSpec(input: unknown): JobSpec {
  if (!isPlainObject(input)) throw new JobSpecError('', `a job spec must be an object, got ${describe(input)}`);
  checkNoForbiddenKeys(input, '');
  for (const key of Object.keys(input)) {
    if (!(FIELDS as readonly string[]).includes(key)) throw new JobSpecError(key, `unknown field (allowed: ${FIELDS.join(', ')})`);
  }
  const o = input as Record<(typeof FIELDS)[number], unknown>;

  if (typeof o.dataset !== 'string' && !isPlainObject(o.dataset)) {
    throw new JobSpecError('dataset', `must be one of ${DATASETS.join(', ')} or a source object { type: 'image-folder' | 'cifar10', path, ... }, got ${describe(o.dataset)}`);
  }
  const source = isPlainObject(o.dataset) ? normalizeDatasetSource(o.dataset) : undefined;
  const info = resolveDataset({ dataset: source ?? (o.dataset as string) });
  const dataset = info.name;
  if (o.task !== undefined && o.task !== info.task) {
    throw new JobSpecError('task', `${dataset} is a ${info.task} dataset, got task ${describe(o.task)}`);
  }
  const data: { task?: TaskName; trainSamples?: number; testSamples?: number } = info.task === 'classification' ? {} : { task: info.task };
  for (const key of ['trainSamples', 'testSamples'] as const) {
    if (info.generated) {
      data[key] = o[key] === undefined ? info.generated[key === 'trainSamples' ? 'train' : 'test'] : integer(o[key], key, 1, MAX_GENERATED_SAMPLES);
    } else if (o[key] !== undefined) {
      throw new JobSpecError(key, `only generated datasets (${DATASETS.filter((d) => DATASET_SHAPES[d].generated).join(', ')}) take ${key}; ${dataset} has a fixed size`);
    }
  }
  const model = checkModel(o.model, info);
  const augment = o.augment === undefined ? {} : { augment: normalizeAugment(o.augment, info.task, info.input) };

  if (o.epochs !== undefined && o.steps !== undefined) throw new JobSpecError('steps', 'give either epochs or steps, not both');
  const length = o.steps !== undefined ? { steps: integer(o.steps, 'steps', 1, MAX_STEPS) } : { epochs: o.epochs === undefined ? 1 : integer(o.epochs, 'epochs', 1, 10_000) };

  const batchSize = o.batchSize === undefined ? 64 : integer(o.batchSize, 'batchSize', 1, 65_536);
  const shards = o.shards === undefined ? Math.min(4, batchSize) : integer(o.shards, 'shards', 1, batchSize);
  const seed = o.seed === undefined ? 1 : integer(o.seed, 'seed', 0, 0xffffffff);

  if (isPlainObject(o.optimizer) && o.optimizer.lr !== undefined) {
    const lr = o.optimizer.lr;
    if (typeof lr !== 'number' || !Number.isFinite(lr) || lr <= 0) throw new JobSpecError('optimizer.lr', `must be a finite number > 0, got ${describe(lr)}`);
  }
  let optimizer: Required<OptimizerSpec>;
  let schedule: ScheduleSpec;
  try {
    optimizer = validateOptimizerSpec(o.optimizer === undefined ? DEFAULT_OPTIMIZER : o.optimizer, 'optimizer');
    schedule = validateScheduleSpec(o.schedule === undefined ? DEFAULT_SCHEDULE : o.schedule, 'schedule');
  } catch (err) {
    asJobSpecError(err);
  }

  let evalEvery: number | 'epoch' = 'epoch';
  if (o.evalEvery !== undefined && o.evalEvery !== 'epoch') evalEvery = integer(o.evalEvery, 'evalEvery', 1, MAX_STEPS);
  const evalShards = o.evalShards === undefined ? 10 : integer(o.evalShards, 'evalShards', 1, 10_000);
  const evalSamples = o.evalSamples === undefined ? 0 : integer(o.evalSamples, 'evalSamples', 0, 100_000_000);
  const checkpointEvery = o.checkpointEvery === undefined ? 100 : integer(o.checkpointEvery, 'checkpointEvery', 1, MAX_STEPS);
  const keepCheckpoints = o.keepCheckpoints === undefined ? 3 : integer(o.keepCheckpoints, 'keepCheckpoints', 1, 1000);
  if (o.numerics !== undefined && o.numerics !== 'exact' && o.numerics !== 'fma') throw new JobSpecError('numerics', `must be 'exact' or 'fma', got ${describe(o.numerics)}`);
  const numerics = o.numerics === 'fma' ? { numerics: 'fma' as const } : {};

  let name: string;
  if (o.name === undefined) {
    const dataName = source ? (source.path.split(/[\\/]/).filter((p) => p && p !== '.').pop() ?? dataset) : dataset;
    name = `${typeof model === 'string' ? model : (model.name ?? 'model')}-${dataName}`.slice(0, 200);
  } else {
    if (typeof o.name !== 'string' || o.name.trim().length === 0 || o.name.length > 200) {
      throw new JobSpecError('name', `must be a non-empty string of at most 200 characters, got ${describe(o.name)}`);
    }
    // Names reach terminals (CLI, logs) and pages: no control characters (ANSI escapes) and no
    // bidirectional overrides that would make a name display as something else.
    const bad = /[\p{Cc}\u202a-\u202e\u2066-\u2069]/u.exec(o.name);
    if (bad) throw new JobSpecError('name', `must not contain control or bidirectional-override characters, found U+${bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')} at ${bad.index}`);
    name = o.name;
  }

  return { name, model, dataset: source ?? (dataset as DatasetName), ...augment, ...data, ...length, batchSize, shards, seed, optimizer, schedule, evalEvery, evalShards, evalSamples, checkpointEvery, keepCheckpoints, ...numerics };
}

/**
 * A zoo name (kept as the name) or a model spec (a clean copy), checked against the dataset:
 * every layer's shape is inferred now, so a bad spec fails at submission, not at the first batch.
 */
function checkModel(value: unknown, info: DatasetInfo & { readonly name: string }): string | ModelSpec {
  const { input, task, classesFromData } = info;
  const dataset = info.name;
  let numClasses = info.numClasses;
  let spec: ModelSpec;
  try {
    if (typeof value === 'string') {
      if (!zooNames().includes(value)) throw new JobSpecError('model', `unknown zoo model ${describe(value)} (available: ${zooNames().join(', ')})`);
      // An image folder's classes are counted when it is loaded (the trainer checks them then): any count checks the shapes.
      spec = getZooSpec(value, { inChannels: input[0], height: input[1], width: input[2], numClasses: classesFromData ? 2 : numClasses });
    } else if (isPlainObject(value)) {
      spec = validateModelSpec(value);
    } else {
      throw new JobSpecError('model', `must be a zoo model name or a model spec object, got ${describe(value)}`);
    }
    if (spec.input.some((d, i) => d !== input[i])) {
      throw new JobSpecError('model.input', `must be [${input.join(', ')}] for ${dataset}, got [${spec.input.join(', ')}]`);
    }
    if (classesFromData) {
      const out = planModel(spec).outputShape;
      numClasses = typeof value === 'string' ? 2 : out.length === 1 && out[0] >= 2 ? out[0] : -1;
      if (numClasses < 0) throw new JobSpecError('model', `must output one score per class (at least 2) per sample for ${dataset}, its output shape is [${out.join(', ')}]`);
    }
    const problem = outputProblem(task, numClasses, input, planModel(spec).outputShape);
    if (problem) throw new JobSpecError('model', `${problem} for ${dataset} (${task}), its output shape is [${planModel(spec).outputShape.join(', ')}]${typeof value === 'string' ? `; zoo models for ${task}: ${TASK_ZOO[task]}` : ''}`);
  } catch (err) {
    if (err instanceof JobSpecError) throw err;
    asJobSpecError(err, 'model');
  }
  return typeof value === 'string' ? value : spec;
}

/** Zoo models made for each task (any model with the right output shape is accepted). */
const TASK_ZOO: Record<TaskName, string> = {
  classification: 'lenet5, resnet, densenet, inception',
  localization: 'localizer',
  detection: 'yolo',
  segmentation: 'unet',
};

/** What is wrong with a model's per-sample output shape for a task, or undefined. */
function outputProblem(task: TaskName, numClasses: number, input: readonly number[], out: readonly number[]): string | undefined {
  switch (task) {
    case 'classification':
      return out.length === 1 && out[0] === numClasses ? undefined : `must output ${numClasses} class scores per sample`;
    case 'localization':
      return out.length === 1 && out[0] === numClasses + 4 ? undefined : `must output ${numClasses} class scores and 4 box values ([${numClasses + 4}]) per sample`;
    case 'detection':
      return out.length === 3 && out[0] === 5 + numClasses && out[1] === out[2] && out[1] >= 1 ? undefined : `must output a YOLO grid [${5 + numClasses}, S, S] per sample`;
    case 'segmentation':
      return out.length === 3 && out[0] === numClasses && out[1] === input[1] && out[2] === input[2] ? undefined : `must output ${numClasses} class scores per pixel ([${numClasses}, ${input[1]}, ${input[2]}])`;
  }
}

/** JSON with object keys sorted at every level: the canonical text of a spec. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    const entries = Object.keys(v)
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(v);
}

/** SHA-256 hex of the canonical JSON of a normalised spec: equal specs, equal hashes. */
export function jobSpecHash(spec: JobSpec): string {
  return createHash('sha256').update(canonicalJson(spec)).digest('hex');
}

/** Total optimizer steps of a job on a training set of `datasetSize` samples. */
export function totalStepsOf(spec: JobSpec, datasetSize: number): number {
  return spec.steps ?? spec.epochs! * Math.ceil(datasetSize / spec.batchSize);
}

// The job spec: what to train, on what, for how long, how. libs/engine `normalizeJobSpec`
// validates a `JobSpecInput` (untrusted JSON: HTTP body, CLI flags, a file) into a `JobSpec`: the
// normalised spec is what gets stored, hashed and checkpointed.
import type { ModelSpec, OptimizerSpec, ScheduleSpec } from '@stride/cnn';
import type { AugmentSpec, DatasetName, DatasetSource, DatasetSourceInput } from './dataset.ts';
import type { TaskName } from './tasks.ts';

/** A job spec as a user writes it; every field but `model` and `dataset` has a default. */
export interface JobSpecInput {
  /** Display name. Default: `<model name>-<dataset>`. */
  name?: string;
  /** A zoo model name (`lenet5`) or a full model spec. */
  model: string | ModelSpec;
  /** A built-in dataset's name, or the user's own data: `{ type: 'image-folder' | 'cifar10', path, ... }` (libs/engine sources.ts validates it). */
  dataset: DatasetName | DatasetSourceInput;
  /** Classification only: deterministic random crop (zero padding of `crop` pixels) and horizontal flip. Default: none. */
  augment?: { crop?: number; flip?: boolean };
  /** The task; derived from the dataset, and checked against it when given. */
  task?: TaskName;
  /** Generated datasets only: samples generated for the train and test splits (defaults per dataset, at most 100 000). */
  trainSamples?: number;
  testSamples?: number;
  /** Training length: exactly one of `epochs` and `steps`. Default: `epochs: 1`. */
  epochs?: number;
  steps?: number;
  /** Global batch size B. Default 64. */
  batchSize?: number;
  /** Shards per step S, 1 ≤ S ≤ B. Default 4. */
  shards?: number;
  /** Seed of initialisation, shuffling and dropout, an integer in [0, 2^32). Default 1. */
  seed?: number;
  /** Default: Adam, lr 3e-3 (the peak of the one-cycle schedule). */
  optimizer?: OptimizerSpec;
  /** Default: one-cycle (`{ type: 'onecycle' }` with the schedule's own defaults). */
  schedule?: ScheduleSpec;
  /** Evaluate on the test split every N steps, or at the end of every epoch. Always at the end too. Default 'epoch'. */
  evalEvery?: number | 'epoch';
  /** Shards an evaluation is cut into. Default 10 (1000 images each on MNIST). */
  evalShards?: number;
  /** Evaluate on the first N samples of the test split (quick evaluations). Default 0: all of it. */
  evalSamples?: number;
  /** Write a checkpoint every N steps (and after every evaluation, and at the end). Default 100. */
  checkpointEvery?: number;
  /** How many of the newest checkpoints to keep, plus the best one. Default 3. */
  keepCheckpoints?: number;
  /**
   * Kernel numerics: 'exact' (default) multiplies and adds separately; 'fma' accumulates the
   * convolution and GEMM products with fused multiply-adds (WebAssembly relaxed SIMD): faster, and
   * results differ from 'exact' in the last bits. Every worker of an 'fma' job needs a CPU with FMA.
   */
  numerics?: 'exact' | 'fma';
}

/** A validated, fully defaulted job spec. Exactly one of `epochs` and `steps` is present. */
export interface JobSpec {
  readonly name: string;
  readonly model: string | ModelSpec;
  readonly dataset: DatasetName | DatasetSource;
  /** Present only when the job asked for augmentation. */
  readonly augment?: AugmentSpec;
  /** Present for every task but classification (older classification specs have none). */
  readonly task?: TaskName;
  /** Generated datasets only (always present for them). */
  readonly trainSamples?: number;
  readonly testSamples?: number;
  readonly epochs?: number;
  readonly steps?: number;
  readonly batchSize: number;
  readonly shards: number;
  readonly seed: number;
  readonly optimizer: Required<OptimizerSpec>;
  readonly schedule: ScheduleSpec;
  readonly evalEvery: number | 'epoch';
  readonly evalShards: number;
  readonly evalSamples: number;
  readonly checkpointEvery: number;
  readonly keepCheckpoints: number;
  /** Present only for 'fma' (specs without it are 'exact'). */
  readonly numerics?: 'fma';
}

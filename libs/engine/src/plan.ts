// The step plan: which samples step t trains on and how they are cut into shards.
//
// A pure function of (dataset size N, batch size B, shards S, seed, step), so a coordinator that
// restarts, or any process that wants to check, derives the same shards for the same step.
//
// Choice: an epoch has ceil(N / B) steps and the last batch of an epoch is shorter (N mod B
// samples) when B does not divide N, as PyTorch's DataLoader without drop_last: every sample is
// seen exactly once per epoch. A batch of length L is cut by `shardRanges(L, S)`: contiguous
// ranges, sizes differing by at most one, larger first. Only the short last batch can have
// L < S; its empty shards are not sent (their indices are skipped, the others keep theirs).
import { augmentInto, gatherSamples, permutation, shardRanges, type AugmentOptions, type Dataset, type SampleBatch } from '@stride/data';

/** One shard of one step: the samples `indices[start, end)` of the step's batch. */
export interface PlannedShard {
  readonly shard: number;
  readonly start: number;
  readonly end: number;
}

/** Everything about step t's data. */
export interface PlannedStep {
  /** 0-based global step index. */
  readonly step: number;
  /** 0-based epoch the step belongs to. */
  readonly epoch: number;
  /** 0-based index of the batch inside its epoch (the data position). */
  readonly batchIndex: number;
  /** Dataset sample indices of the batch, in batch order (a view on the epoch's permutation). */
  readonly indices: Uint32Array;
  /** The non-empty shards, in shard order. */
  readonly shards: readonly PlannedShard[];
}

/** Derives step plans for one job. Caches the permutation of the epoch last asked for. */
export class StepPlanner {
  /** ceil(N / B). */
  readonly stepsPerEpoch: number;
  private cachedEpoch = -1;
  private cachedPerm: Uint32Array = new Uint32Array(0);

  constructor(
    /** Training set size N. */
    readonly datasetSize: number,
    readonly batchSize: number,
    readonly shards: number,
    readonly seed: number,
  ) {
    for (const [what, v, min] of [
      ['datasetSize', datasetSize, 1],
      ['batchSize', batchSize, 1],
      ['shards', shards, 1],
      ['seed', seed, 0],
    ] as const) {
      if (!Number.isSafeInteger(v) || v < min) throw new RangeError(`StepPlanner: ${what} must be an integer >= ${min}, got ${v}`);
    }
    if (shards > batchSize) throw new RangeError(`StepPlanner: shards (${shards}) must not exceed batchSize (${batchSize})`);
    this.stepsPerEpoch = Math.ceil(datasetSize / batchSize);
  }

  /** The plan of step `step` (0-based). */
  plan(step: number): PlannedStep {
    if (!Number.isSafeInteger(step) || step < 0) throw new RangeError(`StepPlanner.plan: step must be an integer >= 0, got ${step}`);
    const epoch = Math.floor(step / this.stepsPerEpoch);
    const batchIndex = step - epoch * this.stepsPerEpoch;
    if (epoch !== this.cachedEpoch) {
      this.cachedPerm = permutation(this.datasetSize, this.seed, epoch);
      this.cachedEpoch = epoch;
    }
    const start = batchIndex * this.batchSize;
    const indices = this.cachedPerm.subarray(start, Math.min(start + this.batchSize, this.datasetSize));
    const shards = shardRanges(indices.length, this.shards)
      .map((r, shard) => ({ shard, start: r.start, end: r.end }))
      .filter((r) => r.end > r.start);
    return { step, epoch, batchIndex, indices, shards };
  }
}

/**
 * The samples of a shard: copied out of the dataset (into `into` when given), ready to ship; augmented when `augment` is
 * given, each sample by its own (seed, epoch, dataset index) stream, so the pixels do not depend on
 * the shard split (see @stride/data augment.ts).
 */
export function shardSamples(ds: Dataset, planned: PlannedStep, shard: PlannedShard, augment?: AugmentOptions & { seed: number }, into?: SampleBatch): { images: Uint8Array; labels: Uint8Array } {
  const indices = planned.indices.subarray(shard.start, shard.end);
  const batch = gatherSamples(ds, indices, into);
  if (augment) augmentInto(batch.images, indices, ds.channels, ds.height, ds.width, augment, augment.seed, planned.epoch);
  return batch;
}

/** The evaluation split cut into `shards` contiguous, in-order ranges (empty ones dropped). */
export function evalShardRanges(count: number, shards: number): PlannedShard[] {
  return shardRanges(count, Math.min(shards, count))
    .map((r, shard) => ({ shard, start: r.start, end: r.end }))
    .filter((r) => r.end > r.start);
}

// Deterministic shuffling, batching and sharding, and the uint8 → float input conversion.
//
// Everything here is a pure function of its arguments, so every process (coordinator, workers,
// a resumed coordinator) derives the same batches and shards for the same (seed, epoch, step).

import { createRng, deriveSeed } from '@stride/cnn';
import { DatasetError } from './errors.ts';
import type { Dataset } from './dataset.ts';

/** A contiguous slice `[start, end)` of a batch. */
export interface ShardRange {
  start: number;
  end: number;
}

/** The samples a shard job carries: a copy of the selected images (NCHW per sample) and labels. */
export interface SampleBatch {
  images: Uint8Array<ArrayBuffer>;
  labels: Uint8Array<ArrayBuffer>;
}

const MAX_U32 = 0xffffffff;

function checkCount(what: string, n: number, min: number, max = MAX_U32): void {
  if (!Number.isInteger(n) || n < min || n > max) throw new RangeError(`${what} must be an integer in [${min}, ${max}], got ${n}`);
}

/**
 * The sample order of one epoch: a permutation of 0..n-1, Fisher–Yates driven by
 * `createRng(deriveSeed(seed, epoch))`. Same (n, seed, epoch) → same permutation, everywhere.
 */
export function permutation(n: number, seed: number, epoch: number): Uint32Array<ArrayBuffer> {
  checkCount('permutation: n', n, 0);
  checkCount('permutation: seed', seed, 0);
  checkCount('permutation: epoch', epoch, 0);
  const perm = new Uint32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  const rng = createRng(deriveSeed(seed, epoch));
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  return perm;
}

/**
 * The sample indices of batch `batchIndex` of an epoch: `perm[b*B, min((b+1)*B, n))`.
 * The last batch is shorter when B does not divide n. Returns a view on `perm`, not a copy.
 */
export function batchIndices<B extends ArrayBufferLike>(perm: Uint32Array<B>, batchIndex: number, batchSize: number): Uint32Array<B> {
  checkCount('batchIndices: batchSize', batchSize, 1);
  const batches = Math.ceil(perm.length / batchSize);
  if (!Number.isInteger(batchIndex) || batchIndex < 0 || batchIndex >= batches) {
    throw new RangeError(`batchIndices: batch ${batchIndex} out of range: ${perm.length} samples in batches of ${batchSize} make ${batches} batches`);
  }
  const start = batchIndex * batchSize;
  return perm.subarray(start, Math.min(start + batchSize, perm.length));
}

/**
 * Cuts a batch of `batchLength` samples into exactly `shards` contiguous ranges whose sizes differ
 * by at most one, the larger ones first: with q = ⌊L/S⌋ and r = L mod S, shards 0..r-1 hold q+1
 * samples and the rest q. Membership depends only on (L, S). When L < S the last S-L shards are
 * empty (start === end); the caller decides whether to send them.
 */
export function shardRanges(batchLength: number, shards: number): ShardRange[] {
  checkCount('shardRanges: batchLength', batchLength, 0);
  checkCount('shardRanges: shards', shards, 1);
  const q = Math.floor(batchLength / shards);
  const r = batchLength % shards;
  const out: ShardRange[] = [];
  let start = 0;
  for (let s = 0; s < shards; s++) {
    const end = start + q + (s < r ? 1 : 0);
    out.push({ start, end });
    start = end;
  }
  return out;
}

/** Copies the selected samples (images and labels, in `indices` order) out of a dataset, into `into` when given. */
export function gatherSamples(ds: Dataset, indices: ArrayLike<number>, into?: SampleBatch): SampleBatch {
  const sampleSize = ds.channels * ds.height * ds.width;
  const n = indices.length;
  if (into !== undefined && (into.images.length !== n * sampleSize || into.labels.length !== n)) {
    throw new RangeError(`gatherSamples: into holds ${into.images.length} pixels and ${into.labels.length} labels, ${n} samples need ${n * sampleSize} and ${n}`);
  }
  const images = into?.images ?? new Uint8Array(n * sampleSize);
  const labels = into?.labels ?? new Uint8Array(n);
  for (let k = 0; k < n; k++) {
    const i = indices[k];
    if (!Number.isInteger(i) || i < 0 || i >= ds.count) {
      throw new DatasetError(`${ds.name}/${ds.split}`, `gatherSamples: index ${i} at position ${k} is out of range [0, ${ds.count})`);
    }
    images.set(ds.images.subarray(i * sampleSize, (i + 1) * sampleSize), k * sampleSize);
    labels[k] = ds.labels[i];
  }
  return { images, labels };
}

/**
 * Converts uint8 pixels (NCHW, `count` samples of `channels` planes of `hw` pixels) to the float
 * model input `(x/255 - mean[c]) / std[c]`, into `out` when given (its length must match).
 * Each channel's 256 possible values are computed once in double precision, then looked up.
 */
export function normalizeInto<B extends ArrayBufferLike = ArrayBuffer>(
  images: Uint8Array,
  count: number,
  channels: number,
  hw: number,
  mean: readonly number[],
  std: readonly number[],
  out?: Float32Array<B>,
): Float32Array<B> {
  checkCount('normalizeInto: count', count, 0);
  checkCount('normalizeInto: channels', channels, 1);
  checkCount('normalizeInto: hw', hw, 1);
  const total = count * channels * hw;
  if (images.length !== total) throw new RangeError(`normalizeInto: ${count}×${channels}×${hw} = ${total} pixels expected, images has ${images.length}`);
  if (mean.length !== channels || std.length !== channels) {
    throw new RangeError(`normalizeInto: ${channels} channels need ${channels} mean and std values, got ${mean.length} and ${std.length}`);
  }
  for (let c = 0; c < channels; c++) {
    if (!Number.isFinite(mean[c]) || !(std[c] > 0) || !Number.isFinite(std[c])) {
      throw new RangeError(`normalizeInto: channel ${c} has mean ${mean[c]} and std ${std[c]}; need a finite mean and a finite std > 0`);
    }
  }
  const result = out ?? (new Float32Array(total) as Float32Array<B>);
  if (result.length !== total) throw new RangeError(`normalizeInto: out has ${result.length} elements, ${total} expected`);

  const table = new Float32Array(256 * channels);
  for (let c = 0; c < channels; c++) {
    for (let v = 0; v < 256; v++) table[c * 256 + v] = (v / 255 - mean[c]) / std[c];
  }
  let p = 0;
  for (let n = 0; n < count; n++) {
    for (let c = 0; c < channels; c++) {
      const base = c * 256;
      for (const end = p + hw; p < end; p++) result[p] = table[base + images[p]];
    }
  }
  return result;
}

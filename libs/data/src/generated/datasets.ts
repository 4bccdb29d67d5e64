// Vision datasets generated from real MNIST digits, deterministic from a seed, with no download:
//
//   mnist-localization   one digit, scaled and placed at random on a 64×64 canvas; its class and box
//   mnist-detection      1–4 digits on a 96×96 canvas; every digit's class and box
//   mnist-segmentation   the canvases of mnist-detection (same seed → same images and boxes) plus a
//                        per-pixel class map: 0 background, 1 + digit where the digit's ink > 127
//
// The train splits draw their digits from MNIST train, the test splits from MNIST test. Sample i
// is a pure function of (name's canvas kind, split, seed, i): its own random stream
// `createRng(deriveSeed(seed, split, kind, i))`, so a set of n samples is a prefix of a set of
// n + k, and any sample can be rendered alone (`VisionSampleRenderer`).
//
// Boxes are normalised `cx, cy, w, h` (see @stride/cnn vision/box.ts), the tight box of the
// digit's own ink (every non-zero pixel of its scaled patch). In mnist-detection a digit is
// re-placed (up to 20 tries) when its box would overlap an earlier one's with IoU > 0.25; overlaps
// below that are allowed.

import { createRng, deriveSeed, type Rng } from '@stride/cnn';
import { loadDataset, type Dataset, type Split } from '../dataset.ts';
import { DatasetError } from '../errors.ts';
import { DIGIT_SIDE, pasteDigit, resizeDigit, type DigitPatch, type DigitSource, type PlacedDigit } from './render.ts';

export type GeneratedDatasetName = 'mnist-localization' | 'mnist-detection' | 'mnist-segmentation';
export type VisionTask = 'localization' | 'detection' | 'segmentation';

export const GENERATED_DATASET_NAMES: readonly GeneratedDatasetName[] = ['mnist-localization', 'mnist-detection', 'mnist-segmentation'];

/** A generated vision dataset: the `Dataset` fields plus the task's targets. Do not mutate. */
export interface GeneratedDataset extends Dataset {
  task: VisionTask;
  /** The seed it was generated from. */
  seed: number;
  /**
   * Per-image label: localization the digit's class; detection and segmentation the class of the
   * image's first digit (0..9) — an image-level label only, the targets are the boxes and masks.
   */
  labels: Uint8Array;
  /** 4 values (cx, cy, w, h, normalised) per object; the objects of image i are `boxOffsets[i] .. boxOffsets[i+1] - 1`. */
  boxes: Float32Array;
  /** Digit class (0..9) per object. */
  boxLabels: Uint8Array;
  /** `count + 1` offsets into the objects. */
  boxOffsets: Uint32Array;
  /** segmentation: `count × height × width` classes (0 background, 1 + digit); null for the other tasks. */
  masks: Uint8Array | null;
}

/** Mask class of a pixel is 1 + digit where the brightest digit there is brighter than this. */
export const SEGMENTATION_THRESHOLD = 127;

/** Pixel mean and std (of x/255) of the generated train splits, measured on 2000 samples of seed 0; a test checks them. */
export const GENERATED_STATS: Readonly<Record<'localization' | 'multi', { mean: number; std: number }>> = {
  localization: { mean: 0.0498, std: 0.1895 },
  multi: { mean: 0.0464, std: 0.1839 },
};

interface CanvasSpec {
  task: VisionTask;
  /** Stream id: the same id renders the same canvases. */
  kind: number;
  side: number;
  minDigits: number;
  maxDigits: number;
  /** Range of the scaled 28×28 patch side (the ink is about 70% of it). */
  minScale: number;
  maxScale: number;
  defaultCount: Record<Split, number>;
  stats: { mean: number; std: number };
}

const SPECS: Record<GeneratedDatasetName, CanvasSpec> = {
  'mnist-localization': { task: 'localization', kind: 1, side: 64, minDigits: 1, maxDigits: 1, minScale: 20, maxScale: 56, defaultCount: { train: 10_000, test: 2_000 }, stats: GENERATED_STATS.localization },
  'mnist-detection': { task: 'detection', kind: 2, side: 96, minDigits: 1, maxDigits: 4, minScale: 24, maxScale: 48, defaultCount: { train: 5_000, test: 1_000 }, stats: GENERATED_STATS.multi },
  'mnist-segmentation': { task: 'segmentation', kind: 2, side: 96, minDigits: 1, maxDigits: 4, minScale: 24, maxScale: 48, defaultCount: { train: 5_000, test: 1_000 }, stats: GENERATED_STATS.multi },
};

const SPLIT_ID: Record<Split, number> = { train: 0, test: 1 };
const MAX_COUNT = 100_000;
const PLACEMENT_TRIES = 20;
const MAX_OVERLAP_IOU = 0.25;

export interface GenerateOptions {
  /** Number of samples; default 10 000 train / 2 000 test for localization, 5 000 / 1 000 for the others; at most 100 000. */
  count?: number;
  /** Seed, an integer in [0, 2^32); default 0. */
  seed?: number;
}

function checkName(name: unknown): GeneratedDatasetName {
  if (typeof name !== 'string' || !Object.hasOwn(SPECS, name)) {
    throw new DatasetError(String(name), `unknown generated dataset; expected one of ${GENERATED_DATASET_NAMES.join(', ')}`);
  }
  return name as GeneratedDatasetName;
}

function checkSplit(name: string, split: unknown): Split {
  if (split !== 'train' && split !== 'test') throw new DatasetError(name, `unknown split "${String(split)}"; expected train or test`);
  return split;
}

function iouPixels(a: PlacedDigit, b: PlacedDigit): number {
  const iw = Math.min(a.x1, b.x1) - Math.max(a.x0, b.x0);
  const ih = Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0);
  if (iw <= 0 || ih <= 0) return 0;
  const inter = iw * ih;
  return inter / ((a.x1 - a.x0) * (a.y1 - a.y0) + (b.x1 - b.x0) * (b.y1 - b.y0) - inter);
}

/** Renders single samples of one generated dataset from a digit source, on demand. */
export class VisionSampleRenderer {
  readonly name: GeneratedDatasetName;
  readonly split: Split;
  readonly seed: number;
  readonly side: number;
  readonly task: VisionTask;
  private readonly spec: CanvasSpec;

  constructor(
    name: GeneratedDatasetName,
    split: Split,
    seed: number,
    private readonly source: DigitSource,
  ) {
    this.name = checkName(name);
    this.split = checkSplit(name, split);
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new DatasetError(name, `seed must be an integer in [0, 2^32), got ${seed}`);
    if (source.count < 1 || source.images.length !== source.count * DIGIT_SIDE * DIGIT_SIDE || source.labels.length !== source.count) {
      throw new DatasetError(name, `the digit source must hold count ≥ 1 images of ${DIGIT_SIDE}×${DIGIT_SIDE} and as many labels, got ${source.count}, ${source.images.length} pixels, ${source.labels.length} labels`);
    }
    this.seed = seed;
    this.spec = SPECS[name];
    this.side = this.spec.side;
    this.task = this.spec.task;
  }

  /**
   * Renders sample `index` into `image` (side² pixels, cleared first) and, when given, its class map
   * into `mask`; returns the placed digits in drawing order.
   */
  render(index: number, image: Uint8Array, mask: Uint8Array | null = null): PlacedDigit[] {
    const { spec, side } = this;
    if (!Number.isInteger(index) || index < 0) throw new RangeError(`${this.name}: sample index must be an integer >= 0, got ${index}`);
    if (image.length !== side * side || (mask !== null && mask.length !== side * side)) {
      throw new RangeError(`${this.name}: image and mask must hold ${side}×${side} = ${side * side} pixels, got ${image.length} and ${mask?.length ?? 'no mask'}`);
    }
    image.fill(0);
    mask?.fill(0);
    const rng = createRng(deriveSeed(this.seed, SPLIT_ID[this.split], spec.kind, index));
    const digits = spec.minDigits + rng.int(spec.maxDigits - spec.minDigits + 1);
    const placed: PlacedDigit[] = [];
    for (let k = 0; k < digits; k++) {
      const { patch, sourceIndex } = this.pickDigit(rng);
      const free = side - patch.side + 1;
      let left = 0;
      let top = 0;
      let box: PlacedDigit | null = null;
      for (let attempt = 0; attempt < PLACEMENT_TRIES; attempt++) {
        left = rng.int(free);
        top = rng.int(free);
        box = { classId: this.source.labels[sourceIndex], sourceIndex, x0: left + patch.x0, y0: top + patch.y0, x1: left + patch.x1, y1: top + patch.y1 };
        if (placed.every((p) => iouPixels(p, box!) <= MAX_OVERLAP_IOU)) break;
      }
      pasteDigit(image, mask, side, patch, left, top, box!.classId, SEGMENTATION_THRESHOLD);
      placed.push(box!);
    }
    return placed;
  }

  /** A random digit from the source, resized to a random scale; digits without ink are drawn again. */
  private pickDigit(rng: Rng): { patch: DigitPatch; sourceIndex: number } {
    const { minScale, maxScale } = this.spec;
    for (;;) {
      const sourceIndex = rng.int(this.source.count);
      const patch = resizeDigit(this.source, sourceIndex, minScale + rng.int(maxScale - minScale + 1));
      if (patch.x1 > 0) return { patch, sourceIndex };
    }
  }
}

/** Generates `name`/`split` from an already loaded digit source (synchronous). */
export function generateFromDigits(name: GeneratedDatasetName, split: Split, source: DigitSource, opts: GenerateOptions = {}): GeneratedDataset {
  checkName(name);
  checkSplit(name, split);
  const spec = SPECS[name];
  const count = opts.count ?? spec.defaultCount[split];
  if (!Number.isInteger(count) || count < 1 || count > MAX_COUNT) throw new DatasetError(name, `count must be an integer in [1, ${MAX_COUNT}], got ${count}`);
  const renderer = new VisionSampleRenderer(name, split, opts.seed ?? 0, source);
  const side = spec.side;
  const pixels = side * side;
  const images = new Uint8Array(count * pixels);
  const masks = spec.task === 'segmentation' ? new Uint8Array(count * pixels) : null;
  const labels = new Uint8Array(count);
  const boxOffsets = new Uint32Array(count + 1);
  const boxes: number[] = [];
  const boxLabels: number[] = [];
  for (let i = 0; i < count; i++) {
    const placed = renderer.render(i, images.subarray(i * pixels, (i + 1) * pixels), masks === null ? null : masks.subarray(i * pixels, (i + 1) * pixels));
    labels[i] = placed[0].classId;
    for (const d of placed) {
      boxes.push((d.x0 + d.x1) / 2 / side, (d.y0 + d.y1) / 2 / side, (d.x1 - d.x0) / side, (d.y1 - d.y0) / side);
      boxLabels.push(d.classId);
    }
    boxOffsets[i + 1] = boxLabels.length;
  }
  const segmentation = spec.task === 'segmentation';
  const digitNames = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
  return {
    name,
    split,
    count,
    channels: 1,
    height: side,
    width: side,
    numClasses: segmentation ? 11 : 10,
    classNames: segmentation ? ['background', ...digitNames] : digitNames,
    images,
    labels,
    mean: [spec.stats.mean],
    std: [spec.stats.std],
    task: spec.task,
    seed: renderer.seed,
    boxes: Float32Array.from(boxes),
    boxLabels: Uint8Array.from(boxLabels),
    boxOffsets,
    masks,
  };
}

/** Generates one split of a generated vision dataset from the MNIST digits of the same split. */
export async function generateDataset(name: GeneratedDatasetName, split: Split, opts: GenerateOptions = {}): Promise<GeneratedDataset> {
  checkName(name);
  checkSplit(name, split);
  const mnist = await loadDataset('mnist', split);
  return generateFromDigits(name, split, mnist, opts);
}

/** The targets of selected samples, in `indices` order, ready to ship with their images. */
export interface VisionTargets {
  labels: Uint8Array;
  /** Boxes of the selected images, re-indexed: the objects of the k-th selected image are `boxOffsets[k] .. boxOffsets[k+1] - 1`. */
  boxes: Float32Array;
  boxLabels: Uint8Array;
  boxOffsets: Uint32Array;
  /** segmentation: `indices.length × height × width` classes; null otherwise. */
  masks: Uint8Array | null;
}

/** Copies the targets of the selected samples (the images come from `gatherSamples`). */
export function gatherTargets(ds: GeneratedDataset, indices: ArrayLike<number>): VisionTargets {
  const n = indices.length;
  const pixels = ds.height * ds.width;
  const labels = new Uint8Array(n);
  const boxOffsets = new Uint32Array(n + 1);
  const masks = ds.masks === null ? null : new Uint8Array(n * pixels);
  for (let k = 0; k < n; k++) {
    const i = indices[k];
    if (!Number.isInteger(i) || i < 0 || i >= ds.count) {
      throw new DatasetError(`${ds.name}/${ds.split}`, `gatherTargets: index ${i} at position ${k} is out of range [0, ${ds.count})`);
    }
    labels[k] = ds.labels[i];
    boxOffsets[k + 1] = boxOffsets[k] + ds.boxOffsets[i + 1] - ds.boxOffsets[i];
    masks?.set(ds.masks!.subarray(i * pixels, (i + 1) * pixels), k * pixels);
  }
  const boxes = new Float32Array(4 * boxOffsets[n]);
  const boxLabels = new Uint8Array(boxOffsets[n]);
  for (let k = 0; k < n; k++) {
    const from = ds.boxOffsets[indices[k]];
    const len = boxOffsets[k + 1] - boxOffsets[k];
    boxes.set(ds.boxes.subarray(4 * from, 4 * (from + len)), 4 * boxOffsets[k]);
    boxLabels.set(ds.boxLabels.subarray(from, from + len), boxOffsets[k]);
  }
  return { labels, boxes, boxLabels, boxOffsets, masks };
}

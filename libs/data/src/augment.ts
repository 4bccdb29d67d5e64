// Deterministic data augmentation for classification: random crop with zero padding and random
// horizontal flip, applied to uint8 images (NCHW) before they are normalised.
//
// Each sample's randomness comes from its own stream `createRng(deriveSeed(seed, AUGMENT_DOMAIN,
// epoch, index))`, `index` being the sample's index in the dataset: the same sample in the same
// epoch is augmented the same way whatever batch, shard or process it lands in, so augmentation
// keeps the shard the unit of determinism. Per sample, in this order: the crop offsets dy, dx ∈
// [0, 2·crop] (each `rng.int(2·crop + 1)`, drawn only when crop > 0), then the flip
// (`rng.next() < 0.5`, drawn only when flip is on). As torchvision's RandomCrop(size, padding=crop)
// followed by RandomHorizontalFlip(): padding is black (pixel value 0).

import { createRng, deriveSeed } from '@stride/cnn';

/** Augmentation of a classification job. */
export interface AugmentOptions {
  /** Zero padding on every side before a random crop back to the original size; 0 = no crop. Default 0. */
  crop?: number;
  /** Flip horizontally with probability 1/2. Default false. */
  flip?: boolean;
}

/** Domain tag mixed into augmentation seeds so they never coincide with shuffling or dropout seeds. */
export const AUGMENT_DOMAIN = 0x61756721; // "aug!"

/** The crop offsets and flip of one sample (see the top of this file). */
export function augmentDraw(options: AugmentOptions, seed: number, epoch: number, index: number): { dy: number; dx: number; flip: boolean } {
  const crop = options.crop ?? 0;
  const rng = createRng(deriveSeed(seed, AUGMENT_DOMAIN, epoch, index));
  const dy = crop > 0 ? rng.int(2 * crop + 1) : crop;
  const dx = crop > 0 ? rng.int(2 * crop + 1) : crop;
  const flip = options.flip === true && rng.next() < 0.5;
  return { dy, dx, flip };
}

/** Whether the options change anything. */
export function augmentIsActive(options: AugmentOptions | undefined): boolean {
  return options !== undefined && ((options.crop ?? 0) > 0 || options.flip === true);
}

/**
 * Augments `count` images of `c × h × w` (NCHW) in place. `indices[k]` is the dataset index of
 * image k; with `epoch` and `seed` it fixes the image's crop and flip (see the top of this file).
 */
export function augmentInto(images: Uint8Array, indices: ArrayLike<number>, c: number, h: number, w: number, options: AugmentOptions, seed: number, epoch: number): void {
  const count = indices.length;
  for (const [what, v] of [['c', c], ['h', h], ['w', w]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`augmentInto: ${what} must be a positive integer, got ${v}`);
  }
  const crop = options.crop ?? 0;
  if (!Number.isSafeInteger(crop) || crop < 0 || crop >= Math.min(h, w)) throw new RangeError(`augmentInto: crop must be an integer in [0, ${Math.min(h, w) - 1}], got ${crop}`);
  if (images.length !== count * c * h * w) throw new RangeError(`augmentInto: ${count} images of ${c}×${h}×${w} need ${count * c * h * w} values, got ${images.length}`);
  if (!augmentIsActive(options)) return;
  const plane = h * w;
  const tmp = new Uint8Array(plane);
  for (let k = 0; k < count; k++) {
    const { dy, dx, flip } = augmentDraw(options, seed, epoch, indices[k]);
    // Output pixel (y, x) reads the padded image at (y + dy, x' + dx), x' = flipped x; the padded
    // image at (py, px) is the original at (py - crop, px - crop), or 0 outside it.
    const oy = dy - crop;
    const ox = dx - crop;
    if (oy === 0 && ox === 0 && !flip) continue;
    for (let ch = 0; ch < c; ch++) {
      const base = (k * c + ch) * plane;
      tmp.set(images.subarray(base, base + plane));
      for (let y = 0; y < h; y++) {
        const sy = y + oy;
        const row = base + y * w;
        if (sy < 0 || sy >= h) {
          images.fill(0, row, row + w);
          continue;
        }
        for (let x = 0; x < w; x++) {
          const sx = (flip ? w - 1 - x : x) + ox;
          images[row + x] = sx < 0 || sx >= w ? 0 : tmp[sy * w + sx];
        }
      }
    }
  }
}

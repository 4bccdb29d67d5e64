// PNG and JPEG decoding with limits checked before any pixel is allocated, and a deterministic
// resize to the model's input.
//
// Order of checks for every file: its size (`maxFileBytes`), then the header read by hand — the
// PNG IHDR chunk, or the JPEG frame header (SOFn) found by walking the markers — giving width and
// height, which must each be ≤ `maxSide` and whose product must be ≤ `maxPixels`. Only then is the
// file handed to the decoder (`pngjs`, `jpeg-js`). A decompression bomb — a few hundred bytes
// declaring 50000×50000 — is refused by its header, before allocation.
//
// A truncated file is refused: a PNG must reach its IEND chunk (pngjs checks every chunk's CRC), a
// JPEG must hold an end-of-image marker after its first scan. Every error is a DatasetError whose
// `source` is the file's path.
//
// Colour: PNG alpha is dropped (as PIL's `convert('RGB')`); 16-bit PNGs are scaled to 8 bits; a
// grey image becomes RGB by repeating its value, an RGB image becomes grey by ITU-R 601-2 luma
// (`L = (299 R + 587 G + 114 B) / 1000`, rounded, as PIL's `convert('L')`).

import { decode as decodeJpeg } from 'jpeg-js';
import { PNG } from 'pngjs';
import { DatasetError } from './errors.ts';

/** Limits applied to every image file before it is decoded. */
export interface ImageLimits {
  /** Largest file accepted, bytes. Default 32 MiB. */
  maxFileBytes?: number;
  /** Largest width × height accepted. Default 40 000 000 (e.g. 8000 × 5000). */
  maxPixels?: number;
  /** Largest width or height accepted. Default 20 000. */
  maxSide?: number;
}

export const DEFAULT_IMAGE_LIMITS: Readonly<Required<ImageLimits>> = { maxFileBytes: 32 * 1024 * 1024, maxPixels: 40_000_000, maxSide: 20_000 };

export type ImageFormat = 'png' | 'jpeg';

/** What a file's header says, read without decoding. */
export interface ImageHeader {
  format: ImageFormat;
  width: number;
  height: number;
  /** Colour channels the file stores (1 grey, 3 colour; alpha and CMYK not counted as such). */
  channels: 1 | 3;
}

/** A decoded image: `height × width` pixels of `channels` interleaved uint8 values (HWC). */
export interface DecodedImage {
  format: ImageFormat;
  width: number;
  height: number;
  channels: 1 | 3;
  data: Uint8Array;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function resolveLimits(limits: ImageLimits = {}): Required<ImageLimits> {
  const l = { ...DEFAULT_IMAGE_LIMITS, ...limits };
  for (const key of ['maxFileBytes', 'maxPixels', 'maxSide'] as const) {
    if (!Number.isSafeInteger(l[key]) || l[key] < 1) throw new RangeError(`image limits: ${key} must be a positive integer, got ${l[key]}`);
  }
  return l;
}

const u16 = (b: Uint8Array, p: number): number => (b[p] << 8) | b[p + 1];
const u32 = (b: Uint8Array, p: number): number => ((b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]) >>> 0;

function pngHeader(bytes: Uint8Array, source: string): ImageHeader {
  if (bytes.length < 33) throw new DatasetError(source, `truncated PNG: ${bytes.length} bytes, too short for its header`);
  if (u32(bytes, 8) !== 13 || String.fromCharCode(bytes[12], bytes[13], bytes[14], bytes[15]) !== 'IHDR') {
    throw new DatasetError(source, 'malformed PNG: the first chunk is not a 13-byte IHDR');
  }
  const width = u32(bytes, 16);
  const height = u32(bytes, 20);
  const depth = bytes[24];
  const colorType = bytes[25];
  const validDepths: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };
  if (!validDepths[colorType]) throw new DatasetError(source, `malformed PNG: colour type ${colorType} is not one of 0, 2, 3, 4, 6`);
  if (!validDepths[colorType].includes(depth)) throw new DatasetError(source, `malformed PNG: bit depth ${depth} is not allowed with colour type ${colorType}`);
  if (bytes[26] !== 0 || bytes[27] !== 0 || bytes[28] > 1) throw new DatasetError(source, 'malformed PNG: unknown compression, filter or interlace method');
  return { format: 'png', width, height, channels: colorType === 0 || colorType === 4 ? 1 : 3 };
}

/** Walks a PNG's chunks (length, type, data, CRC) to its IEND; a file that ends first is truncated. */
function checkPngChunks(bytes: Uint8Array, source: string): void {
  let p = 8;
  while (p + 12 <= bytes.length) {
    const length = u32(bytes, p);
    const type = String.fromCharCode(bytes[p + 4], bytes[p + 5], bytes[p + 6], bytes[p + 7]);
    if (p + 12 + length > bytes.length) throw new DatasetError(source, `truncated PNG: chunk ${JSON.stringify(type)} at byte ${p} needs ${length + 12} bytes, the file ends after ${bytes.length - p}`);
    if (type === 'IEND') return;
    p += 12 + length;
  }
  throw new DatasetError(source, `truncated PNG: the file ends at byte ${bytes.length} without an IEND chunk`);
}

/** JPEG start-of-frame markers: C0–CF except DHT (C4), JPG (C8) and DAC (CC). */
const isSof = (m: number): boolean => m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;

/** Walks the JPEG markers up to the first scan; returns the frame header and where the scan starts. */
function jpegHeader(bytes: Uint8Array, source: string): ImageHeader & { scanStart: number } {
  let p = 2;
  let frame: ImageHeader | undefined;
  for (;;) {
    if (p + 4 > bytes.length) throw new DatasetError(source, `truncated JPEG: ends at byte ${bytes.length} before its first scan`);
    if (bytes[p] !== 0xff) throw new DatasetError(source, `malformed JPEG: expected a marker at byte ${p}, found 0x${bytes[p].toString(16)}`);
    const marker = bytes[p + 1];
    if (marker === 0xff) {
      p++; // fill byte
      continue;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      p += 2; // markers without a length
      continue;
    }
    if (marker === 0xd9) throw new DatasetError(source, 'malformed JPEG: end of image before any scan');
    const length = u16(bytes, p + 2);
    if (length < 2) throw new DatasetError(source, `malformed JPEG: segment 0x${marker.toString(16)} at byte ${p} has length ${length}`);
    if (p + 2 + length > bytes.length) throw new DatasetError(source, `truncated JPEG: segment 0x${marker.toString(16)} at byte ${p} runs past the end of the file`);
    if (isSof(marker)) {
      if (length < 8) throw new DatasetError(source, `malformed JPEG: frame header at byte ${p} is too short`);
      const components = bytes[p + 9];
      if (components !== 1 && components !== 3 && components !== 4) throw new DatasetError(source, `malformed JPEG: ${components} colour components (expected 1, 3 or 4)`);
      frame = { format: 'jpeg', height: u16(bytes, p + 5), width: u16(bytes, p + 7), channels: components === 1 ? 1 : 3 };
    }
    if (marker === 0xda) {
      if (!frame) throw new DatasetError(source, 'malformed JPEG: a scan before any frame header (SOF)');
      return { ...frame, scanStart: p + 2 + length };
    }
    p += 2 + length;
  }
}

/** Format and size of an image from its first bytes; throws a DatasetError naming `source` when unknown or malformed. */
export function readImageHeader(bytes: Uint8Array, source: string): ImageHeader {
  if (bytes.length >= 8 && PNG_SIGNATURE.every((v, i) => bytes[i] === v)) return pngHeader(bytes, source);
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
    const { scanStart: _scanStart, ...header } = jpegHeader(bytes, source);
    return header;
  }
  if (bytes.length === 0) throw new DatasetError(source, 'empty file');
  throw new DatasetError(source, 'not a PNG or JPEG file (unrecognised signature)');
}

function checkSize(header: ImageHeader, limits: Required<ImageLimits>, source: string): void {
  const { width, height } = header;
  if (width < 1 || height < 1) throw new DatasetError(source, `${header.format.toUpperCase()} header declares ${width}×${height} pixels`);
  if (width > limits.maxSide || height > limits.maxSide || width * height > limits.maxPixels) {
    throw new DatasetError(source, `${header.format.toUpperCase()} header declares ${width}×${height} pixels, over the limit of ${limits.maxSide} per side and ${limits.maxPixels} in all; refused before decoding`);
  }
}

/** The last index of the JPEG end-of-image marker at or after `from`, or -1. */
function lastEoi(bytes: Uint8Array, from: number): number {
  for (let i = bytes.length - 2; i >= from; i--) if (bytes[i] === 0xff && bytes[i + 1] === 0xd9) return i;
  return -1;
}

/**
 * Decodes a PNG or JPEG file's bytes after checking them against `limits` (file size, then the
 * header's width and height). Throws a DatasetError naming `source` on any problem.
 */
export function decodeImage(bytes: Uint8Array, source: string, limits?: ImageLimits): DecodedImage {
  const l = resolveLimits(limits);
  if (bytes.length > l.maxFileBytes) throw new DatasetError(source, `file of ${bytes.length} bytes is over the limit of ${l.maxFileBytes}`);
  const header = readImageHeader(bytes, source);
  checkSize(header, l, source);
  const { width, height } = header;
  const n = width * height;
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (header.format === 'png') {
    checkPngChunks(bytes, source);
    let png: PNG;
    try {
      png = PNG.sync.read(buf);
    } catch (err) {
      throw new DatasetError(source, `corrupt or truncated PNG: ${(err as Error).message}`, { cause: err });
    }
    if (png.width !== width || png.height !== height || png.data.length !== n * 4) {
      throw new DatasetError(source, `corrupt PNG: decoded ${png.width}×${png.height} (${png.data.length} bytes), header says ${width}×${height}`);
    }
    // pngjs gives RGBA, 8 bits per channel; keep the stored channels, drop alpha.
    const out = new Uint8Array(n * header.channels);
    const rgba = png.data;
    if (header.channels === 1) for (let i = 0; i < n; i++) out[i] = rgba[4 * i];
    else {
      for (let i = 0; i < n; i++) {
        out[3 * i] = rgba[4 * i];
        out[3 * i + 1] = rgba[4 * i + 1];
        out[3 * i + 2] = rgba[4 * i + 2];
      }
    }
    return { ...header, data: out };
  }
  const { scanStart } = jpegHeader(bytes, source);
  if (lastEoi(bytes, scanStart) < 0) throw new DatasetError(source, 'truncated JPEG: no end-of-image marker after its scan data');
  let jpeg: { width: number; height: number; data: Uint8Array };
  try {
    jpeg = decodeJpeg(bytes, {
      useTArray: true,
      formatAsRGBA: false,
      tolerantDecoding: false,
      maxResolutionInMP: Math.ceil(l.maxPixels / 1e6),
      maxMemoryUsageInMB: Math.max(64, Math.ceil((l.maxPixels * 16) / 2 ** 20)),
    });
  } catch (err) {
    throw new DatasetError(source, `corrupt JPEG: ${(err as Error).message ?? String(err)}`, { cause: err });
  }
  if (jpeg.width !== width || jpeg.height !== height || jpeg.data.length !== n * 3) {
    throw new DatasetError(source, `corrupt JPEG: decoded ${jpeg.width}×${jpeg.height} (${jpeg.data.length} bytes), header says ${width}×${height}`);
  }
  // jpeg-js gives RGB (grey repeated); keep one plane for a grey file.
  if (header.channels === 1) {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = jpeg.data[3 * i];
    return { ...header, data: out };
  }
  return { ...header, data: jpeg.data };
}

/**
 * Converts a decoded image (HWC) to `channels` planes (CHW): grey → RGB repeats the value, RGB →
 * grey is ITU-R 601-2 luma rounded to the nearest integer.
 */
export function toPlanes(img: DecodedImage, channels: 1 | 3): Uint8Array {
  const n = img.width * img.height;
  const out = new Uint8Array(n * channels);
  const src = img.data;
  if (img.channels === 1) {
    for (let c = 0; c < channels; c++) out.set(src.subarray(0, n), c * n);
  } else if (channels === 3) {
    for (let i = 0; i < n; i++) {
      out[i] = src[3 * i];
      out[n + i] = src[3 * i + 1];
      out[2 * n + i] = src[3 * i + 2];
    }
  } else {
    // Integer arithmetic: (299 R + 587 G + 114 B + 500) / 1000, truncated.
    for (let i = 0; i < n; i++) out[i] = Math.floor((299 * src[3 * i] + 587 * src[3 * i + 1] + 114 * src[3 * i + 2] + 500) / 1000);
  }
  return out;
}

/** Per output index along one axis: the first source index and the weights of the source pixels it reads. */
interface AxisWeights {
  start: Int32Array;
  count: Int32Array;
  weights: Float64Array;
  /** Weights per output index (the stride of `weights`). */
  span: number;
}

/**
 * Resampling weights from `src` to `dst` samples along one axis (pixel centres at i + 0.5):
 * shrinking averages the source interval each output pixel covers (area, as OpenCV's INTER_AREA),
 * growing or keeping interpolates linearly between the two nearest centres, edges clamped
 * (bilinear with half-pixel centres, as PyTorch's align_corners=False).
 */
function axisWeights(src: number, dst: number): AxisWeights {
  const scale = src / dst;
  const span = scale > 1 ? Math.ceil(scale) + 1 : 2;
  const start = new Int32Array(dst);
  const count = new Int32Array(dst);
  const weights = new Float64Array(dst * span);
  for (let o = 0; o < dst; o++) {
    if (scale > 1) {
      const lo = o * scale;
      const hi = Math.min(src, (o + 1) * scale);
      const first = Math.floor(lo);
      let k = 0;
      for (let i = first; i < hi && k < span; i++, k++) weights[o * span + k] = (Math.min(i + 1, hi) - Math.max(i, lo)) / scale;
      start[o] = first;
      count[o] = k;
    } else {
      const x = Math.min(Math.max((o + 0.5) * scale - 0.5, 0), src - 1);
      const i0 = Math.floor(x);
      const f = x - i0;
      start[o] = i0;
      if (i0 + 1 < src && f > 0) {
        weights[o * span] = 1 - f;
        weights[o * span + 1] = f;
        count[o] = 2;
      } else {
        weights[o * span] = 1;
        count[o] = 1;
      }
    }
  }
  return { start, count, weights, span };
}

/**
 * Resizes `channels` uint8 planes (CHW) from `srcH × srcW` to `dstH × dstW`: area averaging when
 * shrinking, bilinear when growing, separable (rows, then columns), in double precision, rounded
 * to the nearest integer. The aspect ratio is not kept (the image is stretched). Deterministic.
 */
export function resizePlanes(src: Uint8Array, channels: number, srcH: number, srcW: number, dstH: number, dstW: number): Uint8Array {
  for (const [what, v] of [['channels', channels], ['srcH', srcH], ['srcW', srcW], ['dstH', dstH], ['dstW', dstW]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`resizePlanes: ${what} must be a positive integer, got ${v}`);
  }
  if (src.length !== channels * srcH * srcW) throw new RangeError(`resizePlanes: ${channels}×${srcH}×${srcW} needs ${channels * srcH * srcW} values, got ${src.length}`);
  if (srcH === dstH && srcW === dstW) return src.slice();
  const xs = axisWeights(srcW, dstW);
  const ys = axisWeights(srcH, dstH);
  const out = new Uint8Array(channels * dstH * dstW);
  const rows = new Float64Array(srcH * dstW); // one channel resized along x
  for (let c = 0; c < channels; c++) {
    const plane = c * srcH * srcW;
    // Hot loops over flat arrays: per output column, the source pixels and weights along x.
    for (let y = 0; y < srcH; y++) {
      const row = plane + y * srcW;
      for (let o = 0; o < dstW; o++) {
        let acc = 0;
        const s = row + xs.start[o];
        const wBase = o * xs.span;
        for (let k = 0; k < xs.count[o]; k++) acc += src[s + k] * xs.weights[wBase + k];
        rows[y * dstW + o] = acc;
      }
    }
    const outPlane = c * dstH * dstW;
    for (let o = 0; o < dstH; o++) {
      const wBase = o * ys.span;
      for (let x = 0; x < dstW; x++) {
        let acc = 0;
        for (let k = 0; k < ys.count[o]; k++) acc += rows[(ys.start[o] + k) * dstW + x] * ys.weights[wBase + k];
        out[outPlane + o * dstW + x] = Math.min(255, Math.max(0, Math.round(acc)));
      }
    }
  }
  return out;
}

// The playground's vision tasks, the parts that need no page: which task a checkpoint was trained
// for, the drawing pad's geometry, the pad's pixels turned into the model's input, colours per
// class, the segmentation mask as an RGBA overlay, and boxes drawn with their class and score.
//
// Boxes follow @stride/cnn's convention (vision/box.ts): centre and size as fractions of the image
// side, `{ cx, cy, w, h }`, so one box is drawn the same on the 64×64 input and on the 320-px pad.
import type { Box, Detection } from '@stride/cnn';
import type { CheckpointMeta, TaskName } from '@stride/protocol';
import { inkFromRgba, resizeArea, type RgbaImage } from '../preprocess.ts';
import { taskOfDataset } from './tasks.ts';

/** Zoo models made for one task, by their spec's name. */
const MODEL_TASKS: Readonly<Record<string, TaskName>> = { localizer: 'localization', yolo: 'detection', unet: 'segmentation' };

/** The task a checkpoint's model was trained for: its spec's, its dataset's, else its zoo model's. */
export function taskOfCheckpoint(meta: Pick<CheckpointMeta, 'spec' | 'modelSpec'>): TaskName {
  const spec = meta.spec as { task?: unknown; dataset?: unknown } | undefined;
  const dataset = typeof spec?.dataset === 'string' ? spec.dataset : '';
  const task = taskOfDataset(dataset, spec?.task);
  if (task !== 'classification' || dataset) return task;
  return MODEL_TASKS[meta.modelSpec?.name ?? ''] ?? 'classification';
}

/** Drawing pads are about this many CSS px wide. */
const PAD_TARGET = 288;

export interface PadGeometry {
  /** The model's input side. */
  readonly side: number;
  /** Pad pixels per input pixel (an integer, so the downscale averages whole blocks). */
  readonly scale: number;
  /** Pad side in its own pixels: `side · scale`. */
  readonly px: number;
  /** Pen width in pad pixels. */
  readonly pen: number;
}

/**
 * The pad for a vision model of input side `side`: an integer multiple of the side near 288 px,
 * and a pen as thick as a stroke of the generated digits (about 3.3 input pixels: MNIST's strokes
 * of ~2.5 px in 28 scaled to the sets' 24–56 px digits).
 */
export function padGeometry(side: number): PadGeometry {
  if (!(Number.isInteger(side) && side >= 1)) throw new Error(`padGeometry: side must be an integer >= 1, got ${side}`);
  const scale = Math.max(1, Math.round(PAD_TARGET / side));
  return { side, scale, px: side * scale, pen: Math.max(1, Math.round(3.3 * scale)) };
}

/**
 * The pad's pixels as the model's input: ink in [0, 1] (white on black; a photo of dark ink on
 * light paper is inverted), area-averaged down to `side × side`. Unlike the classification
 * playground nothing is centred or rescaled: where the digits are is what the model must find.
 * Returns null when there is no ink.
 */
export function padToInput(img: RgbaImage, side: number): Float32Array | null {
  if (img.width !== img.height) throw new Error(`padToInput: the pad must be square, got ${img.width}×${img.height}`);
  const { ink } = inkFromRgba(img);
  let any = false;
  for (let i = 0; i < ink.length; i++) {
    if (ink[i] > 0) {
      any = true;
      break;
    }
  }
  if (!any) return null;
  return img.width === side ? ink : resizeArea(ink, img.width, img.height, side, side);
}

export type Rgb = readonly [number, number, number];

/** Ten colours for the ten digits, distinct from each other and readable on the black pad. */
const DIGIT_COLORS: readonly Rgb[] = [
  [59, 130, 246], // 0 blue
  [249, 115, 22], // 1 orange
  [34, 197, 94], // 2 green
  [239, 68, 68], // 3 red
  [168, 85, 247], // 4 purple
  [234, 179, 8], // 5 yellow
  [236, 72, 153], // 6 pink
  [20, 184, 166], // 7 teal
  [132, 204, 22], // 8 lime
  [160, 82, 45], // 9 sienna
];

/** HSL (h in degrees, s and l in [0, 1]) to RGB bytes. */
function hsl(hDeg: number, s: number, l: number): Rgb {
  const k = (n: number): number => (n + hDeg / 30) % 12;
  const a = s * Math.min(l, 1 - l);
  const f = (n: number): number => Math.round(255 * (l - a * Math.max(-1, Math.min(k(n) - 3, 9 - k(n), 1))));
  return [f(0), f(8), f(4)];
}

/** The colour of object class `classId` (the digits' own ten, then golden-angle hues). */
export function classColor(classId: number): Rgb {
  if (!(Number.isInteger(classId) && classId >= 0)) throw new Error(`classColor: class must be an integer >= 0, got ${classId}`);
  return DIGIT_COLORS[classId] ?? hsl((classId * 137.508) % 360, 0.7, 0.55);
}

export const cssColor = ([r, g, b]: Rgb, alpha = 1): string => (alpha === 1 ? `rgb(${r}, ${g}, ${b})` : `rgba(${r}, ${g}, ${b}, ${alpha})`);

/**
 * Text colour for a label on a tab of colour `rgb`: white, as on most of the palette, unless the
 * colour is light (WCAG relative luminance above 0.4: yellow, lime, green), then near-black.
 */
export function textColorOn([r, g, b]: Rgb): string {
  const lin = (v: number): number => {
    const c = v / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b) > 0.4 ? '#111' : '#fff';
}

/**
 * The names of a segmentation model's K output classes. The generated set's classes are
 * 0 background and 1 + digit: a checkpoint listing only the ten digits gets `background` first.
 */
export function segmentationClassNames(k: number, classNames: readonly string[] | undefined): string[] {
  const names = classNames ?? [];
  if (names.length === k) return [...names];
  if (names.length === k - 1) return ['background', ...names];
  return Array.from({ length: k }, (_, i) => (i === 0 ? 'background' : String(i - 1)));
}

/**
 * The colour of segmentation class `c`, null for the background (left transparent). Class 1 + d
 * takes digit d's colour, so a digit has the same colour in the mask as in the detection boxes.
 */
export function segmentationColor(c: number, names: readonly string[]): Rgb | null {
  if (c === 0 && names[0] === 'background') return null;
  return classColor(names[0] === 'background' ? c - 1 : c);
}

/** The arg-max class of every pixel of logits `[1, K, H, W]` (flat data): `H·W` classes. */
export function argmaxMask(data: Float32Array, k: number, height: number, width: number): Uint8Array {
  const hw = height * width;
  if (data.length < k * hw) throw new Error(`argmaxMask: logits hold ${data.length} values, [1, ${k}, ${height}, ${width}] needs ${k * hw}`);
  if (k > 256) throw new Error(`argmaxMask: ${k} classes do not fit a byte mask`);
  const mask = new Uint8Array(hw);
  for (let p = 0; p < hw; p++) {
    let best = 0;
    let max = data[p];
    for (let c = 1, e = hw + p; c < k; c++, e += hw) {
      if (data[e] > max) {
        max = data[e];
        best = c;
      }
    }
    mask[p] = best;
  }
  return mask;
}

/** Pixels per class of a mask. */
export function classCounts(mask: Uint8Array, k: number): number[] {
  const counts = new Array<number>(k).fill(0);
  for (let i = 0; i < mask.length; i++) counts[mask[i]]++;
  return counts;
}

/**
 * A mask as RGBA pixels: each class in its colour at `alpha` (0..1), classes whose colour is null
 * (the background) transparent. Opacity on screen is the overlay's own, so `alpha` is usually 1.
 */
export function maskToRgba(mask: Uint8Array, colorOf: (c: number) => Rgb | null, alpha = 1): Uint8ClampedArray {
  const out = new Uint8ClampedArray(mask.length * 4);
  const cache = new Map<number, Rgb | null>();
  const a = Math.round(Math.max(0, Math.min(1, alpha)) * 255);
  for (let i = 0; i < mask.length; i++) {
    const c = mask[i];
    let rgb = cache.get(c);
    if (rgb === undefined) cache.set(c, (rgb = colorOf(c)));
    if (!rgb) continue;
    const p = i * 4;
    out[p] = rgb[0];
    out[p + 1] = rgb[1];
    out[p + 2] = rgb[2];
    out[p + 3] = a;
  }
  return out;
}

export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** A normalised box in pixels of a `size × size` image, clipped to it. */
export function boxToRect(box: Box, size: number): Rect {
  const x0 = Math.max(0, (box.cx - box.w / 2) * size);
  const y0 = Math.max(0, (box.cy - box.h / 2) * size);
  const x1 = Math.min(size, (box.cx + box.w / 2) * size);
  const y1 = Math.min(size, (box.cy + box.h / 2) * size);
  return { x: x0, y: y0, w: Math.max(0, x1 - x0), h: Math.max(0, y1 - y0) };
}

/** `7 · 93%`: the class name and the score. */
export function detectionLabel(d: Pick<Detection, 'classId' | 'score'>, names: readonly string[] | undefined): string {
  return `${names?.[d.classId] ?? String(d.classId)} · ${Math.round(d.score * 100)}%`;
}

/** Where a box's label goes: above the box when it fits in the image, else inside its top edge; never past the right edge. */
export function labelRect(box: Rect, textWidth: number, textHeight: number, size: number): Rect {
  const w = Math.min(size, textWidth);
  const x = Math.min(Math.max(0, box.x), size - w);
  const y = box.y - textHeight >= 0 ? box.y - textHeight : Math.min(box.y, size - textHeight);
  return { x, y: Math.max(0, y), w, h: textHeight };
}

/** Detections at or above a score, highest first (decoding with score 0 once, then filtering, equals decoding at that score: NMS only lets higher scores suppress lower ones). */
export function aboveScore<T extends Pick<Detection, 'score'>>(detections: readonly T[], threshold: number): T[] {
  return detections.filter((d) => d.score >= threshold).sort((a, b) => b.score - a.score);
}

/** What `drawDetections` needs of a 2D context (a real one, or a recorder in tests). */
export interface Draw2d {
  lineWidth: number;
  strokeStyle: unknown;
  fillStyle: unknown;
  font: string;
  textBaseline: string;
  clearRect(x: number, y: number, w: number, h: number): void;
  strokeRect(x: number, y: number, w: number, h: number): void;
  fillRect(x: number, y: number, w: number, h: number): void;
  fillText(text: string, x: number, y: number): void;
  measureText(text: string): { width: number };
}

/**
 * Clears a `size × size` overlay and draws each detection's box in its class colour, with a
 * label `class · score` on a tab of the same colour. Lowest score first, so the best sits on top.
 */
export function drawDetections(ctx: Draw2d, detections: readonly Detection[], size: number, names: readonly string[] | undefined): void {
  ctx.clearRect(0, 0, size, size);
  const line = Math.max(2, Math.round(size / 150));
  const fontPx = Math.max(11, Math.round(size / 22));
  const pad = Math.round(fontPx * 0.3);
  ctx.font = `600 ${fontPx}px system-ui, sans-serif`;
  ctx.textBaseline = 'top';
  for (const d of [...detections].sort((a, b) => a.score - b.score)) {
    const color = classColor(d.classId);
    const r = boxToRect(d.box, size);
    ctx.lineWidth = line;
    ctx.strokeStyle = cssColor(color);
    ctx.strokeRect(r.x + line / 2, r.y + line / 2, Math.max(0, r.w - line), Math.max(0, r.h - line));
    const text = detectionLabel(d, names);
    const tab = labelRect(r, ctx.measureText(text).width + 2 * pad, fontPx + 2 * pad, size);
    ctx.fillStyle = cssColor(color);
    ctx.fillRect(tab.x, tab.y, tab.w, tab.h);
    ctx.fillStyle = textColorOn(color);
    ctx.fillText(text, tab.x + pad, tab.y + pad);
  }
}

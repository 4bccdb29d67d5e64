// Tensors drawn as small images: digits, feature maps, learned filters.
// Each plane is drawn at its native size into a canvas and scaled up by CSS with
// `image-rendering: pixelated`, so a 5×5 filter shows its 25 weights as crisp squares.
import { h } from './dom.ts';

/** The part of a tensor that drawing needs. */
export interface Planes {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export type ColorMode = 'gray' | 'diverging';

/**
 * Draws the `w × h` plane starting at `data[offset]`. `gray`: `lo` black to `hi` white.
 * `diverging`: negative blue, zero white, positive red, scaled by `max(|lo|, |hi|)`.
 */
export function planeCanvas(data: Float32Array, offset: number, w: number, h0: number, mode: ColorMode, lo: number, hi: number, cssSize: number): HTMLCanvasElement {
  const canvas = h('canvas', { class: 'plane', width: w, height: h0 });
  const aspect = h0 / w;
  canvas.style.width = `${cssSize}px`;
  canvas.style.height = `${Math.round(cssSize * aspect)}px`;
  const ctx = canvas.getContext('2d')!;
  const img = ctx.createImageData(w, h0);
  const px = img.data;
  const n = w * h0;
  if (mode === 'gray') {
    const inv = hi > lo ? 255 / (hi - lo) : 0;
    for (let i = 0; i < n; i++) {
      const v = (data[offset + i] - lo) * inv;
      const g = v < 0 ? 0 : v > 255 ? 255 : v;
      const p = i * 4;
      px[p] = g;
      px[p + 1] = g;
      px[p + 2] = g;
      px[p + 3] = 255;
    }
  } else {
    const m = Math.max(Math.abs(lo), Math.abs(hi));
    const inv = m > 0 ? 1 / m : 0;
    for (let i = 0; i < n; i++) {
      let t = data[offset + i] * inv;
      t = t < -1 ? -1 : t > 1 ? 1 : t;
      const p = i * 4;
      // White fading to red (#c0392b-ish) for positive, to blue (#2c6fbb-ish) for negative.
      if (t >= 0) {
        px[p] = 255 - t * 63;
        px[p + 1] = 255 - t * 198;
        px[p + 2] = 255 - t * 212;
      } else {
        px[p] = 255 + t * 211;
        px[p + 1] = 255 + t * 144;
        px[p + 2] = 255 + t * 68;
      }
      px[p + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}

function range(data: Float32Array, start: number, end: number): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = start; i < end; i++) {
    const v = data[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

/** A CSS tile size that keeps a grid of `count` tiles readable: big tiles for few maps. */
function tileSize(side: number, count: number): number {
  const target = count <= 8 ? 96 : count <= 16 ? 72 : count <= 32 ? 56 : 44;
  return Math.max(target, Math.min(side * 2, 128));
}

/**
 * The feature maps of one activation `[1, C, H, W]` (or `[C, H, W]`): one tile per channel,
 * each scaled to its own min..max so weak maps stay visible. At most `limit` channels.
 */
export function featureMaps(t: Planes, limit = 64): HTMLElement {
  const s = t.shape.length === 4 ? t.shape.slice(1) : t.shape;
  if (s.length !== 3) throw new Error(`featureMaps: expected [1, C, H, W] or [C, H, W], got [${t.shape.join(', ')}]`);
  const [c, hh, w] = s;
  const shown = Math.min(c, limit);
  const size = tileSize(w, shown);
  const tiles: HTMLElement[] = [];
  for (let ch = 0; ch < shown; ch++) {
    const off = ch * hh * w;
    const [lo, hi] = range(t.data, off, off + hh * w);
    tiles.push(h('div', { class: 'tile', title: `channel ${ch}: ${lo.toFixed(2)} … ${hi.toFixed(2)}` }, planeCanvas(t.data, off, w, hh, 'gray', lo, hi, size), h('span', null, String(ch))));
  }
  return h('div', { class: 'tiles' }, tiles, c > shown ? h('p', { class: 'muted' }, `${c - shown} more channels not shown`) : null);
}

/**
 * The filters of a conv weight `[O, I, kh, kw]`: one row of I slices per output channel (the
 * weights it applies to each input channel), blue negative, red positive, one scale for the
 * whole layer so filters can be compared. At most `maxOut` filters and `maxIn` slices each.
 */
export function filters(weight: Planes, maxOut = 64, maxIn = 8): HTMLElement {
  if (weight.shape.length !== 4) throw new Error(`filters: expected a conv weight [O, I, kh, kw], got [${weight.shape.join(', ')}]`);
  const [o, i, kh, kw] = weight.shape;
  const [lo, hi] = range(weight.data, 0, weight.data.length);
  const outShown = Math.min(o, maxOut);
  const inShown = Math.min(i, maxIn);
  const size = inShown === 1 ? tileSize(kw * 8, outShown) : Math.max(20, Math.min(40, kw * 6));
  const groups: HTMLElement[] = [];
  for (let f = 0; f < outShown; f++) {
    const slices: HTMLElement[] = [];
    for (let c = 0; c < inShown; c++) slices.push(planeCanvas(weight.data, (f * i + c) * kh * kw, kw, kh, 'diverging', lo, hi, size));
    groups.push(h('div', { class: 'filter', title: `filter ${f}` }, h('div', { class: inShown > 1 ? 'slices multi' : 'slices' }, slices), h('span', null, String(f))));
  }
  const note: string[] = [];
  if (o > outShown) note.push(`${o - outShown} more filters`);
  if (i > inShown) note.push(`${inShown} of ${i} input channels per filter shown`);
  return h(
    'div',
    null,
    h('div', { class: 'tiles filters' }, groups),
    h('p', { class: 'muted legend-scale' }, h('span', { class: 'swatch neg' }), ` ${lo.toFixed(3)}  `, h('span', { class: 'swatch zero' }), ' 0  ', h('span', { class: 'swatch pos' }), ` ${hi.toFixed(3)}`, note.length ? ` · ${note.join(', ')}` : ''),
  );
}

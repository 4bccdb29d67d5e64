// Undilated convolutions on the WebAssembly SIMD kernels: the fast path behind conv2dForward /
// conv2dBackwardInput / conv2dBackwardWeight (../conv.ts), for any stride (the input gradient of
// a strided one where `scatterSafe`), and stride 1 in the fused conv + ReLU layers. Other
// geometries return false and take the im2col path (whose GEMM is also WebAssembly, see ./gemm.ts).
//
// "Column-expanded" input instead of im2col: for every filter column kx the zero-padded input is
// stored shifted left by kx and cut to the output width,
//   xe[c][kx][y][ox] = xpad[c][y][ox + kx]      (y < H + 2·padH, ox < outW),
// which is kw copies of the input (im2col would be kh·kw). An output row oy then reads, for tap
// (c, ky, kx), the row oy + ky of plane (c, kx), and since xe rows are exactly outW long, output
// position p = oy·outW + ox reads xe at off(tap) + p with off(c, ky, kx) = ((c·kw + kx)·Hp + ky)·outW:
// NR consecutive outputs of one tap are NR consecutive floats, a plain vector load, with no
// junk columns to compute and throw away.
//   forward:         out[co][p] = b[co] + Σ_tap w[co][tap] · xe[off(tap) + p]
//   backward-input:  the adjoint of the forward: dxe[off(tap) + p] += Σ_co w[co][tap] · dY[co][p]
//                    (a GEMM whose C rows are scattered to the tap offsets), then the kw shifted
//                    copies of dxe are added back onto dX (the adjoint of the expansion); filters
//                    narrower than MR use Wᵀ·dY into a column matrix and col2im instead
//   backward-weight: dW[co][tap] += Σ_p dY[co][p] · xe[off(tap) + p], over chunks of samples
// With strides sy, sx the expansion also splits each plane's rows by their phase modulo sy:
//   xe[c][kx][ry][yy][ox] = xpad[c][yy·sy + ry][ox·sx + kx]   (ry < sy, yy < hq = outH + ⌊(kh−1)/sy⌋),
// still about kw·Hp·outW floats per channel, and tap (c, ky, kx) of output row oy reads row
// oy + ⌊ky/sy⌋ of plane (c, kx, ky mod sy): off(c, ky, kx) = (((c·kw + kx)·sy + ky mod sy)·hq + ⌊ky/sy⌋)·outW,
// again linear in p, so the same micro-kernels run. (Stride 1 is the layout above: sy = 1, hq = Hp.)

import type { Conv2dDims } from '../conv.ts';
import type { Blocking } from './module.ts';
import { type WasmKernels, beginLayout, layoutTop, region, reserve, wasmKernels } from './runtime.ts';

/** Bytes of expanded input a block of filter taps may span (most of a 32 KB L1 data cache). */
const L1_BYTES = 24 * 1024;
/** Output channels (per group) up to which the input gradient of a narrow filter runs as a flipped forward convolution. */
const FLIP_MAX_COUT = 8;
/** Bytes of expanded samples the weight gradient sums over per tile (they stay in L2). */
const WGRAD_CHUNK_BYTES = 96 * 1024;

function head(a: Float32Array, n: number): Float32Array {
  return a.length === n ? a : a.subarray(0, n);
}

function roundUp(v: number, to: number): number {
  return Math.ceil(v / to) * to;
}

/** The blocking for a convolution computing `rows` output channels (per group), and its drivers. */
function blockingFor(k: WasmKernels, rows: number): { b: Blocking; fwd: WasmKernels['fn']['conv_fwd'] } {
  const { main, alt } = k.shape;
  return rows % main.mr !== 0 && rows % alt.mr === 0 ? { b: alt, fwd: k.fn.conv_fwd_alt } : { b: main, fwd: k.fn.conv_fwd };
}

/** The weight-gradient driver and its tile height for `rows` output channels (per group). */
function wgradFor(k: WasmKernels, rows: number): WasmKernels['fn']['conv_wgrad'] {
  const { main, alt } = k.shape;
  return rows % main.wmr !== 0 && rows % alt.wmr === 0 ? k.fn.conv_wgrad_alt : k.fn.conv_wgrad;
}

/** Stride 1, no dilation: the fused conv + ReLU layers, and the input gradient's flipped and column paths. */
function supported(d: Conv2dDims): boolean {
  return d.strideH === 1 && d.strideW === 1 && d.dilH === 1 && d.dilW === 1;
}

/** Any stride, no dilation: the forward and weight-gradient passes, and the input gradient where `scatterSafe`. */
function supportedStrided(d: Conv2dDims): boolean {
  return d.dilH === 1 && d.dilW === 1;
}

/** The column-expanded layout of one channel (see the file comment). */
interface Expansion {
  readonly sy: number;
  readonly sx: number;
  /** Rows per plane: outH + ⌊(kh − 1)/sy⌋ (stride 1: the padded height). */
  readonly hq: number;
  /** Floats per channel: kw·sy planes of hq rows of outW. */
  readonly plane: number;
}

function expansion(d: Pick<Conv2dDims, 'kh' | 'kw' | 'strideH' | 'strideW' | 'outH' | 'outW'>): Expansion {
  const sy = d.strideH;
  const hq = d.outH + Math.floor((d.kh - 1) / sy);
  return { sy, sx: d.strideW, hq, plane: d.kw * sy * hq * d.outW };
}

/** Float offsets of every filter tap (channel, ky, kx), in tap order, into a column-expanded sample. */
function tapOffsets(channels: number, kh: number, kw: number, e: Expansion, outW: number): readonly number[] {
  const { sy, hq } = e;
  // A layer asks for the same table at every call, forward and backward: built once.
  const key = `${channels},${kh},${kw},${sy},${hq},${outW}`;
  const cached = tapTables.get(key);
  if (cached !== undefined) return cached;
  const off: number[] = [];
  for (let c = 0; c < channels; c++) for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) off.push((((c * kw + j) * sy + (i % sy)) * hq + Math.floor(i / sy)) * outW);
  if (tapTables.size >= MAX_TAP_TABLES) tapTables.clear();
  tapTables.set(key, off);
  return off;
}

/** `tapOffsets` tables by geometry (a model has a few; more only when shapes keep changing). */
const tapTables = new Map<string, readonly number[]>();
const MAX_TAP_TABLES = 256;

/** The taps' byte offsets (`tapOffsets`), written at `at` for the kernels. */
function writeTaps(k: WasmKernels, at: number, channels: number, kh: number, kw: number, e: Expansion, outW: number): void {
  const off = tapOffsets(channels, kh, kw, e, outW);
  const base = at >> 2;
  for (let t = 0; t < off.length; t++) k.i32[base + t] = 4 * off[t];
}

/** Expands `planes` input planes at `src` into `dst` (then `slack` zero bytes): `expand`, or `expand_strided` for a strided convolution. */
function expandInto(k: WasmKernels, src: number, dst: number, planes: number, d: Pick<Conv2dDims, 'h' | 'w' | 'kw' | 'padH' | 'padW' | 'outW'>, e: Expansion, slack: number): void {
  if (e.sy === 1 && e.sx === 1) k.fn.expand(src, dst, planes, d.h, d.w, d.kw, d.padH, d.padW, d.outW, slack);
  else k.fn.expand_strided(src, dst, planes, d.h, d.w, d.kw, d.padH, d.padW, d.outW, slack, e.sy, e.sx, e.hq);
}

/**
 * Packs per group g the filter `w` ([groups·rows][taps], row-major) into the micro-kernel's panels
 * of MR rows: panel-major, then tap, then the MR rows.
 */
function packFilter(k: WasmKernels, MR: number, at: number, groups: number, rows: number, taps: number, w: Float32Array): number {
  const panelRows = roundUp(rows, MR);
  const f = k.f32;
  const base = at >> 2;
  f.fill(0, base, base + groups * panelRows * taps);
  for (let g = 0; g < groups; g++) {
    const gb = base + g * panelRows * taps;
    for (let r = 0; r < rows; r++) {
      const rb = gb + Math.floor(r / MR) * MR * taps + (r % MR);
      const src = (g * rows + r) * taps;
      for (let t = 0; t < taps; t++) f[rb + t * MR] = w[src + t];
    }
  }
  return 4 * panelRows * taps;
}

/**
 * Called after each sample's convolution with the address of its cOut output planes (pPad floats
 * apart), which the next sample overwrites: the output grid then holds one sample only.
 */
type SampleHook = (s: number, at: number, pPad: number) => void;

/** A convolution as the kernels see it: the expanded input's and the output's geometry. */
interface ForwardPlan {
  /** The input's column-expanded layout. */
  e: Expansion;
  n: number;
  /** Channels of the input (expanded per sample) and of the output. */
  cIn: number;
  cOut: number;
  groups: number;
  /** Input planes h×w, zero-padded by padH/padW, expanded to kw copies of hp × outW. */
  h: number;
  w: number;
  kh: number;
  kw: number;
  padH: number;
  padW: number;
  outW: number;
  /** Output positions per channel (outH·outW). */
  p: number;
}

/**
 * out (flat n × cOut × p) = (out +, when `accumulate`) the convolution of the dense input at `xAt`
 * with the packed filter at `wAt` (`wPanel` bytes per group) and the bias at `bAt` (−1: none),
 * output at `gridAt` (rows pPad apart). Each sample is expanded into a buffer that stays in cache, then convolved
 * with its taps taken in blocks whose expanded rows fit in L1.
 */
function forwardPerSample(kern: WasmKernels, fwd: WasmKernels['fn']['conv_fwd'], c: ForwardPlan, xAt: number, xeAt: number, slack: number, tabAt: number, wAt: number, wPanel: number, bAt: number, gridAt: number, pPad: number, denseAt: number, out: Float32Array | null, accumulate: boolean, gridOnly: boolean, perSample: SampleHook | null): number {
  const { fn } = kern;
  const { n, cIn, cOut, groups, h, w, kh, kw, e, p } = c;
  const cInG = cIn / groups;
  const cOutG = cOut / groups;
  const taps = cInG * kh * kw;
  const plane = e.plane;
  // Taps per block: whole input channels whose expanded planes fit in L1_BYTES.
  const kcTaps = Math.max(1, Math.floor(L1_BYTES / (4 * plane))) * kh * kw;
  for (let s = 0; s < n; s++) {
    // The sample's output starts from the bias (or zero) just before its sums: still in cache.
    const sampleOut = perSample === null ? gridAt + 4 * s * cOut * pPad : gridAt;
    if (bAt < 0) fn.zero(sampleOut, 4 * cOut * pPad);
    else fn.fill_bias(sampleOut, 1, cOut, 4 * pPad, bAt);
    expandInto(kern, xAt + 4 * s * cIn * h * w, xeAt, cIn, c, e, 4 * slack);
    for (let g = 0; g < groups; g++) {
      fwd(1, cOutG, taps, kcTaps, wAt + g * wPanel, xeAt + 4 * g * cInG * plane, 0, tabAt, sampleOut + 4 * g * cOutG * pPad, 0, 4 * pPad);
    }
    perSample?.(s, sampleOut, pPad);
  }
  const size = n * cOut * p;
  if (gridOnly || perSample !== null) return gridAt;
  if (!accumulate && pPad === p) {
    out?.set(kern.f32.subarray(gridAt >> 2, (gridAt >> 2) + size));
    return gridAt;
  }
  if (accumulate) kern.f32.set(head(out!, size), denseAt >> 2);
  fn.copy2d(gridAt, 4 * pPad, 0, denseAt, 4 * p, 0, n * cOut, 1, p, accumulate ? 1 : 0);
  out?.set(kern.f32.subarray(denseAt >> 2, (denseAt >> 2) + size));
  return denseAt;
}

/** out = conv2d(x, w) + b (or out += … when `accumulate`). false: geometry or size not handled. */
export function conv2dForwardWasm(x: Float32Array, w: Float32Array, b: Float32Array | null, out: Float32Array, d: Conv2dDims, accumulate: boolean): boolean {
  const kern = wasmKernels();
  if (kern === null || !supportedStrided(d)) return false;
  beginLayout();
  return forwardCore(kern, x, w, b, d, out, accumulate, 0) !== null;
}

/**
 * The forward convolution laid out from the current layout top; `out` (may be null: the result
 * stays in memory) receives it. Returns the byte address `at` of the n × cOut result planes, each
 * outH·outW floats, planes `stride` floats apart (outH·outW: dense, followed by `denseSlack`
 * readable floats; with `gridOnly` and no `out`, the micro-kernel's padded rows may be returned
 * as they are), or null when the memory limit is reached.
 */
function forwardCore(kern: WasmKernels, x: Float32Array, w: Float32Array, b: Float32Array | null, d: Conv2dDims, out: Float32Array | null, accumulate: boolean, denseSlack: number, gridOnly = false, perSample: SampleHook | null = null): { at: number; stride: number } | null {
  const { n, cIn, h, w: width, cOut, kh, kw, padH, padW, groups, outH, outW } = d;
  const cOutG = cOut / groups;
  const { b: blocking, fwd } = blockingFor(kern, cOutG);
  const NR = 4 * blocking.nv;
  const taps = (cIn / groups) * kh * kw;
  const p = outH * outW;
  const pPad = roundUp(p, NR);
  const slack = pPad - p + NR;
  const e = expansion(d);
  const xAt = region(n * cIn * h * width);
  const xeAt = region(cIn * e.plane, slack);
  const tabAt = region(taps);
  const wAt = region(groups * roundUp(cOutG, blocking.mr) * taps);
  const bAt = region(cOut);
  const gridAt = region((perSample === null ? n : 1) * cOut * pPad, denseSlack);
  const denseAt = perSample === null && (accumulate || pPad !== p) ? region(n * cOut * p, denseSlack) : gridAt;
  if (!reserve(kern)) return null;
  kern.f32.set(head(x, n * cIn * h * width), xAt >> 2);
  writeTaps(kern, tabAt, cIn / groups, kh, kw, e, outW);
  const wPanel = packFilter(kern, blocking.mr, wAt, groups, cOutG, taps, w);
  if (b !== null) kern.f32.set(head(b, cOut), bAt >> 2);
  const plan = { e, n, cIn, cOut, groups, h, w: width, kh, kw, padH, padW, outW, p };
  const grid = gridOnly && out === null && !accumulate;
  return { at: forwardPerSample(kern, fwd, plan, xAt, xeAt, slack, tabAt, wAt, wPanel, b === null ? -1 : bAt, gridAt, pPad, denseAt, out, accumulate, grid, perSample), stride: grid ? pPad : p };
}

/**
 * gradX += d(conv)/dx · gradOut. Per sample and group the column gradient Wᵀ·dY (a GEMM reading
 * both operands in place: W's rows are the k steps, four consecutive taps one A panel) then col2im.
 * (Computed instead as the forward convolution of the zero-padded dY, half the taps of a 5×5 filter
 * would multiply padding zeros.) false: geometry or size not handled.
 */
export function conv2dBackwardInputWasm(gradOut: Float32Array, w: Float32Array, gradX: Float32Array, d: Conv2dDims): boolean {
  const kern = wasmKernels();
  if (kern === null || !supportedStrided(d)) return false;
  beginLayout();
  if (!supported(d)) {
    if (!scatterSafe(kern, d)) return false;
    const gAt = region(d.n * d.cOut * d.outH * d.outW, gradOutSlack(kern, d));
    if (!reserve(kern)) return false;
    kern.f32.set(head(gradOut, d.n * d.cOut * d.outH * d.outW), gAt >> 2);
    return backwardInputExpanded(kern, gAt, w, gradX, d);
  }
  if (flipped(kern, d)) return backwardInputAsForward(kern, gradOut, w, gradX, d);
  // The GEMM reads B rows NR-wide, up to pPad − p floats past the last one.
  const gAt = region(d.n * d.cOut * d.outH * d.outW, gradOutSlack(kern, d));
  if (!reserve(kern)) return false;
  kern.f32.set(head(gradOut, d.n * d.cOut * d.outH * d.outW), gAt >> 2);
  return backwardInputCore(kern, gAt, w, gradX, d);
}

/**
 * The input gradient of a stride-1 convolution is the forward convolution of dY, padded by
 * k − 1 − pad, with the filter flipped in both axes and its channel axes swapped:
 *   dX[ci][y][x] += Σ_co Σ_i Σ_j W[co][ci][kh−1−i][kw−1−j] · dYpad[co][y + i][x + j].
 * For filters narrower than MR this runs on the forward kernels (taps read in place from the
 * column-expanded dY) instead of a column matrix and col2im. Sums over (co, i, j) in that order.
 */
function backwardInputAsForward(kern: WasmKernels, gradOut: Float32Array, w: Float32Array, gradX: Float32Array, d: Conv2dDims): boolean {
  const { n, cIn, h, w: width, cOut, kh, kw, padH, padW, groups, outH, outW } = d;
  const cInG = cIn / groups;
  const cOutG = cOut / groups;
  const taps = kh * kw;
  // wf[g·cInG + ci][co][i][j] = w[g·cOutG + co][ci][kh−1−i][kw−1−j]
  const wf = new Float32Array(cOut * cInG * taps);
  for (let g = 0; g < groups; g++) {
    for (let ci = 0; ci < cInG; ci++) {
      for (let co = 0; co < cOutG; co++) {
        const src = ((g * cOutG + co) * cInG + ci) * taps + taps - 1;
        const dst = ((g * cInG + ci) * cOutG + co) * taps;
        for (let t = 0; t < taps; t++) wf[dst + t] = w[src - t];
      }
    }
  }
  const t: Conv2dDims = { n, cIn: cOut, h: outH, w: outW, cOut: cIn, kh, kw, strideH: 1, strideW: 1, padH: kh - 1 - padH, padW: kw - 1 - padW, dilH: 1, dilW: 1, groups, outH: h, outW: width };
  return forwardCore(kern, gradOut, wf, null, t, gradX, true, 0) !== null;
}

/** Floats a gradient staged for `backwardInputCore` must have readable past its end. */
function gradOutSlack(kern: WasmKernels, d: Conv2dDims): number {
  return roundUp(d.outH * d.outW, 4 * kern.shape.main.nv);
}

/**
 * Whether the input gradient runs as a flipped forward convolution: for filters narrower than MR
 * with few output channels, where the column matrix's GEMM is a thin one (k = cOut/groups) and
 * the forward kernels run 2–2.5× faster (96×96 planes, 4 channels); from 16 channels on the column
 * path is as fast or faster.
 */
function flipped(kern: WasmKernels, d: Conv2dDims): boolean {
  return d.kw < kern.shape.main.mr && d.cOut / d.groups <= FLIP_MAX_COUT && d.padH < d.kh && d.padW < d.kw;
}

/** conv2dBackwardInputWasm on a gradient already in memory at `gAt`; lays out from the current top. */
function backwardInputCore(kern: WasmKernels, gAt: number, w: Float32Array, gradX: Float32Array, d: Conv2dDims): boolean {
  if (flipped(kern, d)) return backwardInputAsForward(kern, kern.f32.slice(gAt >> 2, (gAt >> 2) + d.n * d.cOut * d.outH * d.outW), w, gradX, d);
  return d.kw >= kern.shape.main.mr ? backwardInputExpanded(kern, gAt, w, gradX, d) : backwardInputCol(kern, gAt, w, gradX, d);
}

/**
 * Whether gemm_scatter may add a strided convolution's column gradient into its expanded layout:
 * no two taps of one MR-row panel may write the same floats, i.e. their offsets must lie at least
 * NR floats apart (one micro-kernel call adds NR consecutive floats per tap). Taps in different
 * (kx, ky mod sy) planes are a plane apart; taps of one plane, sy·kw taps apart in tap order, a
 * row of outW floats per ⌊ky/sy⌋. Otherwise the input gradient takes the im2col path.
 */
function scatterSafe(kern: WasmKernels, d: Conv2dDims): boolean {
  const { mr: MR, nv } = kern.shape.main;
  const NR = 4 * nv;
  const off = tapOffsets(d.cIn / d.groups, d.kh, d.kw, expansion(d), d.outW);
  for (let p0 = 0; p0 < off.length; p0 += MR) {
    for (let a = p0; a < Math.min(off.length, p0 + MR); a++) for (let b = a + 1; b < Math.min(off.length, p0 + MR); b++) if (Math.abs(off[a] - off[b]) < NR) return false;
  }
  return true;
}

/**
 * The input gradient through the column-expanded image, the adjoint of the forward: per sample
 * and group, every filter tap's row of Wᵀ·dY is added straight into the expanded-gradient plane
 * it was read from (gemm_scatter, at the forward's tap offsets), then the expanded gradient is
 * added back onto the image (the adjoint of the expansion: for stride 1 the kw shifted copies,
 * else `fold_strided`). No column matrix, no col2im. Stride 1 needs kw ≥ MR so that the MR taps
 * of one micro-kernel panel never write the same floats; a strided convolution, `scatterSafe`.
 */
function backwardInputExpanded(kern: WasmKernels, gAt: number, w: Float32Array, gradX: Float32Array, d: Conv2dDims): boolean {
  const { n, cIn, h, w: width, cOut, kh, kw, padH, padW, groups, outH, outW } = d;
  const { mr: MR, nv } = kern.shape.main;
  const NR = 4 * nv;
  const cInG = cIn / groups;
  const cOutG = cOut / groups;
  const taps = cInG * kh * kw;
  const p = outH * outW;
  const pPad = roundUp(p, NR);
  const hp = h + 2 * padH;
  const e = expansion(d);
  const plane = e.plane;
  const xSize = n * cIn * h * width;
  const wAt = region(cOut * taps);
  // dY with rows padded to pPad by zeros, so the padding columns add nothing.
  const gpAt = pPad === p ? gAt : region(n * cOut * pPad);
  const tabAt = region(taps);
  const dxeAt = region(cInG * plane, pPad - p);
  const gxAt = region(xSize);
  if (!reserve(kern)) return false;
  const { fn } = kern;
  kern.f32.set(head(w, cOut * taps), wAt >> 2);
  kern.f32.set(head(gradX, xSize), gxAt >> 2);
  if (gpAt !== gAt) {
    fn.zero(gpAt, 4 * n * cOut * pPad);
    fn.copy2d(gAt, 4 * p, 0, gpAt, 4 * pPad, 0, n * cOut, 1, p, 0);
  }
  writeTaps(kern, tabAt, cInG, kh, kw, e, outW);
  const dxeBytes = 4 * (cInG * plane + pPad - p);
  for (let s = 0; s < n; s++) {
    for (let g = 0; g < groups; g++) {
      fn.zero(dxeAt, dxeBytes);
      // dxe[off(tap) + pos] += Σ_co W[co][tap] · dY[co][pos]: A(tap, co) = w[co][tap], B(co, pos) = dY.
      fn.gemm_scatter(taps, pPad, cOutG, wAt + 4 * g * cOutG * taps, 4 * MR, 4 * taps, gpAt + 4 * (s * cOut + g * cOutG) * pPad, 4 * NR, 4 * pPad, dxeAt, tabAt);
      const gx = gxAt + 4 * (s * cIn + g * cInG) * h * width;
      if (e.sy !== 1 || e.sx !== 1) {
        fn.fold_strided(dxeAt, gx, cInG, h, width, kw, padH, padW, outW, e.sy, e.sx, e.hq);
        continue;
      }
      for (let kx = 0; kx < kw; kx++) {
        // Output columns whose input column ox + kx − padW lies inside [0, w), as in `expand`.
        const ox0 = Math.max(0, padW - kx);
        const ox1 = Math.min(outW, width + padW - kx);
        if (ox1 <= ox0) continue;
        fn.copy2d(dxeAt + 4 * ((kx * hp + padH) * outW + ox0), 4 * plane, 4 * outW, gx + 4 * (ox0 + kx - padW), 4 * h * width, 4 * width, cInG, h, ox1 - ox0, 1);
      }
    }
  }
  gradX.set(kern.f32.subarray(gxAt >> 2, (gxAt >> 2) + xSize));
  return true;
}

/** The input gradient through a column matrix and col2im, for filters narrower than MR. */
function backwardInputCol(kern: WasmKernels, gAt: number, w: Float32Array, gradX: Float32Array, d: Conv2dDims): boolean {
  const { n, cIn, h, w: width, cOut, kh, kw, padH, padW, groups, outH, outW } = d;
  const { mr: MR, nv } = kern.shape.main;
  const NR = 4 * nv;
  const cInG = cIn / groups;
  const cOutG = cOut / groups;
  const taps = cInG * kh * kw;
  const p = outH * outW;
  const pPad = roundUp(p, NR);
  const xSize = n * cIn * h * width;
  const wAt = region(cOut * taps);
  const colAt = region(taps * pPad);
  const gxAt = region(xSize);
  if (!reserve(kern)) return false;
  const { fn } = kern;
  kern.f32.set(head(w, cOut * taps), wAt >> 2);
  kern.f32.set(head(gradX, xSize), gxAt >> 2);
  for (let s = 0; s < n; s++) {
    for (let g = 0; g < groups; g++) {
      // col[taps × pPad] = Wgᵀ · dY_sg: A(tap, co) = w[co][tap], B(co, pos) = dY[co][pos].
      fn.zero(colAt, 4 * taps * pPad);
      fn.gemm(taps, pPad, cOutG, wAt + 4 * g * cOutG * taps, 4 * MR, 4 * taps, gAt + 4 * (s * cOut + g * cOutG) * p, 4 * NR, 4 * p, colAt, 4 * pPad);
      fn.col2im(colAt, 4 * pPad, gxAt + 4 * (s * cIn + g * cInG) * h * width, cInG, h, width, kh, kw, padH, padW, outH, outW);
    }
  }
  gradX.set(kern.f32.subarray(gxAt >> 2, (gxAt >> 2) + xSize));
  return true;
}

/** gradW += d(conv)/dw · gradOut. false: geometry or size not handled. */
export function conv2dBackwardWeightWasm(x: Float32Array, gradOut: Float32Array, gradW: Float32Array, d: Conv2dDims): boolean {
  const kern = wasmKernels();
  if (kern === null || !supportedStrided(d)) return false;
  const size = d.n * d.cOut * d.outH * d.outW;
  beginLayout();
  const gAt = region(size);
  if (!reserve(kern)) return false;
  kern.f32.set(head(gradOut, size), gAt >> 2);
  return backwardWeightCore(kern, x, gAt, gradW, d);
}

/** conv2dBackwardWeightWasm on a gradient already in memory at `gAt`; lays out from the current top. */
function backwardWeightCore(kern: WasmKernels, x: Float32Array, gAt: number, gradW: Float32Array, d: Conv2dDims): boolean {
  const { n, cIn, h, w: width, cOut, kh, kw, groups, outH, outW } = d;
  const cInG = cIn / groups;
  const cOutG = cOut / groups;
  const taps = cInG * kh * kw;
  const e = expansion(d);
  const plane = e.plane;
  const p = outH * outW;
  // The reduction runs over whole vectors: dY rows are padded with zeros to a multiple of 4.
  const len = roundUp(p, 4);
  const slack = len - p + 4;
  const wSize = cOut * taps;
  // Samples are expanded in chunks that stay in L2; each weight-gradient tile then sums over the
  // whole chunk on accumulators held in registers (in sample order, as one sample at a time would).
  const xeStride = roundUp(cIn * plane + slack, 16);
  const chunk = Math.max(1, Math.min(n, Math.floor(WGRAD_CHUNK_BYTES / (4 * xeStride))));
  const xAt = region(n * cIn * h * width);
  const xeAt = region(chunk * xeStride);
  const tabAt = region(taps);
  const gpAt = len === p ? gAt : region(n * cOut * len);
  const accAt = region(4 * wSize);
  const gwAt = region(wSize);
  if (!reserve(kern)) return false;
  const { fn } = kern;
  kern.f32.set(head(x, n * cIn * h * width), xAt >> 2);
  writeTaps(kern, tabAt, cInG, kh, kw, e, outW);
  if (gpAt !== gAt) {
    fn.zero(gpAt, n * cOut * len * 4);
    fn.copy2d(gAt, 4 * p, 0, gpAt, 4 * len, 0, n * cOut, 1, p, 0);
  }
  fn.zero(accAt, 16 * wSize);
  const wgrad = wgradFor(kern, cOutG);
  for (let s0 = 0; s0 < n; s0 += chunk) {
    const ns = Math.min(chunk, n - s0);
    for (let s = 0; s < ns; s++) expandInto(kern, xAt + 4 * (s0 + s) * cIn * h * width, xeAt + 4 * s * xeStride, cIn, d, e, 4 * slack);
    for (let g = 0; g < groups; g++) {
      wgrad(ns, cOutG, taps, gpAt + 4 * (s0 * cOut + g * cOutG) * len, 4 * cOut * len, 4 * len, 4 * len, xeAt + 4 * g * cInG * plane, 4 * xeStride, tabAt, accAt + 16 * g * cOutG * taps);
    }
  }
  kern.f32.set(head(gradW, wSize), gwAt >> 2);
  fn.wgrad_finish(accAt, wSize, gwAt);
  gradW.set(kern.f32.subarray(gwAt >> 2, (gwAt >> 2) + wSize));
  return true;
}

// Convolution + bias + ReLU (+ 2×2 max pooling) in one pass: the fast path of ops/conv.ts
// `conv2dRelu`. The convolution's full-size output and its gradient stay in the kernels' memory;
// only the layer's result (and the pooling's argmax) cross into JS. Every step is the kernel the
// separate ops run (conv_fwd, relu_fwd, maxpool2x2; relu_bwd, scatter_add, bias_grad and the two
// backward convolutions above) on the same values in the same order, so the bytes are those of
// maxPool2d(relu(conv2d(...))) on the WebAssembly kernels.

/** Pooling fits the 2×2 kernel when the pooled rows hold at least 4 outputs. */
function poolable(d: Conv2dDims): boolean {
  return d.outW >> 1 >= 4 && d.outH >> 1 >= 1;
}

/**
 * out = relu(conv2d(x, w) + b), or its 2×2 stride-2 max pooling when `pool` (argmax, if not null,
 * receives the flat index into the n × cOut × outH × outW activation of each pooled value).
 * false: geometry or size not handled (nothing written).
 */
export function conv2dReluForwardWasm(x: Float32Array, w: Float32Array, b: Float32Array | null, d: Conv2dDims, pool: boolean, out: Float32Array, argmax: Int32Array | null): boolean {
  const kern = wasmKernels();
  if (kern === null || !supported(d) || (pool && !poolable(d))) return false;
  const planes = d.n * d.cOut;
  const size = planes * d.outH * d.outW;
  beginLayout();
  if (!pool) {
    const y = forwardCore(kern, x, w, b, d, null, false, 4);
    if (y === null) return false;
    kern.fn.relu_fwd(y.at, y.at, size);
    out.set(kern.f32.subarray(y.at >> 2, (y.at >> 2) + size));
    return true;
  }
  const ph = d.outH >> 1;
  const pw = d.outW >> 1;
  const pooled = planes * ph * pw;
  const poolAt = region(pooled);
  const argAt = argmax === null ? 0 : region(pooled);
  // Each sample's output is pooled (rectified as it is loaded) while it is still in cache.
  const perSample: SampleHook = (s, at, pPad) => {
    const o = 4 * s * d.cOut * ph * pw;
    kern.fn.maxpool2x2_relu(at, poolAt + o, argAt + o, d.cOut, d.outH, d.outW, ph, pw, 1, argmax === null ? 0 : 1, pPad, s * d.cOut * d.outH * d.outW);
  };
  if (forwardCore(kern, x, w, b, d, null, false, 4, false, perSample) === null) return false;
  out.set(kern.f32.subarray(poolAt >> 2, (poolAt >> 2) + pooled));
  if (argmax !== null) argmax.set(kern.i32.subarray(argAt >> 2, (argAt >> 2) + pooled));
  return true;
}

/**
 * Backward of `conv2dReluForwardWasm`: g is the gradient of its output `y` (pooled when `argmax` is
 * not null). Adds the input, weight and bias gradients into those given (null: not wanted).
 * false: the kernels are unavailable (nothing written).
 */
export function conv2dReluBackwardWasm(g: Float32Array, y: Float32Array, argmax: Int32Array | null, x: Float32Array, w: Float32Array, gradX: Float32Array | null, gradW: Float32Array | null, gradB: Float32Array | null, d: Conv2dDims): boolean {
  const kern = wasmKernels();
  if (kern === null || !supported(d)) return false;
  const p = d.outH * d.outW;
  const size = d.n * d.cOut * p;
  const m = g.length;
  beginLayout();
  const gyAt = region(size, Math.max(4, gradOutSlack(kern, d)));
  const gAt = region(m, 4);
  const yAt = region(m, 4);
  const gmAt = argmax === null ? gyAt : region(m, 4);
  const argAt = argmax === null ? 0 : region(m);
  if (!reserve(kern)) return false;
  const { fn } = kern;
  kern.f32.set(g, gAt >> 2);
  kern.f32.set(head(y, m), yAt >> 2);
  // The gradient of the convolution's output: ReLU's backward (into zeros, as into a fresh
  // gradient) of the pooled gradient, scattered back through argmax into zeros.
  fn.zero(gmAt, 4 * roundUp(m, 4));
  fn.relu_bwd(yAt, gAt, gmAt, m);
  if (argmax !== null) {
    kern.i32.set(argmax.length === m ? argmax : argmax.subarray(0, m), argAt >> 2);
    fn.zero(gyAt, 4 * size);
    fn.scatter_add(gmAt, argAt, gyAt, m);
  }
  const mark = layoutTop();
  const fail = (what: string): never => {
    throw new RangeError(`conv2dRelu backward: the ${what} gradient of a convolution of [${d.n}, ${d.cIn}, ${d.h}, ${d.w}] exceeds the WebAssembly kernels' memory`);
  };
  if (gradX !== null && !backwardInputCore(kern, gyAt, w, gradX, d)) fail('input');
  beginLayout(mark);
  if (gradW !== null && !backwardWeightCore(kern, x, gyAt, gradW, d)) fail('weight');
  beginLayout(mark);
  if (gradB !== null) {
    const bAt = region(d.cOut);
    if (!reserve(kern)) fail('bias');
    kern.f32.set(head(gradB, d.cOut), bAt >> 2);
    fn.bias_grad(gyAt, bAt, d.n, d.cOut, p);
    gradB.set(kern.f32.subarray(bAt >> 2, (bAt >> 2) + d.cOut));
  }
  return true;
}

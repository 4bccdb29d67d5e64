// Pooling (max, min, average, global average) and nearest-neighbour upsampling.

import { assert, fmt, pair } from '../assert.ts';
import {
  type Pool2dDims,
  avgPool2dBackward,
  avgPool2dForward,
  maxPool2dBackward,
  maxPool2dForward,
  upsampleNearest2dBackward,
  upsampleNearest2dForward,
} from '../kernels/pool.ts';
import { Tensor, record, result, tracking } from '../tensor.ts';
import type { Pair } from '../types.ts';
import { allocF32, allocI32 } from '../arena.ts';

export interface Pool2dOptions {
  kernelSize: Pair;
  /** Default: kernelSize. */
  stride?: Pair;
  /** Implicit padding on each side, at most half the kernel (as PyTorch). Default 0. */
  padding?: Pair;
}

function poolDims(op: string, x: Tensor, opts: Pool2dOptions): Pool2dDims {
  const [kh, kw] = pair(opts.kernelSize, op, 'kernelSize', 1);
  const [strideH, strideW] = pair(opts.stride ?? opts.kernelSize, op, 'stride', 1);
  const [padH, padW] = pair(opts.padding ?? 0, op, 'padding', 0);
  assert(x.shape.length === 4, () => `${op}: input must be 4-d [N, C, H, W], got ${fmt(x.shape)}`);
  assert(2 * padH <= kh && 2 * padW <= kw, () => `${op}: padding ${padH}x${padW} must be at most half the kernel ${kh}x${kw}`);
  const [n, c, h, w] = x.shape;
  const outH = Math.floor((h + 2 * padH - kh) / strideH) + 1;
  const outW = Math.floor((w + 2 * padW - kw) / strideW) + 1;
  assert(
    outH >= 1 && outW >= 1,
    () => `${op}: kernel ${kh}x${kw} is larger than the padded input ${h + 2 * padH}x${w + 2 * padW} (input ${fmt(x.shape)}, padding ${padH}x${padW})`,
  );
  return { planes: n * c, h, w, kh, kw, strideH, strideW, padH, padW, outH, outW };
}

function extremePool(op: string, x: Tensor, opts: Pool2dOptions, sign: 1 | -1): Tensor {
  const d = poolDims(op, x, opts);
  const shape = [x.shape[0], x.shape[1], d.outH, d.outW];
  const out = result(allocF32(d.planes * d.outH * d.outW), shape);
  const track = tracking(x);
  const argmax = track ? allocI32(out.data.length) : null;
  maxPool2dForward(x.data, out.data, argmax, d, sign);
  if (track) record(out, [x], (g) => maxPool2dBackward(g, argmax!, x.gradSink()));
  return out;
}

/** Max pooling, PyTorch max_pool2d semantics: padding is −Infinity, ties go to the first max. */
export function maxPool2d(x: Tensor, opts: Pool2dOptions): Tensor {
  return extremePool('maxPool2d', x, opts, 1);
}

/** Min pooling, defined as −maxPool2d(−x): padding is +Infinity, ties go to the first min. */
export function minPool2d(x: Tensor, opts: Pool2dOptions): Tensor {
  return extremePool('minPool2d', x, opts, -1);
}

/** Average pooling, PyTorch avg_pool2d defaults: padded zeros count (divisor kH·kW). */
export function avgPool2d(x: Tensor, opts: Pool2dOptions): Tensor {
  const d = poolDims('avgPool2d', x, opts);
  const out = result(allocF32(d.planes * d.outH * d.outW), [x.shape[0], x.shape[1], d.outH, d.outW]);
  avgPool2dForward(x.data, out.data, d);
  if (tracking(x)) record(out, [x], (g) => avgPool2dBackward(g, x.gradSink(), d));
  return out;
}

/** Mean over H and W: [N, C, H, W] → [N, C, 1, 1], like PyTorch adaptive_avg_pool2d(x, 1). */
export function globalAvgPool2d(x: Tensor): Tensor {
  assert(x.shape.length === 4, () => `globalAvgPool2d: input must be 4-d [N, C, H, W], got ${fmt(x.shape)}`);
  const [n, c, h, w] = x.shape;
  const hw = h * w;
  assert(hw > 0, () => `globalAvgPool2d: input ${fmt(x.shape)} has no spatial extent`);
  const out = result(allocF32(n * c), [n, c, 1, 1]);
  const src = x.data;
  for (let pl = 0; pl < n * c; pl++) {
    let s = 0;
    for (let i = pl * hw, e = i + hw; i < e; i++) s += src[i];
    out.data[pl] = s / hw;
  }
  if (tracking(x)) {
    record(out, [x], (g) => {
      const gx = x.gradSink();
      for (let pl = 0; pl < n * c; pl++) {
        const v = g[pl] / hw;
        for (let i = pl * hw, e = i + hw; i < e; i++) gx[i] += v;
      }
    });
  }
  return out;
}

/** Nearest-neighbour upsampling by an integer factor (PyTorch interpolate mode='nearest'). */
export function upsampleNearest2d(x: Tensor, scaleFactor: Pair): Tensor {
  const op = 'upsampleNearest2d';
  const [sH, sW] = pair(scaleFactor, op, 'scaleFactor', 1);
  assert(x.shape.length === 4, () => `${op}: input must be 4-d [N, C, H, W], got ${fmt(x.shape)}`);
  const [n, c, h, w] = x.shape;
  const out = result(allocF32(n * c * h * sH * w * sW), [n, c, h * sH, w * sW]);
  upsampleNearest2dForward(x.data, out.data, n * c, h, w, sH, sW);
  if (tracking(x)) record(out, [x], (g) => upsampleNearest2dBackward(g, x.gradSink(), n * c, h, w, sH, sW));
  return out;
}

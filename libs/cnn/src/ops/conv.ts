// conv2d and convTranspose2d with PyTorch's argument order, defaults and weight layouts.
// A transposed convolution is the adjoint of a convolution, so both use the same three kernels
// with the roles of forward and backward-input swapped.

import { assert, fmt, pair } from '../assert.ts';
import { type Conv2dDims, addBias, conv2dBackwardBias, conv2dBackwardInput, conv2dBackwardWeight, conv2dForward, convOutSize } from '../kernels/conv.ts';
import { conv2dReluBackwardWasm, conv2dReluForwardWasm } from '../kernels/wasm/conv.ts';
import { Tensor, record, result, tracking } from '../tensor.ts';
import type { Pair } from '../types.ts';
import { relu } from './elementwise.ts';
import { maxPool2d } from './pool.ts';
import { allocF32, allocI32 } from '../arena.ts';

export interface Conv2dOptions {
  /** Default 1. */
  stride?: Pair;
  /** Zero padding on each side. Default 0. */
  padding?: Pair;
  /** Spacing between kernel taps. Default 1. */
  dilation?: Pair;
  /** Input and output channels are split into this many independent groups. Default 1. */
  groups?: number;
}

export interface ConvTranspose2dOptions {
  /** Default 1. */
  stride?: Pair;
  /** Removes `dilation·(k−1) − padding` from each side of the full output, as in PyTorch. Default 0. */
  padding?: Pair;
  /** Extra rows/columns on the bottom/right; must be < stride or < dilation. Default 0. */
  outputPadding?: Pair;
  /** Default 1. */
  groups?: number;
  /** Default 1. */
  dilation?: Pair;
}

function checkGroups(op: string, groups: number, x: Tensor, w: Tensor, inCh: number, outCh: number): void {
  assert(Number.isInteger(groups) && groups >= 1, () => `${op}: groups must be a positive integer, got ${groups}`);
  assert(inCh % groups === 0, () => `${op}: input [${x.shape.join(', ')}] has ${inCh} channels, not divisible by groups=${groups}`);
  assert(outCh % groups === 0, () => `${op}: weight ${fmt(w.shape)} gives ${outCh} output channels, not divisible by groups=${groups}`);
}

function checkBias(op: string, bias: Tensor | null, outCh: number): void {
  if (bias === null) return;
  assert(bias.shape.length === 1 && bias.shape[0] === outCh, () => `${op}: bias has shape ${fmt(bias.shape)}, expected [${outCh}]`);
}

/**
 * 2-D convolution (cross-correlation, like PyTorch). x [N, C_in, H, W], weight
 * [C_out, C_in/groups, kH, kW], bias [C_out] → [N, C_out, H_out, W_out] with
 * H_out = ⌊(H + 2·padding − dilation·(kH − 1) − 1) / stride⌋ + 1.
 */
export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, opts: Conv2dOptions = {}): Tensor {
  const d = conv2dDims('conv2d', x, weight, bias, opts);
  const { n, cOut, outH, outW } = d;
  const out = result(allocF32(n * cOut * outH * outW), [n, cOut, outH, outW]);
  conv2dForward(x.data, weight.data, bias === null ? null : bias.data, out.data, d);
  if (tracking(x, weight, bias)) {
    record(out, [x, weight, bias], (g) => {
      if (x.requiresGrad) conv2dBackwardInput(g, weight.data, x.gradSink(), d);
      if (weight.requiresGrad) conv2dBackwardWeight(x.data, g, weight.gradSink(), d);
      if (bias !== null && bias.requiresGrad) conv2dBackwardBias(g, bias.gradSink(), n, cOut, outH * outW);
    });
  }
  return out;
}

/** Checks conv2d's arguments and returns its geometry; errors name `op`. */
function conv2dDims(op: string, x: Tensor, weight: Tensor, bias: Tensor | null, opts: Conv2dOptions): Conv2dDims {
  const [strideH, strideW] = pair(opts.stride ?? 1, op, 'stride', 1);
  const [padH, padW] = pair(opts.padding ?? 0, op, 'padding', 0);
  const [dilH, dilW] = pair(opts.dilation ?? 1, op, 'dilation', 1);
  const groups = opts.groups ?? 1;
  assert(x.shape.length === 4, () => `${op}: input must be 4-d [N, C, H, W], got ${fmt(x.shape)}`);
  assert(weight.shape.length === 4, () => `${op}: weight must be 4-d [C_out, C_in/groups, kH, kW], got ${fmt(weight.shape)}`);
  const [n, cIn, h, w] = x.shape;
  const [cOut, cInG, kh, kw] = weight.shape;
  checkGroups(op, groups, x, weight, cIn, cOut);
  assert(cInG * groups === cIn, () => `${op}: weight ${fmt(weight.shape)} expects ${cInG * groups} input channels (groups=${groups}), input ${fmt(x.shape)} has ${cIn}`);
  checkBias(op, bias, cOut);
  const outH = convOutSize(h, kh, strideH, padH, dilH);
  const outW = convOutSize(w, kw, strideW, padW, dilW);
  assert(
    outH >= 1 && outW >= 1 && kh >= 1 && kw >= 1,
    () =>
      `${op}: kernel ${kh}x${kw} (dilation ${dilH}x${dilW}) is larger than the padded input ${h + 2 * padH}x${w + 2 * padW} ` +
      `(input ${fmt(x.shape)}, weight ${fmt(weight.shape)}, padding ${padH}x${padW})`,
  );
  return { n, cIn, h, w, cOut, kh, kw, strideH, strideW, padH, padW, dilH, dilW, groups, outH, outW };
}

/**
 * relu(conv2d(x, weight, bias, opts)), then, when `pool2x2`, max pooling with 2×2 windows and
 * stride 2: the same values and gradients, bit for bit, as `maxPool2d(relu(conv2d(...)),
 * { kernelSize: 2 })`. Where the WebAssembly kernels handle the geometry, the whole layer runs in
 * their memory and the convolution's full-size output and gradient never cross into JS (the model
 * builder uses this for conv → ReLU → pool chains); elsewhere it runs the separate ops.
 */
export function conv2dRelu(x: Tensor, weight: Tensor, bias: Tensor | null = null, opts: Conv2dOptions = {}, pool2x2 = false): Tensor {
  const d = conv2dDims('conv2dRelu', x, weight, bias, opts);
  const { n, cOut, outH, outW } = d;
  const shape = pool2x2 ? [n, cOut, outH >> 1, outW >> 1] : [n, cOut, outH, outW];
  const out = result(allocF32(n * cOut * shape[2] * shape[3]), shape);
  const track = tracking(x, weight, bias);
  const argmax = pool2x2 && track ? allocI32(out.numel) : null;
  if (out.numel === 0 || !conv2dReluForwardWasm(x.data, weight.data, bias === null ? null : bias.data, d, pool2x2, out.data, argmax)) {
    const y = relu(conv2d(x, weight, bias, opts));
    return pool2x2 ? maxPool2d(y, { kernelSize: 2 }) : y;
  }
  if (track) {
    record(out, [x, weight, bias], (g) => {
      const gx = x.requiresGrad ? x.gradSink() : null;
      const gw = weight.requiresGrad ? weight.gradSink() : null;
      const gb = bias !== null && bias.requiresGrad ? bias.gradSink() : null;
      // The forward ran on the WebAssembly kernels, so they are loaded: false only if disabled since.
      assert(conv2dReluBackwardWasm(g, out.data, argmax, x.data, weight.data, gx, gw, gb, d), () => 'conv2dRelu: the WebAssembly kernels were disabled between forward and backward');
    });
  }
  return out;
}

/**
 * Transposed 2-D convolution (PyTorch conv_transpose2d). x [N, C_in, H, W], weight
 * [C_in, C_out/groups, kH, kW], bias [C_out] → [N, C_out, H_out, W_out] with
 * H_out = (H − 1)·stride − 2·padding + dilation·(kH − 1) + outputPadding + 1.
 */
export function convTranspose2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, opts: ConvTranspose2dOptions = {}): Tensor {
  const op = 'convTranspose2d';
  const [strideH, strideW] = pair(opts.stride ?? 1, op, 'stride', 1);
  const [padH, padW] = pair(opts.padding ?? 0, op, 'padding', 0);
  const [opH, opW] = pair(opts.outputPadding ?? 0, op, 'outputPadding', 0);
  const [dilH, dilW] = pair(opts.dilation ?? 1, op, 'dilation', 1);
  const groups = opts.groups ?? 1;
  assert(x.shape.length === 4, () => `${op}: input must be 4-d [N, C, H, W], got ${fmt(x.shape)}`);
  assert(weight.shape.length === 4, () => `${op}: weight must be 4-d [C_in, C_out/groups, kH, kW], got ${fmt(weight.shape)}`);
  const [n, cIn, h, w] = x.shape;
  const [wIn, cOutG, kh, kw] = weight.shape;
  const cOut = cOutG * groups;
  checkGroups(op, groups, x, weight, cIn, cOut);
  assert(wIn === cIn, () => `${op}: weight ${fmt(weight.shape)} expects ${wIn} input channels, input ${fmt(x.shape)} has ${cIn}`);
  assert(
    (opH < strideH || opH < dilH) && (opW < strideW || opW < dilW),
    () => `${op}: outputPadding ${opH}x${opW} must be smaller than stride ${strideH}x${strideW} or dilation ${dilH}x${dilW}`,
  );
  checkBias(op, bias, cOut);
  const outH = (h - 1) * strideH - 2 * padH + dilH * (kh - 1) + opH + 1;
  const outW = (w - 1) * strideW - 2 * padW + dilW * (kw - 1) + opW + 1;
  assert(outH >= 1 && outW >= 1, () => `${op}: output would be ${outH}x${outW} for input ${fmt(x.shape)}, weight ${fmt(weight.shape)}, padding ${padH}x${padW}`);
  // The convolution whose input-gradient this op computes: its input is our output.
  const d: Conv2dDims = { n, cIn: cOut, h: outH, w: outW, cOut: cIn, kh, kw, strideH, strideW, padH, padW, dilH, dilW, groups, outH: h, outW: w };
  const out = result(allocF32(n * cOut * outH * outW), [n, cOut, outH, outW]);
  conv2dBackwardInput(x.data, weight.data, out.data, d);
  if (bias !== null) addBias(out.data, bias.data, n, cOut, outH * outW);
  if (tracking(x, weight, bias)) {
    record(out, [x, weight, bias], (g) => {
      if (x.requiresGrad) conv2dForward(g, weight.data, null, x.gradSink(), d, true);
      if (weight.requiresGrad) conv2dBackwardWeight(g, x.data, weight.gradSink(), d);
      if (bias !== null && bias.requiresGrad) conv2dBackwardBias(g, bias.gradSink(), n, cOut, outH * outW);
    });
  }
  return out;
}

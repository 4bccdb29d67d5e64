// Batch normalisation over (N, H, W) per channel, PyTorch semantics, alone or followed by ReLU /
// leaky ReLU in one op (what the model builder uses for bn → activation chains).

import { assert, assertRange, fmt } from '../assert.ts';
import { type BatchNormCoefs, type BatchNormGradCoefs, type ChannelMoments, batchNormBackwardWasm, batchNormForwardWasm } from '../kernels/wasm/norm.ts';
import { wasmKernels } from '../kernels/wasm/runtime.ts';
import { Tensor, record, result, tracking } from '../tensor.ts';
import { leakyRelu, relu } from './elementwise.ts';
import { allocF32, allocF64 } from '../arena.ts';

export interface BatchNorm2dOptions {
  /** Normalise with batch statistics and update the running ones. Default false (PyTorch F.batch_norm). */
  training?: boolean;
  /** Added to the variance. Default 1e-5. */
  eps?: number;
  /** running = (1 − momentum)·running + momentum·batch. Default 0.1. */
  momentum?: number;
  /** [C], updated in place when training; used to normalise in eval. */
  runningMean?: Float32Array | Tensor | null;
  /** [C], updated in place with the UNBIASED batch variance when training; used in eval. */
  runningVar?: Float32Array | Tensor | null;
}

function buf(v: Float32Array | Tensor | null | undefined): Float32Array | null {
  if (v === null || v === undefined) return null;
  return v instanceof Tensor ? v.data : v;
}

/**
 * y = (x − μ) / √(σ² + eps) · gamma + beta per channel. Training: μ, σ² are the batch mean and
 * BIASED variance over (N, H, W). Eval: the running statistics (required).
 * x [N, C, H, W]; gamma, beta [C] or null (then 1 and 0).
 */
export function batchNorm2d(x: Tensor, gamma: Tensor | null, beta: Tensor | null, opts: BatchNorm2dOptions = {}): Tensor {
  return batchNormCore('batchNorm2d', x, gamma, beta, opts, null);
}

/**
 * leakyRelu(batchNorm2d(x, gamma, beta, opts), slope) (slope 0: relu), slope ≥ 0: the same values
 * and gradients, bit for bit, as the two ops. On the WebAssembly kernels in training mode (or
 * without gradients) it runs as one op, the normalised tensor and its gradient never crossing into
 * JS; elsewhere it runs the two ops.
 */
export function batchNorm2dRelu(x: Tensor, gamma: Tensor | null, beta: Tensor | null, opts: BatchNorm2dOptions = {}, slope = 0): Tensor {
  assertRange(Number.isFinite(slope) && slope >= 0, () => `batchNorm2dRelu: slope must be a finite number >= 0, got ${slope}`);
  if (wasmKernels() === null || (!(opts.training ?? false) && tracking(x, gamma, beta))) {
    const y = batchNorm2d(x, gamma, beta, opts);
    return slope === 0 ? relu(y) : leakyRelu(y, slope);
  }
  return batchNormCore('batchNorm2dRelu', x, gamma, beta, opts, slope);
}

/** Batch norm, then the activation of slope `slope` (null: none). */
function batchNormCore(op: string, x: Tensor, gamma: Tensor | null, beta: Tensor | null, opts: BatchNorm2dOptions, slope: number | null): Tensor {
  const training = opts.training ?? false;
  const eps = opts.eps ?? 1e-5;
  const momentum = opts.momentum ?? 0.1;
  assert(x.shape.length === 4, () => `${op}: input must be 4-d [N, C, H, W], got ${fmt(x.shape)}`);
  const [n, c, h, w] = x.shape;
  const hw = h * w;
  const count = n * hw;
  for (const [name, t] of [['gamma', gamma], ['beta', beta]] as const) {
    assert(t === null || (t.shape.length === 1 && t.shape[0] === c), () => `${op}: ${name} has shape ${fmt(t!.shape)}, expected [${c}] for input ${fmt(x.shape)}`);
  }
  const runMean = buf(opts.runningMean);
  const runVar = buf(opts.runningVar);
  for (const [name, r] of [['runningMean', runMean], ['runningVar', runVar]] as const) {
    assert(r === null || r.length === c, () => `${op}: ${name} has ${r!.length} values, expected ${c} for input ${fmt(x.shape)}`);
  }
  assertRange(eps > 0, () => `${op}: eps must be > 0, got ${eps}`);
  if (training) assert(count > 1, () => `${op}: expected more than 1 value per channel when training, got input ${fmt(x.shape)}`);
  else assert(runMean !== null && runVar !== null, () => `${op}: eval mode needs runningMean and runningVar`);

  const src = x.data;
  const g = gamma === null ? null : gamma.data;
  const bt = beta === null ? null : beta.data;
  const invStd = allocF64(c);
  // The statistics (updating the running ones) and y = (x − μ)·k + shift with k = γ/σ.
  const coefs = (moments: ChannelMoments): BatchNormCoefs => {
    const mean = allocF64(c);
    if (training) {
      const sums = moments(null);
      for (let ch = 0; ch < c; ch++) mean[ch] = sums[ch] / count;
      const sq = moments(mean);
      for (let ch = 0; ch < c; ch++) {
        const v = sq[ch];
        invStd[ch] = 1 / Math.sqrt(v / count + eps);
        if (runMean !== null) runMean[ch] = (1 - momentum) * runMean[ch] + momentum * mean[ch];
        if (runVar !== null) runVar[ch] = (1 - momentum) * runVar[ch] + momentum * (v / (count - 1));
      }
    } else {
      for (let ch = 0; ch < c; ch++) {
        mean[ch] = runMean![ch];
        invStd[ch] = 1 / Math.sqrt(runVar![ch] + eps);
      }
    }
    const scale = allocF64(c);
    const shift = allocF64(c);
    for (let ch = 0; ch < c; ch++) {
      scale[ch] = invStd[ch] * (g === null ? 1 : g[ch]);
      shift[ch] = bt === null ? 0 : bt[ch];
    }
    return { mean, scale, shift };
  };
  const data = allocF32(src.length);
  let k: BatchNormCoefs | null = null;
  const onWasm = batchNormForwardWasm(src, data, n, c, hw, slope, (moments) => (k = coefs(moments)));
  if (!onWasm && slope !== null) {
    // The kernels are unavailable (or the tensor too large for them): the two ops.
    const y = batchNormCore(op, x, gamma, beta, opts, null);
    return slope === 0 ? relu(y) : leakyRelu(y, slope);
  }
  if (!onWasm) {
    k = coefs((mean) => channelSums(src, n, c, hw, mean));
    for (let b = 0; b < n; b++) {
      for (let ch = 0; ch < c; ch++) {
        const mu = k.mean[ch];
        const kk = k.scale[ch];
        const off = k.shift[ch];
        for (let i = (b * c + ch) * hw, e = i + hw; i < e; i++) data[i] = (src[i] - mu) * kk + off;
      }
    }
  }
  const { mean, scale } = k!;
  const out = result(data, x.shape);
  if (tracking(x, gamma, beta)) {
    record(out, [x, gamma, beta], (gy) => {
      const gx = x.requiresGrad ? x.gradSink() : null;
      const gg = gamma !== null && gamma.requiresGrad ? gamma.gradSink() : null;
      const gb = beta !== null && beta.requiresGrad ? beta.gradSink() : null;
      // Σ dy and Σ dy·x̂ per channel (interleaved) → the parameter gradients and what dx needs.
      const fromSums = (sums: Float64Array): BatchNormGradCoefs => {
        const mdy = allocF64(c);
        const mdyx = allocF64(c);
        for (let ch = 0; ch < c; ch++) {
          const sdy = sums[2 * ch];
          const sdyx = sums[2 * ch + 1];
          if (gg !== null) gg[ch] += sdyx;
          if (gb !== null) gb[ch] += sdy;
          mdy[ch] = sdy / count;
          mdyx[ch] = sdyx / count;
        }
        return { k: scale, mdy, mdyx };
      };
      // dx = γ/σ · (dy − mean(dy) − x̂·mean(dy·x̂)): μ and σ depend on x too (training).
      if (training && batchNormBackwardWasm(gy, data, src, gx, n, c, hw, slope, mean, invStd, fromSums)) return;
      // The normalisation's output gradient: through the activation (y > 0 exactly where its input is, slope ≥ 0).
      const dy = slope === null ? gy : allocF32(gy.length);
      if (slope !== null) for (let i = 0; i < dy.length; i++) dy[i] += data[i] > 0 ? gy[i] : gy[i] * slope;
      const m = fromSums(gradSums(dy, src, n, c, hw, mean, invStd));
      if (gx === null) return;
      for (let ch = 0; ch < c; ch++) {
        const mu = mean[ch];
        const is = invStd[ch];
        const kk = scale[ch];
        const m1 = m.mdy[ch];
        const m2 = m.mdyx[ch];
        for (let b = 0; b < n; b++) {
          if (training) for (let i = (b * c + ch) * hw, e = i + hw; i < e; i++) gx[i] += kk * (dy[i] - m1 - (src[i] - mu) * is * m2);
          else for (let i = (b * c + ch) * hw, e = i + hw; i < e; i++) gx[i] += kk * dy[i];
        }
      }
    });
  }
  return out;
}

/** Σ x per channel over (N, H, W) (mean null), or Σ (x − mean[ch])², element after element. */
function channelSums(src: Float32Array, n: number, c: number, hw: number, mean: Float64Array | null): Float64Array {
  const sums = allocF64(c);
  for (let ch = 0; ch < c; ch++) {
    let s = 0;
    if (mean === null) {
      for (let b = 0; b < n; b++) for (let i = (b * c + ch) * hw, e = i + hw; i < e; i++) s += src[i];
    } else {
      const mu = mean[ch];
      for (let b = 0; b < n; b++) {
        for (let i = (b * c + ch) * hw, e = i + hw; i < e; i++) {
          const dx = src[i] - mu;
          s += dx * dx;
        }
      }
    }
    sums[ch] = s;
  }
  return sums;
}

/** Σ dy and Σ dy·(x − mean)·invStd per channel, interleaved [2C], element after element. */
function gradSums(gy: Float32Array, src: Float32Array, n: number, c: number, hw: number, mean: Float64Array, invStd: Float64Array): Float64Array {
  const sums = new Float64Array(2 * c);
  for (let ch = 0; ch < c; ch++) {
    const mu = mean[ch];
    const is = invStd[ch];
    let sdy = 0;
    let sdyx = 0;
    for (let b = 0; b < n; b++) {
      for (let i = (b * c + ch) * hw, e = i + hw; i < e; i++) {
        sdy += gy[i];
        sdyx += gy[i] * (src[i] - mu) * is;
      }
    }
    sums[2 * ch] = sdy;
    sums[2 * ch + 1] = sdyx;
  }
  return sums;
}

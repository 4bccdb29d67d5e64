// Batch normalisation over (N, H, W) per channel, PyTorch semantics.

import { assert, assertRange, fmt } from '../assert.ts';
import { Tensor, record, result, tracking } from '../tensor.ts';

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
  const op = 'batchNorm2d';
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
  const mean = new Float64Array(c);
  const invStd = new Float64Array(c);
  for (let ch = 0; ch < c; ch++) {
    if (!training) {
      mean[ch] = runMean![ch];
      invStd[ch] = 1 / Math.sqrt(runVar![ch] + eps);
      continue;
    }
    let s = 0;
    for (let b = 0; b < n; b++) for (let i = (b * c + ch) * hw, e = i + hw; i < e; i++) s += src[i];
    const mu = s / count;
    let v = 0;
    for (let b = 0; b < n; b++) {
      for (let i = (b * c + ch) * hw, e = i + hw; i < e; i++) {
        const dx = src[i] - mu;
        v += dx * dx;
      }
    }
    mean[ch] = mu;
    invStd[ch] = 1 / Math.sqrt(v / count + eps);
    if (runMean !== null) runMean[ch] = (1 - momentum) * runMean[ch] + momentum * mu;
    if (runVar !== null) runVar[ch] = (1 - momentum) * runVar[ch] + momentum * (v / (count - 1));
  }

  const g = gamma === null ? null : gamma.data;
  const bt = beta === null ? null : beta.data;
  const data = new Float32Array(src.length);
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      const mu = mean[ch];
      const k = invStd[ch] * (g === null ? 1 : g[ch]);
      const off = bt === null ? 0 : bt[ch];
      for (let i = (b * c + ch) * hw, e = i + hw; i < e; i++) data[i] = (src[i] - mu) * k + off;
    }
  }
  const out = result(data, x.shape);
  if (tracking(x, gamma, beta)) {
    record(out, [x, gamma, beta], (gy) => {
      const gx = x.requiresGrad ? x.gradSink() : null;
      const gg = gamma !== null && gamma.requiresGrad ? gamma.gradSink() : null;
      const gb = beta !== null && beta.requiresGrad ? beta.gradSink() : null;
      for (let ch = 0; ch < c; ch++) {
        const mu = mean[ch];
        const is = invStd[ch];
        // Σ dy and Σ dy·x̂ over the channel.
        let sdy = 0;
        let sdyx = 0;
        for (let b = 0; b < n; b++) {
          for (let i = (b * c + ch) * hw, e = i + hw; i < e; i++) {
            sdy += gy[i];
            sdyx += gy[i] * (src[i] - mu) * is;
          }
        }
        if (gg !== null) gg[ch] += sdyx;
        if (gb !== null) gb[ch] += sdy;
        if (gx === null) continue;
        const k = is * (g === null ? 1 : g[ch]);
        if (training) {
          // dx = γ/σ · (dy − mean(dy) − x̂·mean(dy·x̂)): μ and σ depend on x too.
          const mdy = sdy / count;
          const mdyx = sdyx / count;
          for (let b = 0; b < n; b++) {
            for (let i = (b * c + ch) * hw, e = i + hw; i < e; i++) gx[i] += k * (gy[i] - mdy - (src[i] - mu) * is * mdyx);
          }
        } else {
          for (let b = 0; b < n; b++) for (let i = (b * c + ch) * hw, e = i + hw; i < e; i++) gx[i] += k * gy[i];
        }
      }
    });
  }
  return out;
}

// Loss functions with PyTorch semantics. Each returns a scalar (shape []) for 'mean' and 'sum',
// or per-element losses for 'none'. Workers use 'sum' to return a shard's gradient SUM.

import { assert, assertRange, fmt } from '../assert.ts';
import { Tensor, numelOf, record, result, tracking } from '../tensor.ts';
import { softmaxWasm, xentGradWasm } from '../kernels/wasm/softmax.ts';
import { sigmoidScalar } from './elementwise.ts';
import { allocF32, allocF64 } from '../arena.ts';

export type Reduction = 'mean' | 'sum' | 'none';

export interface LossOptions {
  /** Default 'mean'. */
  reduction?: Reduction;
}

/** Wraps per-element losses into the reduced output and returns each element's gradient weight. */
function reduceLoss(op: string, losses: Float64Array, shape: number[], reduction: Reduction): { out: Tensor; weight: (g: Float32Array, i: number) => number } {
  assertRange(reduction === 'mean' || reduction === 'sum' || reduction === 'none', () => `${op}: reduction must be 'mean', 'sum' or 'none', got ${String(reduction)}`);
  if (reduction === 'none') return { out: result(Float32Array.from(losses), shape), weight: (g, i) => g[i] };
  let s = 0;
  for (let i = 0; i < losses.length; i++) s += losses[i];
  const f = reduction === 'mean' ? 1 / losses.length : 1;
  return { out: result(new Float32Array([s * f]), []), weight: (g) => g[0] * f };
}

/**
 * Softmax cross-entropy from raw scores (PyTorch F.cross_entropy): logits [N, C] (or
 * [N, C, d1, ...] with labels [N, d1, ...]), integer class labels in [0, C). The log-softmax
 * is max-shifted, so large logits do not overflow.
 */
export function crossEntropy(logits: Tensor, labelsIn: ArrayLike<number>, opts: LossOptions = {}): Tensor {
  const op = 'crossEntropy';
  assert(logits.shape.length >= 2, () => `${op}: logits must be [N, C] or [N, C, ...], got ${fmt(logits.shape)}`);
  const [n, c] = logits.shape;
  const inner = numelOf(logits.shape.slice(2));
  const rows = n * inner;
  const labelShape = [n, ...logits.shape.slice(2)];
  assert(labelsIn.length === rows, () => `${op}: ${labelsIn.length} labels for logits ${fmt(logits.shape)}, expected ${rows} (shape ${fmt(labelShape)})`);
  const labels = Int32Array.from(labelsIn); // a copy: the caller may reuse its buffer before backward
  // Per position: the softmax, kept for backward, and the max-shifted log-sum-exp: the loss is
  // −f32(z_y − lse), as log-softmax gives it.
  const z = logits.data;
  const prob = allocF32(logits.numel);
  const max = allocF64(rows);
  const sum = allocF64(rows);
  if (!softmaxWasm(z, prob, n, c, inner, max, sum)) softmaxRows(z, prob, n, c, inner, max, sum);
  const losses = allocF64(rows);
  for (let b = 0, r = 0; b < n; b++) {
    const z0 = b * c * inner;
    for (let i = 0; i < inner; i++, r++) {
      const y = labels[r];
      if (!(y >= 0 && y < c && y === labelsIn[r])) assertRange(false, () => `${op}: label ${labelsIn[r]} at index ${r} is not a class in [0, ${c})`);
      losses[r] = -Math.fround(z[z0 + y * inner + i] - (max[r] + Math.log(sum[r])));
    }
  }
  const { out, weight } = reduceLoss(op, losses, labelShape, opts.reduction ?? 'mean');
  if (tracking(logits)) {
    // d/dz = w · (softmax(z) − onehot(y))
    record(out, [logits], (g) => {
      const gz = logits.gradSink();
      const w = allocF64(rows);
      for (let r = 0; r < rows; r++) w[r] = weight(g, r);
      if (!xentGradWasm(gz, prob, w, labels, n, c, inner)) crossEntropyGrad(gz, prob, w, labels, n, c, inner);
    });
  }
  return out;
}

/** gz[b][k][i] += w[b·inner + i]·(prob[b][k][i] − [k = labels[b·inner + i]]): the logit gradient of `crossEntropy`. */
export function crossEntropyGrad(gz: Float32Array, prob: Float32Array, w: Float64Array, labels: Int32Array, n: number, c: number, inner: number): void {
  for (let b = 0; b < n; b++) {
    const r0 = b * inner;
    for (let k = 0; k < c; k++) {
      const e0 = (b * c + k) * inner;
      for (let i = 0; i < inner; i++) gz[e0 + i] += w[r0 + i] * (prob[e0 + i] - (k === labels[r0 + i] ? 1 : 0));
    }
  }
}

/**
 * Softmax of z [n, c, inner] along c into prob, with each position's max and Σ exp(z − max) (in
 * class order, float64) into max and sum.
 */
function softmaxRows(z: Float32Array, prob: Float32Array, n: number, c: number, inner: number, max: Float64Array, sum: Float64Array): void {
  const ex = allocF64(c);
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < inner; i++) {
      const base = b * c * inner + i;
      let m = -Infinity;
      for (let k = 0, e = base; k < c; k++, e += inner) if (z[e] > m) m = z[e];
      let s = 0;
      for (let k = 0, e = base; k < c; k++, e += inner) s += ex[k] = Math.exp(z[e] - m);
      for (let k = 0, e = base; k < c; k++, e += inner) prob[e] = ex[k] / s;
      max[b * inner + i] = m;
      sum[b * inner + i] = s;
    }
  }
}

function checkSame(op: string, a: Tensor, b: Tensor, an: string, bn: string): void {
  const ok = a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
  assert(ok, () => `${op}: ${an} has shape ${fmt(a.shape)}, ${bn} has shape ${fmt(b.shape)}; they must match`);
}

/** Mean squared error (PyTorch F.mse_loss): (pred − target)² reduced. */
export function mse(pred: Tensor, target: Tensor, opts: LossOptions = {}): Tensor {
  checkSame('mse', pred, target, 'pred', 'target');
  const p = pred.data;
  const t = target.data;
  const losses = allocF64(p.length);
  for (let i = 0; i < p.length; i++) {
    const d = p[i] - t[i];
    losses[i] = d * d;
  }
  const { out, weight } = reduceLoss('mse', losses, pred.shape, opts.reduction ?? 'mean');
  if (tracking(pred, target)) {
    record(out, [pred, target], (g) => {
      const gp = pred.requiresGrad ? pred.gradSink() : null;
      const gt = target.requiresGrad ? target.gradSink() : null;
      for (let i = 0; i < p.length; i++) {
        const v = 2 * (p[i] - t[i]) * weight(g, i);
        if (gp !== null) gp[i] += v;
        if (gt !== null) gt[i] -= v;
      }
    });
  }
  return out;
}

export interface BceOptions extends LossOptions {
  /** Weight of positive examples, one per class (last dim) or one number. Default 1. */
  posWeight?: number | ArrayLike<number> | Tensor;
}

/** log(1 + e^v) without overflow. */
function softplus(v: number): number {
  return v > 0 ? v + Math.log1p(Math.exp(-v)) : Math.log1p(Math.exp(v));
}

/**
 * Sigmoid + binary cross-entropy in one stable step (PyTorch
 * binary_cross_entropy_with_logits): ℓ = −[pw·y·log σ(x) + (1 − y)·log(1 − σ(x))]
 * = pw·y·softplus(−x) + (1 − y)·softplus(x). Targets are probabilities in [0, 1].
 */
export function binaryCrossEntropyWithLogits(logits: Tensor, targets: Tensor, opts: BceOptions = {}): Tensor {
  const op = 'binaryCrossEntropyWithLogits';
  checkSame(op, logits, targets, 'logits', 'targets');
  const last = logits.shape.length === 0 ? 1 : logits.shape[logits.shape.length - 1];
  const pwOpt = opts.posWeight ?? 1;
  const pw: ArrayLike<number> = typeof pwOpt === 'number' ? [pwOpt] : pwOpt instanceof Tensor ? pwOpt.data : pwOpt;
  assert(pw.length === 1 || pw.length === last, () => `${op}: posWeight has ${pw.length} values, expected 1 or ${last} (last dim of ${fmt(logits.shape)})`);
  const pwAt = pw.length === 1 ? () => pw[0] : (i: number) => pw[i % last];
  const x = logits.data;
  const y = targets.data;
  const losses = allocF64(x.length);
  for (let i = 0; i < x.length; i++) losses[i] = pwAt(i) * y[i] * softplus(-x[i]) + (1 - y[i]) * softplus(x[i]);
  const { out, weight } = reduceLoss(op, losses, logits.shape, opts.reduction ?? 'mean');
  if (tracking(logits, targets)) {
    record(out, [logits, targets], (g) => {
      const gx = logits.requiresGrad ? logits.gradSink() : null;
      const gy = targets.requiresGrad ? targets.gradSink() : null;
      for (let i = 0; i < x.length; i++) {
        const w = weight(g, i);
        const s = sigmoidScalar(x[i]);
        // dℓ/dx = pw·y·(σ − 1) + (1 − y)·σ;  dℓ/dy = pw·softplus(−x) − softplus(x)
        if (gx !== null) gx[i] += w * (pwAt(i) * y[i] * (s - 1) + (1 - y[i]) * s);
        if (gy !== null) gy[i] += w * (pwAt(i) * softplus(-x[i]) - softplus(x[i]));
      }
    });
  }
  return out;
}

// Hand-computed cases for pooling, activations, shape ops, batch norm and losses; shape errors;
// autograd semantics (accumulation, shared parameter storage, no-grad mode, deep graphs).
import { describe, expect, it } from 'vitest';
import {
  type Param,
  ShapeError,
  Tensor,
  add,
  avgPool2d,
  batchNorm2d,
  binaryCrossEntropyWithLogits,
  concat,
  conv2d,
  convTranspose2d,
  createRng,
  crossEntropy,
  dropout,
  flatten,
  fromData,
  globalAvgPool2d,
  leakyRelu,
  linear,
  logSoftmax,
  maxPool2d,
  mean,
  minPool2d,
  mse,
  mul,
  noGrad,
  relu,
  reshape,
  scale,
  softmax,
  sub,
  sum,
  tensor,
  upsampleNearest2d,
  zeros,
} from '../src/index.ts';

const grid3 = () => tensor([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 3, 3], { requiresGrad: true });

function close(actual: ArrayLike<number>, expected: number[], digits = 5): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) expect(actual[i]).toBeCloseTo(expected[i], digits);
}

describe('pooling, hand-computed', () => {
  it('maxPool2d kernel 2 stride 1 padding 1 on 3x3 1..9 (padding never wins)', () => {
    const y = maxPool2d(grid3(), { kernelSize: 2, stride: 1, padding: 1 });
    expect(y.shape).toEqual([1, 1, 4, 4]);
    expect(Array.from(y.data)).toEqual([1, 2, 3, 3, 4, 5, 6, 6, 7, 8, 9, 9, 7, 8, 9, 9]);
  });

  it('minPool2d kernel 2 stride 1 padding 1 on 3x3 1..9 (padding is +Infinity, not 0)', () => {
    const y = minPool2d(grid3(), { kernelSize: 2, stride: 1, padding: 1 });
    expect(Array.from(y.data)).toEqual([1, 1, 2, 3, 1, 1, 2, 3, 4, 4, 5, 6, 7, 7, 8, 9]);
  });

  it('minPool2d equals -maxPool2d(-x) for kernel 3 stride 2 padding 1', () => {
    const rng = createRng(5);
    const x = tensor(Array.from({ length: 2 * 3 * 7 * 6 }, () => rng.next()), [2, 3, 7, 6]);
    const a = minPool2d(x, { kernelSize: 3, stride: 2, padding: 1 });
    const b = scale(maxPool2d(scale(x, -1), { kernelSize: 3, stride: 2, padding: 1 }), -1);
    expect(Array.from(a.data)).toEqual(Array.from(b.data));
  });

  it('avgPool2d kernel 2 stride 1 padding 1 on 3x3 1..9 counts the padded zeros (divisor 4)', () => {
    const y = avgPool2d(grid3(), { kernelSize: 2, stride: 1, padding: 1 });
    close(y.data, [0.25, 0.75, 1.25, 0.75, 1.25, 3, 4, 2.25, 2.75, 6, 7, 3.75, 1.75, 3.75, 4.25, 2.25]);
  });

  it('avgPool2d kernel [2,3] stride [1,3] without padding', () => {
    const x = tensor(Array.from({ length: 12 }, (_, i) => i), [1, 1, 2, 6]);
    const y = avgPool2d(x, { kernelSize: [2, 3], stride: [1, 3] });
    expect(y.shape).toEqual([1, 1, 1, 2]);
    close(y.data, [(0 + 1 + 2 + 6 + 7 + 8) / 6, (3 + 4 + 5 + 9 + 10 + 11) / 6]);
  });

  it('maxPool2d ties: the gradient goes to the first maximum in scan order', () => {
    const x = tensor([5, 5, 5, 5, 1, 7, 7, 1], [1, 2, 2, 2], { requiresGrad: true });
    sum(maxPool2d(x, { kernelSize: 2 })).backward();
    expect(Array.from(x.grad!.data)).toEqual([1, 0, 0, 0, 0, 1, 0, 0]);
  });

  it('minPool2d ties: the gradient goes to the first minimum in scan order', () => {
    const x = tensor([3, 2, 2, 2], [1, 1, 2, 2], { requiresGrad: true });
    sum(minPool2d(x, { kernelSize: 2 })).backward();
    expect(Array.from(x.grad!.data)).toEqual([0, 1, 0, 0]);
  });

  it('maxPool2d propagates NaN like PyTorch', () => {
    const y = maxPool2d(tensor([1, NaN, 3, 4], [1, 1, 2, 2]), { kernelSize: 2 });
    expect(Number.isNaN(y.data[0])).toBe(true);
  });

  it('avgPool2d backward spreads 1/(kh·kw) over every window an input belongs to', () => {
    const x = grid3();
    sum(avgPool2d(x, { kernelSize: 2, stride: 1 })).backward();
    close(x.grad!.data, [1, 2, 1, 2, 4, 2, 1, 2, 1].map((v) => v / 4));
  });

  it('globalAvgPool2d keeps [N, C, 1, 1] like adaptive_avg_pool2d(x, 1)', () => {
    const y = globalAvgPool2d(tensor([1, 2, 3, 4, 10, 20, 30, 40], [1, 2, 2, 2]));
    expect(y.shape).toEqual([1, 2, 1, 1]);
    close(y.data, [2.5, 25]);
  });

  it('upsampleNearest2d scale [2,3] repeats each pixel in a 2x3 block', () => {
    const y = upsampleNearest2d(tensor([1, 2, 3, 4], [1, 1, 2, 2]), [2, 3]);
    expect(y.shape).toEqual([1, 1, 4, 6]);
    expect(Array.from(y.data)).toEqual([1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4]);
  });
});

describe('element-wise and shape ops, hand-computed', () => {
  it('relu and leakyRelu', () => {
    const x = tensor([-2, -0.5, 0, 3], [4]);
    expect(Array.from(relu(x).data)).toEqual([0, 0, 0, 3]);
    close(leakyRelu(x).data, [-0.02, -0.005, 0, 3]);
    close(leakyRelu(x, 0.5).data, [-1, -0.25, 0, 3]);
  });

  it('add broadcasts a [1, C, 1, 1] bias over [N, C, H, W]', () => {
    const y = add(tensor([1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 2, 2]), tensor([100, 200], [1, 2, 1, 1]));
    expect(Array.from(y.data)).toEqual([101, 102, 103, 104, 205, 206, 207, 208]);
  });

  it('sub and mul', () => {
    expect(Array.from(sub(tensor([5, 7], [2]), tensor([1, 2], [2])).data)).toEqual([4, 5]);
    expect(Array.from(mul(tensor([5, 7], [2]), tensor([3], [1])).data)).toEqual([15, 21]);
  });

  it('concat along channels (default dim 1)', () => {
    const a = tensor([1, 2, 3, 4], [2, 1, 2]);
    const b = tensor([5, 6, 7, 8, 9, 10, 11, 12], [2, 2, 2]);
    const y = concat([a, b]);
    expect(y.shape).toEqual([2, 3, 2]);
    expect(Array.from(y.data)).toEqual([1, 2, 5, 6, 7, 8, 3, 4, 9, 10, 11, 12]);
  });

  it('reshape infers -1 and shares storage; flatten keeps the batch dim', () => {
    const x = tensor([1, 2, 3, 4, 5, 6], [1, 2, 3]);
    const r = reshape(x, [3, -1]);
    expect(r.shape).toEqual([3, 2]);
    expect(r.data).toBe(x.data);
    expect(flatten(x).shape).toEqual([1, 6]);
    expect(flatten(zeros([2, 3, 4, 5]), 2).shape).toEqual([2, 3, 20]);
  });

  it('sum and mean over everything and over one dim', () => {
    const x = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    expect(sum(x).item()).toBe(21);
    expect(sum(x).shape).toEqual([]);
    expect(Array.from(sum(x, 0).data)).toEqual([5, 7, 9]);
    close(mean(x, 1, true).data, [2, 5]);
    expect(mean(x, 1, true).shape).toEqual([2, 1]);
  });

  it('linear computes x·Wᵀ + b with weight [out, in]', () => {
    const y = linear(tensor([1, 2, 3], [1, 3]), tensor([1, 0, 0, 1, 1, 1], [2, 3]), tensor([10, 20], [2]));
    expect(Array.from(y.data)).toEqual([11, 26]);
  });

  it('softmax rows sum to 1 and logSoftmax survives logits of 1000', () => {
    const x = tensor([1, 2, 3, 1000, 1000, 0], [2, 3]);
    const s = softmax(x, 1);
    close(s.data, [0.09003057, 0.24472847, 0.66524096, 0.5, 0.5, 0]);
    const l = logSoftmax(x, -1);
    close(l.data.slice(0, 3), [-2.40760596, -1.40760596, -0.40760596]);
    close(l.data.slice(3), [-Math.LN2, -Math.LN2, -1000 - Math.LN2], 3);
  });

  it('dropout: identity in eval, zeros about p and scales the rest by 1/(1-p), same seed same mask', () => {
    const x = tensor(new Float32Array(10000).fill(1), [100, 100]);
    expect(dropout(x, { training: false })).toBe(x);
    const y = dropout(x, { p: 0.25, rng: createRng(3) });
    const zeros = y.data.filter((v) => v === 0).length;
    expect(zeros).toBeGreaterThan(2300);
    expect(zeros).toBeLessThan(2700);
    expect(y.data.filter((v) => v !== 0 && Math.abs(v - 4 / 3) > 1e-6)).toHaveLength(0);
    expect(Array.from(dropout(x, { p: 0.25, rng: createRng(3) }).data)).toEqual(Array.from(y.data));
  });
});

describe('batchNorm2d (PyTorch semantics)', () => {
  // Channel 0 holds 1, 2, 3, 4 (mean 2.5, biased var 1.25, unbiased 5/3); channel 1 holds 10s.
  const input = () => tensor([1, 2, 10, 10, 3, 4, 10, 10], [2, 2, 1, 2]);

  it('training normalises with the biased batch variance and updates running stats with the unbiased one', () => {
    const runningMean = new Float32Array([0, 0]);
    const runningVar = new Float32Array([1, 1]);
    const y = batchNorm2d(input(), tensor([2, 1], [2]), tensor([0.5, 0], [2]), { training: true, runningMean, runningVar });
    const s = 1 / Math.sqrt(1.25 + 1e-5);
    close(y.data, [2 * -1.5 * s + 0.5, 2 * -0.5 * s + 0.5, 0, 0, 2 * 0.5 * s + 0.5, 2 * 1.5 * s + 0.5, 0, 0]);
    close(runningMean, [0.25, 1]);
    close(runningVar, [0.9 + 0.1 * (5 / 3), 0.9]);
  });

  it('eval normalises with the running statistics and leaves them alone', () => {
    const runningMean = new Float32Array([1, 10]);
    const runningVar = new Float32Array([4, 1]);
    const y = batchNorm2d(input(), null, null, { runningMean, runningVar, eps: 0 + 1e-5 });
    close(y.data, [0, 0.5, 0, 0, 1, 1.5, 0, 0], 4);
    expect(Array.from(runningMean)).toEqual([1, 10]);
  });

  it('accepts running statistics as Tensors', () => {
    const rm = zeros([2]);
    batchNorm2d(input(), null, null, { training: true, runningMean: rm, runningVar: zeros([2]) });
    close(rm.data, [0.25, 1]);
  });
});

describe('losses, hand-computed', () => {
  const logits = () => tensor([2, 1, 0, 0, 0, 0], [2, 3], { requiresGrad: true });
  const lse = Math.log(Math.exp(2) + Math.exp(1) + 1);

  it('crossEntropy mean and sum', () => {
    const want = [lse - 2, Math.log(3)];
    expect(crossEntropy(logits(), [0, 2]).item()).toBeCloseTo((want[0] + want[1]) / 2, 5);
    expect(crossEntropy(logits(), Uint8Array.from([0, 2]), { reduction: 'sum' }).item()).toBeCloseTo(want[0] + want[1], 5);
    close(crossEntropy(logits(), Int32Array.from([0, 2]), { reduction: 'none' }).data, want);
  });

  it('crossEntropy gradient with reduction sum is softmax − onehot per row', () => {
    const z = logits();
    crossEntropy(z, [0, 2], { reduction: 'sum' }).backward();
    const p = [Math.exp(2) / Math.exp(lse), Math.exp(1) / Math.exp(lse), 1 / Math.exp(lse)];
    close(z.grad!.data, [p[0] - 1, p[1], p[2], 1 / 3, 1 / 3, 1 / 3 - 1]);
  });

  it('crossEntropy is stable for logits of ±1e4', () => {
    expect(crossEntropy(tensor([1e4, -1e4], [1, 2]), [1]).item()).toBeCloseTo(2e4, 0);
  });

  it('mse mean and sum', () => {
    const p = tensor([1, 2, 3], [3]);
    const t = tensor([1, 0, 0], [3]);
    expect(mse(p, t).item()).toBeCloseTo(13 / 3, 5);
    expect(mse(p, t, { reduction: 'sum' }).item()).toBe(13);
  });

  it('binaryCrossEntropyWithLogits with posWeight, and stability at ±100', () => {
    const x = tensor([0, 100, -100], [3]);
    const t = tensor([1, 0, 1], [3]);
    const l = binaryCrossEntropyWithLogits(x, t, { reduction: 'none', posWeight: 2 });
    close(l.data, [2 * Math.LN2, 100, 200], 3);
  });
});

describe('shape errors name the op and both shapes', () => {
  const cases: [string, () => unknown, RegExp][] = [
    ['conv2d channel mismatch', () => conv2d(zeros([1, 3, 8, 8]), zeros([4, 2, 3, 3])), /conv2d: weight \[4, 2, 3, 3\] expects 2 input channels.*input \[1, 3, 8, 8\] has 3/],
    ['conv2d kernel larger than the padded input', () => conv2d(zeros([1, 1, 3, 3]), zeros([1, 1, 5, 5]), null, { padding: 0 }), /conv2d: kernel 5x5.*larger than the padded input 3x3.*\[1, 1, 3, 3\].*\[1, 1, 5, 5\]/],
    ['conv2d 3-d input', () => conv2d(zeros([3, 8, 8]), zeros([4, 3, 3, 3])), /conv2d: input must be 4-d.*\[3, 8, 8\]/],
    ['conv2d bias', () => conv2d(zeros([1, 3, 8, 8]), zeros([4, 3, 3, 3]), zeros([3])), /conv2d: bias has shape \[3\], expected \[4\]/],
    ['conv2d groups', () => conv2d(zeros([1, 3, 8, 8]), zeros([4, 1, 3, 3]), null, { groups: 2 }), /conv2d: input \[1, 3, 8, 8\] has 3 channels, not divisible by groups=2/],
    ['convTranspose2d channel mismatch', () => convTranspose2d(zeros([1, 3, 4, 4]), zeros([2, 4, 3, 3])), /convTranspose2d: weight \[2, 4, 3, 3\] expects 2 input channels, input \[1, 3, 4, 4\] has 3/],
    ['maxPool2d kernel larger than input', () => maxPool2d(zeros([1, 1, 2, 2]), { kernelSize: 3 }), /maxPool2d: kernel 3x3 is larger than the padded input 2x2 \(input \[1, 1, 2, 2\]/],
    ['avgPool2d padding over half the kernel', () => avgPool2d(zeros([1, 1, 6, 6]), { kernelSize: 2, padding: 2 }), /avgPool2d: padding 2x2 must be at most half the kernel 2x2/],
    ['linear in-features mismatch', () => linear(zeros([2, 5]), zeros([3, 4])), /linear: input \[2, 5\] must end in 4 features for weight \[3, 4\]/],
    ['add shapes that do not broadcast', () => add(zeros([2, 3]), zeros([2, 4])), /add: shapes \[2, 3\] and \[2, 4\] do not broadcast/],
    ['concat mismatch', () => concat([zeros([1, 2, 3]), zeros([1, 2, 4])]), /concat: tensor 1 has shape \[1, 2, 4\], tensor 0 has \[1, 2, 3\]/],
    ['reshape size mismatch', () => reshape(zeros([2, 3]), [4, 2]), /reshape: cannot reshape \[2, 3\] \(6 values\) to \[4, 2\]/],
    ['crossEntropy label count', () => crossEntropy(zeros([4, 10]), [1, 2, 3]), /crossEntropy: 3 labels for logits \[4, 10\], expected 4/],
    ['mse shapes', () => mse(zeros([2, 3]), zeros([3, 2])), /mse: pred has shape \[2, 3\], target has shape \[3, 2\]/],
    ['batchNorm2d gamma', () => batchNorm2d(zeros([2, 3, 4, 4]), zeros([4]), null, { training: true }), /batchNorm2d: gamma has shape \[4\], expected \[3\] for input \[2, 3, 4, 4\]/],
    ['backward gradOut shape', () => relu(tensor([1, 2], [2], { requiresGrad: true })).backward(zeros([3])), /backward: gradOut has shape \[3\], output has shape \[2\]/],
    ['tensor data length', () => tensor([1, 2, 3], [2, 2]), /tensor: shape \[2, 2\] needs 4 values, got 3/],
  ];
  for (const [label, fn, message] of cases) {
    it(label, () => {
      let err: unknown;
      try {
        fn();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ShapeError);
      expect((err as Error).name).toBe('ShapeError');
      expect((err as Error).message).toMatch(message);
    });
  }

  it('bad option values are RangeErrors naming the op', () => {
    expect(() => conv2d(zeros([1, 1, 4, 4]), zeros([1, 1, 2, 2]), null, { stride: 0 })).toThrow(/conv2d: stride must be integers >= 1, got 0/);
    expect(() => maxPool2d(zeros([1, 1, 4, 4]), { kernelSize: 2, stride: [1, -1] })).toThrow(/maxPool2d: stride must be integers >= 1, got \[1,-1\]/);
    expect(() => dropout(zeros([2]), { p: 1.5 })).toThrow(/dropout: p must be in \[0, 1\], got 1.5/);
    expect(() => dropout(zeros([2]), { p: 0.5 })).toThrow(/dropout: an rng is required/);
    expect(() => crossEntropy(zeros([2, 3]), [0, 3])).toThrow(/crossEntropy: label 3 at index 1 is not a class in \[0, 3\)/);
    expect(() => convTranspose2d(zeros([1, 1, 2, 2]), zeros([1, 1, 2, 2]), null, { stride: 2, outputPadding: 2 })).toThrow(/convTranspose2d: outputPadding 2x2 must be smaller than stride 2x2/);
  });
});

describe('autograd semantics', () => {
  it('two backward passes accumulate into .grad like PyTorch', () => {
    const x = tensor([1, 2, 3], [3], { requiresGrad: true });
    sum(mul(x, x)).backward();
    sum(mul(x, x)).backward();
    expect(Array.from(x.grad!.data)).toEqual([4, 8, 12]);
  });

  it('a tensor used twice (diamond) gets the sum of both paths', () => {
    const x = tensor([2], [1], { requiresGrad: true });
    const h = relu(x);
    sum(add(scale(h, 3), mul(h, h))).backward();
    expect(x.grad!.data[0]).toBe(3 + 2 * 2);
  });

  it('Tensor.fromParam shares data and accumulates into param.grad in place', () => {
    const param: Param = { name: 'fc.weight', shape: [1, 2], data: Float32Array.from([1, -1]), grad: new Float32Array(2) };
    const w = Tensor.fromParam(param);
    expect(w.data).toBe(param.data);
    const x = tensor([3, 4], [1, 2]);
    linear(x, w).backward(tensor([1], [1, 1]));
    linear(x, w).backward(tensor([1], [1, 1]));
    expect(Array.from(param.grad)).toEqual([6, 8]);
    expect(w.grad!.data).toBe(param.grad);
    param.data[0] = 10; // the optimizer's update shows through
    expect(linear(x, w).item()).toBe(26);
  });

  it('tensor() copies its data; fromData() does not', () => {
    const src = Float32Array.from([1, 2]);
    expect(tensor(src, [2]).data).not.toBe(src);
    expect(fromData(src, [2]).data).toBe(src);
  });

  it('noGrad records no graph: outputs are leaves that do not require grad', () => {
    const x = tensor([1, -1], [1, 2], { requiresGrad: true });
    const w = tensor([1, 2, 3, 4], [2, 2], { requiresGrad: true });
    const y = noGrad(() => relu(linear(x, w)));
    expect(y.requiresGrad).toBe(false);
    expect(y.isLeaf).toBe(true);
    expect(y.parents).toHaveLength(0);
    expect(relu(linear(x, w)).requiresGrad).toBe(true);
  });

  it('ops on inputs that do not require grad record nothing', () => {
    const y = relu(conv2d(zeros([1, 1, 4, 4]), zeros([1, 1, 3, 3])));
    expect(y.requiresGrad).toBe(false);
    expect(y.isLeaf).toBe(true);
  });

  it('backward through a 20000-op chain needs no recursion', () => {
    const x = tensor([1], [1], { requiresGrad: true });
    let y = x;
    for (let i = 0; i < 20000; i++) y = scale(y, 1);
    y.backward();
    expect(x.grad!.data[0]).toBe(1);
  });

  it('backward without gradOut needs a one-element output', () => {
    expect(() => relu(tensor([1, 2], [2], { requiresGrad: true })).backward()).toThrow(/backward: gradOut is required for a non-scalar output of shape \[2\]/);
  });

  it('only inputs that require grad receive one', () => {
    const x = tensor([1, 2, 3, 4], [1, 1, 2, 2]);
    const w = tensor([1], [1, 1, 1, 1], { requiresGrad: true });
    sum(conv2d(x, w)).backward();
    expect(x.grad).toBeNull();
    expect(Array.from(w.grad!.data)).toEqual([10]);
  });
});

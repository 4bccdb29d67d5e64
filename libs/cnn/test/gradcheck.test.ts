// Central-difference gradient checks for every op. Each check projects the op's output onto a
// fixed random tensor r (loss = Σ out·r, summed in float64), back-propagates r, and compares
// every input's analytic gradient with (loss(x + ε) − loss(x − ε)) / 2ε on up to 40 entries.
import { describe, expect, it } from 'vitest';
import {
  type Tensor,
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
  sigmoid,
  softmax,
  sub,
  sum,
  tanh,
  tensor,
  upsampleNearest2d,
} from '../src/index.ts';

const EPS = 1e-2;
const TOL = 2e-3;
/** Gradients smaller than this are compared absolutely (relative error is meaningless near 0). */
const FLOOR = 0.1;
const MAX_CHECKED = 40;

type Rng = ReturnType<typeof createRng>;

/** Uniform values in [-1, 1). */
function rand(rng: Rng, shape: number[], requiresGrad = true): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(Array.from({ length: n }, () => rng.next() * 2 - 1), shape, { requiresGrad });
}

/** Values at least 0.05 apart and at least 0.05 from 0, so no kink (ReLU, max) lies within ε. */
function distinct(rng: Rng, shape: number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const vals = Array.from({ length: n }, (_, i) => (i - n / 2 + 0.5) * 0.1);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [vals[i], vals[j]] = [vals[j], vals[i]];
  }
  return tensor(vals, shape, { requiresGrad: true });
}

/** Max relative error |a − n| / max(FLOOR, |a|, |n|) over the checked entries of every input. */
function gradCheck(f: () => Tensor, inputs: Tensor[], seed = 1): number {
  const rng = createRng(seed);
  const out = f();
  const r = Float32Array.from({ length: out.numel }, () => rng.next() * 2 - 1);
  const loss = (): number => {
    const o = noGrad(f).data;
    let s = 0;
    for (let i = 0; i < o.length; i++) s += o[i] * r[i];
    return s;
  };
  for (const x of inputs) x.grad = null;
  out.backward(tensor(r, out.shape));
  let worst = 0;
  for (const x of inputs) {
    expect(x.grad, 'every checked input gets a gradient').not.toBeNull();
    const idx = Array.from({ length: x.numel }, (_, i) => i);
    const picked = idx.length <= MAX_CHECKED ? idx : Array.from({ length: MAX_CHECKED }, () => idx[rng.int(idx.length)]);
    for (const i of picked) {
      const v = x.data[i];
      x.data[i] = v + EPS;
      const up = loss();
      x.data[i] = v - EPS;
      const down = loss();
      x.data[i] = v;
      const numeric = (up - down) / (2 * EPS);
      const analytic = x.grad!.data[i];
      worst = Math.max(worst, Math.abs(analytic - numeric) / Math.max(FLOOR, Math.abs(analytic), Math.abs(numeric)));
    }
  }
  if (globalThis.process?.env.GRADCHECK_LOG) console.log('worst', worst);
  return worst;
}

describe('gradcheck conv2d', () => {
  const rng = createRng(11);
  for (const stride of [1, 2, 3])
    for (const padding of [0, 1, 2])
      for (const dilation of [1, 2])
        for (const groups of [1, 2])
          for (const cPerGroup of [1, 3])
            for (const [kh, kw] of [
              [3, 3],
              [2, 3],
            ]) {
              const cIn = cPerGroup * groups;
              const cOut = 2 * groups;
              it(`stride ${stride} padding ${padding} dilation ${dilation} groups ${groups} cIn ${cIn} kernel ${kh}x${kw} input 6x7`, () => {
                const x = rand(rng, [2, cIn, 6, 7]);
                const w = rand(rng, [cOut, cPerGroup, kh, kw]);
                const b = rand(rng, [cOut]);
                expect(gradCheck(() => conv2d(x, w, b, { stride, padding, dilation, groups }), [x, w, b])).toBeLessThan(TOL);
              });
            }
  it('non-square stride [1,2], padding [2,0], dilation [2,1], no bias', () => {
    const x = rand(rng, [1, 3, 7, 5]);
    const w = rand(rng, [2, 3, 3, 2]);
    expect(gradCheck(() => conv2d(x, w, null, { stride: [1, 2], padding: [2, 0], dilation: [2, 1] }), [x, w])).toBeLessThan(TOL);
  });
  it('1x1 pointwise, 3 -> 4 channels', () => {
    const x = rand(rng, [2, 3, 4, 5]);
    const w = rand(rng, [4, 3, 1, 1]);
    const b = rand(rng, [4]);
    expect(gradCheck(() => conv2d(x, w, b), [x, w, b])).toBeLessThan(TOL);
  });
});

describe('gradcheck convTranspose2d', () => {
  const rng = createRng(12);
  for (const stride of [1, 2, 3])
    for (const padding of [0, 1])
      for (const dilation of [1, 2])
        for (const groups of [1, 2])
          for (const outputPadding of stride > 1 ? [0, 1] : [0]) {
            it(`stride ${stride} padding ${padding} outputPadding ${outputPadding} dilation ${dilation} groups ${groups} kernel 3x2 input 4x5`, () => {
              const x = rand(rng, [2, 2 * groups, 4, 5]);
              const w = rand(rng, [2 * groups, 3, 3, 2]);
              const b = rand(rng, [3 * groups]);
              expect(gradCheck(() => convTranspose2d(x, w, b, { stride, padding, outputPadding, dilation, groups }), [x, w, b])).toBeLessThan(TOL);
            });
          }
});

describe('gradcheck pooling', () => {
  const rng = createRng(13);
  const pools = { maxPool2d, minPool2d, avgPool2d };
  for (const [kind, pool] of Object.entries(pools))
    for (const kernelSize of [2, 3, [2, 3]] as const)
      for (const stride of [1, 2, [2, 1]] as const)
        for (const padding of [0, 1]) {
          it(`${kind} kernel ${JSON.stringify(kernelSize)} stride ${JSON.stringify(stride)} padding ${padding} input 2x2x5x6`, () => {
            const x = distinct(rng, [2, 2, 5, 6]);
            expect(gradCheck(() => pool(x, { kernelSize, stride, padding }), [x])).toBeLessThan(TOL);
          });
        }
  it('globalAvgPool2d 2x3x4x5', () => {
    const x = rand(rng, [2, 3, 4, 5]);
    expect(gradCheck(() => globalAvgPool2d(x), [x])).toBeLessThan(TOL);
  });
  for (const scaleFactor of [1, 2, 3, [2, 3]] as const) {
    it(`upsampleNearest2d scale ${JSON.stringify(scaleFactor)}`, () => {
      const x = rand(rng, [2, 2, 3, 4]);
      expect(gradCheck(() => upsampleNearest2d(x, scaleFactor), [x])).toBeLessThan(TOL);
    });
  }
});

describe('gradcheck activations and arithmetic', () => {
  const rng = createRng(14);
  const shape = [2, 3, 4, 5];
  it('relu', () => {
    const x = distinct(rng, shape);
    expect(gradCheck(() => relu(x), [x])).toBeLessThan(TOL);
  });
  for (const slope of [0.01, 0.2]) {
    it(`leakyRelu slope ${slope}`, () => {
      const x = distinct(rng, shape);
      expect(gradCheck(() => leakyRelu(x, slope), [x])).toBeLessThan(TOL);
    });
  }
  it('sigmoid', () => {
    const x = rand(rng, shape);
    expect(gradCheck(() => sigmoid(scale(x, 4)), [x])).toBeLessThan(TOL);
  });
  it('tanh', () => {
    const x = rand(rng, shape);
    expect(gradCheck(() => tanh(scale(x, 2)), [x])).toBeLessThan(TOL);
  });
  const shapes: [string, number[], number[]][] = [
    ['same shape', [2, 3, 4], [2, 3, 4]],
    ['channel broadcast', [2, 3, 4, 5], [1, 3, 1, 1]],
    ['scalar broadcast', [2, 3], [1]],
    ['both broadcast', [2, 1, 4], [3, 1]],
  ];
  for (const [label, sa, sb] of shapes) {
    for (const [name, op] of Object.entries({ add, sub, mul })) {
      it(`${name} ${label} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`, () => {
        const a = rand(rng, sa);
        const b = rand(rng, sb);
        expect(gradCheck(() => op(a, b), [a, b])).toBeLessThan(TOL);
      });
    }
  }
  it('the same tensor on both sides: mul(x, x)', () => {
    const x = rand(rng, [3, 4]);
    expect(gradCheck(() => mul(x, x), [x])).toBeLessThan(TOL);
  });
  for (const p of [0.3, 0.5]) {
    it(`dropout p ${p} with a fixed mask (seeded rng per call)`, () => {
      const x = rand(rng, shape);
      expect(gradCheck(() => dropout(x, { p, rng: createRng(99) }), [x])).toBeLessThan(TOL);
    });
  }
});

describe('gradcheck shape ops and reductions', () => {
  const rng = createRng(15);
  it('reshape [2,3,4] -> [4,-1]', () => {
    const x = rand(rng, [2, 3, 4]);
    expect(gradCheck(() => mul(reshape(x, [4, -1]), reshape(x, [4, 6])), [x])).toBeLessThan(TOL);
  });
  it('flatten startDim 1', () => {
    const x = rand(rng, [2, 3, 2, 2]);
    expect(gradCheck(() => flatten(x), [x])).toBeLessThan(TOL);
  });
  for (const dim of [0, 1, 2, -1]) {
    it(`concat 3 tensors along dim ${dim}`, () => {
      const sizes = [1, 2, 3];
      const ts = sizes.map((s) => {
        const shape = [2, 2, 3];
        shape[dim < 0 ? 2 : dim] = s;
        return rand(rng, shape);
      });
      expect(gradCheck(() => concat(ts, dim), ts)).toBeLessThan(TOL);
    });
  }
  for (const dim of [undefined, 0, 1, -1]) {
    for (const keepdim of [false, true]) {
      it(`sum and mean dim ${dim} keepdim ${keepdim}`, () => {
        const x = rand(rng, [2, 3, 4]);
        expect(gradCheck(() => sum(x, dim, keepdim), [x])).toBeLessThan(TOL);
        expect(gradCheck(() => mean(x, dim, keepdim), [x])).toBeLessThan(TOL);
      });
    }
  }
  for (const [label, xs] of [
    ['2-d input', [5, 4]],
    ['3-d input', [2, 3, 4]],
  ] as const) {
    for (const bias of [true, false]) {
      it(`linear ${label} bias ${bias}`, () => {
        const x = rand(rng, [...xs]);
        const w = rand(rng, [3, 4]);
        const b = bias ? rand(rng, [3]) : null;
        expect(gradCheck(() => linear(x, w, b), b ? [x, w, b] : [x, w])).toBeLessThan(TOL);
      });
    }
  }
});

describe('gradcheck softmax, batchNorm2d and losses', () => {
  const rng = createRng(16);
  for (const dim of [0, 1, 2, -1]) {
    it(`softmax dim ${dim}`, () => {
      const x = rand(rng, [2, 3, 4]);
      expect(gradCheck(() => softmax(scale(x, 3), dim), [x])).toBeLessThan(TOL);
    });
    it(`logSoftmax dim ${dim}`, () => {
      const x = rand(rng, [2, 3, 4]);
      expect(gradCheck(() => logSoftmax(scale(x, 3), dim), [x])).toBeLessThan(TOL);
    });
  }
  for (const training of [true, false]) {
    for (const affine of [true, false]) {
      it(`batchNorm2d training ${training} affine ${affine}`, () => {
        const x = rand(rng, [3, 2, 3, 2]);
        const gamma = affine ? rand(rng, [2]) : null;
        const beta = affine ? rand(rng, [2]) : null;
        const runningVar = new Float32Array([0.5, 2]);
        const f = () => batchNorm2d(x, gamma, beta, { training, runningMean: new Float32Array([0.1, -0.2]), runningVar });
        expect(gradCheck(f, [x, ...(gamma && beta ? [gamma, beta] : [])])).toBeLessThan(TOL);
      });
    }
  }
  for (const reduction of ['mean', 'sum', 'none'] as const) {
    it(`crossEntropy [N,C] reduction ${reduction}`, () => {
      const x = rand(rng, [5, 4]);
      expect(gradCheck(() => crossEntropy(scale(x, 3), [0, 3, 1, 1, 2], { reduction }), [x])).toBeLessThan(TOL);
    });
    it(`crossEntropy [N,C,H,W] (segmentation) reduction ${reduction}`, () => {
      const x = rand(rng, [2, 3, 2, 2]);
      const labels = Int32Array.from([0, 1, 2, 2, 1, 0, 0, 1]);
      expect(gradCheck(() => crossEntropy(x, labels, { reduction }), [x])).toBeLessThan(TOL);
    });
    it(`mse reduction ${reduction}`, () => {
      const p = rand(rng, [3, 4]);
      const t = rand(rng, [3, 4]);
      expect(gradCheck(() => mse(p, t, { reduction }), [p, t])).toBeLessThan(TOL);
    });
    for (const posWeight of [undefined, 2, [0.5, 1, 3]]) {
      it(`binaryCrossEntropyWithLogits reduction ${reduction} posWeight ${JSON.stringify(posWeight)}`, () => {
        const x = rand(rng, [4, 3]);
        const t = tensor(Array.from({ length: 12 }, () => rng.next()), [4, 3], { requiresGrad: true });
        expect(gradCheck(() => binaryCrossEntropyWithLogits(scale(x, 4), t, { reduction, posWeight }), [x, t])).toBeLessThan(TOL);
      });
    }
  }
});

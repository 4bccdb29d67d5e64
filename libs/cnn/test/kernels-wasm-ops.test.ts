// The WebAssembly kernels behind leakyRelu, batchNorm2d and crossEntropy against the JS loops they
// replace: leaky ReLU bit for bit; batch norm to float32 rounding (its channel sums run in four
// lanes), bit-reproducibly, and bit for bit wherever no sum is involved; the softmax of the
// cross-entropy (its own exponential) to float32 rounding; batch norm + activation in one op bit for
// bit as the two ops, and whole zoo models built with it; spent gradient buffers reused safely.
import { describe, expect, it } from 'vitest';
import { add, batchNorm2d, batchNorm2dRelu, buildModel, concat, createRng, crossEntropy, fromData, getZooSpec, leakyRelu, mul, relu, reshape, segmentationLoss, sum, Tensor, type Model } from '../src/index.ts';
import { xentGradWasm } from '../src/kernels/wasm/softmax.ts';
import { crossEntropyGrad } from '../src/ops/loss.ts';
import { bits, maxRelDiff, onJs, restoreKernelsAfterEach } from './kernel-helpers.ts';

type Rng = ReturnType<typeof createRng>;

restoreKernelsAfterEach();

function randArray(rng: Rng, n: number, scale = 1, offset = 0): Float32Array {
  return Float32Array.from({ length: n }, () => (rng.next() * 2 - 1) * scale + offset);
}

describe('leakyRelu on the WebAssembly kernels: bit-identical to the JS loops', () => {
  const rng = createRng(41);
  const special = [NaN, -0, 0, Infinity, -Infinity, 1e-38, -1e-38, 3.4e38, -3.4e38];
  const tricky = (n: number): Float32Array => Float32Array.from({ length: n }, () => (rng.next() < 0.15 ? special[rng.int(special.length)] : (rng.next() * 2 - 1) * 8));

  for (const slope of [0.1, 0.01, 0.3333333]) {
    for (const n of [1, 3, 7, 16384 + 9, 40000]) {
      it(`slope ${slope}, ${n} elements: values and gradient`, () => {
        const x = new Tensor(tricky(n), [n], { requiresGrad: true });
        const g = tricky(n);
        const start = tricky(n);
        x.grad = new Tensor(start.slice(), [n]);
        const fast = leakyRelu(x, slope);
        fast.backward(fromData(g, [n]));
        const gFast = x.grad.data.slice();
        x.grad = new Tensor(start.slice(), [n]);
        const js = onJs(() => {
          const y = leakyRelu(x, slope);
          y.backward(fromData(g, [n]));
          return y;
        });
        expect(bits(fast.data)).toEqual(bits(js.data));
        expect(bits(gFast)).toEqual(bits(x.grad.data));
      });
    }
  }
});

describe('batchNorm2d on the WebAssembly kernels against the JS loops', () => {
  // Spatial sizes off multiples of 4 (tails), 1×1 planes, one sample, many channels.
  const shapes: [number, number, number, number][] = [
    [2, 3, 5, 5],
    [16, 64, 7, 7],
    [4, 8, 12, 12],
    [1, 5, 3, 1],
    [8, 6, 1, 1],
    [2, 4, 96, 96],
  ];
  for (const [n, c, h, w] of shapes) {
    for (const affine of [true, false]) {
      it(`[${n}, ${c}, ${h}, ${w}] ${affine ? 'with' : 'without'} gamma and beta, training: output, running statistics and gradients agree`, () => {
        const rng = createRng(n * 1000 + c * 10 + h);
        const size = n * c * h * w;
        // An offset and a scale per tensor, so the variance is not trivially 1.
        const xData = randArray(rng, size, 3, 0.7);
        const gy = randArray(rng, size);
        const run = (): { y: Float32Array; gx: Float32Array; gg: Float32Array | null; gb: Float32Array | null; rm: Float32Array; rv: Float32Array } => {
          const x = new Tensor(xData, [n, c, h, w], { requiresGrad: true });
          const gamma = affine ? new Tensor(Float32Array.from({ length: c }, (_, i) => 0.5 + i / c), [c], { requiresGrad: true }) : null;
          const beta = affine ? new Tensor(Float32Array.from({ length: c }, (_, i) => i / c - 0.25), [c], { requiresGrad: true }) : null;
          const rm = new Float32Array(c).fill(0.1);
          const rv = new Float32Array(c).fill(0.9);
          const y = batchNorm2d(x, gamma, beta, { training: true, runningMean: rm, runningVar: rv });
          y.backward(fromData(gy, y.shape));
          return { y: y.data, gx: x.grad!.data, gg: gamma?.grad?.data ?? null, gb: beta?.grad?.data ?? null, rm, rv };
        };
        const fast = run();
        const again = run();
        const js = onJs(run);
        const tol = 1e-5;
        expect(maxRelDiff(fast.y, js.y)).toBeLessThan(tol);
        expect(maxRelDiff(fast.gx, js.gx)).toBeLessThan(tol);
        expect(maxRelDiff(fast.rm, js.rm)).toBeLessThan(tol);
        expect(maxRelDiff(fast.rv, js.rv)).toBeLessThan(tol);
        if (affine) {
          expect(maxRelDiff(fast.gg!, js.gg!)).toBeLessThan(tol);
          expect(maxRelDiff(fast.gb!, js.gb!)).toBeLessThan(tol);
        }
        // The same inputs give the same bytes on every call.
        expect(bits(again.y)).toEqual(bits(fast.y));
        expect(bits(again.gx)).toEqual(bits(fast.gx));
        expect(bits(again.rv)).toEqual(bits(fast.rv));
      });
    }
  }

  it('eval mode (running statistics, no sums) gives the JS loops\' output bytes', () => {
    const rng = createRng(5);
    const [n, c, h, w] = [3, 7, 9, 5];
    const x = fromData(randArray(rng, n * c * h * w, 2), [n, c, h, w]);
    const gamma = fromData(randArray(rng, c), [c]);
    const beta = fromData(randArray(rng, c), [c]);
    const opts = { runningMean: randArray(rng, c, 0.5), runningVar: Float32Array.from(randArray(rng, c), (v) => 1 + Math.abs(v)) };
    const fast = batchNorm2d(x, gamma, beta, opts);
    const js = onJs(() => batchNorm2d(x, gamma, beta, opts));
    expect(bits(fast.data)).toEqual(bits(js.data));
  });

  it('the channel sums are the same in float64 lanes as element after element, to rounding', () => {
    // Values whose sum cancels: the mean is near 0 and relative errors are largest.
    const rng = createRng(9);
    const [n, c, h, w] = [4, 3, 10, 10];
    const data = Float32Array.from({ length: n * c * h * w }, (_, i) => (i % 2 === 0 ? 1e4 : -1e4) + rng.next());
    const x = fromData(data, [n, c, h, w]);
    const fast = batchNorm2d(x, null, null, { training: true });
    const js = onJs(() => batchNorm2d(x, null, null, { training: true }));
    expect(maxRelDiff(fast.data, js.data)).toBeLessThan(1e-4);
  });
});

describe('sums on the WebAssembly kernels (add, gradient accumulation, concat): bit-identical to the JS loops', () => {
  const special = [NaN, -0, 0, Infinity, -Infinity, 1e-38, -1e-45, 3.4e38, -3.4e38];
  const rng = createRng(77);
  const tricky = (n: number): Float32Array => Float32Array.from({ length: n }, () => (rng.next() < 0.05 ? special[rng.int(special.length)] : (rng.next() * 2 - 1) * 10 ** rng.int(6)));

  for (const n of [5, 1023, 1024, 4099, 40000]) {
    it(`add of ${n} elements: values, and both gradients accumulated onto existing ones`, () => {
      const a = new Tensor(tricky(n), [n], { requiresGrad: true });
      const b = new Tensor(tricky(n), [n], { requiresGrad: true });
      const g = tricky(n);
      const startA = tricky(n);
      const startB = tricky(n);
      const run = (): { y: Float32Array; ga: Float32Array; gb: Float32Array } => {
        a.grad = new Tensor(startA.slice(), [n]);
        b.grad = new Tensor(startB.slice(), [n]);
        // Onto existing gradients: a's is accumulated by the sum's backward, b's by takeGrad's fallback.
        const y = add(a, b);
        y.backward(fromData(g, [n]));
        return { y: y.data, ga: a.grad.data.slice(), gb: b.grad.data.slice() };
      };
      const fast = run();
      const js = onJs(run);
      expect(bits(fast.y)).toEqual(bits(js.y));
      expect(bits(fast.ga)).toEqual(bits(js.ga));
      expect(bits(fast.gb)).toEqual(bits(js.gb));
    });
  }

  it('concat along channels: each input gradient accumulated from its block of the output gradient', () => {
    const [n, h, w] = [2, 20, 24];
    const parts = [3, 5, 1].map((c) => new Tensor(tricky(n * c * h * w), [n, c, h, w], { requiresGrad: true }));
    const g = tricky(n * 9 * h * w);
    const starts = parts.map((p) => tricky(p.numel));
    const run = (): Float32Array[] => {
      parts.forEach((p, i) => (p.grad = new Tensor(starts[i].slice(), p.shape)));
      concat(parts, 1).backward(fromData(g, [n, 9, h, w]));
      return parts.map((p) => p.grad!.data.slice());
    };
    const fast = run();
    const js = onJs(run);
    fast.forEach((f, i) => expect(bits(f)).toEqual(bits(js[i])));
  });
});

describe('the cross-entropy logit gradient on the WebAssembly kernels: bit-identical to the JS loop', () => {
  const special = [NaN, -0, 0, Infinity, -Infinity, 1e-38, 3.4e38, -3.4e38];
  for (const [n, c, inner] of [
    [1, 2, 4],
    [2, 11, 96 * 96],
    [3, 5, 12],
    [1, 3, 36],
  ] as const) {
    it(`[${n}, ${c}, ${inner}]: gz += w·(prob − onehot), special values included`, () => {
      const rng = createRng(n * 1000 + c * 10 + inner);
      const size = n * c * inner;
      const rows = n * inner;
      const pick = (scale: number): number => (rng.next() < 0.02 ? special[rng.int(special.length)] : rng.next() * scale);
      const prob = Float32Array.from({ length: size }, () => pick(1));
      const start = Float32Array.from({ length: size }, () => pick(4) - 2);
      const w = Float64Array.from({ length: rows }, () => (rng.next() < 0.01 ? special[rng.int(special.length)] : rng.next() * 3 - 1));
      const labels = Int32Array.from({ length: rows }, () => rng.int(c + 1) - (rng.next() < 0.01 ? 1 : 0)); // a few out of range: no class matches
      const fast = start.slice();
      expect(xentGradWasm(fast, prob, w, labels, n, c, inner)).toBe(true);
      const js = start.slice();
      crossEntropyGrad(js, prob, w, labels, n, c, inner);
      expect(bits(fast)).toEqual(bits(js));
    });
  }

  it('declines positions per sample that are not a multiple of 4 (the JS loop runs), leaving the gradient alone', () => {
    const gz = new Float32Array(2 * 3 * 6).fill(1);
    expect(xentGradWasm(gz, new Float32Array(36), new Float64Array(12), new Int32Array(12), 2, 3, 6)).toBe(false);
    expect(Array.from(new Set(gz))).toEqual([1]);
  });
});

describe('crossEntropy over positions (segmentation) on the WebAssembly softmax against the JS loop', () => {
  const cases: [string, number, number, number, number][] = [
    ['small logits', 2, 11, 6, 8],
    ['large logits', 3, 4, 5, 6],
    ['one class dominating', 1, 3, 2, 2],
  ];
  for (const [title, n, c, h, w] of cases) {
    for (const reduction of ['sum', 'mean', 'none'] as const) {
      it(`${title}: [${n}, ${c}, ${h}, ${w}], reduction ${reduction}: losses and gradients agree, bit-reproducibly`, () => {
        const rng = createRng(c * 100 + h);
        const scale = title === 'large logits' ? 300 : title === 'one class dominating' ? 40 : 3;
        const z = Float32Array.from({ length: n * c * h * w }, () => (rng.next() * 2 - 1) * scale);
        const labels = Uint8Array.from({ length: n * h * w }, () => rng.int(c));
        const run = (): { loss: Float32Array; grad: Float32Array } => {
          const x = new Tensor(z, [n, c, h, w], { requiresGrad: true });
          const loss = crossEntropy(x, labels, { reduction });
          loss.backward(fromData(Float32Array.from({ length: loss.numel }, (_, i) => 1 + i / loss.numel), loss.shape));
          return { loss: loss.data, grad: x.grad!.data };
        };
        const fast = run();
        const again = run();
        const js = onJs(run);
        expect(maxRelDiff(fast.loss, js.loss)).toBeLessThan(1e-6);
        expect(maxRelDiff(fast.grad, js.grad)).toBeLessThan(1e-6);
        expect(bits(again.loss)).toEqual(bits(fast.loss));
        expect(bits(again.grad)).toEqual(bits(fast.grad));
        for (const v of fast.grad) expect(Number.isFinite(v)).toBe(true);
      });
    }
  }

  it('NaN and infinite logits give NaN where the JS loop gives NaN', () => {
    const [n, c, h, w] = [1, 3, 1, 4];
    // Position 0: a NaN logit; 1: +Infinity; 2: all −Infinity; 3: ordinary.
    const z = Float32Array.from([NaN, Infinity, -Infinity, 1, 0, 0, -Infinity, 2, 0, 0, -Infinity, 3]);
    const labels = [0, 1, 0, 2];
    const fast = crossEntropy(fromData(z, [n, c, h, w]), labels, { reduction: 'none' }).data;
    const js = onJs(() => crossEntropy(fromData(z, [n, c, h, w]), labels, { reduction: 'none' }).data);
    expect(Array.from(fast, Number.isNaN)).toEqual(Array.from(js, Number.isNaN));
    expect(fast[3]).toBeCloseTo(js[3], 6);
  });

  it('segmentationLoss of a 96x96 prediction matches the JS loop to rounding', () => {
    const rng = createRng(77);
    const [n, c, h, w] = [2, 11, 96, 96];
    const x = new Tensor(Float32Array.from({ length: n * c * h * w }, () => rng.next() * 8 - 4), [n, c, h, w], { requiresGrad: true });
    const masks = Uint8Array.from({ length: n * h * w }, () => rng.int(c));
    const fast = segmentationLoss(x, masks, { reduction: 'sum' });
    fast.backward();
    const gFast = x.grad!.data.slice();
    x.grad = null;
    const js = onJs(() => {
      const l = segmentationLoss(x, masks, { reduction: 'sum' });
      l.backward();
      return l;
    });
    expect(maxRelDiff(fast.data, js.data)).toBeLessThan(1e-6);
    expect(maxRelDiff(gFast, x.grad!.data)).toBeLessThan(1e-6);
  });
});

describe('batchNorm2dRelu: the bytes of batchNorm2d followed by relu / leakyRelu', () => {
  for (const slope of [0, 0.1]) {
    for (const [n, c, h, w] of [
      [2, 3, 5, 7],
      [4, 16, 12, 12],
      [1, 2, 1, 3],
    ]) {
      it(`slope ${slope}, [${n}, ${c}, ${h}, ${w}]: output, running statistics, input and parameter gradients`, () => {
        const rng = createRng(n + c + h + w);
        const xData = randArray(rng, n * c * h * w, 2, 0.3);
        const gy = randArray(rng, n * c * h * w);
        const gammaData = randArray(rng, c, 1, 0.2);
        const betaData = randArray(rng, c, 0.5);
        const run = (fused: boolean): Float32Array[] => {
          const x = new Tensor(xData, [n, c, h, w], { requiresGrad: true });
          const gamma = new Tensor(gammaData, [c], { requiresGrad: true });
          const beta = new Tensor(betaData, [c], { requiresGrad: true });
          const opts = { training: true, runningMean: new Float32Array(c), runningVar: new Float32Array(c).fill(1) };
          const y = fused ? batchNorm2dRelu(x, gamma, beta, opts, slope) : slope === 0 ? relu(batchNorm2d(x, gamma, beta, opts)) : leakyRelu(batchNorm2d(x, gamma, beta, opts), slope);
          y.backward(fromData(gy, y.shape));
          return [y.data, opts.runningMean, opts.runningVar, x.grad!.data, gamma.grad!.data, beta.grad!.data];
        };
        const fused = run(true);
        const separate = run(false);
        fused.forEach((a, i) => expect(bits(a)).toEqual(bits(separate[i])));
        // On the JS kernels the op runs as the two ops.
        const js = onJs(() => run(true));
        fused.forEach((a, i) => expect(maxRelDiff(a, js[i])).toBeLessThan(1e-5));
      });
    }
  }

  it('a backward pass on the JS loops (kernels disabled after the forward) gives the gradients to rounding', () => {
    const rng = createRng(8);
    const [n, c, h, w] = [3, 4, 6, 5];
    const xData = randArray(rng, n * c * h * w, 2);
    const gy = randArray(rng, n * c * h * w);
    const grads = (jsBackward: boolean): Float32Array[] => {
      const x = new Tensor(xData, [n, c, h, w], { requiresGrad: true });
      const gamma = new Tensor(new Float32Array(c).fill(1.5), [c], { requiresGrad: true });
      const y = batchNorm2dRelu(x, gamma, null, { training: true }, 0.1);
      if (jsBackward) onJs(() => y.backward(fromData(gy, y.shape)));
      else y.backward(fromData(gy, y.shape));
      return [x.grad!.data, gamma.grad!.data];
    };
    const fast = grads(false);
    const js = grads(true);
    fast.forEach((a, i) => expect(maxRelDiff(a, js[i])).toBeLessThan(1e-5));
  });

  it('rejects a negative slope, naming it', () => {
    const x = fromData(new Float32Array(8), [2, 1, 2, 2]);
    expect(() => batchNorm2dRelu(x, null, null, { training: true }, -0.1)).toThrow(/slope must be a finite number >= 0, got -0.1/);
  });

  for (const [name, options, batch] of [
    ['resnet8', { baseChannels: 4 }, 4],
    ['yolo', { baseChannels: 4, height: 32, width: 32 }, 2],
    ['unet', { baseChannels: 2, height: 16, width: 16, numClasses: 3 }, 2],
  ] as const) {
    it(`${name}: a training step gives the gradient bytes of the unfused graph (every activation kept)`, () => {
      const model: Model = buildModel(getZooSpec(name, options), { seed: 3 });
      const [c, h, w] = model.inputShape;
      const rng = createRng(11);
      const x = fromData(randArray(rng, batch * c * h * w), [batch, c, h, w]);
      const step = (fused: boolean): Float32Array[] => {
        model.zeroGrad();
        for (const b of model.buffers) b.data.fill(b.name.endsWith('running_var') ? 1 : 0);
        // forwardWithActivations keeps every node's output: no fused chains.
        const out = fused ? model.forward(x, { training: true }) : model.forwardWithActivations(x, { training: true }).output;
        out.backward(fromData(Float32Array.from({ length: out.numel }, (_, i) => Math.sin(i)), out.shape));
        return [out.data, ...model.params.map((p) => p.grad.slice()), ...model.buffers.map((b) => b.data.slice())];
      };
      const fused = step(true);
      const separate = step(false);
      expect(fused.length).toBe(separate.length);
      fused.forEach((a, i) => expect(bits(a)).toEqual(bits(separate[i])));
    });
  }
});

describe('gradient buffers reused across backward passes', () => {
  // A graph where gradients are handed on without copies (reshape, the second operand of add) and
  // tensors of equal size alternate, so reused buffers would show any sharing or stale values.
  const grads = (xData: Float32Array, wData: Float32Array): Float32Array[] => {
    const x = new Tensor(xData, [4, 6], { requiresGrad: true });
    const w = new Tensor(wData, [4, 6], { requiresGrad: true });
    const a = relu(mul(x, w));
    const b = reshape(add(a, mul(a, x)), [6, 4]);
    const c = concat([b, reshape(add(x, a), [6, 4])], 1);
    sum(mul(c, c)).backward();
    return [x.grad!.data, w.grad!.data];
  };
  it('give the same gradients on every pass, interleaved with other graphs', () => {
    const rng = createRng(21);
    const xs = [randArray(rng, 24), randArray(rng, 24)];
    const ws = [randArray(rng, 24), randArray(rng, 24)];
    const first = [grads(xs[0], ws[0]), grads(xs[1], ws[1])];
    for (let pass = 0; pass < 4; pass++) {
      const i = pass % 2;
      const again = grads(xs[i], ws[i]);
      again.forEach((g, j) => expect(bits(g)).toEqual(bits(first[i][j])));
    }
  });
});

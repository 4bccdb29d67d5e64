// The fused conv2d → ReLU (→ 2×2 max pooling) op against the separate ops it replaces: the same
// output and gradient bytes on the WebAssembly kernels (where it runs fused) and on the JS
// kernels (where it runs the separate ops), and the model builder's use of it.
import { describe, expect, it } from 'vitest';
import { buildModel, conv2d, conv2dRelu, createRng, crossEntropy, fromData, getZooSpec, maxPool2d, relu, setWasmKernelsEnabled, type Tensor } from '../src/index.ts';

type Rng = ReturnType<typeof createRng>;

function leaf(rng: Rng, shape: number[], requiresGrad = true): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return fromData(
    Float32Array.from({ length: n }, () => rng.next() * 2 - 1),
    shape,
    { requiresGrad },
  );
}

function bits(a: Float32Array): number[] {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
}

interface Case {
  title: string;
  x: number[];
  w: number[];
  padding: number;
  pool: boolean;
  bias: boolean;
  inputGrad: boolean;
}

const CASES: Case[] = [
  { title: 'LeNet conv1 (1→6, 28x28, pad 2) + pool', x: [3, 1, 28, 28], w: [6, 1, 5, 5], padding: 2, pool: true, bias: true, inputGrad: false },
  { title: 'LeNet conv2 (6→16, 14x14) + pool, input gradient', x: [2, 6, 14, 14], w: [16, 6, 5, 5], padding: 0, pool: true, bias: true, inputGrad: true },
  { title: 'odd output 11x11 (last row and column not pooled)', x: [2, 3, 13, 13], w: [5, 3, 3, 3], padding: 0, pool: true, bias: true, inputGrad: true },
  { title: 'no pooling, no bias', x: [2, 4, 9, 9], w: [7, 4, 3, 3], padding: 1, pool: false, bias: false, inputGrad: true },
  { title: 'pooled rows too short for the fused kernel (falls back)', x: [2, 2, 6, 6], w: [3, 2, 3, 3], padding: 0, pool: true, bias: true, inputGrad: true },
];

/** Output and every gradient of the fused op (or of the three separate ops). */
function run(c: Case, fused: boolean): number[][] {
  const rng = createRng(7);
  const x = leaf(rng, c.x, c.inputGrad);
  const w = leaf(rng, c.w);
  const b = c.bias ? leaf(rng, [c.w[0]]) : null;
  const y = fused ? conv2dRelu(x, w, b, { padding: c.padding }, c.pool) : c.pool ? maxPool2d(relu(conv2d(x, w, b, { padding: c.padding })), { kernelSize: 2 }) : relu(conv2d(x, w, b, { padding: c.padding }));
  // A gradient with negative values, zeros and -0 for the output.
  const g = fromData(Float32Array.from({ length: y.numel }, (_, i) => (i % 7 === 0 ? 0 : i % 11 === 0 ? -0 : Math.sin(i))), y.shape);
  y.backward(g);
  const out = [bits(y.data), bits(w.grad!.data)];
  if (b) out.push(bits(b.grad!.data));
  if (c.inputGrad) out.push(bits(x.grad!.data));
  return out;
}

describe('conv2dRelu: bit-identical to maxPool2d(relu(conv2d(...)))', () => {
  for (const c of CASES) {
    it(`${c.title}, WebAssembly kernels`, () => {
      expect(run(c, true)).toEqual(run(c, false));
    });
    it(`${c.title}, JS kernels`, () => {
      setWasmKernelsEnabled(false);
      try {
        expect(run(c, true)).toEqual(run(c, false));
      } finally {
        setWasmKernelsEnabled(true);
      }
    });
  }

  it('names itself in shape errors', () => {
    const rng = createRng(1);
    expect(() => conv2dRelu(leaf(rng, [1, 3, 8, 8]), leaf(rng, [4, 2, 3, 3]))).toThrow(/conv2dRelu: weight \[4, 2, 3, 3\] expects 2 input channels/);
  });
});

describe('the model builder fuses conv → ReLU → 2x2 max pool chains', () => {
  it('LeNet-5 forward (fused) and forwardWithActivations (every node) give the same output and gradient bytes', () => {
    const model = buildModel(getZooSpec('lenet5'), { seed: 3 });
    const rng = createRng(5);
    const n = 5;
    const x = Float32Array.from({ length: n * 784 }, () => rng.next() * 3 - 1);
    const labels = Uint8Array.from({ length: n }, (_, i) => (i * 3) % 10);
    const step = (all: boolean): number[][] => {
      model.zeroGrad();
      const input = fromData(x, [n, 1, 28, 28]);
      const logits = all ? model.forwardWithActivations(input, { training: true }).output : model.forward(input, { training: true });
      crossEntropy(logits, labels, { reduction: 'sum' }).backward();
      return [bits(logits.data), ...model.params.map((p) => bits(p.grad))];
    };
    expect(step(false)).toEqual(step(true));
  });

  it('keeps every node output in forwardWithActivations', () => {
    const model = buildModel(getZooSpec('lenet5'), { seed: 3 });
    const { activations } = model.forwardWithActivations(fromData(new Float32Array(784), [1, 1, 28, 28]));
    expect([...activations.keys()]).toEqual(model.nodes.map((nd) => nd.name));
  });

  it('does not fuse a convolution whose output has another reader', () => {
    const model = buildModel({
      input: [2, 8, 8],
      layers: [
        { type: 'conv2d', name: 'c', outChannels: 3, kernelSize: 3, padding: 1 },
        { type: 'relu', name: 'r' },
        { type: 'add', name: 'sum', inputs: ['c', 'r'] },
      ],
    });
    const rng = createRng(2);
    const x = fromData(Float32Array.from({ length: 2 * 64 }, () => rng.next() - 0.5), [1, 2, 8, 8]);
    const a = model.forward(x);
    const b = model.forwardWithActivations(x).output;
    expect(bits(a.data)).toEqual(bits(b.data));
    expect(a.data.some((v) => v < 0)).toBe(true);
  });
});

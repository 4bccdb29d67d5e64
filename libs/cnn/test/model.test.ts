import { describe, expect, it } from 'vitest';
import {
  buildModel,
  copyParams,
  createRng,
  crossEntropy,
  getZooSpec,
  loadNamedArrays,
  noGrad,
  ParamLoadError,
  paramsToBytes,
  ShapeError,
  tensor,
} from '../src/index.ts';
import type { Model, ModelSpec, Tensor } from '../src/index.ts';

function randomInput(shape: number[], seed: number): Tensor {
  const rng = createRng(seed);
  let n = 1;
  for (const d of shape) n *= d;
  return tensor(Array.from({ length: n }, () => rng.normal()), shape);
}

/** Byte equality without vitest's slow element-wise diff of large typed arrays. */
const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((v, i) => v === b[i]);

const param = (m: Model, name: string) => {
  const p = [...m.params, ...m.buffers].find((q) => q.name === name);
  if (p === undefined) throw new Error(`no parameter ${name}`);
  return p;
};

describe('LeNet-5 from the zoo', () => {
  const model = buildModel(getZooSpec('lenet5'));

  it('infers every node shape at build time', () => {
    expect(model.inputShape).toEqual([1, 28, 28]);
    expect(model.outputShape).toEqual([10]);
    expect(model.nodes.map((n) => [n.name, n.type, n.outputShape])).toEqual([
      ['conv1', 'conv2d', [6, 28, 28]],
      ['relu1', 'relu', [6, 28, 28]],
      ['pool1', 'maxPool2d', [6, 14, 14]],
      ['conv2', 'conv2d', [16, 10, 10]],
      ['relu2', 'relu', [16, 10, 10]],
      ['pool2', 'maxPool2d', [16, 5, 5]],
      ['flatten1', 'flatten', [400]],
      ['fc1', 'linear', [120]],
      ['relu3', 'relu', [120]],
      ['fc2', 'linear', [84]],
      ['relu4', 'relu', [84]],
      ['fc3', 'linear', [10]],
    ]);
    expect(model.nodes[3].inputs).toEqual(['pool1']);
    expect(model.nodes[0].inputs).toEqual(['input']);
  });

  it('has 61 706 parameters named like the PyTorch state_dict', () => {
    expect(model.paramCount()).toBe(61_706);
    expect(model.params.map((p) => `${p.name} [${p.shape.join(',')}]`)).toEqual([
      'conv1.weight [6,1,5,5]',
      'conv1.bias [6]',
      'conv2.weight [16,6,5,5]',
      'conv2.bias [16]',
      'fc1.weight [120,400]',
      'fc1.bias [120]',
      'fc2.weight [84,120]',
      'fc2.bias [84]',
      'fc3.weight [10,84]',
      'fc3.bias [10]',
    ]);
    expect(model.buffers).toEqual([]);
    expect(model.nodes.find((n) => n.name === 'fc1')!.params).toEqual(['fc1.weight', 'fc1.bias']);
  });

  it('runs forward on [N, 1, 28, 28] to [N, 10]', () => {
    const y = model.forward(randomInput([3, 1, 28, 28], 1));
    expect(y.shape).toEqual([3, 10]);
    expect(Array.from(y.data).every(Number.isFinite)).toBe(true);
  });

  it('prints a summary table with every node and the total', () => {
    const s = model.summary();
    for (const n of model.nodes) expect(s).toContain(n.name);
    expect(s).toMatch(/fc1\s+linear\s+flatten1\s+\[120\]\s+48,120/);
    expect(s).toContain('total params: 61,706 trainable');
  });

  it('rejects an input of the wrong shape', () => {
    expect(() => model.forward(randomInput([2, 3, 28, 28], 1))).toThrow(ShapeError);
    expect(() => model.forward(randomInput([2, 3, 28, 28], 1))).toThrow('lenet5.forward: input [2, 3, 28, 28] does not match [N, 1, 28, 28]');
  });
});

describe('initialisation', () => {
  const lenet = getZooSpec('lenet5');

  it('is deterministic: same seed → identical bytes, different seed → different', () => {
    const a = paramsToBytes(buildModel(lenet, { seed: 7 }).params);
    expect(sameBytes(paramsToBytes(buildModel(lenet, { seed: 7 }).params), a)).toBe(true);
    expect(sameBytes(paramsToBytes(buildModel(lenet, { seed: 8 }).params), a)).toBe(false);
  });

  it('gives each parameter its own stream: appending a layer leaves the others unchanged', () => {
    const base = buildModel(lenet, { seed: 3 });
    const longer = buildModel({ ...lenet, layers: [...lenet.layers, { type: 'linear', outFeatures: 5 }] }, { seed: 3 });
    expect(sameBytes(paramsToBytes(longer.params.slice(0, base.params.length)), paramsToBytes(base.params))).toBe(true);
  });

  const std = (d: Float32Array): number => Math.sqrt(d.reduce((s, v) => s + v * v, 0) / d.length);
  const expectWithin = (actual: number, expected: number, rel: number): void => {
    expect(Math.abs(actual - expected), `${actual} vs ${expected}`).toBeLessThanOrEqual(rel * expected);
  };
  const maxAbs = (d: Float32Array): number => d.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

  it('uses He normal before ReLU (through pooling and batch norm) and Xavier uniform elsewhere', () => {
    const m = buildModel({
      init: 'he-xavier',
      input: [16, 16, 16],
      layers: [
        { type: 'conv2d', outChannels: 64, kernelSize: 3, padding: 1 }, // → bn → pool → relu: He
        { type: 'batchNorm2d' },
        { type: 'maxPool2d', kernelSize: 2 },
        { type: 'relu' },
        { type: 'conv2d', outChannels: 32, kernelSize: 3, padding: 1 }, // → sigmoid: Xavier
        { type: 'sigmoid' },
        { type: 'conv2d', outChannels: 256, kernelSize: 1 }, // → leakyRelu(0.2): He with its gain
        { type: 'leakyRelu', negativeSlope: 0.2 },
        { type: 'flatten' },
        { type: 'linear', outFeatures: 10 }, // last layer: Xavier
      ],
    });
    const heStd = (fanIn: number, gain = Math.SQRT2): number => gain / Math.sqrt(fanIn);
    expectWithin(std(param(m, 'conv1.weight').data), heStd(16 * 9), 0.05);
    const xavier2 = Math.sqrt(6 / (64 * 9 + 32 * 9));
    expect(maxAbs(param(m, 'conv2.weight').data)).toBeLessThanOrEqual(xavier2);
    expectWithin(std(param(m, 'conv2.weight').data), xavier2 / Math.sqrt(3), 0.05);
    expectWithin(std(param(m, 'conv3.weight').data), heStd(32, Math.sqrt(2 / 1.04)), 0.05);
    const xavierFc = Math.sqrt(6 / (256 * 8 * 8 + 10));
    expect(maxAbs(param(m, 'fc1.weight').data)).toBeLessThanOrEqual(xavierFc);
    expectWithin(std(param(m, 'fc1.weight').data), xavierFc / Math.sqrt(3), 0.05);
    for (const name of ['conv1.bias', 'conv2.bias', 'conv3.bias', 'fc1.bias', 'bn1.bias', 'bn1.running_mean']) {
      expect(maxAbs(param(m, name).data), name).toBe(0);
    }
    expect(Array.from(param(m, 'bn1.weight').data).every((v) => v === 1)).toBe(true);
    expect(Array.from(param(m, 'bn1.running_var').data).every((v) => v === 1)).toBe(true);
    expect(m.params.map((p) => p.name)).toEqual(['conv1.weight', 'conv1.bias', 'bn1.weight', 'bn1.bias', 'conv2.weight', 'conv2.bias', 'conv3.weight', 'conv3.bias', 'fc1.weight', 'fc1.bias']);
    expect(m.buffers.map((p) => p.name)).toEqual(['bn1.running_mean', 'bn1.running_var']);
    expect(m.buffers.every((b) => b.grad.length === b.data.length && b.grad.every((v) => v === 0))).toBe(true);
  });
});

/** A small graph with every kind of plumbing: batch norm, a residual add, a concat branch, both poolings. */
const graphSpec: ModelSpec = {
  name: 'graph',
  input: [2, 6, 6],
  layers: [
    { type: 'conv2d', outChannels: 3, kernelSize: 3, padding: 1 },
    { type: 'batchNorm2d' },
    { type: 'tanh', name: 't1' },
    { type: 'conv2d', outChannels: 3, kernelSize: 3, padding: 1 },
    { type: 'add', name: 'res', inputs: ['conv2', 't1'] },
    { type: 'conv2d', name: 'side', outChannels: 2, kernelSize: 1, inputs: ['input'] },
    { type: 'concat', inputs: ['res', 'side'] },
    { type: 'sigmoid' },
    { type: 'avgPool2d', kernelSize: 2 },
    { type: 'maxPool2d', kernelSize: 2, stride: 1 },
    { type: 'flatten' },
    { type: 'linear', outFeatures: 4 },
  ],
};

describe('graphs with skip connections and concatenation', () => {
  it('infers shapes through add and concat', () => {
    const m = buildModel(graphSpec);
    const shapes = Object.fromEntries(m.nodes.map((n) => [n.name, n.outputShape]));
    expect(shapes).toMatchObject({ res: [3, 6, 6], side: [2, 6, 6], concat1: [5, 6, 6], pool1: [5, 3, 3], pool2: [5, 2, 2], flatten1: [20], fc1: [4] });
    expect(m.nodes.find((n) => n.name === 'concat1')!.inputs).toEqual(['res', 'side']);
  });

  it('computes x + relu(x) and [x, sigmoid(x)] exactly', () => {
    const x = tensor([-2, -1, 0.5, 3], [1, 1, 2, 2]);
    const res = buildModel({ input: [1, 2, 2], layers: [{ type: 'relu', name: 'r' }, { type: 'add', inputs: ['input', 'r'] }] });
    expect(Array.from(res.forward(x).data)).toEqual([-2, -1, 1, 6]);
    const cat = buildModel({ input: [1, 2, 2], layers: [{ type: 'relu', name: 'r' }, { type: 'concat', inputs: ['input', 'r'] }] });
    const y = cat.forward(x);
    expect(y.shape).toEqual([1, 2, 2, 2]);
    expect(Array.from(y.data)).toEqual([-2, -1, 0.5, 3, 0, 0, 0.5, 3]);
  });

  it('returns every node from forwardWithActivations, with the output among them', () => {
    const m = buildModel(graphSpec, { seed: 1 });
    const x = randomInput([2, 2, 6, 6], 5);
    const { output, activations } = m.forwardWithActivations(x);
    expect([...activations.keys()]).toEqual(m.nodes.map((n) => n.name));
    for (const n of m.nodes) expect(activations.get(n.name)!.shape, n.name).toEqual([2, ...n.outputShape]);
    expect(activations.get('fc1')).toBe(output);
    expect(Array.from(output.data)).toEqual(Array.from(m.forward(x).data));
  });

  it('honours an explicit output node: forward stops there, forwardWithActivations computes everything', () => {
    const m = buildModel({
      input: [1, 2, 2],
      layers: [{ type: 'relu', name: 'a' }, { type: 'add', inputs: ['a', 'input'], name: 'sum' }, { type: 'flatten' }, { type: 'linear', outFeatures: 3 }],
      output: 'sum',
    });
    expect(m.outputShape).toEqual([1, 2, 2]);
    const x = tensor([-1, 2, -3, 4], [1, 1, 2, 2]);
    expect(Array.from(m.forward(x).data)).toEqual([-1, 4, -3, 8]);
    const { output, activations } = m.forwardWithActivations(x);
    expect(Array.from(output.data)).toEqual([-1, 4, -3, 8]);
    expect(activations.get('fc1')!.shape).toEqual([1, 3]);
  });
});

describe('forward and backward', () => {
  const labels = [0, 3, 1];

  function loss(m: Model, x: Tensor): Tensor {
    return crossEntropy(m.forward(x, { training: true }), labels, { reduction: 'sum' });
  }

  it('accumulates gradients into Param.grad equal to central differences', () => {
    const m = buildModel(graphSpec, { seed: 11 });
    const x = randomInput([3, 2, 6, 6], 12);
    m.zeroGrad();
    loss(m, x).backward();
    const h = 3e-3;
    const checked: string[] = [];
    for (const name of ['conv1.weight', 'conv1.bias', 'bn1.weight', 'bn1.bias', 'conv2.weight', 'side.weight', 'side.bias', 'fc1.weight', 'fc1.bias']) {
      const p = param(m, name);
      // The entry with the largest gradient plus two fixed ones.
      let top = 0;
      for (let i = 1; i < p.grad.length; i++) if (Math.abs(p.grad[i]) > Math.abs(p.grad[top])) top = i;
      for (const i of new Set([top, 0, p.data.length - 1])) {
        const saved = p.data[i];
        p.data[i] = saved + h;
        const plus = noGrad(() => loss(m, x).item());
        p.data[i] = saved - h;
        const minus = noGrad(() => loss(m, x).item());
        p.data[i] = saved;
        const numeric = (plus - minus) / (2 * h);
        const analytic = p.grad[i];
        expect(Math.abs(numeric - analytic), `${name}[${i}]: analytic ${analytic}, numeric ${numeric}`).toBeLessThanOrEqual(2e-3 + 2e-2 * Math.abs(analytic));
        checked.push(`${name}[${i}]`);
      }
    }
    expect(checked.length).toBeGreaterThan(15);
    expect(param(m, 'side.weight').grad.some((v) => v !== 0)).toBe(true); // the concat branch receives gradient
  });

  it('keeps no graph state between calls: passes are independent, gradients accumulate until zeroGrad', () => {
    const m = buildModel(graphSpec, { seed: 2 });
    const x = randomInput([3, 2, 6, 6], 3);
    m.zeroGrad();
    loss(m, x).backward();
    const once = m.params.map((p) => Float32Array.from(p.grad));
    loss(m, x).backward();
    m.params.forEach((p, i) => p.grad.forEach((v, j) => expect(Math.abs(v - 2 * once[i][j])).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(v)))));
    m.zeroGrad();
    expect(m.params.every((p) => p.grad.every((v) => v === 0))).toBe(true);
    loss(m, x).backward();
    m.params.forEach((p, i) => expect(Array.from(p.grad), p.name).toEqual(Array.from(once[i])));
  });

  it('updates batch-norm running statistics only when training', () => {
    const m = buildModel(graphSpec);
    const x = randomInput([3, 2, 6, 6], 4);
    m.forward(x);
    expect(Array.from(param(m, 'bn1.running_var').data)).toEqual([1, 1, 1]);
    m.forward(x, { training: true });
    expect(Array.from(param(m, 'bn1.running_mean').data).some((v) => v !== 0)).toBe(true);
    expect(Array.from(param(m, 'bn1.running_var').data).some((v) => v !== 1)).toBe(true);
  });

  it('applies dropout only when training, with the given rng', () => {
    const m = buildModel({ input: [1, 4, 4], layers: [{ type: 'flatten' }, { type: 'dropout', p: 0.5 }] });
    const x = randomInput([2, 1, 4, 4], 9);
    expect(Array.from(m.forward(x).data)).toEqual(Array.from(x.data));
    expect(() => m.forward(x, { training: true })).toThrow('model.forward: dropout1 (dropout) needs opts.rng when training');
    const a = m.forward(x, { training: true, rng: createRng(1) });
    const b = m.forward(x, { training: true, rng: createRng(1) });
    expect(Array.from(a.data)).toEqual(Array.from(b.data));
    expect(Array.from(a.data).filter((v) => v === 0).length).toBeGreaterThan(0);
  });
});

describe('copyParams / loadNamedArrays', () => {
  const lenet = getZooSpec('lenet5');

  it('copies parameters between models by name', () => {
    const a = buildModel(lenet, { seed: 1 });
    const b = buildModel(lenet, { seed: 2 });
    const snapshot = copyParams(a.params);
    loadNamedArrays(b.params, snapshot);
    expect(sameBytes(paramsToBytes(b.params), paramsToBytes(a.params))).toBe(true);
    snapshot[0].data[0] += 1; // a snapshot is a copy
    expect(a.params[0].data[0]).not.toBe(snapshot[0].data[0]);
  });

  const small = buildModel({ ...lenet, layers: lenet.layers.map((l) => (l.type === 'conv2d' && l.outChannels === 6 ? { ...l, kernelSize: 3, padding: 1 } : l)) });
  it.each([
    ['a wrong shape', () => copyParams(small.params), 'conv1.weight: expected shape [6,1,5,5], got [6,1,3,3]'],
    ['a missing key', () => copyParams(buildModel(lenet).params).filter((p) => p.name !== 'fc3.bias'), 'missing key fc3.bias'],
    ['an unexpected key', () => [...copyParams(buildModel(lenet).params), { name: 'fc4.weight', shape: [1], data: new Float32Array(1) }], 'unexpected key fc4.weight'],
    ['a duplicate key', () => [...copyParams(buildModel(lenet).params), ...copyParams(buildModel(lenet).params).slice(0, 1)], 'duplicate key conv1.weight'],
  ])('rejects %s and writes nothing', (_title, make, message) => {
    const target = buildModel(lenet, { seed: 5 });
    const before = paramsToBytes(target.params);
    expect(() => loadNamedArrays(target.params, make())).toThrow(ParamLoadError);
    expect(() => loadNamedArrays(target.params, make())).toThrow(message);
    expect(sameBytes(paramsToBytes(target.params), before)).toBe(true);
  });
});

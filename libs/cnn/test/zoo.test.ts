import { describe, expect, it } from 'vitest';
import { buildModel, getZooSpec, ModelSpecError, zooNames } from '../src/index.ts';

describe('zoo', () => {
  it('lists lenet5', () => {
    expect(zooNames()).toContain('lenet5');
  });

  it('lenet5 defaults to 1x28x28 input and 10 classes, like the PyTorch anchor', () => {
    const spec = getZooSpec('lenet5');
    expect(spec.input).toEqual([1, 28, 28]);
    const m = buildModel(spec);
    expect(m.outputShape).toEqual([10]);
    expect(m.params.map((p) => p.name)).toEqual(['conv1.weight', 'conv1.bias', 'conv2.weight', 'conv2.bias', 'fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias', 'fc3.weight', 'fc3.bias']);
  });

  it.each([
    [{ inChannels: 3, height: 32, width: 32, numClasses: 100 }, [16, 6, 6], [100], 3 * 6 * 25 + 6 + 2416 + 576 * 120 + 120 + 10164 + 84 * 100 + 100],
    [{ height: 12, width: 20 }, [16, 1, 3], [10], 156 + 2416 + 48 * 120 + 120 + 10164 + 850],
  ])('lenet5 with %j', (opts, pool2Shape, outputShape, count) => {
    const m = buildModel(getZooSpec('lenet5', opts));
    expect(m.nodes.find((n) => n.name === 'pool2')!.outputShape).toEqual(pool2Shape);
    expect(m.outputShape).toEqual(outputShape);
    expect(m.paramCount()).toBe(count);
  });

  it('fails in buildModel, naming the layer, when the input is too small for lenet5', () => {
    expect(() => buildModel(getZooSpec('lenet5', { height: 8, width: 8 }))).toThrow(/layers\[3\] conv2 \(conv2d\): kernel 5x5 is larger than the padded input 4x4 \(input \[6, 4, 4\]/);
  });

  it.each([
    ['an unknown model', () => getZooSpec('resnet999'), /zoo: unknown model "resnet999" \(available: .*lenet5/],
    ['zero classes', () => getZooSpec('lenet5', { numClasses: 0 }), /zoo.numClasses: must be an integer in \[1, 65536\], got 0/],
    ['a fractional height', () => getZooSpec('lenet5', { height: 27.5 }), /zoo.height: expected an integer, got 27.5/],
    ['an unknown option', () => getZooSpec('lenet5', { depth: 3 } as never), /zoo.depth: unknown field/],
    ['a prototype key as a name', () => getZooSpec('toString'), /zoo: unknown model "toString"/],
  ])('rejects %s', (_title, fn, pattern) => {
    expect(fn).toThrow(ModelSpecError);
    expect(fn).toThrow(pattern);
  });
});

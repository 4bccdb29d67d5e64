// Bad specs fail in buildModel with a ModelSpecError naming the field path, or the layer and the shapes.
import { describe, expect, it } from 'vitest';
import { buildModel, getZooSpec, ModelSpecError, validateModelSpec } from '../src/index.ts';
import type { LayerSpec, ModelSpec } from '../src/index.ts';

const spec = (layers: unknown[], input: unknown = [1, 8, 8], extra: Record<string, unknown> = {}): ModelSpec => ({ input, layers, ...extra }) as ModelSpec;

function specError(s: unknown): ModelSpecError {
  try {
    buildModel(s as ModelSpec);
  } catch (err) {
    expect(err).toBeInstanceOf(ModelSpecError);
    expect((err as Error).name).toBe('ModelSpecError');
    return err as ModelSpecError;
  }
  return expect.fail('buildModel accepted the spec');
}

describe('buildModel rejects specs whose shapes do not fit, naming the layer and the shapes', () => {
  const cases: [string, ModelSpec, string, RegExp][] = [
    ['conv kernel larger than its padded input', spec([{ type: 'conv2d', outChannels: 4, kernelSize: 5, padding: 1 }], [3, 2, 2]), 'layers[0]',
      /layers\[0\] conv1 \(conv2d\): kernel 5x5 is larger than the padded input 4x4 \(input \[3, 2, 2\], padding \[1, 1\]\)/],
    ['dilated kernel larger than its input', spec([{ type: 'conv2d', outChannels: 4, kernelSize: 3, dilation: 4 }]), 'layers[0]',
      /layers\[0\] conv1 \(conv2d\): kernel 9x9 \(dilated\) is larger than the padded input 8x8 \(input \[1, 8, 8\]/],
    ['a pooling window larger than the map', spec([{ type: 'conv2d', outChannels: 2, kernelSize: 3 }, { type: 'maxPool2d', kernelSize: 7 }]), 'layers[1]',
      /layers\[1\] pool1 \(maxPool2d\): kernel 7x7 is larger than the padded input 6x6 \(input \[2, 6, 6\]\)/],
    ['add with different channel counts', spec([
      { type: 'conv2d', name: 'a', outChannels: 4, kernelSize: 3, padding: 1, inputs: ['input'] },
      { type: 'conv2d', name: 'b', outChannels: 5, kernelSize: 3, padding: 1, inputs: ['input'] },
      { type: 'add', inputs: ['a', 'b'] },
    ]), 'layers[2]', /layers\[2\] add1 \(add\): input shapes differ: a \[4, 8, 8\] vs b \[5, 8, 8\]/],
    ['concat with different spatial sizes', spec([
      { type: 'conv2d', name: 'a', outChannels: 4, kernelSize: 3, inputs: ['input'] },
      { type: 'conv2d', name: 'b', outChannels: 4, kernelSize: 3, padding: 1, inputs: ['input'] },
      { type: 'concat', inputs: ['a', 'b'] },
    ]), 'layers[2]', /layers\[2\] concat1 \(concat\): inputs must agree on every dimension but channels: a \[4, 6, 6\] vs b \[4, 8, 8\]/],
    ['concat of a flat and a spatial tensor', spec([
      { type: 'flatten', name: 'f', inputs: ['input'] },
      { type: 'concat', inputs: ['input', 'f'] },
    ]), 'layers[1]', /concat1 \(concat\): inputs must agree .*: input \[1, 8, 8\] vs f \[64\]/],
    ['conv after flatten', spec([{ type: 'flatten' }, { type: 'conv2d', outChannels: 2, kernelSize: 3 }]), 'layers[1]',
      /layers\[1\] conv1 \(conv2d\): conv2d needs a \[channels, height, width\] input, got \[64\] \(after flatten or linear\)/],
    ['linear on a 4-D activation without flatten', spec([{ type: 'conv2d', outChannels: 2, kernelSize: 3 }, { type: 'linear', outFeatures: 10 }]), 'layers[1]',
      /layers\[1\] fc1 \(linear\): linear needs a flat \[features\] input, got \[2, 6, 6\]; add a flatten layer before it/],
    ['batch norm after flatten', spec([{ type: 'flatten' }, { type: 'batchNorm2d' }]), 'layers[1]', /layers\[1\] bn1 \(batchNorm2d\): batchNorm2d needs .* got \[64\]/],
    ['pooling after linear', spec([{ type: 'flatten' }, { type: 'linear', outFeatures: 4 }, { type: 'avgPool2d', kernelSize: 2 }]), 'layers[2]',
      /layers\[2\] pool1 \(avgPool2d\): avgPool2d needs .* got \[4\]/],
    ['groups that do not divide the input channels', spec([{ type: 'conv2d', outChannels: 4, kernelSize: 1, groups: 2 }], [3, 8, 8]), 'layers[0]',
      /layers\[0\] conv1 \(conv2d\): groups 2 must divide both the input channels 3 \(input \[3, 8, 8\]\) and outChannels 4/],
    ['a transposed conv whose padding eats the output', spec([{ type: 'convTranspose2d', outChannels: 1, kernelSize: 1, padding: 1 }], [1, 1, 1]), 'layers[0]',
      /layers\[0\] deconv1 \(convTranspose2d\): padding \[1, 1\] leaves an output of -1x-1 for input \[1, 1, 1\] and kernel 1x1/],
    ['an unknown input name', spec([{ type: 'relu' }, { type: 'add', inputs: ['relu1', 'nope'] }]), 'layers[1].inputs[1]',
      /layers\[1\] add1 \(add\): unknown input "nope"/],
    ['an input that refers to a later node', spec([{ type: 'relu', inputs: ['t'] }, { type: 'tanh', name: 't', inputs: ['input'] }]), 'layers[0].inputs[0]',
      /layers\[0\] relu1 \(relu\): input refers to a later node "t" \(a layer can only read earlier nodes\)/],
    ['an input that refers to the layer itself', spec([{ type: 'relu', inputs: ['relu1'] }]), 'layers[0].inputs[0]', /input refers to the layer itself "relu1"/],
    ['add with one input', spec([{ type: 'add', inputs: ['input'] }]), 'layers[0].inputs', /layers\[0\] add1 \(add\): needs "inputs" naming at least 2 nodes, got 1/],
    ['concat without inputs', spec([{ type: 'concat' }]), 'layers[0].inputs', /concat1 \(concat\): needs "inputs" naming at least 2 nodes, got 0/],
    ['relu with two inputs', spec([{ type: 'relu', inputs: ['input', 'input'] }]), 'layers[0].inputs', /relu1 \(relu\): reads exactly one node, got inputs \[input, input\]/],
    ['a duplicate node name', spec([{ type: 'relu', name: 'x' }, { type: 'tanh', name: 'x' }]), 'layers[1].name', /layers\[1\] x \(tanh\): duplicate node name "x"/],
    ['an explicit name that collides with a default one', spec([{ type: 'relu', name: 'relu2' }, { type: 'relu' }]), 'layers[1].name', /duplicate node name "relu2"/],
    ['an unknown output node', spec([{ type: 'relu' }], [1, 8, 8], { output: 'fc9' }), 'output', /output: unknown output node "fc9" \(nodes: relu1\)/],
    ['a layer whose output is never used', spec([{ type: 'relu' }, { type: 'tanh', inputs: ['input'] }]), 'layers[0]',
      /layers\[0\] relu1 \(relu\): its output never reaches the model output "tanh1"/],
    ['a model with too many parameters', spec([{ type: 'flatten' }, { type: 'linear', outFeatures: 65536 }, { type: 'linear', outFeatures: 65536 }]), 'layers[2]',
      /layers\[2\] fc2 \(linear\): the model would have more than 67108864 parameters/],
    ['an activation too large', spec([{ type: 'upsampleNearest2d', scaleFactor: 4096 }], [4, 8, 8]), 'layers[0]',
      /upsample1 \(upsampleNearest2d\): output \[4, 32768, 32768\] has 4294967296 values per sample/],
  ];
  it.each(cases)('%s', (_title, s, path, pattern) => {
    const err = specError(s);
    expect(err.message).toMatch(pattern);
    expect(err.path).toBe(path);
  });
});

describe('buildModel validates the spec object itself (it arrives as JSON)', () => {
  const conv = (extra: Record<string, unknown>): unknown[] => [{ type: 'conv2d', outChannels: 2, kernelSize: 3, ...extra }];
  const cases: [string, unknown, RegExp][] = [
    ['a spec that is not an object', 'lenet5', /^spec: expected an object, got "lenet5"/],
    ['an unknown top-level field', { input: [1, 8, 8], layers: [{ type: 'relu' }], optimizer: {} }, /^optimizer: unknown field \(allowed: name, input, layers, output, init\)/],
    ['an input of length 2', { input: [8, 8], layers: [{ type: 'relu' }] }, /^input: expected \[channels, height, width\], got array of length 2/],
    ['a zero input dimension', { input: [1, 0, 8], layers: [{ type: 'relu' }] }, /^input\[1\]: must be an integer in \[1, 65536\], got 0/],
    ['no layers', { input: [1, 8, 8], layers: [] }, /^layers: expected a non-empty array of layers, got array of length 0/],
    ['layers that are not an array', { input: [1, 8, 8], layers: { 0: { type: 'relu' } } }, /^layers: expected a non-empty array of layers, got object/],
    ['a layer that is not an object', spec([{ type: 'relu' }, 7]), /^layers\[1\]: expected a layer object, got 7/],
    ['an unknown layer type', spec([{ type: 'relu' }, { type: 'softmax' }]), /^layers\[1\].type: expected one of conv2d, convTranspose2d, linear, .*, got "softmax"/],
    ['a missing layer type', spec([{ outChannels: 2 }]), /^layers\[0\].type: expected one of .*got undefined/],
    ['an unknown field on a layer', spec([{ type: 'relu' }, { type: 'relu' }, { type: 'relu' }, { type: 'relu', kernelSize: 3 }]), /^layers\[3\].kernelSize: unknown field \(allowed: type, name, inputs\)/],
    ['a field of another layer type', spec([{ type: 'linear', outFeatures: 2, kernelSize: 3 }]), /^layers\[0\].kernelSize: unknown field \(allowed: type, name, inputs, outFeatures, bias\)/],
    ['a string kernel size', spec(conv({ kernelSize: '3' })), /^layers\[0\].kernelSize: expected an integer, got "3"/],
    ['a fractional kernel size', spec(conv({ kernelSize: 2.5 })), /^layers\[0\].kernelSize: expected an integer, got 2.5/],
    ['a negative kernel size', spec(conv({ kernelSize: -3 })), /^layers\[0\].kernelSize: must be an integer in \[1, 65536\], got -3/],
    ['a kernel pair of length 3', spec(conv({ kernelSize: [3, 3, 3] })), /^layers\[0\].kernelSize: expected an integer or a pair \[h, w\], got an array of length 3/],
    ['a zero stride', spec(conv({ stride: 0 })), /^layers\[0\].stride: must be an integer in \[1, 65536\], got 0/],
    ['a zero stride in a pair', spec(conv({ stride: [1, 0] })), /^layers\[0\].stride\[1\]: must be an integer in \[1, 65536\], got 0/],
    ['a negative padding', spec(conv({ padding: -1 })), /^layers\[0\].padding: must be an integer in \[0, 65536\], got -1/],
    ['zero output channels', spec(conv({ outChannels: 0 })), /^layers\[0\].outChannels: must be an integer in \[1, 65536\], got 0/],
    ['a missing outChannels', spec([{ type: 'conv2d', kernelSize: 3 }]), /^layers\[0\].outChannels: expected an integer, got undefined/],
    ['a non-boolean bias', spec(conv({ bias: 'yes' })), /^layers\[0\].bias: expected true or false, got "yes"/],
    ['zero groups', spec(conv({ groups: 0 })), /^layers\[0\].groups: must be an integer in \[1, 65536\]/],
    ['dropout p = 1', spec([{ type: 'dropout', p: 1 }]), /^layers\[0\].p: must be in \[0, 1\), got 1/],
    ['batch norm eps 0', spec([{ type: 'batchNorm2d', eps: 0 }]), /^layers\[0\].eps: must be in \(0, inf\), got 0/],
    ['batch norm momentum 2', spec([{ type: 'batchNorm2d', momentum: 2 }]), /^layers\[0\].momentum: must be in \[0, 1\], got 2/],
    ['a non-finite leaky slope', spec([{ type: 'leakyRelu', negativeSlope: null }]), /^layers\[0\].negativeSlope: expected a finite number, got null/],
    ['a fractional upsampling factor', spec([{ type: 'upsampleNearest2d', scaleFactor: 1.5 }]), /^layers\[0\].scaleFactor: expected an integer, got 1.5/],
    ['pool padding over half the kernel', spec([{ type: 'maxPool2d', kernelSize: 2, padding: 2 }]), /^layers\[0\].padding: must be at most half the kernel size \[2, 2\], got \[2, 2\]/],
    ['output padding not below the stride', spec([{ type: 'convTranspose2d', outChannels: 1, kernelSize: 2, stride: 2, outputPadding: 2 }]), /^layers\[0\].outputPadding: must be smaller than the stride \[2, 2\], got \[2, 2\]/],
    ['a layer name with a dot', spec([{ type: 'relu', name: 'a.b' }]), /^layers\[0\].name: must match .* \(letters, digits, _; no dots\), got "a.b"/],
    ['the reserved name input', spec([{ type: 'relu', name: 'input' }]), /^layers\[0\].name: "input" is reserved/],
    ['inputs that are not strings', spec([{ type: 'relu', inputs: [3] }]), /^layers\[0\].inputs\[0\]: expected a string, got 3/],
    ['empty inputs', spec([{ type: 'relu', inputs: [] }]), /^layers\[0\].inputs: expected a non-empty array of at most 64 node names, got array of length 0/],
    ['a non-string model name', { name: 5, input: [1, 8, 8], layers: [{ type: 'relu' }] }, /^name: expected a string, got 5/],
    ['__proto__ as a field (from JSON.parse)', JSON.parse('{"input":[1,8,8],"layers":[{"type":"relu"}],"__proto__":{"x":1}}'), /^__proto__: unknown field/],
  ];
  it.each(cases)('%s', (_title, s, pattern) => {
    expect(specError(s).message).toMatch(pattern);
  });

  it('returns a clean copy holding only the given fields', () => {
    const input = getZooSpec('lenet5');
    const copy = validateModelSpec(JSON.parse(JSON.stringify(input)));
    expect(copy).toEqual(input);
    expect(copy.layers[0]).not.toBe(input.layers[0]);
  });

  it('keeps the spec of the built model equal to the JSON it came from', () => {
    const layers: LayerSpec[] = [{ type: 'conv2d', outChannels: 2, kernelSize: [3, 1], stride: [1, 2] }, { type: 'relu', name: 'act' }];
    const model = buildModel({ input: [1, 8, 8], layers });
    expect(model.spec).toEqual({ input: [1, 8, 8], layers });
    expect(model.nodes.map((n) => n.outputShape)).toEqual([[2, 6, 4], [2, 6, 4]]);
  });
});

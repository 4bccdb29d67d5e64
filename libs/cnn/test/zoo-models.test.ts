// The zoo beyond LeNet-5: every model builds (shape checks in buildModel) for the inputs it is meant
// for, has the structure and the parameter count its paper's layout gives, survives a JSON round
// trip, and rejects options it does not take or inputs it cannot handle with a named error.
import { describe, expect, it } from 'vitest';
import { buildModel, getZooSpec, ModelSpecError, validateModelSpec, zooNames, type Model, type ZooModelOptions } from '../src/index.ts';

const conv = (cin: number, cout: number, k: number): number => cin * cout * k * k;
const bn = (c: number): number => 2 * c;

/** Parameters of a CIFAR ResNet-(6n+2) of width w on `cin` channels, `classes` outputs (no biases before bn). */
function resnetParams(n: number, w: number, cin: number, classes: number): number {
  let total = conv(cin, w, 3) + bn(w);
  let c = w;
  for (let stage = 0; stage < 3; stage++) {
    const out = w * 2 ** stage;
    for (let block = 0; block < n; block++) {
      total += conv(c, out, 3) + bn(out) + conv(out, out, 3) + bn(out);
      if (c !== out) total += conv(c, out, 1) + bn(out);
      c = out;
    }
  }
  return total + 4 * w * classes + classes;
}

function shapeOf(m: Model, node: string): number[] {
  const found = m.nodes.find((n) => n.name === node);
  if (found === undefined) throw new Error(`no node ${node} in ${m.spec.name}`);
  return found.outputShape;
}

describe('zoo models', () => {
  it('lists every model', () => {
    expect(zooNames()).toEqual(['densenet', 'inception', 'lenet5', 'localizer', 'resnet', 'resnet14', 'resnet20', 'resnet8', 'unet', 'yolo']);
  });

  // [name, options, output shape, parameter count or [min, max]]
  const cases: [string, ZooModelOptions, number[], number | [number, number]][] = [
    ['resnet', {}, [10], resnetParams(1, 16, 1, 10)],
    ['resnet8', { inChannels: 3, height: 32, width: 32 }, [10], resnetParams(1, 16, 3, 10)],
    ['resnet14', {}, [10], resnetParams(2, 16, 1, 10)],
    ['resnet20', { baseChannels: 8, numClasses: 100 }, [100], resnetParams(3, 8, 1, 100)],
    ['densenet', {}, [10], [50_000, 120_000]],
    ['inception', {}, [10], [40_000, 100_000]],
    ['unet', { height: 96, width: 96, numClasses: 11 }, [11, 96, 96], [300_000, 600_000]],
    ['yolo', { height: 96, width: 96 }, [15, 6, 6], [200_000, 500_000]],
    ['localizer', { height: 64, width: 64 }, [14], [100_000, 300_000]],
  ];
  it.each(cases)('%s with %j: output %j, parameters %j', (name, opts, outputShape, params) => {
    const spec = getZooSpec(name, opts);
    const m = buildModel(spec);
    if (globalThis.process?.env.ZOO_LOG) console.log(m.summary());
    expect(m.outputShape).toEqual(outputShape);
    if (typeof params === 'number') expect(m.paramCount()).toBe(params);
    else {
      expect(m.paramCount()).toBeGreaterThanOrEqual(params[0]);
      expect(m.paramCount()).toBeLessThanOrEqual(params[1]);
    }
    // A zoo spec is plain JSON: it survives a round trip and validation unchanged.
    const json = JSON.parse(JSON.stringify(spec));
    expect(validateModelSpec(json)).toEqual(json);
    expect(buildModel(json).paramCount()).toBe(m.paramCount());
  });

  it('resnet20: three stages of three blocks, widths 16-32-64, resolution halved twice, projection only where the shape changes', () => {
    const m = buildModel(getZooSpec('resnet20'));
    expect(m.nodes.filter((n) => n.type === 'add')).toHaveLength(9);
    expect(m.nodes.filter((n) => n.type === 'conv2d')).toHaveLength(1 + 18 + 2);
    expect(shapeOf(m, 's1b3_relu')).toEqual([16, 28, 28]);
    expect(shapeOf(m, 's2b1_relu')).toEqual([32, 14, 14]);
    expect(shapeOf(m, 's3b3_relu')).toEqual([64, 7, 7]);
    expect(m.nodes.filter((n) => n.name.endsWith('_proj_conv')).map((n) => n.name)).toEqual(['s2b1_proj_conv', 's3b1_proj_conv']);
    expect(m.nodes.find((n) => n.name === 's1b2_add')!.inputs).toEqual(['s1b2_2_bn', 's1b1_relu']);
    expect(m.nodes.find((n) => n.name === 's2b1_add')!.inputs).toEqual(['s2b1_2_bn', 's2b1_proj_bn']);
  });

  it('densenet: each dense layer adds k channels to the concatenation, transitions halve channels and resolution', () => {
    const m = buildModel(getZooSpec('densenet', { growthRate: 12, layersPerBlock: 4 }));
    expect(shapeOf(m, 'stem_conv')).toEqual([24, 28, 28]);
    expect([1, 2, 3, 4].map((l) => shapeOf(m, `d1_cat${l}`)[0])).toEqual([36, 48, 60, 72]);
    expect(shapeOf(m, 't1_pool')).toEqual([36, 14, 14]);
    expect(shapeOf(m, 'd2_cat4')).toEqual([84, 14, 14]);
    expect(shapeOf(m, 't2_pool')).toEqual([42, 7, 7]);
    expect(shapeOf(m, 'd3_cat4')).toEqual([90, 7, 7]);
    // The second layer of a block reads the block input and the first layer's output.
    expect(m.nodes.find((n) => n.name === 'd1_cat1')!.inputs).toEqual(['stem_conv', 'd1_l1_conv']);
    expect(m.nodes.find((n) => n.name === 'd1_l2_bn')!.inputs).toEqual(['d1_cat1']);
  });

  it("inception: four parallel branches per module with GoogLeNet's widths scaled by baseChannels / 64", () => {
    const m = buildModel(getZooSpec('inception', { baseChannels: 64 }));
    expect(shapeOf(m, 'i3a_cat')).toEqual([256, 14, 14]);
    expect(shapeOf(m, 'i3b_cat')).toEqual([480, 14, 14]);
    expect(shapeOf(m, 'i4a_cat')).toEqual([512, 7, 7]);
    expect(m.nodes.find((n) => n.name === 'i3a_cat')!.inputs).toEqual(['i3a_b1_relu', 'i3a_b2_relu', 'i3a_b3_relu', 'i3a_b4_relu']);
    expect(shapeOf(m, 'i3a_b2r_conv')).toEqual([96, 14, 14]);
    expect(shapeOf(m, 'i3a_b3r_conv')).toEqual([16, 14, 14]);
    const small = buildModel(getZooSpec('inception'));
    expect(shapeOf(small, 'i3a_cat')).toEqual([64, 14, 14]);
  });

  it('unet: channels double going down, skip concatenations on the way up, one logit per class and pixel', () => {
    const m = buildModel(getZooSpec('unet', { height: 64, width: 48, numClasses: 3, baseChannels: 4, depth: 3 }));
    expect(shapeOf(m, 'enc0_b_relu')).toEqual([4, 64, 48]);
    expect(shapeOf(m, 'bottleneck_b_relu')).toEqual([32, 8, 6]);
    expect(m.nodes.find((n) => n.name === 'dec1_cat')!.inputs).toEqual(['enc1_b_relu', 'dec1_up']);
    expect(shapeOf(m, 'dec1_cat')).toEqual([16, 32, 24]);
    expect(m.outputShape).toEqual([3, 64, 48]);
    // By default as many levels as halve the input evenly, at most 4: 28 = 4·7 takes two, 96 = 16·6 four.
    expect(buildModel(getZooSpec('unet')).nodes.filter((n) => n.type === 'convTranspose2d')).toHaveLength(2);
    expect(shapeOf(buildModel(getZooSpec('unet', { height: 96, width: 96 })), 'bottleneck_b_relu')).toEqual([128, 6, 6]);
  });

  it.each([
    [{ height: 96, width: 96 }, [15, 6, 6]],
    [{ height: 96, width: 96, gridSize: 12 }, [15, 12, 12]],
    [{ height: 28, width: 28 }, [15, 7, 7]],
    [{ height: 64, width: 64, numClasses: 3, gridSize: 4 }, [8, 4, 4]],
  ])('yolo with %j outputs %j ([5 + C, S, S])', (opts, shape) => {
    expect(buildModel(getZooSpec('yolo', opts)).outputShape).toEqual(shape);
  });

  it('localizer: flattens (not averages) the last feature map into a class + box head', () => {
    const m = buildModel(getZooSpec('localizer', { height: 64, width: 64 }));
    expect(m.nodes.filter((n) => n.type === 'maxPool2d')).toHaveLength(4);
    expect(shapeOf(m, 'flatten')).toEqual([64 * 4 * 4]);
    expect(buildModel(getZooSpec('localizer')).outputShape).toEqual([14]);
  });

  it.each([
    ['an option another model takes', () => getZooSpec('resnet8', { gridSize: 4 }), /zoo.gridSize: unknown field \(allowed: inChannels, height, width, numClasses, baseChannels\)/],
    ['a zero width', () => getZooSpec('resnet', { baseChannels: 0 }), /zoo.baseChannels: must be an integer in \[1, 1024\], got 0/],
    ['a non-square yolo input', () => getZooSpec('yolo', { height: 96, width: 64 }), /zoo.width: yolo needs a square input for its S×S grid, got 96x64/],
    ['a yolo grid that does not divide the input by a power of 2', () => getZooSpec('yolo', { height: 96, width: 96, gridSize: 5 }), /zoo.gridSize: yolo needs the input side 96 to be gridSize 5 times a power of 2/],
    ['a unet depth the input cannot take', () => getZooSpec('unet', { height: 28, width: 28, depth: 3 }), /zoo.depth: unet with depth 3 needs height and width divisible by 8, got 28x28/],
    ['an odd unet input', () => getZooSpec('unet', { height: 27, width: 28 }), /zoo.height: unet needs even height and width to downsample, got 27x28/],
  ])('rejects %s', (_title, fn, pattern) => {
    expect(fn).toThrow(ModelSpecError);
    expect(fn).toThrow(pattern);
  });

  it('fails in buildModel, naming the layer, when the input is too small for densenet', () => {
    expect(() => buildModel(getZooSpec('densenet', { height: 2, width: 2 }))).toThrow(/t2_pool \(avgPool2d\): kernel 2x2 is larger than the padded input 1x1/);
  });
});

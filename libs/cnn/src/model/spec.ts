// Model specs: validation of the untrusted JSON object, default names, and shape inference.
//
// `planModel` turns a spec into one `NodePlan` per layer with its resolved hyper-parameters (defaults
// filled in, pairs expanded), its inputs, its per-sample output shape and the names and shapes of its
// parameters and buffers. Every problem is a `ModelSpecError` that names the field path, or for shape
// problems the layer (`layers[3] conv2 (conv2d)`) and the shapes involved, before any tensor exists.

import type { LayerSpec, ModelSpec, ModelInit } from '../types.ts';
import { describeValue, FieldChecker, isPlainObject, ModelSpecError } from './check.ts';

export type LayerType = LayerSpec['type'];

/** Hyper-parameters of a layer with every default filled in and every pair expanded to [h, w]. */
export type ResolvedLayer =
  | { type: 'conv2d'; outChannels: number; kernelSize: [number, number]; stride: [number, number]; padding: [number, number]; dilation: [number, number]; groups: number; bias: boolean }
  | { type: 'convTranspose2d'; outChannels: number; kernelSize: [number, number]; stride: [number, number]; padding: [number, number]; outputPadding: [number, number]; bias: boolean }
  | { type: 'linear'; outFeatures: number; bias: boolean }
  | { type: 'maxPool2d' | 'avgPool2d' | 'minPool2d'; kernelSize: [number, number]; stride: [number, number]; padding: [number, number] }
  | { type: 'globalAvgPool2d' | 'relu' | 'sigmoid' | 'tanh' | 'flatten' | 'add' | 'concat' }
  | { type: 'batchNorm2d'; eps: number; momentum: number }
  | { type: 'leakyRelu'; negativeSlope: number }
  | { type: 'dropout'; p: number }
  | { type: 'upsampleNearest2d'; scaleFactor: number };

export interface TensorPlan {
  name: string;
  shape: number[];
}

export interface NodePlan {
  /** Position in `spec.layers`. */
  index: number;
  name: string;
  layer: ResolvedLayer;
  inputs: string[];
  inputShapes: number[][];
  /** Per-sample output shape: [C, H, W] or [features]. */
  outputShape: number[];
  /** Trainable parameters (weight before bias). */
  params: TensorPlan[];
  /** Non-trainable state (batch-norm running statistics). */
  buffers: TensorPlan[];
}

export interface ModelPlan {
  spec: ModelSpec;
  inputShape: [number, number, number];
  nodes: NodePlan[];
  output: string;
  outputShape: number[];
  /** Nodes the output depends on; `forward` computes only these. */
  needed: Set<string>;
}

/** Upper bound for any single size field (channels, features, kernel, stride, input side). */
const MAX_SIZE = 1 << 16;
/** Upper bounds that keep a spec from the network from allocating unbounded memory. */
const MAX_ACTIVATION_ELEMENTS = 1 << 26;
const MAX_PARAM_ELEMENTS = 1 << 26;
const MAX_LAYERS = 4096;
const NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** Default-name prefix per layer type; the n-th layer of a kind is `${prefix}${n}` (1-based, counting named ones too). */
const NAME_PREFIX: Record<LayerType, string> = {
  conv2d: 'conv',
  convTranspose2d: 'deconv',
  linear: 'fc',
  batchNorm2d: 'bn',
  maxPool2d: 'pool',
  avgPool2d: 'pool',
  minPool2d: 'pool',
  globalAvgPool2d: 'gap',
  relu: 'relu',
  leakyRelu: 'lrelu',
  sigmoid: 'sigmoid',
  tanh: 'tanh',
  flatten: 'flatten',
  dropout: 'dropout',
  upsampleNearest2d: 'upsample',
  add: 'add',
  concat: 'concat',
};

const LAYER_TYPES = Object.keys(NAME_PREFIX) as LayerType[];
const MODEL_INITS: readonly ModelInit[] = ['pytorch', 'he-xavier'];

/** Fields each layer type accepts besides `type`, `name` and `inputs`. */
const LAYER_FIELDS: Record<LayerType, readonly string[]> = {
  conv2d: ['outChannels', 'kernelSize', 'stride', 'padding', 'dilation', 'groups', 'bias'],
  convTranspose2d: ['outChannels', 'kernelSize', 'stride', 'padding', 'outputPadding', 'bias'],
  linear: ['outFeatures', 'bias'],
  maxPool2d: ['kernelSize', 'stride', 'padding'],
  avgPool2d: ['kernelSize', 'stride', 'padding'],
  minPool2d: ['kernelSize', 'stride', 'padding'],
  globalAvgPool2d: [],
  batchNorm2d: ['eps', 'momentum'],
  relu: [],
  sigmoid: [],
  tanh: [],
  flatten: [],
  leakyRelu: ['negativeSlope'],
  dropout: ['p'],
  upsampleNearest2d: ['scaleFactor'],
  add: [],
  concat: [],
};

const check: FieldChecker = new FieldChecker((message, path) => new ModelSpecError(message, path));

/** Validates the layer's own fields (not its inputs or shapes) and fills in the defaults. */
function resolveLayer(o: Record<string, unknown>, type: LayerType, path: string): ResolvedLayer {
  const opt = <T>(key: string, dflt: T, read: (v: unknown, p: string) => T): T => (o[key] === undefined ? dflt : read(o[key], `${path}.${key}`));
  const size = (v: unknown, p: string): number => check.integer(v, p, 1, MAX_SIZE);
  const bool = (v: unknown, p: string): boolean => check.boolean(v, p);
  const positivePair = (v: unknown, p: string): [number, number] => check.pair(v, p, 1, MAX_SIZE);
  const nonNegativePair = (v: unknown, p: string): [number, number] => check.pair(v, p, 0, MAX_SIZE);
  switch (type) {
    case 'conv2d':
      return {
        type,
        outChannels: size(o.outChannels, `${path}.outChannels`),
        kernelSize: positivePair(o.kernelSize, `${path}.kernelSize`),
        stride: opt('stride', [1, 1], positivePair),
        padding: opt('padding', [0, 0], nonNegativePair),
        dilation: opt('dilation', [1, 1], positivePair),
        groups: opt('groups', 1, size),
        bias: opt('bias', true, bool),
      };
    case 'convTranspose2d': {
      const layer = {
        type,
        outChannels: size(o.outChannels, `${path}.outChannels`),
        kernelSize: positivePair(o.kernelSize, `${path}.kernelSize`),
        stride: opt('stride', [1, 1] as [number, number], positivePair),
        padding: opt('padding', [0, 0] as [number, number], nonNegativePair),
        outputPadding: opt('outputPadding', [0, 0] as [number, number], nonNegativePair),
        bias: opt('bias', true, bool),
      };
      if (layer.outputPadding[0] >= layer.stride[0] || layer.outputPadding[1] >= layer.stride[1]) {
        check.fail(`${path}.outputPadding`, `must be smaller than the stride [${layer.stride.join(', ')}], got [${layer.outputPadding.join(', ')}]`);
      }
      return layer;
    }
    case 'linear':
      return { type, outFeatures: size(o.outFeatures, `${path}.outFeatures`), bias: opt('bias', true, bool) };
    case 'maxPool2d':
    case 'avgPool2d':
    case 'minPool2d': {
      const kernelSize = positivePair(o.kernelSize, `${path}.kernelSize`);
      const stride = opt('stride', kernelSize, positivePair);
      const padding = opt('padding', [0, 0] as [number, number], nonNegativePair);
      if (2 * padding[0] > kernelSize[0] || 2 * padding[1] > kernelSize[1]) {
        check.fail(`${path}.padding`, `must be at most half the kernel size [${kernelSize.join(', ')}], got [${padding.join(', ')}]`);
      }
      return { type, kernelSize, stride, padding };
    }
    case 'batchNorm2d':
      return {
        type,
        eps: opt('eps', 1e-5, (v, p) => check.number(v, p, { min: 0, exclusiveMin: true })),
        momentum: opt('momentum', 0.1, (v, p) => check.number(v, p, { min: 0, max: 1 })),
      };
    case 'leakyRelu':
      return { type, negativeSlope: opt('negativeSlope', 0.01, (v, p) => check.number(v, p)) };
    case 'dropout':
      return { type, p: opt('p', 0.5, (v, p) => check.number(v, p, { min: 0, max: 1, exclusiveMax: true })) };
    case 'upsampleNearest2d':
      return { type, scaleFactor: size(o.scaleFactor, `${path}.scaleFactor`) };
    default:
      return { type } as ResolvedLayer;
  }
}

/**
 * Checks an untrusted value against the ModelSpec structure: required fields, types, ranges and no unknown
 * fields. Returns a clean copy holding only the known fields. Graph and shape checks are `planModel`'s.
 */
export function validateModelSpec(value: unknown): ModelSpec {
  if (!isPlainObject(value)) check.fail('spec', `expected an object, got ${describeValue(value)}`);
  const o = check.object(value, '', ['name', 'input', 'layers', 'output', 'init']);
  const spec: ModelSpec = { input: [0, 0, 0], layers: [] };
  if (o.name !== undefined) spec.name = check.string(o.name, 'name');
  if (!Array.isArray(o.input) || o.input.length !== 3) check.fail('input', `expected [channels, height, width], got ${describeValue(o.input)}`);
  spec.input = [check.integer(o.input[0], 'input[0]', 1, MAX_SIZE), check.integer(o.input[1], 'input[1]', 1, MAX_SIZE), check.integer(o.input[2], 'input[2]', 1, MAX_SIZE)];
  if (!Array.isArray(o.layers) || o.layers.length === 0) check.fail('layers', `expected a non-empty array of layers, got ${describeValue(o.layers)}`);
  if (o.layers.length > MAX_LAYERS) check.fail('layers', `at most ${MAX_LAYERS} layers, got ${o.layers.length}`);
  spec.layers = o.layers.map((raw, i) => copyLayer(raw, `layers[${i}]`));
  if (o.output !== undefined) spec.output = check.string(o.output, 'output');
  if (o.init !== undefined) spec.init = check.oneOf(o.init, 'init', MODEL_INITS);
  return spec;
}

function copyLayer(raw: unknown, path: string): LayerSpec {
  if (!isPlainObject(raw)) check.fail(path, `expected a layer object, got ${describeValue(raw)}`);
  const type = check.oneOf(raw.type, `${path}.type`, LAYER_TYPES);
  const o = check.object(raw, path, ['type', 'name', 'inputs', ...LAYER_FIELDS[type]]);
  resolveLayer(o, type, path); // validates the fields
  const out: Record<string, unknown> = { type };
  if (o.name !== undefined) {
    const name = check.string(o.name, `${path}.name`);
    if (!NAME_PATTERN.test(name)) check.fail(`${path}.name`, `must match ${NAME_PATTERN} (letters, digits, _; no dots), got ${describeValue(name)}`);
    if (name === 'input') check.fail(`${path}.name`, '"input" is reserved for the model input');
    out.name = name;
  }
  if (o.inputs !== undefined) {
    if (!Array.isArray(o.inputs) || o.inputs.length === 0 || o.inputs.length > 64) {
      check.fail(`${path}.inputs`, `expected a non-empty array of at most 64 node names, got ${describeValue(o.inputs)}`);
    }
    out.inputs = o.inputs.map((n, j) => check.string(n, `${path}.inputs[${j}]`));
  }
  for (const key of LAYER_FIELDS[type]) {
    const v = o[key];
    if (v !== undefined) out[key] = Array.isArray(v) ? [...v] : v;
  }
  return out as unknown as LayerSpec;
}

const fmt = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

function product(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Validates `value` as a ModelSpec, names every layer and infers every node's output shape. */
export function planModel(value: unknown): ModelPlan {
  const spec = validateModelSpec(value);
  const counters = new Map<string, number>();
  const shapes = new Map<string, number[]>([['input', [...spec.input]]]);
  const nodes: NodePlan[] = [];
  let paramElements = 0;
  const names = spec.layers.map((l) => {
    const prefix = NAME_PREFIX[l.type];
    const ordinal = (counters.get(prefix) ?? 0) + 1;
    counters.set(prefix, ordinal);
    return l.name ?? `${prefix}${ordinal}`;
  });
  let previous = 'input';
  spec.layers.forEach((layerSpec, index) => {
    const path = `layers[${index}]`;
    const layer = resolveLayer(layerSpec as unknown as Record<string, unknown>, layerSpec.type, path);
    const name = names[index];
    const where = `${path} ${name} (${layer.type})`;
    if (shapes.has(name)) check.fail(`${path}.name`, `${where}: duplicate node name ${JSON.stringify(name)}`);
    const multi = layer.type === 'add' || layer.type === 'concat';
    const inputs = layerSpec.inputs ?? (multi ? [] : [previous]);
    if (multi && inputs.length < 2) check.fail(`${path}.inputs`, `${where}: needs "inputs" naming at least 2 nodes, got ${inputs.length}`);
    if (!multi && inputs.length !== 1) check.fail(`${path}.inputs`, `${where}: reads exactly one node, got inputs [${inputs.join(', ')}]`);
    const inputShapes = inputs.map((n, j) => {
      const s = shapes.get(n);
      if (s === undefined) {
        const at = names.indexOf(n, index);
        const what = at === index ? 'input refers to the layer itself' : at > index ? 'input refers to a later node' : 'unknown input';
        check.fail(`${path}.inputs[${j}]`, `${where}: ${what} ${JSON.stringify(n)}${at >= index ? ' (a layer can only read earlier nodes)' : ''}`);
      }
      return s;
    });
    const outputShape = inferShape(layer, inputs, inputShapes, where, path);
    const count = product(outputShape);
    if (count > MAX_ACTIVATION_ELEMENTS) check.fail(path, `${where}: output ${fmt(outputShape)} has ${count} values per sample, more than ${MAX_ACTIVATION_ELEMENTS}`);
    if (count === 0) check.fail(path, `${where}: output shape ${fmt(outputShape)} is empty (input ${fmt(inputShapes[0])})`);
    const { params, buffers } = paramShapes(layer, name, inputShapes[0]);
    for (const p of params) paramElements += product(p.shape);
    if (paramElements > MAX_PARAM_ELEMENTS) check.fail(path, `${where}: the model would have more than ${MAX_PARAM_ELEMENTS} parameters`);
    nodes.push({ index, name, layer, inputs, inputShapes, outputShape, params, buffers });
    shapes.set(name, outputShape);
    previous = name;
  });
  const output = spec.output ?? previous;
  if (spec.output !== undefined && (!shapes.has(output) || output === 'input')) {
    check.fail('output', `unknown output node ${JSON.stringify(output)} (nodes: ${nodes.map((n) => n.name).join(', ')})`);
  }
  const needed = neededNodes(nodes, output);
  if (spec.output === undefined) {
    // Without an explicit output every layer must feed the last one: a dead branch is a wiring mistake
    // whose parameters would never learn. With `output` set, layers beyond it are allowed (a truncated
    // model); `forward` skips them and `forwardWithActivations` still computes them.
    const dead = nodes.find((n) => !needed.has(n.name));
    if (dead !== undefined) {
      check.fail(`layers[${dead.index}]`, `layers[${dead.index}] ${dead.name} (${dead.layer.type}): its output never reaches the model output ${JSON.stringify(output)} (wire it in or set "output")`);
    }
  }
  return { spec, inputShape: [...spec.input], nodes, output, outputShape: shapes.get(output)!, needed };
}

/** Names of the nodes the output depends on (the output included). */
function neededNodes(nodes: NodePlan[], output: string): Set<string> {
  const needed = new Set<string>([output]);
  for (let i = nodes.length - 1; i >= 0; i--) {
    if (needed.has(nodes[i].name)) for (const inp of nodes[i].inputs) needed.add(inp);
  }
  return needed;
}

/** Per-sample output shape of one layer (PyTorch's formulas); fails naming the layer and the shapes. */
function inferShape(layer: ResolvedLayer, inputs: string[], inputShapes: number[][], where: string, path: string): number[] {
  const fail = (message: string): never => check.fail(path, `${where}: ${message}`);
  const x = inputShapes[0];
  const need3d = (what: string): [number, number, number] => {
    if (x.length !== 3) fail(`${what} needs a [channels, height, width] input, got ${fmt(x)}${x.length === 1 ? ' (after flatten or linear)' : ''}`);
    return x as [number, number, number];
  };
  switch (layer.type) {
    case 'conv2d': {
      const [c, h, w] = need3d('conv2d');
      const { kernelSize: k, stride: s, padding: p, dilation: d, groups: g, outChannels } = layer;
      if (c % g !== 0 || outChannels % g !== 0) fail(`groups ${g} must divide both the input channels ${c} (input ${fmt(x)}) and outChannels ${outChannels}`);
      const ekh = d[0] * (k[0] - 1) + 1;
      const ekw = d[1] * (k[1] - 1) + 1;
      if (ekh > h + 2 * p[0] || ekw > w + 2 * p[1]) {
        fail(`kernel ${ekh}x${ekw}${d[0] > 1 || d[1] > 1 ? ' (dilated)' : ''} is larger than the padded input ${h + 2 * p[0]}x${w + 2 * p[1]} (input ${fmt(x)}, padding [${p.join(', ')}])`);
      }
      return [outChannels, Math.floor((h + 2 * p[0] - ekh) / s[0]) + 1, Math.floor((w + 2 * p[1] - ekw) / s[1]) + 1];
    }
    case 'convTranspose2d': {
      const [, h, w] = need3d('convTranspose2d');
      const { kernelSize: k, stride: s, padding: p, outputPadding: op, outChannels } = layer;
      const oh = (h - 1) * s[0] - 2 * p[0] + k[0] + op[0];
      const ow = (w - 1) * s[1] - 2 * p[1] + k[1] + op[1];
      if (oh < 1 || ow < 1) fail(`padding [${p.join(', ')}] leaves an output of ${oh}x${ow} for input ${fmt(x)} and kernel ${k[0]}x${k[1]}`);
      return [outChannels, oh, ow];
    }
    case 'linear':
      if (x.length !== 1) fail(`linear needs a flat [features] input, got ${fmt(x)}; add a flatten layer before it`);
      return [layer.outFeatures];
    case 'maxPool2d':
    case 'avgPool2d':
    case 'minPool2d': {
      const [c, h, w] = need3d(layer.type);
      const { kernelSize: k, stride: s, padding: p } = layer;
      if (k[0] > h + 2 * p[0] || k[1] > w + 2 * p[1]) {
        fail(`kernel ${k[0]}x${k[1]} is larger than the padded input ${h + 2 * p[0]}x${w + 2 * p[1]} (input ${fmt(x)})`);
      }
      return [c, Math.floor((h + 2 * p[0] - k[0]) / s[0]) + 1, Math.floor((w + 2 * p[1] - k[1]) / s[1]) + 1];
    }
    case 'globalAvgPool2d': // like PyTorch adaptive_avg_pool2d(x, 1): [C, 1, 1], flatten before a linear layer
      return [need3d('globalAvgPool2d')[0], 1, 1];
    case 'batchNorm2d':
      need3d('batchNorm2d');
      return [...x];
    case 'upsampleNearest2d': {
      const [c, h, w] = need3d('upsampleNearest2d');
      return [c, h * layer.scaleFactor, w * layer.scaleFactor];
    }
    case 'flatten':
      return [product(x)];
    case 'add':
      inputShapes.forEach((s, j) => {
        if (fmt(s) !== fmt(x)) fail(`input shapes differ: ${inputs[0]} ${fmt(x)} vs ${inputs[j]} ${fmt(s)}`);
      });
      return [...x];
    case 'concat': {
      let channels = 0;
      inputShapes.forEach((s, j) => {
        if (s.length !== x.length || fmt(s.slice(1)) !== fmt(x.slice(1))) {
          fail(`inputs must agree on every dimension but channels: ${inputs[0]} ${fmt(x)} vs ${inputs[j]} ${fmt(s)}`);
        }
        channels += s[0];
      });
      return [channels, ...x.slice(1)];
    }
    default: // elementwise: relu, leakyRelu, sigmoid, tanh, dropout
      return [...x];
  }
}

function paramShapes(layer: ResolvedLayer, name: string, x: number[]): { params: TensorPlan[]; buffers: TensorPlan[] } {
  const params: TensorPlan[] = [];
  const buffers: TensorPlan[] = [];
  const bias = (n: number, on: boolean): void => {
    if (on) params.push({ name: `${name}.bias`, shape: [n] });
  };
  switch (layer.type) {
    case 'conv2d':
      params.push({ name: `${name}.weight`, shape: [layer.outChannels, x[0] / layer.groups, ...layer.kernelSize] });
      bias(layer.outChannels, layer.bias);
      break;
    case 'convTranspose2d': // PyTorch layout [in, out, kh, kw]
      params.push({ name: `${name}.weight`, shape: [x[0], layer.outChannels, ...layer.kernelSize] });
      bias(layer.outChannels, layer.bias);
      break;
    case 'linear':
      params.push({ name: `${name}.weight`, shape: [layer.outFeatures, x[0]] });
      bias(layer.outFeatures, layer.bias);
      break;
    case 'batchNorm2d':
      params.push({ name: `${name}.weight`, shape: [x[0]] }, { name: `${name}.bias`, shape: [x[0]] });
      buffers.push({ name: `${name}.running_mean`, shape: [x[0]] }, { name: `${name}.running_var`, shape: [x[0]] });
      break;
    default:
      break;
  }
  return { params, buffers };
}

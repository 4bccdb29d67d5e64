// buildModel: a ModelSpec (sequence of layers with optional named inputs) → a runnable Model.
//
// The spec is validated and every node's shape inferred first (`planModel`), so a bad spec fails
// here, not at the first batch. Parameters are flat `Param`s named like a PyTorch state_dict. Each
// forward wraps them in fresh leaf tensors (`Tensor.fromParam`) whose gradients accumulate straight
// into `Param.grad`, so no graph state survives from one call to the next.

import { assert, fmt } from '../assert.ts';
import * as F from '../ops/index.ts';
import { activeProfiler, setProfileTag } from '../profile.ts';
import type { Rng } from '../rng.ts';
import { Tensor } from '../tensor.ts';
import type { ModelSpec, Param } from '../types.ts';
import { fillParam, initRules } from './init.ts';
import { planModel, type ModelPlan, type NodePlan } from './spec.ts';

export interface ForwardOptions {
  /** Training mode: dropout active, batch norm uses batch statistics and updates its running ones. Default false. */
  training?: boolean;
  /** Source of dropout masks; required when training a model with dropout (p > 0). */
  rng?: Rng;
}

export interface ModelNode {
  name: string;
  type: string;
  inputs: string[];
  /** Per-sample output shape, e.g. [6, 28, 28] or [10]. */
  outputShape: number[];
  /** Names of the node's trainable parameters. */
  params: string[];
}

export interface Model {
  /** The validated spec (a clean copy holding only known fields). */
  readonly spec: ModelSpec;
  readonly inputShape: [number, number, number];
  /** Per-sample output shape, e.g. [10]. */
  readonly outputShape: number[];
  readonly nodes: ModelNode[];
  /** Trainable parameters in a stable order: spec order, weight before bias. */
  readonly params: Param[];
  /** Non-trainable state, e.g. batch-norm running statistics. */
  readonly buffers: Param[];
  /** x: [N, C, H, W] matching `inputShape` → [N, ...outputShape]. */
  forward(x: Tensor, opts?: ForwardOptions): Tensor;
  /** Like `forward`, also returning every node's output by node name (feature maps for the dashboard). */
  forwardWithActivations(x: Tensor, opts?: ForwardOptions): { output: Tensor; activations: Map<string, Tensor> };
  /** Sets every parameter gradient to zero. */
  zeroGrad(): void;
  /** Number of trainable values. */
  paramCount(): number;
  /** A text table: node, type, output shape, parameter count. */
  summary(): string;
}

export interface BuildOptions {
  /** Seed of the parameter initialisation; default 0. */
  seed?: number;
}

function makeParam(name: string, shape: readonly number[]): Param {
  let n = 1;
  for (const d of shape) n *= d;
  return { name, shape: [...shape], data: new Float32Array(n), grad: new Float32Array(n) };
}

class GraphModel implements Model {
  readonly spec: ModelSpec;
  readonly inputShape: [number, number, number];
  readonly outputShape: number[];
  readonly nodes: ModelNode[];
  readonly params: Param[] = [];
  readonly buffers: Param[] = [];
  private readonly plan: ModelPlan;
  private readonly byName = new Map<string, Param>();
  private readonly label: string;
  /**
   * conv2d nodes computed together with the ReLU that alone reads them (and the 2×2 max pooling
   * that alone reads that) by `F.conv2dRelu`: the last node of the chain, whose output it is.
   */
  private readonly fused = new Map<string, { last: string; pool: boolean }>();
  /**
   * batchNorm2d nodes computed together with the ReLU / leaky ReLU (slope ≥ 0) that alone reads
   * them by `F.batchNorm2dRelu`: the activation node, whose output it is, and its slope.
   */
  private readonly actChains = new Map<string, { last: string; slope: number }>();
  /** The ReLU and pooling nodes of those chains. */
  private readonly fusedAway = new Set<string>();

  constructor(plan: ModelPlan, seed: number) {
    this.plan = plan;
    this.spec = plan.spec;
    this.inputShape = plan.inputShape;
    this.outputShape = plan.outputShape;
    this.label = plan.spec.name ?? 'model';
    this.nodes = plan.nodes.map((n) => ({ name: n.name, type: n.layer.type, inputs: [...n.inputs], outputShape: [...n.outputShape], params: n.params.map((p) => p.name) }));
    this.planFusions(plan);
    const rules = initRules(plan, plan.spec.init);
    for (const node of plan.nodes) {
      for (const p of node.params) {
        const param = makeParam(p.name, p.shape);
        fillParam(param.data, param.shape, rules.get(p.name)!, seed, this.params.length);
        this.params.push(param);
        this.byName.set(p.name, param);
      }
      for (const b of node.buffers) {
        const buffer = makeParam(b.name, b.shape);
        fillParam(buffer.data, buffer.shape, rules.get(b.name)!, seed, -1);
        this.buffers.push(buffer);
        this.byName.set(b.name, buffer);
      }
    }
  }

  private planFusions(plan: ModelPlan): void {
    const readers = new Map<string, NodePlan[]>();
    for (const node of plan.nodes) for (const inp of node.inputs) readers.set(inp, [...(readers.get(inp) ?? []), node]);
    // The only reader of `name`, unless `name` is also the model's output.
    const soleReader = (name: string): NodePlan | undefined => {
      const r = readers.get(name);
      return r?.length === 1 && name !== plan.output ? r[0] : undefined;
    };
    for (const node of plan.nodes) {
      if (node.layer.type !== 'conv2d') continue;
      const act = soleReader(node.name);
      if (act?.layer.type !== 'relu') continue;
      const pool = soleReader(act.name);
      const pl = pool?.layer;
      const pool2x2 = pl?.type === 'maxPool2d' && [...pl.kernelSize, ...pl.stride].every((v) => v === 2) && pl.padding[0] === 0 && pl.padding[1] === 0;
      const last = pool2x2 ? pool! : act;
      this.fused.set(node.name, { last: last.name, pool: pool2x2 });
      this.fusedAway.add(act.name);
      if (pool2x2) this.fusedAway.add(last.name);
    }
    for (const node of plan.nodes) {
      if (node.layer.type !== 'batchNorm2d') continue;
      const act = soleReader(node.name)?.layer;
      const slope = act?.type === 'relu' ? 0 : act?.type === 'leakyRelu' ? act.negativeSlope : -1;
      if (slope < 0) continue;
      const last = soleReader(node.name)!.name;
      this.actChains.set(node.name, { last, slope });
      this.fusedAway.add(last);
    }
  }

  forward(x: Tensor, opts: ForwardOptions = {}): Tensor {
    return this.run(x, opts, false).output;
  }

  forwardWithActivations(x: Tensor, opts: ForwardOptions = {}): { output: Tensor; activations: Map<string, Tensor> } {
    return this.run(x, opts, true);
  }

  zeroGrad(): void {
    for (const p of this.params) p.grad.fill(0);
  }

  paramCount(): number {
    let n = 0;
    for (const p of this.params) n += p.data.length;
    return n;
  }

  summary(): string {
    const count = (names: string[]): number => names.reduce((s, n) => s + this.byName.get(n)!.data.length, 0);
    const rows = [
      ['node', 'type', 'inputs', 'output shape', 'params'],
      ['input', 'input', '', fmt(this.inputShape), '0'],
      ...this.nodes.map((n) => [n.name, n.type, n.inputs.join(', '), fmt(n.outputShape), count(n.params).toLocaleString('en-US')]),
    ];
    const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
    const line = (r: string[]): string => r.map((cell, c) => (c === r.length - 1 ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ');
    const rule = '-'.repeat(widths.reduce((s, w) => s + w + 2, -2));
    return [
      `${this.label}`,
      line(rows[0]),
      rule,
      ...rows.slice(1).map(line),
      rule,
      `total params: ${this.paramCount().toLocaleString('en-US')} trainable, ${this.buffers.reduce((s, b) => s + b.data.length, 0).toLocaleString('en-US')} in buffers`,
    ].join('\n');
  }

  private run(x: Tensor, opts: ForwardOptions, keepAll: boolean): { output: Tensor; activations: Map<string, Tensor> } {
    const [c, h, w] = this.inputShape;
    assert(
      x.shape.length === 4 && x.shape[0] >= 1 && x.shape[1] === c && x.shape[2] === h && x.shape[3] === w,
      () => `${this.label}.forward: input ${fmt(x.shape)} does not match [N, ${c}, ${h}, ${w}]`,
    );
    const training = opts.training ?? false;
    const values = new Map<string, Tensor>([['input', x]]);
    // Drop each intermediate once its last reader has run, unless every activation is wanted.
    const lastUse = new Map<string, number>();
    this.plan.nodes.forEach((n, i) => {
      if (keepAll || this.plan.needed.has(n.name)) n.inputs.forEach((inp) => lastUse.set(inp, i));
    });
    const activations = new Map<string, Tensor>();
    this.plan.nodes.forEach((node, i) => {
      if (!keepAll && !this.plan.needed.has(node.name)) return;
      // Every activation wanted: no fused chains, so each node's own output exists.
      if (!keepAll && this.fusedAway.has(node.name)) return;
      const chain = keepAll ? undefined : this.fused.get(node.name);
      const act = keepAll ? undefined : this.actChains.get(node.name);
      const xs = node.inputs.map((n) => values.get(n)!);
      const profiler = activeProfiler();
      const kind = chain !== undefined ? `${node.layer.type}+relu${chain.pool ? '+pool' : ''}` : act !== undefined ? `${node.layer.type}+${act.slope === 0 ? 'relu' : 'leakyRelu'}` : node.layer.type;
      const t0 = profiler === null ? 0 : profiler.now();
      if (profiler !== null) setProfileTag({ node: node.name, kind });
      const out =
        chain !== undefined ? this.evalFused(node, xs[0], chain.pool) : act !== undefined ? this.evalAct(node, xs, training, act.slope) : this.evalNode(node, xs, training, opts.rng);
      if (profiler !== null) {
        setProfileTag(null);
        profiler.add(node.name, kind, 'forward', profiler.now() - t0);
      }
      values.set(chain?.last ?? act?.last ?? node.name, out);
      if (keepAll) activations.set(node.name, out);
      if (!keepAll) for (const inp of node.inputs) if (lastUse.get(inp) === i && inp !== this.plan.output) values.delete(inp);
    });
    return { output: values.get(this.plan.output)!, activations };
  }

  private leaf(name: string): Tensor {
    return Tensor.fromParam(this.byName.get(name)!);
  }

  private optionalLeaf(name: string, present: boolean): Tensor | null {
    return present ? this.leaf(name) : null;
  }

  /** conv2d node → ReLU (→ 2×2 max pooling) in one op. */
  private evalFused(node: NodePlan, x: Tensor, pool: boolean): Tensor {
    const layer = node.layer;
    assert(layer.type === 'conv2d', () => `${this.label}: fused chain starts at ${node.name} (${layer.type}), not a conv2d`);
    const p = (suffix: string): string => `${node.name}.${suffix}`;
    const opts = { stride: layer.stride, padding: layer.padding, dilation: layer.dilation, groups: layer.groups };
    return F.conv2dRelu(x, this.leaf(p('weight')), this.optionalLeaf(p('bias'), layer.bias), opts, pool);
  }

  /** The options of batchNorm2d node `node`, with its running statistics. */
  private bnOptions(node: NodePlan, training: boolean): F.BatchNorm2dOptions {
    const layer = node.layer;
    assert(layer.type === 'batchNorm2d', () => `${this.label}: ${node.name} (${layer.type}) is not a batchNorm2d`);
    const p = (suffix: string): Float32Array => this.byName.get(`${node.name}.${suffix}`)!.data;
    return { training, eps: layer.eps, momentum: layer.momentum, runningMean: p('running_mean'), runningVar: p('running_var') };
  }

  /** batchNorm2d node → ReLU / leaky ReLU in one op. */
  private evalAct(node: NodePlan, xs: Tensor[], training: boolean, slope: number): Tensor {
    return F.batchNorm2dRelu(xs[0], this.leaf(`${node.name}.weight`), this.leaf(`${node.name}.bias`), this.bnOptions(node, training), slope);
  }

  private evalNode(node: NodePlan, xs: Tensor[], training: boolean, rng: Rng | undefined): Tensor {
    const x = xs[0];
    const layer = node.layer;
    const p = (suffix: string): string => `${node.name}.${suffix}`;
    switch (layer.type) {
      case 'conv2d':
        return F.conv2d(x, this.leaf(p('weight')), this.optionalLeaf(p('bias'), layer.bias), {
          stride: layer.stride,
          padding: layer.padding,
          dilation: layer.dilation,
          groups: layer.groups,
        });
      case 'convTranspose2d':
        return F.convTranspose2d(x, this.leaf(p('weight')), this.optionalLeaf(p('bias'), layer.bias), {
          stride: layer.stride,
          padding: layer.padding,
          outputPadding: layer.outputPadding,
        });
      case 'linear':
        return F.linear(x, this.leaf(p('weight')), this.optionalLeaf(p('bias'), layer.bias));
      case 'maxPool2d':
        return F.maxPool2d(x, layer);
      case 'avgPool2d':
        return F.avgPool2d(x, layer);
      case 'minPool2d':
        return F.minPool2d(x, layer);
      case 'globalAvgPool2d':
        return F.globalAvgPool2d(x);
      case 'batchNorm2d':
        return F.batchNorm2d(x, this.leaf(p('weight')), this.leaf(p('bias')), this.bnOptions(node, training));
      case 'relu':
        return F.relu(x);
      case 'leakyRelu':
        return F.leakyRelu(x, layer.negativeSlope);
      case 'sigmoid':
        return F.sigmoid(x);
      case 'tanh':
        return F.tanh(x);
      case 'flatten':
        return F.flatten(x);
      case 'dropout':
        assert(!training || layer.p === 0 || rng !== undefined, () => `${this.label}.forward: ${node.name} (dropout) needs opts.rng when training`);
        return F.dropout(x, { p: layer.p, training, rng });
      case 'upsampleNearest2d':
        return F.upsampleNearest2d(x, layer.scaleFactor);
      case 'add':
        return xs.slice(1).reduce((sum, t) => F.add(sum, t), x);
      case 'concat':
        return F.concat(xs, 1);
    }
  }
}

/**
 * Builds a model from a spec (which may come straight from untrusted JSON). Throws `ModelSpecError`
 * naming the field or the layer and shapes when the spec is malformed or its shapes do not fit.
 */
export function buildModel(spec: ModelSpec, opts: BuildOptions = {}): Model {
  const seed = opts.seed ?? 0;
  if (!Number.isInteger(seed)) throw new RangeError(`buildModel: seed must be an integer, got ${seed}`);
  return new GraphModel(planModel(spec), seed);
}

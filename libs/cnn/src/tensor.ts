// Float32 tensors with reverse-mode automatic differentiation.
//
// An op that reads a tensor requiring grad records its inputs and a backward closure on its
// output (see `record`). `out.backward()` sorts the recorded graph topologically (iteratively,
// so a 1000-layer net needs no deep recursion) and runs the closures from the output back. Each
// closure receives the gradient of its output as a flat Float32Array and ADDS its inputs'
// gradients into `input.gradSink()`. Leaves accumulate into `.grad` across backward passes
// like PyTorch; intermediate gradients live only during one pass.
//
// Storage sharing: `fromData` wraps a Float32Array without copying and `Tensor.fromParam(p)`
// wraps a model parameter's `data` AND accumulates its gradient straight into `p.grad`, so
// after `loss.backward()` every `model.params[i].grad` holds the gradient with no copy.

import { assert, fmt } from './assert.ts';
import { addIntoWasm } from './kernels/wasm/elementwise.ts';
import { type ProfileTag, activeProfiler, profileTag } from './profile.ts';
import type { Param } from './types.ts';

export interface TensorOptions {
  /** Track operations on this tensor so `backward()` computes its gradient. Default false. */
  requiresGrad?: boolean;
  /**
   * Storage for the accumulated gradient (length = numel), e.g. a `Param.grad`. Backward adds
   * into it in place; `.grad` is a Tensor viewing it. Default: allocated on first backward.
   */
  gradBuffer?: Float32Array;
}

let gradEnabled = true;

/** Runs `fn` with graph recording off (inference): ops allocate no backward closures. */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** False inside `noGrad`. */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

/**
 * sink[i] += g[i] for i < sink.length (g as long): the gradient sums of backward closures, on the
 * WebAssembly kernels for large arrays, the same bytes either way.
 */
export function accumulate(sink: Float32Array, g: Float32Array): void {
  if (!addIntoWasm(sink, g)) for (let i = 0; i < sink.length; i++) sink[i] += g[i];
}

/** Product of the dimensions; 1 for a scalar shape `[]`. */
export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function checkShape(shape: readonly number[], length: number, op: string): void {
  for (const d of shape) assert(Number.isInteger(d) && d >= 0, () => `${op}: invalid shape ${fmt(shape)}`);
  assert(numelOf(shape) === length, () => `${op}: shape ${fmt(shape)} needs ${numelOf(shape)} values, got ${length}`);
}

/** Backward closure: receives d(loss)/d(output) and adds into its inputs' `gradSink()`. */
export type BackwardFn = (gradOut: Float32Array) => void;

export class Tensor {
  readonly shape: number[];
  readonly data: Float32Array;
  /** Accumulated gradient of a leaf (same shape), filled by `backward()`; null until then. */
  grad: Tensor | null = null;
  requiresGrad: boolean;
  /** Graph edge: the tensors this one was computed from (null for leaves). */
  private inputs: Tensor[] | null = null;
  private backwardFn: BackwardFn | null = null;
  /** Gradient of a non-leaf during one backward pass. */
  private pending: Float32Array | null = null;
  /** The model node that recorded this tensor's backward, when a profiler was installed. */
  private tag: ProfileTag | null = null;

  /** Wraps `data` (no copy). Prefer `tensor()`, `fromData()` or `zeros()`. */
  constructor(data: Float32Array, shape: readonly number[], opts: TensorOptions = {}) {
    checkShape(shape, data.length, 'tensor');
    this.data = data;
    this.shape = shape.slice();
    this.requiresGrad = opts.requiresGrad ?? false;
    if (opts.gradBuffer) {
      assert(opts.gradBuffer.length === data.length, () => `tensor: gradBuffer has ${opts.gradBuffer!.length} values, tensor ${fmt(shape)} has ${data.length}`);
      this.grad = new Tensor(opts.gradBuffer, shape);
    }
  }

  /**
   * A leaf viewing a model parameter: `data` is `param.data` (optimizer updates show through)
   * and backward accumulates into `param.grad` in place.
   */
  static fromParam(param: Param): Tensor {
    return new Tensor(param.data, param.shape, { requiresGrad: true, gradBuffer: param.grad });
  }

  get numel(): number {
    return this.data.length;
  }

  get ndim(): number {
    return this.shape.length;
  }

  /** PyTorch `size()`: the shape, or one dimension (negative counts from the end). */
  size(): number[];
  size(dim: number): number;
  size(dim?: number): number | number[] {
    if (dim === undefined) return this.shape.slice();
    const d = dim < 0 ? dim + this.shape.length : dim;
    assert(d >= 0 && d < this.shape.length, () => `size: dim ${dim} out of range for shape ${fmt(this.shape)}`);
    return this.shape[d];
  }

  /** The value of a one-element tensor. */
  item(): number {
    assert(this.data.length === 1, () => `item: tensor of shape ${fmt(this.shape)} has ${this.data.length} values, expected 1`);
    return this.data[0];
  }

  /** Same storage, cut from the graph. */
  detach(): Tensor {
    return new Tensor(this.data, this.shape);
  }

  /** True for tensors not produced by a recorded op. */
  get isLeaf(): boolean {
    return this.backwardFn === null;
  }

  /**
   * Where backward closures add this tensor's gradient: `.grad.data` for a leaf (allocated on
   * first use), a per-pass buffer otherwise. Only meaningful inside a backward closure.
   */
  gradSink(): Float32Array {
    if (this.backwardFn === null) {
      if (this.grad === null) this.grad = new Tensor(new Float32Array(this.data.length), this.shape);
      return this.grad.data;
    }
    if (this.pending === null) this.pending = pooledZeros(this.data.length);
    return this.pending;
  }

  /**
   * Adds `g` (same length) into this tensor's gradient, taking ownership of `g`: for a non-leaf
   * with no gradient yet, `g` becomes it without a copy. For backward closures passing on their
   * own `gradOut` unchanged (views such as reshape), which nothing else reads afterwards.
   */
  takeGrad(g: Float32Array): void {
    if (this.backwardFn !== null && this.pending === null && g.length === this.data.length) {
      this.pending = g;
      return;
    }
    accumulate(this.gradSink(), g);
  }

  /** Attaches a graph edge; used by ops through `record`. */
  setGradFn(inputs: Tensor[], fn: BackwardFn): void {
    this.inputs = inputs;
    this.backwardFn = fn;
    this.requiresGrad = true;
    this.tag = profileTag();
  }

  /**
   * Back-propagates from this tensor. `gradOut` (same shape) defaults to 1 for a one-element
   * tensor. Leaves that require grad ACCUMULATE into `.grad`, like PyTorch.
   */
  backward(gradOut?: Tensor): void {
    if (!this.requiresGrad) throw new Error(`backward: tensor of shape ${fmt(this.shape)} does not require grad (no input required grad, or it was computed under noGrad)`);
    let seed: Float32Array;
    if (gradOut === undefined) {
      assert(this.data.length === 1, () => `backward: gradOut is required for a non-scalar output of shape ${fmt(this.shape)}`);
      seed = new Float32Array([1]);
    } else {
      assert(gradOut.data.length === this.data.length, () => `backward: gradOut has shape ${fmt(gradOut.shape)}, output has shape ${fmt(this.shape)}`);
      seed = gradOut.data;
    }
    const order = topoSort(this);
    const sink = this.gradSink();
    for (let i = 0; i < seed.length; i++) sink[i] += seed[i];
    const profiler = activeProfiler();
    // Reverse topological order: every consumer has added its share before a node runs.
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i];
      const g = t.pending;
      if (t.backwardFn === null || g === null) continue;
      t.pending = null;
      if (profiler === null || t.tag === null) {
        t.backwardFn(g);
      } else {
        const t0 = profiler.now();
        t.backwardFn(g);
        profiler.add(t.tag.node, t.tag.kind, 'backward', profiler.now() - t0);
      }
      // The gradient is spent, unless an input took it over (`takeGrad`): later gradients reuse it.
      if (!t.parents.some((p) => p.pending === g)) recycle(g);
    }
  }

  /** Inputs recorded for this tensor (for graph walks); empty for leaves. */
  get parents(): readonly Tensor[] {
    return this.inputs ?? [];
  }
}

/**
 * Spent gradient buffers of non-leaf tensors by length, reused by `gradSink` (zeroed) in later
 * backward passes of this thread: a training step then allocates no gradient buffers after the
 * first, and the garbage collector has that much less to do. At most POOL_MAX_BYTES are kept.
 */
const gradPool = new Map<number, Float32Array[]>();
const POOL_MAX_BYTES = 64 << 20;
let pooledBytes = 0;

function pooledZeros(length: number): Float32Array {
  const buf = gradPool.get(length)?.pop();
  if (buf === undefined) return new Float32Array(length);
  pooledBytes -= buf.byteLength;
  return buf.fill(0);
}

function recycle(buf: Float32Array): void {
  // Only whole buffers of their own (not views into another array) are reused.
  if (buf.byteOffset !== 0 || buf.byteLength !== buf.buffer.byteLength || pooledBytes + buf.byteLength > POOL_MAX_BYTES) return;
  let list = gradPool.get(buf.length);
  if (list === undefined) gradPool.set(buf.length, (list = []));
  list.push(buf);
  pooledBytes += buf.byteLength;
}

/** Post-order of the graph below `root` restricted to tensors requiring grad, without recursion. */
function topoSort(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>([root]);
  const stack: Tensor[] = [root];
  const next: number[] = [0];
  while (stack.length > 0) {
    const top = stack.length - 1;
    const t = stack[top];
    const parents = t.parents;
    if (next[top] < parents.length) {
      const p = parents[next[top]++];
      if (p.requiresGrad && !seen.has(p)) {
        seen.add(p);
        stack.push(p);
        next.push(0);
      }
    } else {
      order.push(t);
      stack.pop();
      next.pop();
    }
  }
  return order;
}

/** True when an op on `inputs` must record a backward closure. */
export function tracking(...inputs: (Tensor | null | undefined)[]): boolean {
  if (!gradEnabled) return false;
  for (const t of inputs) if (t && t.requiresGrad) return true;
  return false;
}

/** Attaches `fn` to `out` with the given inputs (nulls dropped). Call only when `tracking()`. */
export function record(out: Tensor, inputs: (Tensor | null | undefined)[], fn: BackwardFn): Tensor {
  out.setGradFn(inputs.filter((t): t is Tensor => !!t && t.requiresGrad), fn);
  return out;
}

/** A new tensor holding a float32 COPY of `data`. */
export function tensor(data: ArrayLike<number>, shape: readonly number[], opts: TensorOptions = {}): Tensor {
  checkShape(shape, data.length, 'tensor');
  return new Tensor(Float32Array.from(data), shape, opts);
}

/** Wraps `data` WITHOUT copying: writes to either show in the other. */
export function fromData(data: Float32Array, shape: readonly number[], opts: TensorOptions = {}): Tensor {
  return new Tensor(data, shape, opts);
}

export function zeros(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  return new Tensor(new Float32Array(numelOf(shape)), shape, opts);
}

export function ones(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  return new Tensor(new Float32Array(numelOf(shape)).fill(1), shape, opts);
}

/** `fromData` shorthand used by ops for results. */
export function result(data: Float32Array, shape: readonly number[]): Tensor {
  return new Tensor(data, shape);
}

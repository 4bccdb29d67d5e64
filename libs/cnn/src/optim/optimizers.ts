// SGD, Adam and AdamW with exactly PyTorch's update rules (torch.optim, single-tensor path, non-amsgrad,
// maximize=False). They read `p.grad`, update `p.data` in place and allocate nothing per step; the state
// lives in flat Float32Arrays named `${param}.momentum_buffer`, `${param}.exp_avg`, `${param}.exp_avg_sq`.

import { adamWasm, sgdMomentumWasm } from '../kernels/wasm/optim.ts';
import type { NamedArray, Param } from '../types.ts';
import { describeValue, FieldChecker, isPlainObject, OptimizerSpecError } from '../model/check.ts';
import { loadNamedArrays } from '../model/params.ts';

export type OptimizerSpec =
  | {
      type: 'sgd';
      /** Base learning rate (the schedule scales it; `step(lr)` receives the scheduled value). */
      lr: number;
      /** Default 0 (plain SGD). Must be in [0, 1). */
      momentum?: number;
      /** Default 0. */
      dampening?: number;
      /** Default false; needs momentum > 0 and dampening 0. */
      nesterov?: boolean;
      /** L2 penalty added to the gradient; default 0. */
      weightDecay?: number;
    }
  | {
      type: 'adam' | 'adamw';
      lr: number;
      /** Default [0.9, 0.999]. */
      betas?: [number, number];
      /** Default 1e-8. */
      eps?: number;
      /** Adam: L2 added to the gradient, default 0. AdamW: decoupled decay `p *= 1 - lr * wd`, default 0.01. */
      weightDecay?: number;
    };

export interface Optimizer {
  /** The validated spec with every default filled in. */
  readonly spec: Readonly<OptimizerSpec>;
  /** Applies one update with learning rate `lr` (normally `learningRateAt(schedule, spec.lr, stepCount, total)`). */
  step(lr: number): void;
  /** Number of `step` calls so far (restored by `loadStateArrays`). */
  readonly stepCount: number;
  /** Copies of the state arrays, in parameter order. Empty for SGD without momentum. */
  stateArrays(): NamedArray[];
  /** Restores state saved by `stateArrays()` after `stepCount` steps; checks every name and shape. */
  loadStateArrays(arrays: readonly NamedArray[], stepCount: number): void;
}

const check: FieldChecker = new FieldChecker((message, path) => new OptimizerSpecError(message, path));

/** Validates an untrusted optimizer spec (e.g. from a job's JSON) and fills in PyTorch's defaults. */
export function validateOptimizerSpec(value: unknown, path = 'optimizer'): Required<OptimizerSpec> {
  if (!isPlainObject(value)) check.fail(path, `expected an object, got ${describeValue(value)}`);
  const type = check.oneOf(value.type, `${path}.type`, ['sgd', 'adam', 'adamw']);
  if (type === 'sgd') {
    const o = check.object(value, path, ['type', 'lr', 'momentum', 'dampening', 'nesterov', 'weightDecay']);
    const lr = check.number(o.lr, `${path}.lr`, { min: 0 });
    const momentum = o.momentum === undefined ? 0 : check.number(o.momentum, `${path}.momentum`, { min: 0, max: 1, exclusiveMax: true });
    const dampening = o.dampening === undefined ? 0 : check.number(o.dampening, `${path}.dampening`, { min: 0, max: 1 });
    const nesterov = o.nesterov === undefined ? false : check.boolean(o.nesterov, `${path}.nesterov`);
    const weightDecay = o.weightDecay === undefined ? 0 : check.number(o.weightDecay, `${path}.weightDecay`, { min: 0 });
    if (nesterov && (momentum === 0 || dampening !== 0)) {
      check.fail(`${path}.nesterov`, `Nesterov momentum requires momentum > 0 and dampening 0, got momentum ${momentum}, dampening ${dampening}`);
    }
    return { type, lr, momentum, dampening, nesterov, weightDecay };
  }
  const o = check.object(value, path, ['type', 'lr', 'betas', 'eps', 'weightDecay']);
  const lr = check.number(o.lr, `${path}.lr`, { min: 0 });
  let betas: [number, number] = [0.9, 0.999];
  if (o.betas !== undefined) {
    if (!Array.isArray(o.betas) || o.betas.length !== 2) check.fail(`${path}.betas`, 'expected a pair [beta1, beta2]');
    betas = [
      check.number(o.betas[0], `${path}.betas[0]`, { min: 0, max: 1, exclusiveMax: true }),
      check.number(o.betas[1], `${path}.betas[1]`, { min: 0, max: 1, exclusiveMax: true }),
    ];
  }
  const eps = o.eps === undefined ? 1e-8 : check.number(o.eps, `${path}.eps`, { min: 0 });
  const weightDecay = o.weightDecay === undefined ? (type === 'adamw' ? 0.01 : 0) : check.number(o.weightDecay, `${path}.weightDecay`, { min: 0 });
  return { type, lr, betas, eps, weightDecay } as Required<OptimizerSpec>;
}

function checkStepLr(lr: number): void {
  if (!Number.isFinite(lr) || lr < 0) throw new OptimizerSpecError(`optimizer.step: learning rate must be a finite number >= 0, got ${lr}`, 'lr');
}

function checkStepCount(stepCount: number): void {
  if (!Number.isSafeInteger(stepCount) || stepCount < 0) {
    throw new OptimizerSpecError(`optimizer.loadStateArrays: stepCount must be a non-negative integer, got ${stepCount}`, 'stepCount');
  }
}

function stateFor(params: readonly Param[], suffix: string): Param[] {
  return params.map((p) => ({ name: `${p.name}.${suffix}`, shape: p.shape, data: new Float32Array(p.data.length), grad: new Float32Array(0) }));
}

/** Interleaves per-parameter state arrays in parameter order: p0.a, p0.b, p1.a, p1.b, ... */
function interleave(...groups: Param[][]): Param[] {
  const out: Param[] = [];
  for (let i = 0; i < (groups[0]?.length ?? 0); i++) for (const g of groups) out.push(g[i]);
  return out;
}

function copies(arrays: readonly Param[]): NamedArray[] {
  return arrays.map((a) => ({ name: a.name, shape: [...a.shape], data: new Float32Array(a.data) }));
}

function checkParams(params: readonly Param[]): void {
  const seen = new Set<string>();
  for (const p of params) {
    if (seen.has(p.name)) throw new OptimizerSpecError(`createOptimizer: duplicate parameter name ${p.name}`, p.name);
    seen.add(p.name);
    if (p.grad.length !== p.data.length) {
      throw new OptimizerSpecError(`createOptimizer: ${p.name} has ${p.data.length} values but a gradient of ${p.grad.length}`, p.name);
    }
  }
}

/**
 * The common SGD case (momentum, no dampening, weight decay or Nesterov) after the first step:
 * buf = momentum·buf + g; p -= lr·buf, with the same float64 expressions and float32 roundings as
 * the general loop in `createSgd` ((1 − 0)·g is g exactly), in a loop V8 keeps tight.
 */
function heavyBallStep(p: Float32Array, grad: Float32Array, buf: Float32Array, lr: number, momentum: number): void {
  if (sgdMomentumWasm(p, grad, buf, lr, momentum)) return;
  for (let i = 0; i < p.length; i++) {
    const b = Math.fround(momentum * buf[i] + grad[i]);
    buf[i] = b;
    p[i] -= lr * b;
  }
}

/** torch.optim.SGD: g += wd*p; buf = g (first step) or momentum*buf + (1-dampening)*g; g = nesterov ? g + momentum*buf : buf; p -= lr*g. */
function createSgd(spec: Extract<Required<OptimizerSpec>, { type: 'sgd' }>, params: readonly Param[]): Optimizer {
  const { momentum, dampening, nesterov, weightDecay } = spec;
  const buffers = momentum !== 0 ? stateFor(params, 'momentum_buffer') : [];
  let stepCount = 0;
  return {
    spec,
    get stepCount() {
      return stepCount;
    },
    step(lr) {
      checkStepLr(lr);
      const first = stepCount === 0;
      for (let k = 0; k < params.length; k++) {
        const p = params[k].data;
        const grad = params[k].grad;
        const buf = momentum !== 0 ? buffers[k].data : undefined;
        if (buf !== undefined && !first && weightDecay === 0 && dampening === 0 && !nesterov) {
          heavyBallStep(p, grad, buf, lr, momentum);
          continue;
        }
        for (let i = 0; i < p.length; i++) {
          let g = grad[i];
          if (weightDecay !== 0) g += weightDecay * p[i];
          if (buf !== undefined) {
            // Rounded to float32 like torch's buffer, then used for the update.
            buf[i] = first ? g : momentum * buf[i] + (1 - dampening) * g;
            g = nesterov ? g + momentum * buf[i] : buf[i];
          }
          p[i] -= lr * g;
        }
      }
      stepCount++;
    },
    stateArrays: () => copies(buffers),
    loadStateArrays(arrays, count) {
      checkStepCount(count);
      loadNamedArrays(buffers, arrays);
      stepCount = count;
    },
  };
}

/**
 * torch.optim.Adam / AdamW: (AdamW: p *= 1 - lr*wd; Adam: g += wd*p); m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
 * p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).
 */
function createAdam(spec: Extract<Required<OptimizerSpec>, { type: 'adam' | 'adamw' }>, params: readonly Param[]): Optimizer {
  const { betas, eps, weightDecay } = spec;
  const [beta1, beta2] = betas;
  const decoupled = spec.type === 'adamw';
  const expAvg = stateFor(params, 'exp_avg');
  const expAvgSq = stateFor(params, 'exp_avg_sq');
  let stepCount = 0;
  return {
    spec,
    get stepCount() {
      return stepCount;
    },
    step(lr) {
      checkStepLr(lr);
      const t = stepCount + 1;
      const stepSize = lr / (1 - beta1 ** t);
      const bias2Sqrt = Math.sqrt(1 - beta2 ** t);
      const decay = decoupled ? 1 - lr * weightDecay : 1;
      const l2 = decoupled ? 0 : weightDecay;
      const constants = { decay, l2, beta1, beta2, stepSize, bias2Sqrt, eps };
      for (let k = 0; k < params.length; k++) {
        const p = params[k].data;
        const grad = params[k].grad;
        const m = expAvg[k].data;
        const v = expAvgSq[k].data;
        // The WebAssembly loop gives the same bytes (p·1 is p, so it always applies the decay).
        if (adamWasm(p, grad, m, v, constants)) continue;
        for (let i = 0; i < p.length; i++) {
          if (decay !== 1) p[i] *= decay;
          const g = grad[i] + l2 * p[i];
          m[i] = beta1 * m[i] + (1 - beta1) * g;
          v[i] = beta2 * v[i] + (1 - beta2) * g * g;
          p[i] -= (stepSize * m[i]) / (Math.sqrt(v[i]) / bias2Sqrt + eps);
        }
      }
      stepCount = t;
    },
    stateArrays: () => copies(interleave(expAvg, expAvgSq)),
    loadStateArrays(arrays, count) {
      checkStepCount(count);
      loadNamedArrays(interleave(expAvg, expAvgSq), arrays);
      stepCount = count;
    },
  };
}

/** Creates an optimizer over `params` (their `data` is updated in place from their `grad`). */
export function createOptimizer(spec: OptimizerSpec, params: readonly Param[]): Optimizer {
  const full = validateOptimizerSpec(spec);
  checkParams(params);
  return full.type === 'sgd' ? createSgd(full, params) : createAdam(full, params);
}

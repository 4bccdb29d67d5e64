// Learning-rate schedules as pure functions of the (0-based) step, matching torch.optim.lr_scheduler.
//
// Warm-up convention (all schedules but onecycle, which has its own): for step < warmupSteps the rate
// rises linearly from 0, lr = baseLr * step / warmupSteps; afterwards the schedule runs as if it had started
// at step `warmupSteps` and lasted `totalSteps - warmupSteps` steps.

import { describeValue, FieldChecker, isPlainObject, OptimizerSpecError } from '../model/check.ts';

export type ScheduleSpec = (
  | { type: 'constant' }
  /** torch StepLR: lr = baseLr * gamma^floor(step / stepSize); gamma defaults to 0.1. */
  | { type: 'step'; stepSize: number; gamma?: number }
  /** torch CosineAnnealingLR(T_max = totalSteps, eta_min = minLr); minLr defaults to 0. */
  | { type: 'cosine'; minLr?: number }
  /** torch OneCycleLR(max_lr = baseLr, anneal_strategy='cos', three_phase=False, cycle_momentum=False). */
  | { type: 'onecycle'; pctStart?: number; divFactor?: number; finalDivFactor?: number }
) & {
  /** Linear warm-up from 0 over this many steps; default 0. Not allowed with onecycle. */
  warmupSteps?: number;
};

const check: FieldChecker = new FieldChecker((message, path) => new OptimizerSpecError(message, path));

/** Validates an untrusted schedule spec and fills in the defaults. */
export function validateScheduleSpec(value: unknown, path = 'schedule'): ScheduleSpec {
  if (!isPlainObject(value)) check.fail(path, `expected an object, got ${describeValue(value)}`);
  const type = check.oneOf(value.type, `${path}.type`, ['constant', 'step', 'cosine', 'onecycle']);
  const warm = (o: Record<string, unknown>): number => (o.warmupSteps === undefined ? 0 : check.integer(o.warmupSteps, `${path}.warmupSteps`, 0));
  switch (type) {
    case 'constant': {
      const o = check.object(value, path, ['type', 'warmupSteps']);
      return { type, warmupSteps: warm(o) };
    }
    case 'step': {
      const o = check.object(value, path, ['type', 'stepSize', 'gamma', 'warmupSteps']);
      const stepSize = check.integer(o.stepSize, `${path}.stepSize`, 1);
      const gamma = o.gamma === undefined ? 0.1 : check.number(o.gamma, `${path}.gamma`, { min: 0 });
      return { type, stepSize, gamma, warmupSteps: warm(o) };
    }
    case 'cosine': {
      const o = check.object(value, path, ['type', 'minLr', 'warmupSteps']);
      const minLr = o.minLr === undefined ? 0 : check.number(o.minLr, `${path}.minLr`, { min: 0 });
      return { type, minLr, warmupSteps: warm(o) };
    }
    case 'onecycle': {
      const o = check.object(value, path, ['type', 'pctStart', 'divFactor', 'finalDivFactor', 'warmupSteps']);
      if (o.warmupSteps !== undefined && o.warmupSteps !== 0) {
        check.fail(`${path}.warmupSteps`, 'onecycle has its own warm-up phase (pctStart); warmupSteps is not allowed');
      }
      const pctStart = o.pctStart === undefined ? 0.3 : check.number(o.pctStart, `${path}.pctStart`, { min: 0, max: 1, exclusiveMin: true, exclusiveMax: true });
      const divFactor = o.divFactor === undefined ? 25 : check.number(o.divFactor, `${path}.divFactor`, { min: 0, exclusiveMin: true });
      const finalDivFactor = o.finalDivFactor === undefined ? 1e4 : check.number(o.finalDivFactor, `${path}.finalDivFactor`, { min: 0, exclusiveMin: true });
      return { type, pctStart, divFactor, finalDivFactor, warmupSteps: 0 };
    }
  }
}

/** torch's _annealing_cos: from `start` (pct 0) to `end` (pct 1) along half a cosine. */
function annealCos(start: number, end: number, pct: number): number {
  return end + ((start - end) / 2) * (Math.cos(Math.PI * pct) + 1);
}

/** OneCycleLR.get_lr for two phases; a zero-length phase (torch would divide by zero) yields its end value. */
function oneCycle(s: { pctStart: number; divFactor: number; finalDivFactor: number }, maxLr: number, step: number, total: number): number {
  const initialLr = maxLr / s.divFactor;
  const minLr = initialLr / s.finalDivFactor;
  const phases = [
    { end: s.pctStart * total - 1, from: initialLr, to: maxLr },
    { end: total - 1, from: maxLr, to: minLr },
  ];
  let start = 0;
  for (let i = 0; i < phases.length; i++) {
    const ph = phases[i];
    if (step <= ph.end || i === phases.length - 1) {
      const span = ph.end - start;
      return span === 0 ? ph.to : annealCos(ph.from, ph.to, (step - start) / span);
    }
    start = ph.end;
  }
  throw new Error('unreachable');
}

/**
 * The learning rate for 0-based `step` of a run of `totalSteps` steps, `baseLr` being the optimizer's lr
 * (the peak for onecycle). Pure: the same arguments always give the same number.
 */
export function learningRateAt(schedule: ScheduleSpec, baseLr: number, step: number, totalSteps: number): number {
  const s = validateScheduleSpec(schedule);
  if (!Number.isFinite(baseLr) || baseLr < 0) throw new OptimizerSpecError(`learningRateAt: baseLr must be a finite number >= 0, got ${baseLr}`, 'lr');
  if (!Number.isSafeInteger(totalSteps) || totalSteps < 1) {
    throw new OptimizerSpecError(`learningRateAt: totalSteps must be a positive integer, got ${totalSteps}`, 'totalSteps');
  }
  if (!Number.isSafeInteger(step) || step < 0 || step >= totalSteps) {
    throw new OptimizerSpecError(`learningRateAt: step must be an integer in [0, ${totalSteps}), got ${step}`, 'step');
  }
  const warmup = s.warmupSteps ?? 0;
  if (warmup >= totalSteps) {
    throw new OptimizerSpecError(`learningRateAt: warmupSteps (${warmup}) must be less than totalSteps (${totalSteps})`, 'schedule.warmupSteps');
  }
  if (step < warmup) return (baseLr * step) / warmup;
  const t = step - warmup;
  const total = totalSteps - warmup;
  switch (s.type) {
    case 'constant':
      return baseLr;
    case 'step':
      return baseLr * s.gamma! ** Math.floor(t / s.stepSize);
    case 'cosine': {
      const minLr = s.minLr!;
      return minLr + ((baseLr - minLr) * (1 + Math.cos((Math.PI * t) / total))) / 2;
    }
    case 'onecycle':
      return oneCycle({ pctStart: s.pctStart!, divFactor: s.divFactor!, finalDivFactor: s.finalDivFactor! }, baseLr, t, total);
  }
}

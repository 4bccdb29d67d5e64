// Training steps of the zoo's vision models, profiled per op (`npm run bench -- --zoo`):
//   lenet5 on 1×28×28 (batch 32, a 2-thread shard of batch 64), resnet8 on 1×28×28 (batch 16, a
//   Fashion-MNIST shard), unet base 4 on 1×96×96 (batch 2, an mnist-segmentation shard), yolo base
//   8 on 1×96×96 (batch 4, an mnist-detection shard).
// One thread; each step is forward (training mode), the task's loss and backward on fixed random
// data, timed in CPU time (the machine may be shared). Reports the median step time and, per layer type, forward and backward milliseconds per
// step and the convolutions' GFLOP/s. With `--zoo-compare DIR` (a copy of the repository, e.g.
// `git archive HEAD libs/cnn | tar -x -C DIR`) the same steps also run on DIR's libs/cnn, rounds
// interleaved with ours, and the step-time ratios are printed. Also runs on its own (it needs only
// @stride/cnn): `node --import tsx tools/bench/src/zoo.ts [models] [--steps N] [--reps N] [--compare DIR]`.
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import * as cnn from '@stride/cnn';
import { median } from './stats.ts';

type Cnn = typeof cnn;

interface ZooCase {
  name: string;
  model: string;
  options: cnn.ZooModelOptions;
  batch: number;
  task: 'classification' | 'segmentation' | 'detection';
}

export const ZOO_CASES: readonly ZooCase[] = [
  { name: 'lenet5', model: 'lenet5', options: {}, batch: 32, task: 'classification' },
  { name: 'resnet8', model: 'resnet8', options: { numClasses: 10 }, batch: 16, task: 'classification' },
  { name: 'unet', model: 'unet', options: { baseChannels: 4, height: 96, width: 96, numClasses: 11 }, batch: 2, task: 'segmentation' },
  { name: 'yolo', model: 'yolo', options: { baseChannels: 8, height: 96, width: 96, numClasses: 10 }, batch: 4, task: 'detection' },
];

export interface OpFigure {
  kind: string;
  forwardMs: number;
  backwardMs: number;
  /** Multiply-adds ×2 of the forward pass per step (convolutions and linear layers; 0 otherwise). */
  forwardFlops: number;
  /** The same for the backward pass: input and weight gradients, the weight gradient alone where the node reads the model's input. */
  backwardFlops: number;
}

export interface ZooProfile {
  name: string;
  /** Median step time (ms) without the profiler, per library ('current', 'compare'). */
  stepMs: Record<string, number>;
  /** Per layer type, ms per step (mean over the profiled steps). */
  ops: OpFigure[];
  /** Forward and backward time outside the model's nodes (loss), ms per step. */
  otherMs: number;
  profiledStepMs: number;
}

/** A step function on one library: builds the model and fixed data once, then runs steps. */
function makeStep(lib: Cnn, c: ZooCase): { step: () => void; model: cnn.Model } {
  const spec = lib.getZooSpec(c.model, c.options);
  const model = lib.buildModel(spec, { seed: 1 });
  const [ch, h, w] = model.inputShape;
  const rng = lib.createRng(7);
  const x = lib.fromData(Float32Array.from({ length: c.batch * ch * h * w }, () => rng.next() * 2 - 1), [c.batch, ch, h, w]);
  const k = c.options.numClasses ?? 10;
  let loss: (out: cnn.Tensor) => cnn.Tensor;
  if (c.task === 'classification') {
    const labels = Array.from({ length: c.batch }, () => Math.floor(rng.next() * k));
    loss = (out) => lib.crossEntropy(out, labels);
  } else if (c.task === 'segmentation') {
    const masks = Uint8Array.from({ length: c.batch * h * w }, () => Math.floor(rng.next() * k));
    loss = (out) => lib.segmentationLoss(out, masks);
  } else {
    const objects = Array.from({ length: c.batch }, () => [{ classId: Math.floor(rng.next() * k), box: { cx: 0.2 + 0.6 * rng.next(), cy: 0.2 + 0.6 * rng.next(), w: 0.3, h: 0.3 } }]);
    const grid = model.outputShape[1];
    const targets = lib.encodeYoloTargets(objects, grid, k);
    loss = (out) => lib.yoloLoss(out, targets);
  }
  return {
    model,
    step: () => {
      model.zeroGrad();
      loss(model.forward(x, { training: true })).backward();
    },
  };
}

/**
 * CPU time of this process in ms: on a shared machine it counts the work done, not the time spent
 * waiting for a core (the steps run on one thread; V8's GC helper threads count too).
 */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function timeSteps(step: () => void, steps: number): number[] {
  const times: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t0 = cpuMs();
    step();
    times.push(cpuMs() - t0);
  }
  return times;
}

/**
 * 2·MACs of each node's forward and backward passes (conv2d, convTranspose2d, linear), from the
 * model's plan. The backward pass is two products of the forward's size (input and weight
 * gradients), one where the node reads the model's input (no input gradient is computed there).
 */
function nodeFlops(model: cnn.Model, batch: number): Map<string, { forward: number; backward: number }> {
  const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
  const flops = new Map<string, { forward: number; backward: number }>();
  for (const n of cnn.planModel(model.spec).nodes) {
    const l = n.layer;
    const inShape = n.inputShapes[0];
    let forward = 0;
    if (l.type === 'conv2d') forward = 2 * batch * numel(n.outputShape) * (inShape[0] / l.groups) * l.kernelSize[0] * l.kernelSize[1];
    else if (l.type === 'convTranspose2d') forward = 2 * batch * numel(inShape) * l.outChannels * l.kernelSize[0] * l.kernelSize[1];
    else if (l.type === 'linear') forward = 2 * batch * numel(n.outputShape) * numel(inShape);
    if (forward > 0) flops.set(n.name, { forward, backward: n.inputs[0] === 'input' ? forward : 2 * forward });
  }
  return flops;
}

async function loadCompare(dir: string): Promise<Cnn> {
  return (await import(pathToFileURL(resolve(dir, 'libs/cnn/src/index.ts')).href)) as Cnn;
}

export interface ZooOptions {
  cases?: readonly string[];
  /** Timed steps per round and library. */
  steps: number;
  warmup: number;
  rounds: number;
  compareDir?: string;
  log: (line: string) => void;
}

export async function profileZoo(o: ZooOptions): Promise<ZooProfile[]> {
  const cases = ZOO_CASES.filter((c) => o.cases === undefined || o.cases.includes(c.name));
  if (cases.length === 0) throw new RangeError(`--zoo-models: none of ${o.cases?.join(', ')} is one of ${ZOO_CASES.map((c) => c.name).join(', ')}`);
  const libs: [string, Cnn][] = [['current', cnn]];
  if (o.compareDir !== undefined) libs.push(['compare', await loadCompare(o.compareDir)]);
  const profiles: ZooProfile[] = [];
  for (const c of cases) {
    const runs = libs.map(([label, lib]) => ({ label, ...makeStep(lib, c), times: [] as number[] }));
    for (const r of runs) timeSteps(r.step, o.warmup);
    // Rounds interleave the libraries, so a change in the machine's load hits both alike.
    for (let round = 0; round < o.rounds; round++) for (const r of runs) r.times.push(...timeSteps(r.step, o.steps));
    const stepMs: Record<string, number> = {};
    for (const r of runs) stepMs[r.label] = median(r.times);
    // The per-op profile, on the current library.
    const cur = runs[0];
    const byNode = new Map<string, { kind: string; forward: number; backward: number }>();
    cnn.setProfiler({
      now: cpuMs,
      add: (node, kind, phase, ms) => {
        const e = byNode.get(node) ?? { kind, forward: 0, backward: 0 };
        e[phase] += ms;
        byNode.set(node, e);
      },
    });
    const profiled = o.steps * o.rounds;
    let total = 0;
    try {
      total = timeSteps(cur.step, profiled).reduce((a, b) => a + b, 0);
    } finally {
      cnn.setProfiler(null);
    }
    const flops = nodeFlops(cur.model, c.batch);
    const byKind = new Map<string, OpFigure>();
    let inNodes = 0;
    for (const [node, e] of byNode) {
      const f = byKind.get(e.kind) ?? { kind: e.kind, forwardMs: 0, backwardMs: 0, forwardFlops: 0, backwardFlops: 0 };
      f.forwardMs += e.forward / profiled;
      f.backwardMs += e.backward / profiled;
      const nf = flops.get(node);
      f.forwardFlops += nf?.forward ?? 0;
      f.backwardFlops += nf?.backward ?? 0;
      byKind.set(e.kind, f);
      inNodes += e.forward + e.backward;
    }
    const ops = [...byKind.values()].sort((a, b) => b.forwardMs + b.backwardMs - (a.forwardMs + a.backwardMs));
    profiles.push({ name: c.name, stepMs, ops, otherMs: (total - inNodes) / profiled, profiledStepMs: total / profiled });
    o.log(`${c.name}: ${Object.entries(stepMs).map(([k, v]) => `${k} ${v.toFixed(1)} ms`).join(', ')}`);
  }
  return profiles;
}

export function formatZooProfile(profiles: readonly ZooProfile[]): string[] {
  const lines: string[] = [`load average ${loadavg().map((v) => v.toFixed(2)).join(' ')}`];
  const f = (v: number, d = 2): string => v.toFixed(d);
  for (const p of profiles) {
    const ratio = p.stepMs.compare === undefined ? '' : `, compare ${f(p.stepMs.compare, 1)} ms, current/compare ${f(p.stepMs.current / p.stepMs.compare, 3)}`;
    lines.push('', `${p.name}: step ${f(p.stepMs.current, 1)} ms (median)${ratio}; profiled step ${f(p.profiledStepMs, 1)} ms, loss and glue ${f(p.otherMs)} ms`);
    lines.push(`  ${'op'.padEnd(22)} ${'fwd ms'.padStart(8)} ${'bwd ms'.padStart(8)} ${'share'.padStart(6)} ${'fwd GF/s'.padStart(9)} ${'bwd GF/s'.padStart(9)}`);
    for (const op of p.ops) {
      const share = (100 * (op.forwardMs + op.backwardMs)) / p.profiledStepMs;
      // Backward GFLOP/s count the gradients computed (see nodeFlops).
      const gf = (flops: number, ms: number): string => (flops === 0 || ms === 0 ? '-' : f(flops / ms / 1e6, 2));
      lines.push(`  ${op.kind.padEnd(22)} ${f(op.forwardMs).padStart(8)} ${f(op.backwardMs).padStart(8)} ${`${f(share, 1)}%`.padStart(6)} ${gf(op.forwardFlops, op.forwardMs).padStart(9)} ${gf(op.backwardFlops, op.backwardMs).padStart(9)}`);
    }
  }
  return lines;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const { values, positionals } = parseArgs({
    options: { steps: { type: 'string', default: '5' }, reps: { type: 'string', default: '3' }, compare: { type: 'string' } },
    allowPositionals: true,
    strict: true,
  });
  const int = (name: string, v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`--${name} must be an integer >= 1, got ${v}`);
    return n;
  };
  const steps = int('steps', values.steps);
  const profiles = await profileZoo({
    cases: positionals.length > 0 ? positionals : undefined,
    steps,
    warmup: Math.max(2, steps),
    rounds: int('reps', values.reps),
    compareDir: values.compare,
    log: (line) => process.stderr.write(`${line}\n`),
  });
  console.log(formatZooProfile(profiles).join('\n'));
}

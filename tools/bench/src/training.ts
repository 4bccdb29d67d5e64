// LeNet-5 on MNIST through the product's own code paths: the engine's Trainer driving the
// InlineExecutor (one thread), the LocalExecutor (worker threads of this process) or the
// BullmqExecutor (worker processes through Redis, see distributed.ts), timed in windows of steps after a warm-up.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildModel, fromData, getZooSpec, kernelNumerics, noGrad, setKernelNumerics } from '@stride/cnn';
import { MNIST_MEAN, MNIST_STD, loadDataset, normalizeInto } from '@stride/data';
import { type EvalMetrics, type Executor, type JobContext, type JobSpecInput, type StepMetrics, InlineExecutor, LocalExecutor, train } from '@stride/engine';
import { median } from './stats.ts';

/** How long a measurement runs. */
export interface Schedule {
  /** Steps before the first timed window (JIT, thread start-up, memory growth). */
  warmup: number;
  stepsPerWindow: number;
  windows: number;
}

/** Medians over the timed steps of the engine's own step breakdown (ms). */
export interface StepBreakdown {
  stepMs: number;
  publishMs: number;
  queueMs: number;
  computeMs: number;
  /** stepMs − publish − compute − reduce − optimizer: moving tasks and gradients (thread messages or Redis), waiting. */
  transferMs: number;
  reduceMs: number;
  optimizerMs: number;
}

export interface EngineRun {
  label: string;
  executor: 'inline' | 'local' | 'bullmq';
  /** Compute threads (inline: the calling thread). */
  threads: number;
  batch: number;
  shards: number;
  /** Images per second of every timed window (wall time between the trainer's step events). */
  windows: number[];
  median: number;
  /** Images per second over the warm-up steps, from the job's start ('running') to the warm-up's last step event. */
  warmupImagesPerSec: number;
  breakdown: StepBreakdown;
  /** The evaluation at the end of the run: the whole test split in `evalShards` shards, images/s. */
  evalImagesPerSec: number;
  evalShardSize: number;
}

/**
 * The benchmarks' LeNet-5 job: `totalSteps` of SGD with momentum at a constant rate, one evaluation
 * and one checkpoint at the end (plus `extra`).
 */
/** The kernel numerics of every Stride run of the bench (`--numerics`): jobs carry it, inference sets it. */
let benchNumerics: 'exact' | 'fma' = 'exact';

/** Sets the numerics of the bench's jobs and of its inference runs (see `benchJobSpec`, `inferOneThread`). */
export function setBenchNumerics(n: 'exact' | 'fma'): void {
  benchNumerics = n;
}

/** The `numerics` field of the bench's job specs (none for 'exact', the default). */
export function benchNumericsField(): Pick<JobSpecInput, 'numerics'> {
  return benchNumerics === 'fma' ? { numerics: 'fma' } : {};
}

export function benchJobSpec(name: string, totalSteps: number, batch: number, shards: number, extra: Partial<JobSpecInput> = {}): JobSpecInput {
  return {
    ...benchNumericsField(),
    name,
    model: 'lenet5',
    dataset: 'mnist',
    steps: totalSteps,
    batchSize: batch,
    shards,
    seed: 1,
    optimizer: { type: 'sgd', lr: 0.01, momentum: 0.9 },
    schedule: { type: 'constant' },
    evalEvery: totalSteps,
    checkpointEvery: totalSteps,
    keepCheckpoints: 1,
    ...extra,
  };
}

/** Runs one training job on `executor` and times it (`onStep` also sees every step event). The executor is not closed. */
export async function runEngine(label: string, kind: EngineRun['executor'], executor: Executor, threads: number, batch: number, shards: number, s: Schedule, evalShards = 40, onStep?: (e: StepMetrics) => void): Promise<EngineRun> {
  const totalSteps = s.warmup + s.stepsPerWindow * s.windows;
  const spec = benchJobSpec('bench-lenet5', totalSteps, batch, shards, { evalShards });
  const dataDir = await mkdtemp(join(tmpdir(), 'stride-bench-'));
  const at: number[] = [];
  const steps: StepMetrics[] = [];
  let evaluation: EvalMetrics | undefined;
  let started = NaN;
  try {
    await train(spec, {
      executor,
      dataDir,
      jobId: 'bench',
      resume: false,
      on: {
        state: (e) => {
          if (e.state.status === 'running' && Number.isNaN(started)) started = performance.now();
        },
        step: (e) => {
          at.push(performance.now());
          steps.push(e);
          onStep?.(e);
        },
        eval: (e) => {
          evaluation = e;
        },
      },
    });
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
  const windows: number[] = [];
  for (let w = 0; w < s.windows; w++) {
    // Window w runs from the event of step warmup − 1 + w·n to that of step warmup − 1 + (w + 1)·n.
    const start = s.warmup - 1 + w * s.stepsPerWindow;
    windows.push((s.stepsPerWindow * batch * 1000) / (at[start + s.stepsPerWindow] - at[start]));
  }
  const timed = steps.slice(s.warmup);
  const med = (f: (m: StepMetrics) => number): number => median(timed.map(f));
  const breakdown: StepBreakdown = {
    stepMs: med((m) => m.stepMs),
    publishMs: med((m) => m.publishMs),
    queueMs: med((m) => m.queueMs),
    computeMs: med((m) => m.computeMs),
    transferMs: med((m) => Math.max(0, m.stepMs - m.publishMs - m.computeMs - m.reduceMs - m.optimizerMs)),
    reduceMs: med((m) => m.reduceMs),
    optimizerMs: med((m) => m.optimizerMs),
  };
  return {
    label,
    executor: kind,
    threads,
    batch,
    shards,
    windows,
    median: median(windows),
    warmupImagesPerSec: (s.warmup * batch * 1000) / (at[s.warmup - 1] - started),
    breakdown,
    evalImagesPerSec: evaluation ? (evaluation.count * 1000) / evaluation.evalMs : NaN,
    evalShardSize: evaluation ? Math.ceil(evaluation.count / evalShards) : NaN,
  };
}

/** Training on the calling thread (InlineExecutor), one shard per step. */
export async function trainOneThread(batch: number, s: Schedule): Promise<EngineRun> {
  const executor = new InlineExecutor();
  try {
    return await runEngine('stride 1 thread (engine, InlineExecutor)', 'inline', executor, 1, batch, 1, s);
  } finally {
    await executor.close();
  }
}

/** One-thread training in both kernel numerics, interleaved block by block (see `trainOneThreadFma`). */
export interface FmaTrainingFigure {
  /** Steps per block of one numerics. */
  block: number;
  /** Images/s of every timed block (from the trainer's stepMs: the whole step), per numerics. */
  exact: number[];
  fma: number[];
  /** fma / exact images/s of every pair of adjacent blocks, and their median. */
  ratios: number[];
  ratio: number;
  /** The same from the shard's computeMs only (forward and backward, no data, reduce, optimizer). */
  computeRatios: number[];
  computeRatio: number;
}

/**
 * Two InlineExecutors behind one: every parameter version goes to both, and each step's shards run
 * on the one of the current `mode`, which sees the job with that numerics (a ShardComputer computes
 * in its job's numerics). For the A/B of `trainOneThreadFma` only: a job that changes numerics
 * mid-way is not a job Stride runs.
 */
function numericsSwitch(): { executor: Executor; setMode(mode: 'exact' | 'fma'): void } {
  const exact = new InlineExecutor();
  const fma = new InlineExecutor();
  let mode: 'exact' | 'fma' = 'exact';
  const as = (job: JobContext, m: 'exact' | 'fma'): JobContext => {
    const { numerics: _drop, ...rest } = job;
    return m === 'fma' ? { ...rest, numerics: 'fma' } : rest;
  };
  const executor: Executor = {
    publishParams: async (job, version, state) => {
      await exact.publishParams(as(job, 'exact'), version, state);
      await fma.publishParams(as(job, 'fma'), version, state);
    },
    runShards: (job, tasks, signal) => (mode === 'fma' ? fma : exact).runShards(as(job, mode), tasks, signal),
    releaseJob: async (jobId) => {
      await exact.releaseJob(jobId);
      await fma.releaseJob(jobId);
    },
    close: async () => {
      await exact.close();
      await fma.close();
    },
  };
  return { executor, setMode: (m) => void (mode = m) };
}

/**
 * One-thread LeNet-5 training (the compute runs on this thread) alternating the 'exact' and 'fma'
 * numerics every `block` steps (see `numericsSwitch`), in pairs of blocks ordered exact-fma, then
 * fma-exact, and so on: the two are compared on adjacent steps, so a burst of load elsewhere hits
 * both. `runs` jobs, each with s.warmup steps (alternating too, not timed) and
 * 2·s.windows·s.stepsPerWindow timed ones. No 2-thread figure here: `--numerics fma` runs the
 * whole bench in fma.
 */
export async function trainOneThreadFma(batch: number, s: Schedule, runs: number, log: (line: string) => void, block = 5): Promise<FmaTrainingFigure> {
  const pairs = Math.max(1, Math.round((s.windows * s.stepsPerWindow) / block));
  const warmupBlocks = Math.ceil(s.warmup / (2 * block)) * 2;
  const modeOf = (step: number): 'exact' | 'fma' => {
    const b = Math.floor(step / block);
    return (b + (Math.floor(b / 2) % 2)) % 2 === 0 ? 'exact' : 'fma';
  };
  const out: FmaTrainingFigure = { block, exact: [], fma: [], ratios: [], ratio: NaN, computeRatios: [], computeRatio: NaN };
  for (let r = 0; r < runs; r++) {
    log(`fma run ${r + 1}/${runs}: training, 1 thread, exact and fma alternating every ${block} steps`);
    const stepMs: number[] = [];
    const computeMs: number[] = [];
    const { executor, setMode } = numericsSwitch();
    try {
      setMode(modeOf(0));
      const steps = (warmupBlocks + 2 * pairs) * block;
      // runEngine's own windows are not used: one window over the whole run.
      await runEngine('stride 1 thread, exact / fma', 'inline', executor, 1, batch, 1, { warmup: 1, stepsPerWindow: steps - 1, windows: 1 }, 40, (e) => {
        stepMs[e.step] = e.stepMs;
        computeMs[e.step] = e.computeMs;
        setMode(modeOf(e.step + 1));
      });
    } finally {
      await executor.close();
    }
    const blockSum = (ms: number[], b: number): number => ms.slice(b * block, (b + 1) * block).reduce((x, y) => x + y, 0);
    for (let p = 0; p < pairs; p++) {
      const [b0, b1] = [warmupBlocks + 2 * p, warmupBlocks + 2 * p + 1];
      const [e, f] = modeOf(b0 * block) === 'exact' ? [b0, b1] : [b1, b0];
      out.exact.push((block * batch * 1000) / blockSum(stepMs, e));
      out.fma.push((block * batch * 1000) / blockSum(stepMs, f));
      out.ratios.push(blockSum(stepMs, e) / blockSum(stepMs, f));
      out.computeRatios.push(blockSum(computeMs, e) / blockSum(computeMs, f));
    }
  }
  out.ratio = median(out.ratios);
  out.computeRatio = median(out.computeRatios);
  return out;
}

export function formatFmaTraining(t: FmaTrainingFigure, batch: number): string[] {
  const f = (v: number, d = 0): string => v.toFixed(d);
  const q = (a: number[]): string => {
    const x = [...a].sort((p, r) => p - r);
    return `quartiles ${f(x[Math.floor(x.length / 4)], 2)}–${f(x[Math.floor((3 * x.length) / 4)], 2)}`;
  };
  return [
    `training, batch ${batch}, 1 thread (InlineExecutor), exact and fma alternating every ${t.block} steps, ${t.ratios.length} pairs of blocks:`,
    `  images/s (whole step):  exact ${f(median(t.exact))}  fma ${f(median(t.fma))}  fma/exact x${f(t.ratio, 2)} (${q(t.ratios)})`,
    `  shard compute only:     fma/exact speed x${f(t.computeRatio, 2)} (${q(t.computeRatios)})`,
  ];
}

/**
 * Training on `threads` compute threads of this process (LocalExecutor, the calling thread one of
 * them, as `stride train --local` runs it), one shard per thread.
 */
export async function trainLocal(threads: number, batch: number, shards: number, s: Schedule): Promise<EngineRun> {
  const executor = new LocalExecutor({ threads, callerComputes: true });
  try {
    return await runEngine(`stride ${threads} threads (engine, LocalExecutor, caller computes, ${shards} shards)`, 'local', executor, threads, batch, shards, s);
  } finally {
    await executor.close();
  }
}

/** Inference images/s at `batch` on the calling thread: the model's forward pass without a graph. */
export async function inferOneThread(batch: number, s: Schedule): Promise<{ windows: number[]; median: number }> {
  const test = await loadDataset('mnist', 'test');
  const model = buildModel(getZooSpec('lenet5'), { seed: 1 });
  const input = new Float32Array(batch * 784);
  const starts = Math.floor(test.count / batch);
  const step = (k: number): void => {
    const start = (k % starts) * batch;
    normalizeInto(test.images.subarray(start * 784, (start + batch) * 784), batch, 1, 784, [MNIST_MEAN], [MNIST_STD], input);
    noGrad(() => model.forward(fromData(input, [batch, 1, 28, 28])));
  };
  const previous = kernelNumerics();
  setKernelNumerics(benchNumerics);
  try {
    return timeInference(step, batch, s);
  } finally {
    setKernelNumerics(previous);
  }
}

function timeInference(step: (k: number) => void, batch: number, s: Schedule): { windows: number[]; median: number } {
  let k = 0;
  for (; k < s.warmup; k++) step(k);
  const windows: number[] = [];
  for (let w = 0; w < s.windows; w++) {
    const t0 = performance.now();
    for (let i = 0; i < s.stepsPerWindow; i++) step(k++);
    windows.push((s.stepsPerWindow * batch * 1000) / (performance.now() - t0));
  }
  return { windows, median: median(windows) };
}

// LeNet-5 on MNIST through the product's own code paths: the engine's Trainer driving the
// InlineExecutor (one thread), the LocalExecutor (worker threads of this process) or the
// BullmqExecutor (worker processes through Redis, see distributed.ts), timed in windows of steps after a warm-up.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildModel, fromData, getZooSpec, noGrad } from '@stride/cnn';
import { MNIST_MEAN, MNIST_STD, loadDataset, normalizeInto } from '@stride/data';
import { type EvalMetrics, type Executor, type JobSpecInput, type StepMetrics, InlineExecutor, LocalExecutor, train } from '@stride/engine';
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
  breakdown: StepBreakdown;
  /** The evaluation at the end of the run: the whole test split in `evalShards` shards, images/s. */
  evalImagesPerSec: number;
  evalShardSize: number;
}

/**
 * The benchmarks' LeNet-5 job: `totalSteps` of SGD with momentum at a constant rate, one evaluation
 * and one checkpoint at the end (plus `extra`).
 */
export function benchJobSpec(name: string, totalSteps: number, batch: number, shards: number, extra: Partial<JobSpecInput> = {}): JobSpecInput {
  return {
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

/** Runs one training job on `executor` and times it. The executor is not closed. */
export async function runEngine(label: string, kind: EngineRun['executor'], executor: Executor, threads: number, batch: number, shards: number, s: Schedule, evalShards = 40): Promise<EngineRun> {
  const totalSteps = s.warmup + s.stepsPerWindow * s.windows;
  const spec = benchJobSpec('bench-lenet5', totalSteps, batch, shards, { evalShards });
  const dataDir = await mkdtemp(join(tmpdir(), 'stride-bench-'));
  const at: number[] = [];
  const steps: StepMetrics[] = [];
  let evaluation: EvalMetrics | undefined;
  try {
    await train(spec, {
      executor,
      dataDir,
      jobId: 'bench',
      resume: false,
      on: {
        step: (e) => {
          at.push(performance.now());
          steps.push(e);
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

/** Training on `threads` worker threads of this process (LocalExecutor), one shard per thread. */
export async function trainLocal(threads: number, batch: number, shards: number, s: Schedule): Promise<EngineRun> {
  const executor = new LocalExecutor({ threads });
  try {
    return await runEngine(`stride ${threads} threads (engine, LocalExecutor, ${shards} shards)`, 'local', executor, threads, batch, shards, s);
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

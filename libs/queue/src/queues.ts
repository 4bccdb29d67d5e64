// BullMQ settings of the two queues, with the reasoning behind the numbers.
import type { JobsOptions, WorkerOptions } from 'bullmq';

/**
 * Options of every shard job (the executor adds `jobId`, `attempts` and `backoff`). A completed
 * job removes itself: its result reached the coordinator as news (see executor.ts), and its
 * gradient is a blob of its own. The executor removes the failed jobs of a step it is done with;
 * the age limit only sweeps what a coordinator that never came back left behind.
 */
export const SHARD_JOB_DEFAULTS: JobsOptions = {
  removeOnComplete: true,
  removeOnFail: { age: 24 * 3600 },
};

/**
 * Node options of the coordinator and worker processes (`npm start`, docker-compose.yml, the
 * Dockerfile and the benchmark start them with these). Each training step moves a few MB of
 * parameters, inputs and gradients through Buffers, and V8 counts that external memory against a
 * limit derived from the (small, ~20 MB) JS heap: with the default heap the coordinator ran a full
 * mark-compact every 2-3 steps of LeNet-5 at batch 512 (9-19 in 60 steps, `--trace-gc`), a quarter
 * of its CPU time on 2 cores that the workers need. Starting the old generation at 256 MB leaves 2
 * in 60 steps and cut the coordinator's CPU per step by ~27 % (`npm run bench -- --distributed`,
 * CPU table). `--interrupt-budget=8192` (V8's default 67 584) lets functions reach the optimizing
 * compiler after an eighth of the executed bytecode: a worker's per-shard work (ioredis, BullMQ,
 * msgpackr, thread messages) runs a few dozen times a second, and much of it had stayed in V8's
 * baseline tier (perf showed inline-cache builtins on top). Measured over one epoch of LeNet-5 at
 * batch 64 in 4 shards, coordinator + 2 one-thread workers alternately with and without it: the
 * workers' CPU per step −8 to −10 % (13.2–13.8 → 11.9–12.5 ms), throughput +8 to +9 % (2 385–2 479
 * → 2 573–2 706 images/s; 2 048 measured the same as 8 192). Neither is allowed in NODE_OPTIONS:
 * they have to be on the command line.
 */
export const SERVICE_NODE_OPTIONS: readonly string[] = ['--initial-old-space-size=256', '--interrupt-budget=8192'];

/** Lock, stall and reconnect settings of a BullMQ Worker. */
export interface LockTuning {
  /** How long a job's lock lives without renewal (ms); the worker renews it every half of it. */
  lockDurationMs: number;
  /** How often the stalled-job checker runs (ms). */
  stalledIntervalMs: number;
  /** Stalls (lock lost, e.g. the process was killed) after which a job fails instead of going back to wait. */
  maxStalledCount: number;
  /**
   * How long the worker waits before fetching again after a Redis connection error reaches it
   * (ms), e.g. while Redis restarts. BullMQ's default, 15 s, leaves the worker idle that long
   * after each such error, although ioredis is usually reconnected within a second.
   */
  runRetryDelayMs: number;
}

/** The BullMQ Worker options of a tuning. */
export function workerTuning(t: LockTuning): Pick<WorkerOptions, 'lockDuration' | 'stalledInterval' | 'maxStalledCount' | 'runRetryDelay'> {
  return { lockDuration: t.lockDurationMs, stalledInterval: t.stalledIntervalMs, maxStalledCount: t.maxStalledCount, runRetryDelay: t.runRetryDelayMs };
}

/**
 * Shard workers. A killed worker's shard goes back to `wait` once its lock has expired and a
 * stalled check of another worker has seen it twice: at most lockDuration + stalledInterval after
 * the kill, i.e. 5 s + 2.5 s = 7.5 s lost per kill, plus recomputing the shard (measured 5.6-7.9 s
 * per kill in apps/worker/test/worker.test.ts, on a loaded 2-core machine). The
 * lock is renewed by the worker's main thread while the shard computes on another thread, so a
 * short lock does not expire under load; a false stall would only cost a duplicate computation,
 * which the executor's accounting ignores. maxStalledCount bounds a poison shard — one that
 * crashes (or freezes) every worker that takes it: its 4th stall in a row fails the job, the
 * executor gives up on it (no recompute) and the step fails, so the coordinator pauses the job
 * with the reason after ~4 × 7.5 s instead of crashing workers forever. Four kills in a row of
 * whichever worker holds one particular shard is far beyond what the chaos runs inject.
 */
export const SHARD_WORKER_LOCKS: LockTuning = { lockDurationMs: 5000, stalledIntervalMs: 2500, maxStalledCount: 3, runRetryDelayMs: 1000 };

/**
 * The coordinator's worker on the jobs queue: one "job" is a whole training run, held for
 * minutes or hours. A killed coordinator's run goes back to `wait` within lockDuration +
 * stalledInterval (15 s) of the kill and is picked up by the restarted coordinator, which resumes
 * from the last checkpoint. Every stall is a coordinator crash the run must survive, hence the
 * very high maxStalledCount.
 */
export const JOB_WORKER_LOCKS: LockTuning = { lockDurationMs: 10_000, stalledIntervalMs: 5000, maxStalledCount: 1_000_000, runRetryDelayMs: 1000 };

// Distributed overhead: the coordinator side (BullmqExecutor in this process) with worker processes
// of one thread each through Redis, against the LocalExecutor with as many threads, on the same
// job (LeNet-5 on MNIST, global batch 512 in 4 shards). Both executors are wrapped to time every
// publish and every runShards, and the shards report their own timelines (ShardResult.timing), so
// each step is broken down the same way for both:
//
//   cycle = publish + enqueue + [the critical compute unit: pickup + fetch + compute + upload]
//           + collect + reduce + optimizer + other
//
// - publish: packing and publishing parameter version t (trainer → executor);
// - enqueue: from runShards to the tasks being in the queue (input blobs + shard jobs; local: posted);
// - the critical unit is the worker (thread) that finished last; its time from the enqueue to
//   its last shard done is split into compute (the shards' forward and backward, one after the
//   other) and what it waited for before each computation and after the last one:
//   upload = storing the previous gradient in Redis (not counted when the next shard had been taken
//   already: a prefetching worker uploads while it computes), pickup = from "task available and
//   unit free" to "unit took it" (queue latency), fetch = getting job data, parameters and input
//   (local: loading the version into the model), then upload of the last shard;
// - collect: from that unit being done to runShards returning (completion notice, gradient read,
//   checks; local: the reply message);
// - reduce, optimizer: the trainer's; other: the rest of the wall time between two step events
//   (planning, metrics, listeners).
//
// STRIDE_BENCH_TRACE=1 also prints the raw timeline (ms from the runShards call) of the first four
// timed steps of each run: every shard's worker, enqueue, pick-up, fetch, compute, upload and done.
// STRIDE_BENCH_CPU_PROF=DIR starts the worker processes with `--cpu-prof --cpu-prof-dir DIR` (one
// V8 CPU profile per thread, written when they stop; run the bench itself with `--cpu-prof` too).
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Executor, type JobContext, type ShardResult, type ShardTask, type StepMetrics, LocalExecutor, train, wallClock } from '@stride/engine';
import { BullmqExecutor, Keys, SERVICE_NODE_OPTIONS, createRedis, listWorkers, resolveTransportConfig, type TransportConfig } from '@stride/queue';
import type { Redis } from 'ioredis';
import { median } from './stats.ts';
import { benchJobSpec } from './training.ts';

/** How long a measurement runs. */
export interface DistSchedule {
  /** Steps before the first timed window (JIT, thread start-up, memory growth). */
  warmup: number;
  stepsPerWindow: number;
  windows: number;
}

/** Medians over the timed steps (ms); see the file comment. */
export interface DistBreakdown {
  cycleMs: number;
  publishMs: number;
  enqueueMs: number;
  pickupMs: number;
  fetchMs: number;
  computeMs: number;
  uploadMs: number;
  collectMs: number;
  reduceMs: number;
  optimizerMs: number;
  otherMs: number;
  /** Everything but compute, reduce and optimizer: what the transport costs per step. */
  overheadMs: number;
  /** Shards per step on the critical unit (2 for 4 shards on 2 units). */
  criticalShards: number;
}

export interface DistRun {
  label: string;
  executor: 'local' | 'bullmq';
  units: number;
  batch: number;
  shards: number;
  /** Images per second of every timed window (wall time between the trainer's step events). */
  windows: number[];
  median: number;
  /** Images per second over the warm-up steps, from the job's start ('running') to the warm-up's last step event. */
  warmupImagesPerSec: number;
  breakdown: DistBreakdown;
  /** SHA-256 of the trained parameters: equal for both executors. */
  paramsSha256: string;
  /** CPU time per timed step (ms), by process; undefined where it could not be read. */
  cpu: CpuPerStep;
}

/**
 * Where the two cores' time goes, per timed step (ms of CPU, user + system): this process (the
 * coordinator side; for the local executor also its compute threads), Redis (INFO cpu), the worker
 * processes (/proc, Linux only), and the shards' own computation (their computeMs, summed).
 */
export interface CpuPerStep {
  thisProcessMs: number;
  redisMs?: number;
  workersMs?: number;
  shardComputeMs: number;
}

interface CpuSnapshot {
  self: number;
  redis?: number;
  workers?: number;
}

/** Cumulative CPU ms of a process from /proc (undefined where there is no /proc). */
function procCpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    // Fields after the command (which may hold spaces) start after the last ')': utime and stime are the 12th and 13th.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return undefined;
  }
}

async function cpuSnapshot(redis: Redis | undefined, workers: readonly ChildProcess[]): Promise<CpuSnapshot> {
  const u = process.cpuUsage();
  let redisMs: number | undefined;
  if (redis) {
    const info = await redis.info('cpu');
    const num = (k: string): number => Number(new RegExp(`^${k}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN);
    redisMs = (num('used_cpu_user') + num('used_cpu_sys')) * 1000;
  }
  const per = workers.map((w) => procCpuMs(w.pid));
  return { self: (u.user + u.system) / 1000, redis: Number.isFinite(redisMs) ? redisMs : undefined, workers: per.every((x) => x !== undefined) && per.length > 0 ? per.reduce((a, b) => a! + b!, 0) : undefined };
}

export interface DistributedReport {
  batch: number;
  shards: number;
  /** One per repetition, interleaved: distributed then local. */
  distributed: DistRun[];
  local: DistRun[];
  /** Median distributed images/s over median local images/s. */
  ratio: number;
  /** Per repetition, distributed / local of that repetition. */
  ratios: number[];
  /** Same job, same steps: the parameters must be bit-identical. */
  identical: boolean;
  /** Steps before the timed windows (their images/s is `DistRun.warmupImagesPerSec`). */
  warmupSteps: number;
  /** Median distributed warm-up images/s over median local warm-up images/s. */
  warmupRatio: number;
}

interface StepRecord {
  publishMs: number;
  runStart: number;
  runEnd: number;
  results: ShardResult[];
}


/** An Executor that times publishParams and runShards of train steps and keeps the shard results' timelines. */
class TimedExecutor implements Executor {
  readonly steps = new Map<number, StepRecord>();
  private lastPublishMs = 0;

  /** Forwarded when the inner executor has it (inputs staged ahead are part of what is measured). */
  readonly prepareShards?: Executor['prepareShards'];

  constructor(private readonly inner: Executor) {
    if (inner.prepareShards) this.prepareShards = (job, tasks) => inner.prepareShards!(job, tasks);
  }

  async publishParams(job: JobContext, version: number, state: Uint8Array): Promise<void> {
    const t = performance.now();
    await this.inner.publishParams(job, version, state);
    this.lastPublishMs = performance.now() - t;
  }

  async runShards(job: JobContext, tasks: readonly ShardTask[], signal?: AbortSignal): Promise<ShardResult[]> {
    const runStart = wallClock();
    const results = await this.inner.runShards(job, tasks, signal);
    const runEnd = wallClock();
    if (tasks.length > 0 && tasks[0].kind === 'train') {
      this.steps.set(tasks[0].step, { publishMs: this.lastPublishMs, runStart, runEnd, results });
      this.lastPublishMs = 0;
    }
    return results;
  }

  releaseJob(jobId: string): Promise<void> {
    return this.inner.releaseJob(jobId);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** The parts of one step; undefined when a shard did not report its timeline. */
function stepParts(rec: StepRecord, m: StepMetrics, cycleMs: number): Omit<DistBreakdown, 'cycleMs'> & { cycleMs: number } {
  const timings = rec.results.map((r) => ({ unit: r.workerId ?? '?', computeMs: r.computeMs, t: r.timing }));
  if (timings.some((x) => x.t === undefined)) throw new Error('bench: a shard result carries no timing (executor or worker too old?)');
  const enqueuedAt = Math.min(...timings.map((x) => x.t!.enqueuedAt ?? rec.runStart));
  // The unit that finished last is the critical path.
  const last = timings.reduce((a, b) => (b.t!.doneAt > a.t!.doneAt ? b : a));
  const mine = timings.filter((x) => x.unit === last.unit).sort((a, b) => a.t!.startedAt - b.t!.startedAt);
  let pickupMs = 0;
  let fetchMs = 0;
  let computeMs = 0;
  let uploadMs = 0;
  // Walk the unit's time from `enqueuedAt` to its last `doneAt`: computations one after the other,
  // and each gap before one charged to what the unit waited for there: the previous shard's upload
  // (unless the next shard was taken before it ended: prefetched, the upload overlaps), then the
  // queue (pickup), then the shard's data (fetch). A shard's compute ends `uploadMs` before its `doneAt`.
  let cursor = enqueuedAt;
  let prev: (typeof mine)[number] | undefined;
  for (const x of mine) {
    const t = x.t!;
    const computeStart = t.doneAt - t.uploadMs - x.computeMs;
    const at = (instant: number): number => Math.min(Math.max(instant, cursor), computeStart);
    if (prev && prev.t!.doneAt <= t.startedAt) {
      const end = at(prev.t!.doneAt);
      uploadMs += end - cursor;
      cursor = end;
    }
    const taken = at(Math.max(t.startedAt, t.enqueuedAt ?? enqueuedAt));
    pickupMs += taken - cursor;
    fetchMs += Math.max(0, computeStart - taken);
    computeMs += x.computeMs;
    cursor = Math.max(cursor, computeStart + x.computeMs);
    prev = x;
  }
  uploadMs += Math.max(0, last.t!.doneAt - cursor);
  const enqueueMs = Math.max(0, enqueuedAt - rec.runStart);
  const collectMs = Math.max(0, rec.runEnd - last.t!.doneAt);
  const parts = { publishMs: rec.publishMs, enqueueMs, pickupMs, fetchMs, computeMs, uploadMs, collectMs, reduceMs: m.reduceMs, optimizerMs: m.optimizerMs };
  const explained = Object.values(parts).reduce((a, b) => a + b, 0);
  const otherMs = cycleMs - explained;
  const overheadMs = cycleMs - computeMs - m.reduceMs - m.optimizerMs;
  return { cycleMs, ...parts, otherMs, overheadMs, criticalShards: mine.length };
}

/** Runs the benchmark job on `executor` (wrapped) and times it. The executor is not closed. */
async function runTimed(
  label: string,
  kind: DistRun['executor'],
  inner: Executor,
  units: number,
  batch: number,
  shards: number,
  s: DistSchedule,
  measured: { redis?: Redis; workers: readonly ChildProcess[] },
): Promise<DistRun> {
  const executor = new TimedExecutor(inner);
  const totalSteps = s.warmup + s.stepsPerWindow * s.windows;
  const spec = benchJobSpec('bench-distributed', totalSteps, batch, shards, { evalSamples: 1000 });
  const dataDir = await mkdtemp(join(tmpdir(), 'stride-bench-dist-'));
  const at: number[] = [];
  const steps: StepMetrics[] = [];
  const snapshots: Promise<CpuSnapshot>[] = [];
  let paramsSha256 = '';
  let started = NaN;
  try {
    const result = await train(spec, {
      executor,
      dataDir,
      jobId: 'bench-dist',
      resume: false,
      on: {
        state: (e) => {
          if (e.state.status === 'running' && Number.isNaN(started)) started = wallClock();
        },
        step: (e) => {
          at.push(wallClock());
          steps.push(e);
          // Around the timed windows: from the end of the warm-up to the last step.
          if (at.length === s.warmup || at.length === totalSteps) snapshots.push(cpuSnapshot(measured.redis, measured.workers));
        },
      },
    });
    paramsSha256 = result.paramsSha256;
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
  const windows: number[] = [];
  for (let w = 0; w < s.windows; w++) {
    const start = s.warmup - 1 + w * s.stepsPerWindow;
    windows.push((s.stepsPerWindow * batch * 1000) / (at[start + s.stepsPerWindow] - at[start]));
  }
  const parts: ReturnType<typeof stepParts>[] = [];
  if (process.env.STRIDE_BENCH_TRACE) {
    for (let i = s.warmup; i < Math.min(totalSteps, s.warmup + 4); i++) {
      const rec = executor.steps.get(steps[i].step);
      if (!rec) continue;
      const r0 = rec.runStart;
      const f = (v: number | undefined): string => (v === undefined ? '-' : (v - r0).toFixed(1));
      process.stderr.write(`trace ${kind} step ${steps[i].step}: cycle ${(at[i] - at[i - 1]).toFixed(1)} publish ${rec.publishMs.toFixed(1)} runEnd ${f(rec.runEnd)} reduce ${steps[i].reduceMs.toFixed(1)}\n`);
      for (const r of rec.results) {
        const t = r.timing!;
        process.stderr.write(`  shard ${r.shard} ${r.workerId?.slice(-6)} enq ${f(t.enqueuedAt)} start ${f(t.startedAt)} fetch ${t.fetchMs.toFixed(1)} compute ${r.computeMs.toFixed(1)} upload ${t.uploadMs.toFixed(1)} done ${f(t.doneAt)}\n`);
      }
    }
  }
  for (let i = s.warmup; i < totalSteps; i++) {
    const rec = executor.steps.get(steps[i].step);
    if (rec) parts.push(stepParts(rec, steps[i], at[i] - at[i - 1]));
  }
  const med = (k: keyof DistBreakdown): number => median(parts.map((p) => p[k]));
  const breakdown = Object.fromEntries(
    (['cycleMs', 'publishMs', 'enqueueMs', 'pickupMs', 'fetchMs', 'computeMs', 'uploadMs', 'collectMs', 'reduceMs', 'optimizerMs', 'otherMs', 'overheadMs', 'criticalShards'] as const).map((k) => [k, med(k)]),
  ) as unknown as DistBreakdown;
  const [c0, c1] = await Promise.all(snapshots);
  const timed = totalSteps - s.warmup;
  const diff = (a?: number, b?: number): number | undefined => (a === undefined || b === undefined ? undefined : (b - a) / timed);
  let shardComputeMs = 0;
  for (let i = s.warmup; i < totalSteps; i++) for (const r of executor.steps.get(steps[i].step)?.results ?? []) shardComputeMs += r.computeMs;
  const cpu: CpuPerStep = { thisProcessMs: diff(c0.self, c1.self)!, redisMs: diff(c0.redis, c1.redis), workersMs: diff(c0.workers, c1.workers), shardComputeMs: shardComputeMs / timed };
  const warmupImagesPerSec = (s.warmup * batch * 1000) / (at[s.warmup - 1] - started);
  return { label, executor: kind, units, batch, shards, windows, median: median(windows), warmupImagesPerSec, breakdown, paramsSha256, cpu };
}

/** Where the worker app's entry point lives (started as a process, like `docker compose` does). */
const WORKER_MAIN = fileURLToPath(new URL('../../../apps/worker/src/main.ts', import.meta.url));

function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** `count` worker processes of one thread each on `config`; resolves once they have all registered. */
export async function startWorkers(config: TransportConfig, redis: Redis, count: number): Promise<ChildProcess[]> {
  const children: ChildProcess[] = [];
  for (let i = 0; i < count; i++) {
    const child = spawn(process.execPath, [...SERVICE_NODE_OPTIONS, ...(process.env.STRIDE_BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.STRIDE_BENCH_CPU_PROF] : []), '--import', 'tsx', WORKER_MAIN, '--threads', '1'], {
      env: { ...process.env, REDIS_URL: config.redisUrl, STRIDE_QUEUE_PREFIX: config.prefix },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => void (stderr = (stderr + chunk.toString()).slice(-2000)));
    child.once('exit', (code) => {
      if (code !== 0 && code !== null) process.stderr.write(`bench: worker ${i} exited with ${code}: ${stderr}\n`);
    });
    children.push(child);
  }
  const keys = new Keys(config.prefix);
  const deadline = Date.now() + 60_000;
  try {
    while ((await listWorkers(redis, keys)).length < count) {
      if (Date.now() > deadline) throw new Error(`bench: ${count} workers did not register within 60 s (prefix ${config.prefix})`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } catch (err) {
    await stopWorkers(children);
    throw err;
  }
  return children;
}

export function stopWorkers(children: readonly ChildProcess[]): Promise<void> {
  return Promise.all(children.map(stopProcess)).then(() => undefined);
}

/** Deletes every key under the prefix (the queue's and ours). */
export async function deletePrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    if (found.length > 0) await redis.del(...found);
    cursor = next;
  } while (cursor !== '0');
}

/**
 * `reps` interleaved repetitions of: the job through `workers` worker processes of one thread
 * (BullmqExecutor), then the same job on a LocalExecutor of `workers` threads. Uses the Redis at
 * REDIS_URL under a fresh key prefix, deleted afterwards. Throws when Redis does not answer.
 */
export async function benchDistributed(workers: number, batch: number, shards: number, s: DistSchedule, reps: number, log: (line: string) => void = () => undefined): Promise<DistributedReport> {
  const config = resolveTransportConfig({ prefix: `stride-bench-${process.pid}-${Date.now()}` });
  const redis = createRedis(config, 'bench');
  const report: DistributedReport = { batch, shards, distributed: [], local: [], ratio: NaN, ratios: [], identical: true, warmupSteps: s.warmup, warmupRatio: NaN };
  let children: ChildProcess[] = [];
  try {
    await redis.ping();
    children = await startWorkers(config, redis, workers);
    for (let r = 1; r <= reps; r++) {
      log(`distributed ${r}/${reps}: ${workers} workers x 1 thread via Redis`);
      const executor = new BullmqExecutor({ config });
      try {
        report.distributed.push(await runTimed(`${workers} workers x 1 thread (BullmqExecutor)`, 'bullmq', executor, workers, batch, shards, s, { redis, workers: children }));
      } finally {
        await executor.close();
      }
      // The workers idle (blocked on Redis) while the local executor runs: no CPU taken from it.
      log(`distributed ${r}/${reps}: LocalExecutor, ${workers} threads`);
      const local = new LocalExecutor({ threads: workers, callerComputes: true });
      try {
        report.local.push(await runTimed(`LocalExecutor ${workers} threads`, 'local', local, workers, batch, shards, s, { redis, workers: children }));
      } finally {
        await local.close();
      }
      report.ratios.push(report.distributed[r - 1].median / report.local[r - 1].median);
    }
  } finally {
    await stopWorkers(children);
    await deletePrefix(redis, config.prefix);
    await redis.quit();
  }
  const runs = [...report.distributed, ...report.local];
  report.identical = runs.every((x) => x.paramsSha256 === runs[0].paramsSha256);
  report.ratio = median(report.distributed.map((x) => x.median)) / median(report.local.map((x) => x.median));
  report.warmupRatio = median(report.distributed.map((x) => x.warmupImagesPerSec)) / median(report.local.map((x) => x.warmupImagesPerSec));
  return report;
}

/** Lines for the bench's table. */
export function formatDistributed(d: DistributedReport): string[] {
  const f = (v: number, digits = 1): string => (Number.isFinite(v) ? v.toFixed(digits) : '-');
  const lines: string[] = [];
  const dm = median(d.distributed.map((x) => x.median));
  const lm = median(d.local.map((x) => x.median));
  lines.push(
    `distributed, global batch ${d.batch} in ${d.shards} shards (images/s, median of ${d.distributed.length}): ` +
      `2 workers x 1 thread via Redis ${f(dm, 0)}, LocalExecutor 2 threads ${f(lm, 0)}, ratio ${f(d.ratio, 2)} ` +
      `(per repetition ${d.ratios.map((x) => f(x, 2)).join(', ')}); parameters ${d.identical ? 'bit-identical' : 'DIFFER'}`,
  );
  const dw = median(d.distributed.map((x) => x.warmupImagesPerSec));
  const lw = median(d.local.map((x) => x.warmupImagesPerSec));
  lines.push(
    `  warm-up, the first ${d.warmupSteps} steps (images/s, not in the ratio): via Redis ${f(dw, 0)}, LocalExecutor ${f(lw, 0)}, ratio ${f(d.warmupRatio, 2)} ` +
      `(per repetition ${d.distributed.map((x, i) => f(x.warmupImagesPerSec / d.local[i].warmupImagesPerSec, 2)).join(', ')}; the worker processes start once, cold in repetition 1 only)`,
  );
  const cols = ['cycle', 'publish', 'enqueue', 'pickup', 'fetch', 'compute', 'upload', 'collect', 'reduce', 'optim', 'other', 'overhead'] as const;
  const keys = ['cycleMs', 'publishMs', 'enqueueMs', 'pickupMs', 'fetchMs', 'computeMs', 'uploadMs', 'collectMs', 'reduceMs', 'optimizerMs', 'otherMs', 'overheadMs'] as const;
  lines.push(`  step breakdown, ms (median over steps; critical unit = the one that finished last, its shards summed):`);
  lines.push(`  ${'executor'.padEnd(12)}${cols.map((c) => c.padStart(9)).join('')}`);
  for (const [name, runs] of [['bullmq', d.distributed], ['local', d.local]] as const) {
    for (const run of runs) {
      const b = run.breakdown;
      lines.push(`  ${name.padEnd(12)}${keys.map((k) => f(b[k]).padStart(9)).join('')}`);
    }
  }
  lines.push(`  CPU per step, ms (both cores; workers and Redis idle during the local runs):`);
  lines.push(`  ${'executor'.padEnd(12)}${['this proc', 'redis', 'workers', 'shards', 'total', 'non-shard'].map((c) => c.padStart(10)).join('')}`);
  for (const [name, runs] of [['bullmq', d.distributed], ['local', d.local]] as const) {
    for (const { cpu } of runs) {
      const total = cpu.thisProcessMs + (cpu.redisMs ?? 0) + (cpu.workersMs ?? 0);
      lines.push(`  ${name.padEnd(12)}${[cpu.thisProcessMs, cpu.redisMs ?? NaN, cpu.workersMs ?? NaN, cpu.shardComputeMs, total, total - cpu.shardComputeMs].map((v) => f(v).padStart(10)).join('')}`);
    }
  }
  return lines;
}

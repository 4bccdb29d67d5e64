// One chaos run: a private redis-server, a coordinator (with its HTTP API on a free port) and
// workers as child processes on a unique prefix and data directory, one training job submitted
// through the jobs queue, a scenario that injects faults at seeded random moments, and the final
// parameters compared with local training of the same spec (with the same persistent numeric
// faults, when the scenario plants some: a skipped step is part of the expected bytes).
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import {
  canonicalJson,
  jobPaths,
  LocalExecutor,
  MetricsLog,
  normalizeJobSpec,
  train,
  type Executor,
  type JobContext,
  type JobSpecInput,
  type MetricsRecord,
  type ShardResult,
  type ShardTask,
} from '@stride/engine';
import { bullConnection, createRedis, JobsClient, resolveTransportConfig, SHARDS_QUEUE, type FollowOutcome } from '@stride/queue';
import { COORDINATOR_MAIN, freePort, killAll, RedisServer, spawnNode, startWorker, TcpProxy, type Spawned } from './procs.ts';

export type WorkerProc = Spawned & { id: string };
export type CoordinatorProc = Spawned & { port: number };

/** The four kinds of faults of the issue; each gets ≥ 20 faults over a full `npm run chaos`. */
export type FaultKind = 'workers' | 'coordinator' | 'redis' | 'numbers';

/** A worker-side test fault (apps/worker/src/test-faults.ts, via STRIDE_TEST_FAULTS). */
export interface WorkerFault {
  readonly do: 'crash' | 'nan' | 'inf' | 'scale';
  readonly step: number;
  readonly shard: number;
  readonly factor?: number;
  /** First n hits only (then the shard computes cleanly); absent: every time. */
  readonly times?: number;
}

/** One fault, as injected (or a recovery action, `fault: false`). */
export interface Injection {
  readonly kind: string;
  /** ms since the job was submitted. */
  readonly atMs: number;
  /** Steps completed (the coordinators' last step line) when it was injected. */
  readonly step: number;
  readonly detail?: string;
  /** false for recovery actions (a restart, a limit lifted): not counted as faults. */
  readonly fault: boolean;
}

/** What a scenario sees of the run it disturbs. */
export interface ChaosContext {
  /** Seeded: the same seed injects at the same steps. */
  readonly rng: () => number;
  /** Aborted when the job has ended: waits reject. */
  readonly signal: AbortSignal;
  readonly totalSteps: number;
  readonly jobId: string;
  readonly spec: JobSpecInput;
  readonly redis: RedisServer;
  /** A client of the run's Redis (CONFIG SET, INFO). */
  readonly redisClient: ReturnType<typeof createRedis>;
  /** The proxy the workers reach Redis through, when the scenario asked for one. */
  readonly proxy?: TcpProxy;
  /** The job's directory (records, metrics, checkpoints). */
  readonly jobDir: string;
  /** The test faults the workers were started with (STRIDE_TEST_FAULTS). */
  readonly workerFaults: WorkerFault[];
  /** Live workers (the scenario removes the ones it kills). */
  readonly workers: WorkerProc[];
  /** Every coordinator started, in order; `coordinator()` is the newest. */
  readonly coordinators: CoordinatorProc[];
  coordinator(): CoordinatorProc;
  /** Steps completed by the current coordinator run (goes back on a resume). */
  step(): number;
  waitStep(n: number, timeoutMs?: number): Promise<void>;
  sleep(ms: number): Promise<void>;
  startWorker(env?: Record<string, string>): Promise<WorkerProc>;
  /** A live worker that holds a training shard right now. */
  workerMidShard(timeoutMs?: number): Promise<{ worker: WorkerProc; shardJob: string }>;
  killCoordinator(signal: NodeJS.Signals): Promise<number | string>;
  /** Starts a coordinator (API on a free port); resolves once it takes jobs. */
  startCoordinator(env?: Record<string, string>): Promise<CoordinatorProc>;
  /** Calls the newest coordinator's HTTP API. */
  api(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: any }>;
  inject(kind: string, detail?: string): void;
  recover(kind: string, detail?: string): void;
  /** What the system did about it (shown in the table's "what happened"). */
  note(text: string): void;
  /** A scenario-specific expectation; a false one turns the row red. */
  expect(ok: boolean, what: string): void;
}

export interface Scenario {
  readonly name: string;
  readonly kind: FaultKind;
  readonly description: string;
  /** Redis with AOF (fsync every second): needed where Redis is stopped. */
  readonly aof: boolean;
  readonly workers: number;
  /** Workers reach Redis through a TCP proxy the scenario can cut. */
  readonly proxy?: boolean;
  /** Default 900 s (a loaded machine). */
  readonly timeoutMs?: number;
  /** Test faults every worker of the run starts with (chosen from the seeded generator). */
  workerFaults?(rng: () => number, totalSteps: number): WorkerFault[];
  run(ctx: ChaosContext): Promise<void>;
}

export interface RunReport {
  readonly scenario: string;
  readonly kind: FaultKind;
  readonly run: number;
  readonly seed: number;
  readonly injections: Injection[];
  /** Injections that are faults (not recoveries). */
  readonly faults: number;
  readonly notes: string[];
  /** The job completed (whatever its bytes). */
  readonly finished: boolean;
  readonly paramsSha256?: string;
  readonly reference: string;
  readonly hashMatches: boolean;
  /** Step lines for steps already done before (recomputed after a resume). */
  readonly stepsRecomputed: number;
  /** Steps skipped on purpose (numeric faults), from metrics.jsonl. */
  readonly stepsSkipped: number[];
  readonly resumedFrom?: number;
  readonly medianStepMs: number;
  /** Σ over step intervals of (interval − median step): the time the faults cost. */
  readonly timeLostMs: number;
  /** Submission to completion. */
  readonly wallMs: number;
  /** `warn:`/`error:` lines of the coordinator(s): rejected, duplicate, republished shards, Redis retries. */
  readonly coordinatorWarnings: number;
  /** Failed expectations and errors; empty when green. */
  readonly problems: string[];
  readonly green: boolean;
}

export interface RunOptions {
  readonly spec: JobSpecInput;
  readonly seed: number;
  readonly run: number;
  /** The whole run, faults included. Default: the scenario's, else 900 s. */
  readonly timeoutMs?: number;
  readonly log?: (line: string) => void;
}

/**
 * Coordinator settings of every chaos run: a dead coordinator's job is taken over after ~5 s of
 * lock plus a 2.5 s stalled check (default 10 + 5 s), its lease expires after 5 s (default 10 s).
 * Only the waiting is shorter; the code paths are the production ones.
 */
export const CHAOS_COORDINATOR_ENV = { STRIDE_JOB_LOCK_MS: '5000', STRIDE_LEASE_MS: '5000' };

/** How long a scenario may go on after the job has ended (checking side effects), ms. */
const SCENARIO_GRACE_MS = 90_000;

/** mulberry32: a small seeded generator, uniform in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The LocalExecutor with the persistent numeric faults applied: what the distributed run must reproduce. */
class FaultyLocalExecutor implements Executor {
  constructor(
    private readonly inner: Executor,
    private readonly faults: readonly WorkerFault[],
  ) {}
  publishParams(job: JobContext, version: number, state: Uint8Array): Promise<void> {
    return this.inner.publishParams(job, version, state);
  }
  async runShards(job: JobContext, tasks: readonly ShardTask[], signal?: AbortSignal): Promise<ShardResult[]> {
    const out = await this.inner.runShards(job, tasks, signal);
    return out.map((r, i) => {
      const t = tasks[i];
      const f = t.kind === 'train' ? this.faults.find((x) => x.step === t.step && x.shard === t.shard) : undefined;
      if (!f || !r.gradient) return r;
      const g = r.gradient.slice();
      if (f.do === 'nan') g[0] = NaN;
      else if (f.do === 'inf') g[0] = Infinity;
      else if (f.do === 'scale') for (let k = 0; k < g.length; k++) g[k] *= f.factor!;
      return { ...r, gradient: g };
    });
  }
  releaseJob(jobId: string): Promise<void> {
    return this.inner.releaseJob(jobId);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

const references = new Map<string, Promise<string>>();

/**
 * The expected bytes: the job trained in this process by the LocalExecutor (computed once per
 * spec and set of persistent numeric faults; transient ones, with `times`, change nothing).
 */
export function referenceHash(spec: JobSpecInput, faults: readonly WorkerFault[] = []): Promise<string> {
  const persistent = faults.filter((f) => f.times === undefined && f.do !== 'crash');
  const key = canonicalJson({ spec: normalizeJobSpec(spec), persistent });
  let sha = references.get(key);
  if (!sha) {
    sha = (async () => {
      const dir = await mkdtemp(join(tmpdir(), 'stride-chaos-ref-'));
      const local = new LocalExecutor({ threads: 1 });
      try {
        const executor = persistent.length ? new FaultyLocalExecutor(local, persistent) : local;
        return (await train(spec, { executor, dataDir: dir, jobId: 'reference', resume: false })).paramsSha256;
      } finally {
        await local.close();
        await rm(dir, { recursive: true, force: true });
      }
    })();
    references.set(key, sha);
  }
  return sha;
}

/** Resolves after `ms`; rejects at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new Error(String(signal.reason)));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new Error(String(signal!.reason)));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export async function runScenario(scenario: Scenario, options: RunOptions): Promise<RunReport> {
  const log = options.log ?? (() => undefined);
  const totalSteps = normalizeJobSpec(options.spec).steps;
  if (totalSteps === undefined) throw new RangeError('runScenario: the job spec must give `steps` (faults are placed by step), not `epochs`');
  const rng = seededRandom(options.seed);
  const workerFaults = scenario.workerFaults?.(rng, totalSteps) ?? [];
  const reference = await referenceHash(options.spec, workerFaults);
  const dir = await mkdtemp(join(tmpdir(), `stride-chaos-${scenario.name}-`));
  const redis = new RedisServer(await freePort(), dir, scenario.aof);
  await redis.start();
  const proxy = scenario.proxy ? new TcpProxy(redis.port) : undefined;
  await proxy?.start();
  const config = resolveTransportConfig({ redisUrl: redis.url, prefix: `{chaos-${scenario.name}-${randomBytes(3).toString('hex')}}` });
  const dataDir = join(dir, 'data');
  const env = { REDIS_URL: config.redisUrl, STRIDE_QUEUE_PREFIX: config.prefix, STRIDE_DATA_DIR: dataDir };
  const workerEnv: Record<string, string> = { ...env, ...(proxy ? { REDIS_URL: proxy.url } : {}), ...(workerFaults.length ? { STRIDE_TEST_FAULTS: JSON.stringify(workerFaults) } : {}) };
  const jobId = `chaos-${scenario.name}-${options.run}`;
  const procs: Spawned[] = [];
  /** Workers still starting: waited for before the clean-up, so none outlives the run. */
  const starting = new Set<Promise<WorkerProc>>();
  const workers: WorkerProc[] = [];
  const coordinators: CoordinatorProc[] = [];
  const injections: Injection[] = [];
  const notes: string[] = [];
  const problems: string[] = [];
  const stepLines: { step: number; at: number }[] = [];
  let current = 0;
  const t0 = Date.now();
  const stepLine = new RegExp(`job ${jobId} step (\\d+)/`);
  const ended = new AbortController();
  const client = new JobsClient(config);
  const redisClient = createRedis(config, 'stride-chaos');
  redisClient.on('error', () => undefined);
  const shards = new Queue(SHARDS_QUEUE, { connection: bullConnection(config), prefix: config.prefix });
  shards.on('error', () => undefined); // Redis restarts: it reconnects by itself.
  let metrics: MetricsRecord[] = [];

  const ctx: ChaosContext = {
    rng,
    signal: ended.signal,
    totalSteps,
    jobId,
    spec: options.spec,
    redis,
    redisClient,
    proxy,
    jobDir: jobPaths(dataDir, jobId).dir,
    workerFaults,
    workers,
    coordinators,
    coordinator: () => coordinators[coordinators.length - 1],
    step: () => current,
    async waitStep(n, timeoutMs = 600_000) {
      const end = Date.now() + timeoutMs;
      while (current < n) {
        if (Date.now() > end) throw new Error(`step ${n} not reached within ${timeoutMs} ms (at step ${current})`);
        await sleep(20, ended.signal);
      }
    },
    sleep: (ms) => sleep(ms, ended.signal),
    startWorker(extraEnv) {
      const p = startWorker({ ...workerEnv, ...extraEnv }, 1).then((w) => {
        procs.push(w);
        workers.push(w);
        return w;
      });
      starting.add(p);
      void p.finally(() => starting.delete(p)).catch(() => undefined);
      return p;
    },
    async workerMidShard(timeoutMs = 120_000) {
      const end = Date.now() + timeoutMs;
      while (Date.now() < end) {
        try {
          for (const j of await shards.getJobs(['active'])) {
            const worker = j.name === 'train' ? workers.find((w) => w.id === j.processedBy && w.alive()) : undefined;
            if (worker) return { worker, shardJob: j.id! };
          }
        } catch {
          // Redis away for a moment: look again.
        }
        await sleep(15, ended.signal);
      }
      throw new Error(`no worker held a training shard within ${timeoutMs} ms (step ${current})`);
    },
    async killCoordinator(signal) {
      const c = ctx.coordinator();
      c.child.kill(signal);
      return c.exited;
    },
    async startCoordinator(extraEnv = {}) {
      const port = await freePort();
      const c = spawnNode(COORDINATOR_MAIN, ['--verbose'], { ...env, ...CHAOS_COORDINATOR_ENV, HOST: '127.0.0.1', PORT: String(port), ...extraEnv }, (line) => {
        const m = line.match(stepLine);
        if (!m) return;
        current = Number(m[1]);
        stepLines.push({ step: current, at: Date.now() });
      });
      const proc = Object.assign(c, { port });
      procs.push(proc);
      coordinators.push(proc);
      await c.waitFor(/taking training jobs/, 240_000);
      return proc;
    },
    async api(method, path, body) {
      const res = await fetch(`http://127.0.0.1:${ctx.coordinator().port}${path}`, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(15_000),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // Not JSON: keep the text.
      }
      return { status: res.status, body: parsed };
    },
    inject(kind, detail) {
      injections.push({ kind, atMs: Date.now() - t0, step: current, detail, fault: true });
      log(`  [${((Date.now() - t0) / 1000).toFixed(1)} s] step ${current}: ${kind}${detail ? ` (${detail})` : ''}`);
    },
    recover(kind, detail) {
      injections.push({ kind, atMs: Date.now() - t0, step: current, detail, fault: false });
      log(`  [${((Date.now() - t0) / 1000).toFixed(1)} s] step ${current}: ${kind}${detail ? ` (${detail})` : ''}`);
    },
    note(text) {
      notes.push(text);
      log(`  [${((Date.now() - t0) / 1000).toFixed(1)} s] ${text}`);
    },
    expect(ok, what) {
      if (!ok) problems.push(what);
    },
  };

  let outcome: FollowOutcome | undefined;
  try {
    await Promise.all([ctx.startCoordinator(), ...Array.from({ length: scenario.workers }, () => ctx.startWorker())]);
    await client.submit(options.spec, { jobId });
    const stopFollowing = new AbortController();
    const followed = client.follow(jobId, () => undefined, { pollMs: 500, signal: stopFollowing.signal }).catch(() => undefined);
    const chaos = scenario.run(ctx).catch((err: Error) => void problems.push(`scenario: ${err.message}`));
    const timeoutMs = options.timeoutMs ?? scenario.timeoutMs ?? 900_000;
    const timeout = new AbortController();
    outcome = await Promise.race([followed, sleep(timeoutMs, timeout.signal).then(() => undefined, () => undefined)]);
    timeout.abort('done');
    stopFollowing.abort(new Error('stopped following'));
    // A scenario may still be checking what it caused (a paused side job): give it a grace period.
    if (outcome) await Promise.race([chaos, sleep(SCENARIO_GRACE_MS)]);
    ended.abort(outcome ? `the job ended before the scenario was done (step ${current}/${totalSteps})` : 'timed out');
    await chaos;
    if (!outcome) problems.push(`job never finished within ${timeoutMs / 1000} s (last step line ${current}/${totalSteps})`);
    metrics = await MetricsLog.read(jobPaths(dataDir, jobId).metrics).catch(() => []);
  } catch (err) {
    problems.push(`harness: ${(err as Error).message}`);
  } finally {
    await Promise.allSettled([...starting]);
    await killAll(procs);
    await Promise.allSettled([client.close(), shards.close(), redisClient.quit()]);
    await proxy?.close();
    await redis.kill();
    if (problems.length) {
      for (const c of coordinators) log(`  coordinator pid ${c.pid} output (tail):\n${c.output().slice(-1500)}`);
      for (const p of procs) log(`  pid ${p.pid} exited ${await p.exited}; last lines: ${p.output().trim().split('\n').slice(-3).join(' | ')}`);
    }
    await rm(dir, { recursive: true, force: true });
  }
  const wallMs = Date.now() - t0;
  const result = outcome?.state === 'completed' ? outcome.result : undefined;
  if (outcome && outcome.state !== 'completed') problems.push(`job ${outcome.state}${outcome.state === 'failed' ? `: ${outcome.reason}` : ''}`);
  if (result && result.status !== 'succeeded') problems.push(`job ended ${result.status}`);
  const hashMatches = result?.paramsSha256 === reference;
  if (result && !hashMatches) problems.push(`paramsSha256 ${result.paramsSha256} differs from the local reference ${reference}`);
  const stepsSkipped = metrics.filter((m) => m.type === 'skip').map((m) => m.step);
  const expectedSkips = workerFaults.filter((f) => f.times === undefined && f.do !== 'crash').map((f) => f.step);
  if (result && canonicalJson([...new Set(expectedSkips)].sort((a, b) => a - b)) !== canonicalJson(stepsSkipped)) {
    problems.push(`steps skipped ${JSON.stringify(stepsSkipped)}, expected ${JSON.stringify(expectedSkips)}`);
  }

  // Step timing from the coordinators' step lines (all runs of the job).
  let maxSeen = 0;
  let stepsRecomputed = 0;
  const intervals: number[] = [];
  for (let i = 0; i < stepLines.length; i++) {
    if (stepLines[i].step <= maxSeen) stepsRecomputed++;
    maxSeen = Math.max(maxSeen, stepLines[i].step);
    if (i > 0) intervals.push(stepLines[i].at - stepLines[i - 1].at);
  }
  const sorted = [...intervals].sort((a, b) => a - b);
  const medianStepMs = sorted.length ? sorted[sorted.length >> 1] : 0;
  const timeLostMs = intervals.reduce((sum, d) => sum + Math.max(0, d - medianStepMs), 0);
  return {
    scenario: scenario.name,
    kind: scenario.kind,
    run: options.run,
    seed: options.seed,
    injections,
    faults: injections.filter((i) => i.fault).length,
    notes,
    finished: result !== undefined,
    paramsSha256: result?.paramsSha256,
    reference,
    hashMatches,
    stepsRecomputed,
    stepsSkipped,
    resumedFrom: result?.resumedFrom,
    medianStepMs,
    timeLostMs,
    wallMs,
    coordinatorWarnings: coordinators.reduce((n, c) => n + (c.output().match(/ (warn|error): /g)?.length ?? 0), 0),
    problems,
    green: problems.length === 0 && hashMatches,
  };
}

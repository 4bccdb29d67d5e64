// One chaos run: a private redis-server, a coordinator and workers as child processes on a unique
// prefix and data directory, one training job submitted through the jobs queue, a scenario that
// injects faults at seeded random moments, and the final parameters compared with local training.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { canonicalJson, LocalExecutor, normalizeJobSpec, train, type JobSpecInput } from '@stride/engine';
import { bullConnection, JobsClient, resolveTransportConfig, SHARDS_QUEUE, type FollowOutcome } from '@stride/queue';
import { COORDINATOR_MAIN, freePort, killAll, RedisServer, spawnNode, startWorker, type Spawned } from './procs.ts';

export type WorkerProc = Spawned & { id: string };

/** One fault, as injected. */
export interface Injection {
  readonly kind: string;
  /** ms since the job was submitted. */
  readonly atMs: number;
  /** Steps completed (the coordinator's last step line) when it was injected. */
  readonly step: number;
  readonly detail?: string;
}

/** What a scenario sees of the run it disturbs. */
export interface ChaosContext {
  /** Seeded: the same seed injects at the same steps. */
  readonly rng: () => number;
  /** Aborted when the job has ended: waits reject. */
  readonly signal: AbortSignal;
  readonly totalSteps: number;
  readonly redis: RedisServer;
  /** Live workers (the scenario removes the ones it kills). */
  readonly workers: WorkerProc[];
  /** Steps completed by the current coordinator run (goes back on a resume). */
  step(): number;
  waitStep(n: number, timeoutMs?: number): Promise<void>;
  sleep(ms: number): Promise<void>;
  startWorker(): Promise<WorkerProc>;
  /** A live worker that holds a training shard right now. */
  workerMidShard(timeoutMs?: number): Promise<{ worker: WorkerProc; shardJob: string }>;
  killCoordinator(signal: NodeJS.Signals): Promise<number | string>;
  startCoordinator(): Promise<void>;
  inject(kind: string, detail?: string): void;
  /** A scenario-specific expectation; a false one turns the row red. */
  expect(ok: boolean, what: string): void;
}

export interface Scenario {
  readonly name: string;
  readonly description: string;
  /** Redis with AOF (fsync every second): needed where Redis is stopped. */
  readonly aof: boolean;
  readonly workers: number;
  run(ctx: ChaosContext): Promise<void>;
}

export interface RunReport {
  readonly scenario: string;
  readonly run: number;
  readonly seed: number;
  readonly injections: Injection[];
  /** The job completed (whatever its bytes). */
  readonly finished: boolean;
  readonly paramsSha256?: string;
  readonly reference: string;
  readonly hashMatches: boolean;
  /** Step lines for steps already done before (recomputed after a resume). */
  readonly stepsRecomputed: number;
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
  /** The whole run, faults included. Default 300 s. */
  readonly timeoutMs?: number;
  readonly log?: (line: string) => void;
}

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

const references = new Map<string, Promise<string>>();

/** The fault-free bytes: the job trained in this process by the LocalExecutor (computed once per spec). */
export function referenceHash(spec: JobSpecInput): Promise<string> {
  const key = canonicalJson(normalizeJobSpec(spec));
  let sha = references.get(key);
  if (!sha) {
    sha = (async () => {
      const dir = await mkdtemp(join(tmpdir(), 'stride-chaos-ref-'));
      const local = new LocalExecutor({ threads: 1 });
      try {
        return (await train(spec, { executor: local, dataDir: dir, jobId: 'reference', resume: false })).paramsSha256;
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
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
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
  const reference = await referenceHash(options.spec);
  const totalSteps = normalizeJobSpec(options.spec).steps;
  if (totalSteps === undefined) throw new RangeError('runScenario: the job spec must give `steps` (faults are placed by step), not `epochs`');
  const dir = await mkdtemp(join(tmpdir(), `stride-chaos-${scenario.name}-`));
  const redis = new RedisServer(await freePort(), dir, scenario.aof);
  await redis.start();
  const config = resolveTransportConfig({ redisUrl: redis.url, prefix: `{chaos-${scenario.name}-${randomBytes(3).toString('hex')}}` });
  const env = { REDIS_URL: config.redisUrl, STRIDE_QUEUE_PREFIX: config.prefix, STRIDE_DATA_DIR: join(dir, 'data') };
  const jobId = `chaos-${scenario.name}-${options.run}`;
  const procs: Spawned[] = [];
  const workers: WorkerProc[] = [];
  const injections: Injection[] = [];
  const problems: string[] = [];
  const stepLines: { step: number; at: number }[] = [];
  let current = 0;
  let coordinator: Spawned | undefined;
  const coordinators: Spawned[] = [];
  const t0 = Date.now();
  const stepLine = new RegExp(`job ${jobId} step (\\d+)/`);
  const ended = new AbortController();
  const client = new JobsClient(config);
  const shards = new Queue(SHARDS_QUEUE, { connection: bullConnection(config), prefix: config.prefix });
  shards.on('error', () => undefined); // Redis restarts: it reconnects by itself.

  const ctx: ChaosContext = {
    rng: seededRandom(options.seed),
    signal: ended.signal,
    totalSteps,
    redis,
    workers,
    step: () => current,
    async waitStep(n, timeoutMs = 120_000) {
      const end = Date.now() + timeoutMs;
      while (current < n) {
        if (Date.now() > end) throw new Error(`step ${n} not reached within ${timeoutMs} ms (at step ${current})`);
        await sleep(20, ended.signal);
      }
    },
    sleep: (ms) => sleep(ms, ended.signal),
    async startWorker() {
      const w = await startWorker(env, 1);
      procs.push(w);
      workers.push(w);
      return w;
    },
    async workerMidShard(timeoutMs = 20_000) {
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
      const c = coordinator!;
      c.child.kill(signal);
      return c.exited;
    },
    async startCoordinator() {
      const c = spawnNode(COORDINATOR_MAIN, ['--no-api', '--verbose'], env, (line) => {
        const m = line.match(stepLine);
        if (!m) return;
        current = Number(m[1]);
        stepLines.push({ step: current, at: Date.now() });
      });
      procs.push(c);
      coordinators.push(c);
      coordinator = c;
      await c.waitFor(/taking training jobs/, 60_000);
    },
    inject(kind, detail) {
      injections.push({ kind, atMs: Date.now() - t0, step: current, detail });
      log(`  [${((Date.now() - t0) / 1000).toFixed(1)} s] step ${current}: ${kind}${detail ? ` (${detail})` : ''}`);
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
    const timeoutMs = options.timeoutMs ?? 300_000;
    const timeout = new AbortController();
    outcome = await Promise.race([followed, sleep(timeoutMs, timeout.signal).then(() => undefined, () => undefined)]);
    timeout.abort('done');
    stopFollowing.abort(new Error('stopped following'));
    ended.abort(outcome ? `the job ended before the scenario was done (step ${current}/${totalSteps})` : 'timed out');
    await chaos;
    if (!outcome) problems.push(`job never finished within ${timeoutMs / 1000} s (last step line ${current}/${totalSteps})`);
  } catch (err) {
    problems.push(`harness: ${(err as Error).message}`);
  } finally {
    await killAll(procs);
    await Promise.allSettled([client.close(), shards.close()]);
    await redis.kill();
    if (problems.length) {
      log(`  coordinator output (tail):\n${(coordinator?.output() ?? '').slice(-1500)}`);
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

  // Step timing from the coordinator's step lines (all runs of the job).
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
    run: options.run,
    seed: options.seed,
    injections,
    finished: result !== undefined,
    paramsSha256: result?.paramsSha256,
    reference,
    hashMatches,
    stepsRecomputed,
    resumedFrom: result?.resumedFrom,
    medianStepMs,
    timeLostMs,
    wallMs,
    coordinatorWarnings: coordinators.reduce((n, c) => n + (c.output().match(/ (warn|error): /g)?.length ?? 0), 0),
    problems,
    green: problems.length === 0 && hashMatches,
  };
}

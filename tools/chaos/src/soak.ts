// `npm run chaos -- --soak 600`: ten minutes of training under random worker kills. One private
// redis-server, a coordinator, three workers; LeNet-5 jobs (the chaos spec) one after the other;
// every 2–6 s a random worker is SIGKILLed (one is always left) and a fresh one started at once. Reports the steps done, the
// faults, every finished job's parameters against local training, and Redis used_memory and the
// coordinator's heap at the start and the end (bounded: they must not grow with the run).
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { JobSpecInput } from '@stride/engine';
import { createRedis, JobsClient, resolveTransportConfig } from '@stride/queue';
import { CHAOS_COORDINATOR_ENV, referenceHash, seededRandom, sleep, type WorkerProc } from './harness.ts';
import { freePort, killAll, RedisServer, spawnNode, startWorker, type Spawned } from './procs.ts';

const COORDINATOR_WITH_MEMORY = fileURLToPath(new URL('./coordinator-with-memory.ts', import.meta.url));

export interface SoakReport {
  readonly seconds: number;
  readonly seed: number;
  readonly workerKills: number;
  readonly jobsFinished: number;
  readonly jobsIdentical: number;
  /** Optimizer steps applied (finished jobs' steps plus the last job's progress). */
  readonly stepsDone: number;
  /** Steps computed again after a resume (a worker kill never causes one; a coordinator resume would). */
  readonly stepsRecomputed: number;
  readonly redisUsedMemory: { readonly start: number; readonly end: number; readonly max: number };
  readonly coordinatorHeap: { readonly start: number; readonly end: number; readonly max: number };
  readonly loadAverage: { readonly start: number[]; readonly end: number[] };
  readonly problems: string[];
  readonly green: boolean;
}

export async function runSoak(spec: JobSpecInput, seconds: number, options: { seed: number; log: (line: string) => void; workers?: number }): Promise<SoakReport> {
  const { log } = options;
  const rng = seededRandom(options.seed);
  const { loadavg } = await import('node:os');
  const reference = await referenceHash(spec);
  const dir = await mkdtemp(join(tmpdir(), 'stride-soak-'));
  const redis = new RedisServer(await freePort(), dir, false);
  await redis.start();
  const config = resolveTransportConfig({ redisUrl: redis.url, prefix: `{soak-${randomBytes(3).toString('hex')}}` });
  const env = { REDIS_URL: config.redisUrl, STRIDE_QUEUE_PREFIX: config.prefix, STRIDE_DATA_DIR: join(dir, 'data') };
  const procs: Spawned[] = [];
  const workers: WorkerProc[] = [];
  const problems: string[] = [];
  const redisClient = createRedis(config, 'stride-soak');
  redisClient.on('error', () => undefined);
  const client = new JobsClient(config);
  const heap: number[] = [];
  const mem: number[] = [];
  const lastStep = new Map<string, number>();
  let stepsRecomputed = 0;
  const coordinator = spawnNode(COORDINATOR_WITH_MEMORY, ['--verbose', '--no-api'], { ...env, ...CHAOS_COORDINATOR_ENV }, (line) => {
    const h = /chaos-memory heapUsed=(\d+)/.exec(line);
    if (h) heap.push(Number(h[1]));
    const s = /job (\S+) step (\d+)\//.exec(line);
    if (s) {
      const prev = lastStep.get(s[1]) ?? 0;
      if (Number(s[2]) <= prev) stepsRecomputed++;
      lastStep.set(s[1], Math.max(prev, Number(s[2])));
    }
  });
  procs.push(coordinator);
  const starting = new Set<Promise<void>>();
  const addWorker = (): Promise<void> => {
    const p = startWorker(env, 1).then((w) => {
      procs.push(w);
      workers.push(w);
    });
    starting.add(p);
    void p.finally(() => starting.delete(p)).catch(() => undefined);
    return p;
  };
  const usedMemory = async (): Promise<number> => Number(/used_memory:(\d+)/.exec(await redisClient.info('memory'))?.[1]);
  const load0 = loadavg();
  let kills = 0;
  let finished = 0;
  let identical = 0;
  const stop = new AbortController();
  try {
    await Promise.all([coordinator.waitFor(/taking training jobs/, 60_000), ...Array.from({ length: options.workers ?? 3 }, addWorker)]);
    const end = Date.now() + seconds * 1000;
    const killer = (async () => {
      while (!stop.signal.aborted) {
        await sleep(2000 + Math.floor(rng() * 4000), stop.signal);
        // Every few seconds whatever the replacements' start-up time; one worker is always left.
        if (workers.length < 2) continue;
        const victim = workers.splice(Math.floor(rng() * workers.length), 1)[0];
        victim.child.kill('SIGKILL');
        kills++;
        void addWorker().catch((err: Error) => problems.push(`starting a replacement worker: ${err.message}`));
      }
    })().catch(() => undefined);
    let memStart = 0;
    let heapStart = 0;
    for (let n = 0; Date.now() < end; n++) {
      const jobId = `soak-${n}`;
      await client.submit(spec, { jobId });
      if (n === 0) {
        while (!lastStep.get(jobId)) await sleep(200);
        memStart = await usedMemory();
        heapStart = heap[heap.length - 1] ?? 0;
        log(`soak: started; Redis used_memory ${(memStart / 1048576).toFixed(2)} MiB, coordinator heap ${(heapStart / 1048576).toFixed(1)} MiB`);
      }
      const left = end - Date.now();
      const outcome = await Promise.race([client.follow(jobId, () => undefined, { pollMs: 500, signal: AbortSignal.timeout(Math.max(1000, left)) }).catch(() => undefined), sleep(Math.max(1000, left)).then(() => undefined)]);
      mem.push(await usedMemory());
      if (outcome?.state === 'completed') {
        finished++;
        const ok = outcome.result.paramsSha256 === reference;
        if (ok) identical++;
        else problems.push(`job ${jobId}: paramsSha256 ${outcome.result.paramsSha256} differs from the reference ${reference}`);
        log(`soak: ${jobId} finished (${ok ? 'identical' : 'DIFFERENT'}); ${kills} worker kills so far; ${Math.round((end - Date.now()) / 1000)} s left`);
      } else if (outcome) {
        problems.push(`job ${jobId} ${outcome.state}`);
      }
    }
    stop.abort('time is up');
    await killer;
    const memEnd = await usedMemory();
    const heapEnd = heap[heap.length - 1] ?? 0;
    const stepsDone = [...lastStep.values()].reduce((a, b) => a + b, 0);
    const report: SoakReport = {
      seconds,
      seed: options.seed,
      workerKills: kills,
      jobsFinished: finished,
      jobsIdentical: identical,
      stepsDone,
      stepsRecomputed,
      redisUsedMemory: { start: memStart, end: memEnd, max: Math.max(memStart, memEnd, ...mem) },
      coordinatorHeap: { start: heapStart, end: heapEnd, max: Math.max(0, ...heap) },
      loadAverage: { start: load0, end: loadavg() },
      problems,
      green: false,
    };
    // Bounded: what a run leaves in Redis is cleaned up, the coordinator does not accumulate per step.
    if (memEnd > 2 * memStart + 8 * 1048576) problems.push(`Redis used_memory grew from ${memStart} to ${memEnd} bytes`);
    if (heapEnd > 2 * heapStart + 64 * 1048576) problems.push(`coordinator heap grew from ${heapStart} to ${heapEnd} bytes`);
    if (finished === 0) problems.push('no job finished');
    return { ...report, problems, green: problems.length === 0 };
  } finally {
    stop.abort('done');
    // Replacements still starting would outlive the run otherwise.
    await Promise.allSettled([...starting]);
    await killAll(procs);
    await Promise.allSettled([client.close(), redisClient.quit()]);
    await redis.kill();
    if (problems.length) log(`soak: coordinator output (tail):\n${coordinator.output().slice(-2000)}`);
    await rm(dir, { recursive: true, force: true });
  }
}

export function formatSoak(r: SoakReport): string {
  const mib = (b: number): string => `${(b / 1048576).toFixed(2)} MiB`;
  return [
    `| soak | value |`,
    `|---|---|`,
    `| duration | ${r.seconds} s |`,
    `| worker SIGKILLs (every 2–6 s, a random one of the 3, replaced at once) | ${r.workerKills} |`,
    `| steps done | ${r.stepsDone} (${r.stepsRecomputed} recomputed) |`,
    `| jobs finished / identical parameters | ${r.jobsFinished} / ${r.jobsIdentical} |`,
    `| Redis used_memory start → end (max) | ${mib(r.redisUsedMemory.start)} → ${mib(r.redisUsedMemory.end)} (${mib(r.redisUsedMemory.max)}) |`,
    `| coordinator heap start → end (max) | ${mib(r.coordinatorHeap.start)} → ${mib(r.coordinatorHeap.end)} (${mib(r.coordinatorHeap.max)}) |`,
    `| load average start → end | ${r.loadAverage.start.map((x) => x.toFixed(1)).join(' ')} → ${r.loadAverage.end.map((x) => x.toFixed(1)).join(' ')} |`,
    `| result | ${r.green ? 'GREEN' : `RED: ${r.problems.join('; ')}`} |`,
  ].join('\n');
}
